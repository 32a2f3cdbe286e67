"""Sample-quality metrics as small pure functions over float64 features or class probabilities.

``feature_metrics`` registers them by name in ``METRICS``; ``gantrain.evaluate.score`` looks them
up there, so ``gantrain eval`` and evaluation during training compute every metric the same way.
"""

from gantrain.metrics.scores import (  # noqa: F401
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    polynomial_mmd2,
    precision_recall,
)
from gantrain.metrics import feature_metrics  # noqa: F401,E402  (registers fid, kid, is, pr)
