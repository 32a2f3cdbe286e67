"""The feature metrics ``gantrain eval`` and training-time evaluation compute, registered by name.

Each entry is a function ``(real_feats, fake_feats, fake_probs, seed) -> value`` (a float, or a
dict such as ``{"mean", "std"}``) with what the callers need to know declared next to it: which way
is better, which scalar is logged during training, whether it needs class probabilities. Adding a
metric is one function here and its registration; the CLI flag is added in cli.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from gantrain.errors import UserError
from gantrain.metrics.scores import feature_statistics, frechet_distance, inception_score, kernel_inception_distance, precision_recall
from gantrain.registry import METRICS


@dataclass(frozen=True)
class FeatureMetric:
    compute: Callable  # (real_feats, fake_feats, fake_probs, seed) -> value
    lower_is_better: bool | None  # None: two numbers pulling apart (precision/recall), not for picking checkpoints
    needs_probs: bool = False

    def __call__(self, real_feats, fake_feats, fake_probs, seed: int = 0):
        if self.needs_probs and fake_probs is None:
            raise UserError("this metric needs an extractor with class probabilities (a classifier or Inception)")
        return self.compute(real_feats, fake_feats, fake_probs, seed)

    @staticmethod
    def scalar(value) -> float:
        """The number logged during training: the value, or the mean of a {mean, std} pair."""
        return value["mean"] if isinstance(value, dict) else value


def _fid(real, fake, probs, seed):
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def _kid(real, fake, probs, seed):
    mean, std = kernel_inception_distance(real, fake, seed=seed)
    return {"mean": mean, "std": std}


def _is(real, fake, probs, seed):
    mean, std = inception_score(probs, seed=seed)  # splits over a seeded shuffle
    return {"mean": mean, "std": std}


def _pr(real, fake, probs, seed):
    precision, recall = precision_recall(real, fake, k=3)
    return {"precision": precision, "recall": recall}


METRICS.register("fid", description="Frechet distance between real and generated feature Gaussians (Heusel et al. 2017)")(FeatureMetric(_fid, lower_is_better=True))
METRICS.register("kid", description="kernel inception distance: unbiased MMD^2, cubic kernel, mean +- std over subsets (Binkowski et al. 2018)")(
    FeatureMetric(_kid, lower_is_better=True))
METRICS.register("is", description="inception / classifier score, 10 splits (Salimans et al. 2016)")(FeatureMetric(_is, lower_is_better=False, needs_probs=True))
METRICS.register("pr", description="k-NN precision and recall, k = 3 (Kynkaanniemi et al. 2019)")(FeatureMetric(_pr, lower_is_better=None))
