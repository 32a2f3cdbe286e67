"""``gantrain eval``: sample-quality numbers with the protocol that produced them.

Every result records the metric, the generated sample count, the real split and count, the
extractor with its weights' identity, the preprocessing, the checkpoint step and the seed. Real
features are cached on disk, keyed by what determines them (the data's location and contents, the
subset size and seed, the extractor's weights hash), written atomically, and a hit is reported.
Arguments are validated here, before anything heavy, and refused with a UserError.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from gantrain.classify import run_accuracy
from gantrain.data import check_split, has_splits, held_out_split, load_dataset
from gantrain.data.image_folder import load_folder
from gantrain.data.source import ImageSource
from gantrain.errors import UserError
from gantrain.extractors import Extractor, default_extractor_name, get_extractor
from gantrain.sampling import generate, load_model
import gantrain.metrics  # noqa: F401  (registers the feature metrics in METRICS)
from gantrain.registry import METRICS

ACCURACY = "accuracy"  # conditional accuracy: generated per class, not a function of features


def metric_names() -> list[str]:
    return [*METRICS.names(), ACCURACY]


def lower_is_better(metric: str) -> bool | None:
    return False if metric == ACCURACY else METRICS.get(metric).lower_is_better
DEFAULT_N = 10000  # generated samples, and at most this many real images (per folder), when n is not given
INCEPTION_SIZE = 299  # folder images for extractors without a fixed input shape


def cache_dir() -> Path:
    return Path(os.environ.get("GANTRAIN_CACHE", Path.home() / ".cache" / "gantrain")) / "real_features"


def _to_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def data_fingerprint(source: ImageSource) -> str:
    """SHA-256 of the loaded images and labels: what features are computed from, whatever the files'
    names, dates or folder. Hashing is cheap next to running an extractor over the same pixels."""
    h = hashlib.sha256(repr((source.images.shape, source.labels.shape)).encode())
    h.update(np.ascontiguousarray(source.images).data)
    h.update(np.ascontiguousarray(source.labels, dtype=np.int32).data)
    return h.hexdigest()


def subset_indices(total: int, n: int, seed: int) -> np.ndarray:
    """min(n, total) indices into ``total`` images: a seeded random subset (ascending), or all.

    Never the first n: folders list files class by class, so a prefix would hold the first classes only.
    """
    if n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).permutation(total)[:n])


def real_features(source: ImageSource, key: dict, n: int, extractor: Extractor, use_cache: bool = True,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Features of min(n, len(source)) real images (``subset_indices``), cached on disk.

    The cache key is ``key`` (the caller's description: data config, split) plus what actually
    determines the features: where the images were read from, a hash of their contents, n, the
    seed, and the extractor's identity with the SHA-256 of the weights it loaded.

    Returns:
      (features (m, d) float64, class probabilities (m, classes) float64 or None, cache hit).
    """
    identity = {**key, "location": source.location, "data_sha256": data_fingerprint(source), "n": n, "seed": seed,
                "extractor": extractor.cache_identity()}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = cache_dir() / f"{digest}.npz"
    if use_cache and path.is_file():
        with np.load(path, allow_pickle=False) as f:
            probs = f["probs"] if "probs" in f.files else None
            return f["features"].astype(np.float64), (probs.astype(np.float64) if probs is not None else None), True
    feats, probs = extractor(_to_float(source.images[subset_indices(len(source), n, seed)]))
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        arrays = {"features": feats.astype(np.float32)}
        if probs is not None:
            arrays["probs"] = probs.astype(np.float32)
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    return feats, probs, False


def score(metrics, real_feats, fake_feats, fake_probs, seed: int = 0) -> dict:
    """{metric: value or {mean, std} / {precision, recall}} for the requested feature metrics."""
    return {m: METRICS.get(m)(real_feats, fake_feats, fake_probs, seed) for m in metrics}


def check_class_names(run_names, extractor: Extractor) -> None:
    """Refuse a classifier whose classes are not the run's, in the run's order.

    Class k of a conditional generator is the k-th class of its training data; the classifier's
    column k must mean the same class, or the accuracy is silently wrong (a classifier trained on
    folders listed in another order has the same number of classes).
    """
    names, run_names = extractor.class_names, list(run_names or [])
    if not names:
        raise UserError(f"--accuracy: extractor {extractor.name!r} does not name its classes (no class_names in its record), so its "
                        "class k cannot be matched with the run's class k; add \"class_names\" in training order to its .json")
    if not run_names:
        raise UserError("--accuracy: the run's meta.json names no classes, so they cannot be matched with the classifier's")
    if len(names) != len(run_names):
        raise UserError(f"--accuracy: extractor {extractor.name!r} has {len(names)} classes, the run {len(run_names)}")
    for k, (ours, theirs) in enumerate(zip(run_names, names)):
        if ours != theirs:
            raise UserError(f"--accuracy: class {k} is {ours!r} in the run but {theirs!r} for extractor {extractor.name!r}; "
                            f"the classifier needs the run's classes in the run's order ({', '.join(run_names)})")


def conditional_accuracy(model, extractor: Extractor, n: int, seed: int, generator=None, class_names=None) -> dict:
    """Fraction of samples generated for class k that the domain classifier calls k; overall and per class.

    ``n // num_classes`` samples per class (at least one); ``class_names`` (default: the run's,
    ``model.class_names``) must equal the classifier's, in order. For an unsupervised categorical
    code (InfoGAN) code k need not mean class k, so the score is :func:`code_accuracy`'s instead:
    the same count under the best one-to-one mapping of code values to classes (``mapping``).
    """
    if not model.conditional:
        raise UserError("--accuracy measures conditional generation; this model family takes no labels (for sgan it reports D's classifier)")
    if not extractor.has_probs:
        raise UserError(f"--accuracy needs a classifier extractor, {extractor.name!r} has no class probabilities")
    if model.labels_are_classes:
        check_class_names(model.class_names if class_names is None else class_names, extractor)
    per_class = max(1, n // model.num_classes)
    labels = np.repeat(np.arange(model.num_classes), per_class)
    images = generate(model, len(labels), seed, labels.tolist(), generator=generator)
    _, probs = extractor(images)
    predicted = probs.argmax(axis=1)
    if not model.labels_are_classes:
        return code_accuracy(labels, predicted, model.num_classes, probs.shape[1])
    if probs.shape[1] != model.num_classes:
        raise UserError(f"the extractor has {probs.shape[1]} classes, the model {model.num_classes}")
    hits = predicted == labels
    return {"overall": float(hits.mean()), "per_class": [float(hits[labels == k].mean()) for k in range(model.num_classes)], "generated": int(len(labels))}


def code_accuracy(codes: np.ndarray, predicted: np.ndarray, num_codes: int, num_classes: int) -> dict:
    """Accuracy of an unsupervised categorical code under its best one-to-one mapping to classes.

    The InfoGAN paper's measure (Chen et al. 2016, 5% error on MNIST): code values are matched to
    classifier labels so that the most samples agree (the Hungarian algorithm on the code x class
    count matrix); a code left without a class (more codes than classes) counts as wrong.

    Args:
        codes: the code value each sample was generated with, ints in [0, num_codes).
        predicted: the classifier's label for each sample, ints in [0, num_classes).
    Returns:
        {"overall", "per_class" (per code value), "mapping" (class of each code, -1 if none), "generated"}.
    """
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((num_codes, num_classes), np.int64)
    np.add.at(counts, (codes, predicted), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping = np.full(num_codes, -1)
    mapping[rows] = cols
    hits = (mapping[codes] == predicted) & (mapping[codes] >= 0)
    return {"overall": float(hits.mean()), "per_class": [float(hits[codes == k].mean()) for k in range(num_codes)],
            "mapping": mapping.tolist(), "generated": int(len(codes))}


def resolve_extractor(name: str | None, weights: str | None, loader: str, image_shape: tuple) -> Extractor:
    extractor = get_extractor(name or default_extractor_name(loader), weights)
    extractor.check_shape(image_shape)
    return extractor


def check_metrics(metrics) -> list[str]:
    unknown = [m for m in metrics if m not in metric_names()]
    if unknown or not metrics:
        raise UserError(f"metric {unknown[0] if unknown else '(none)'!r}: valid metrics are {', '.join(metric_names())}")
    return list(metrics)


def evaluate_run(run, metrics, n=DEFAULT_N, split="test", extractor_name=None, weights=None, which="latest", seed=0, use_cache=True) -> dict:
    """Evaluate a run's generator against its own dataset (from the saved config).

    ``n`` generated samples against at most ``n`` real ones of ``split`` (a subset drawn with
    ``seed``, or all of a smaller split; ``real_count`` in the report says which).
    """
    check_split(split, "--split")  # before loading a model or data: a typo is one line, not a KeyError
    metrics = check_metrics(metrics)
    if n < 2:
        raise UserError(f"--n {n}: need at least 2 samples")
    t0 = time.perf_counter()
    model, cfg, step = load_model(run, which)
    data_cfg = dict(cfg["data"])
    has_split = has_splits(data_cfg)
    base = {"run": str(run), "run_dir": str(model.run_dir), "checkpoint": str(which), "checkpoint_step": step, "generator_weights": model.weights_source, "seed": seed, "results": []}
    feature_metrics = [m for m in metrics if m != "accuracy"]
    if "accuracy" in metrics and model.can_classify:
        acc, count, _, desc = run_accuracy(run, split if has_split else "train", which)
        base["results"].append({"metric": "accuracy", "value": acc, "what": "D's classifier on real images", "real_split": desc, "real_count": count})
        metrics = feature_metrics
    run_eval = cfg.get("eval") or {}
    if extractor_name is None and run_eval.get("extractor"):
        # The run's own eval section (e.g. CIFAR-10's classifier trained here): the score then
        # continues its training curve instead of silently switching to the loader's default.
        extractor_name = run_eval["extractor"]
        if weights is None:
            weights = run_eval.get("weights")
    extractor = resolve_extractor(extractor_name, weights, data_cfg["loader"], model.image_shape)
    if feature_metrics:
        source = load_dataset(data_cfg, split=split if has_split else None)
        key = {k: v for k, v in data_cfg.items() if k not in ("batch_size", "labeled_per_class")}
        real_feats, _, hit = real_features(source, {**key, "split": split if has_split else "all"}, n, extractor, use_cache, seed)
        base["real_cache"] = "hit" if hit else "miss"
        fake = generate(model, n, seed)
        fake_feats, fake_probs = extractor(fake)
        protocol = {"generated": n, "real_split": split if has_split else f"all of {source.description}", "real_count": len(real_feats), **extractor.protocol()}
        for metric, value in score(feature_metrics, real_feats, fake_feats, fake_probs, seed).items():
            base["results"].append({"metric": metric, "value": value, **protocol})
    if "accuracy" in metrics:
        acc = conditional_accuracy(model, extractor, n, seed)
        what = ("conditional accuracy: samples for class k classified as k" if model.labels_are_classes else
                "code accuracy: samples for code value k classified as mapping[k], the best one-to-one mapping of codes to classes")
        extra = {"mapping": acc["mapping"]} if "mapping" in acc else {}
        base["results"].append({"metric": "accuracy", "value": acc["overall"], "per_class": acc["per_class"], "generated": acc["generated"],
                                **extra, "what": what, **extractor.protocol()})
    base["seconds"] = round(time.perf_counter() - t0, 1)
    return base


def folder_image_shape(extractor: Extractor, size: int | None, channels: int | None) -> tuple[int, int, int]:
    """(H, W, C) to load folder images at: ``size``/``channels`` where given, else the extractor's
    fixed input shape (the domain classifiers: 28x28x1), else 299x299x3 (Inception resizes anyway)."""
    if channels not in (None, 1, 3):
        raise UserError(f"--channels {channels}: use 1 or 3")
    if size is not None and size < 1:
        raise UserError(f"--size {size}: must be at least 1")
    fixed = extractor.input_shape
    height, width = (size, size) if size is not None else (fixed[:2] if fixed else (INCEPTION_SIZE, INCEPTION_SIZE))
    return (int(height), int(width), int(channels if channels is not None else (fixed[2] if fixed else 3)))


def _selection(source: ImageSource, used: int, n: int) -> str:
    if used < len(source):
        return f"a random {used} of {len(source)} images (seeded)"
    return f"all {used} images" + (f" (fewer than n = {n})" if used < n else "")


def evaluate_folders(real_a, real_b, metrics, size: int | None = None, channels: int | None = None, extractor_name=None, weights=None,
                     n: int | None = None, use_cache: bool = True, seed: int = 0) -> dict:
    """Compare two image folders, A the reference and B the images judged (IS is B's); no run needed.

    Args:
      size, channels: load the images at this square size / channel count; None: the extractor's
        fixed input shape where it has one (domain classifiers), else 299 and 3.
      n: images per folder, at most: a folder with more gives a random subset (drawn with ``seed``,
        the same way for both folders); one with fewer is used whole, and the report says so.
        None: ``DEFAULT_N`` (what ``gantrain eval`` uses without --n).
      seed: the subsets and the Inception-score split order.
    Returns:
      the report: results with the protocol (``real_a_count``/``real_b_count`` the counts used).
    """
    t0 = time.perf_counter()
    metrics = check_metrics(metrics)
    if "accuracy" in metrics:
        raise UserError("--accuracy needs a run of a conditional family, not two folders")
    n = DEFAULT_N if n is None else int(n)
    if n < 2:
        raise UserError(f"--n {n}: need at least 2 images per folder")
    extractor = get_extractor(extractor_name or "inception_v3", weights)
    shape = folder_image_shape(extractor, size, channels)
    extractor.check_shape(shape)
    sides, hits = {}, []
    for side, folder in (("a", real_a), ("b", real_b)):
        source = load_folder(Path(folder), shape[:2], shape[2], "none", "fail")
        key = {"folder": str(Path(folder).resolve()), "image_shape": shape}
        feats, probs, hit = real_features(source, key, n, extractor, use_cache, seed)
        sides[side] = (source, feats, probs)
        hits.append(f"{side.upper()} {'hit' if hit else 'miss'}")
    (a, feats_a, _), (b, feats_b, probs_b) = sides["a"], sides["b"]
    protocol = {"real_a": str(real_a), "real_a_count": len(feats_a), "real_a_images": _selection(a, len(feats_a), n),
                "real_b": str(real_b), "real_b_count": len(feats_b), "real_b_images": _selection(b, len(feats_b), n),
                "n": n, "seed": seed, "folder_images": f"resized and centre-cropped to {shape[0]}x{shape[1]}, {'grey' if shape[2] == 1 else 'RGB'}",
                **extractor.protocol()}
    results = [{"metric": m, "value": v, **protocol} for m, v in score(metrics, feats_a, feats_b, probs_b, seed).items()]
    return {"results": results, "real_cache": ", ".join(hits), "seconds": round(time.perf_counter() - t0, 1)}


def format_value(value) -> str:
    if isinstance(value, dict):
        if "mean" in value:
            return f"{value['mean']:.5g} +- {value['std']:.2g}"
        return ", ".join(f"{k} {v:.4f}" for k, v in value.items())
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def format_report(report: dict) -> str:
    """A table of numbers, then the protocol: shared entries once, per-metric ones under their metric."""
    results = report["results"]
    shared = {k: v for k, v in results[0].items() if all(k in r and r[k] == v for r in results)} if results else {}
    lines = []
    if "checkpoint_step" in report:
        seed = f"  seed {report['seed']}" if report.get("seed") is not None else ""  # None: nothing random was drawn
        lines.append(f"run {report['run']}  checkpoint step {report['checkpoint_step']} ({report['generator_weights']} weights){seed}")
    for r in results:
        lines.append(f"  {r['metric'].upper():<9} {format_value(r['value'])}")
        own = {k: v for k, v in r.items() if k not in shared and k not in ("metric", "value", "per_class", "mapping")}
        if own:
            lines.append("            " + "; ".join(f"{k}: {v}" for k, v in own.items()))
        if "mapping" in r:  # an unsupervised code: code value -> the class it was matched with
            lines.append("            per code -> class: " + " ".join(f"{k}->{c}:{v:.3f}" for k, (c, v) in enumerate(zip(r["mapping"], r["per_class"]))))
        elif "per_class" in r:
            lines.append("            per class: " + " ".join(f"{k}:{v:.3f}" for k, v in enumerate(r["per_class"])))
    protocol = {k: v for k, v in shared.items() if k not in ("metric", "value", "per_class")}
    if protocol:
        lines.append("protocol:")
        lines += [f"  {k}: {v}" for k, v in protocol.items()]
    if "real_cache" in report:
        lines.append(f"real features: cache {report['real_cache']} ({cache_dir()})")
    lines.append(f"took {report['seconds']} s")
    return "\n".join(lines)


def write_json(report: dict, path: Path) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        raise UserError(f"{path}: cannot write the report ({err.strerror or err})") from None


class TrainingEvaluator:
    """Metrics during training (the config's ``eval`` section) and the best-checkpoint decision."""

    def __init__(self, cfg: dict, model, source: ImageSource):
        ev = cfg["eval"]
        self.metrics, self.n, self.seed = list(ev["metrics"]), ev["n"], cfg["seed"]
        self.model = model
        if "accuracy" in self.metrics and not model.conditional:
            raise UserError("eval.metrics: accuracy needs a conditional model family (cgan, cdcgan, acgan; infogan: code accuracy)")
        self.extractor = resolve_extractor(ev["extractor"], ev["weights"], cfg["data"]["loader"], source.image_shape)
        self.class_names = list(source.class_names)
        if "accuracy" in self.metrics and model.labels_are_classes:
            check_class_names(self.class_names, self.extractor)  # before training, not at the first evaluation
        real = (held_out_split(cfg["data"]) if ev["split"] == "test" else None) or source
        key = {k: v for k, v in cfg["data"].items() if k not in ("batch_size", "labeled_per_class")}
        self.real_feats = None
        if any(m != "accuracy" for m in self.metrics):
            self.real_feats, _, _ = real_features(real, {**key, "split": ev["split"]}, self.n, self.extractor, seed=self.seed)
        first = self.metrics[0]
        self.lower_is_better = lower_is_better(first)
        self.best = None

    def __call__(self, generator, step: int) -> dict:
        """{'eval/fid': ..., ...} for the current weights of ``generator``."""
        out = {}
        feature_metrics = [m for m in self.metrics if m != "accuracy"]
        if feature_metrics:
            fake_feats, fake_probs = self.extractor(generate(self.model, self.n, self.seed, generator=generator))
            for metric, value in score(feature_metrics, self.real_feats, fake_feats, fake_probs, self.seed).items():
                out[f"eval/{metric}"] = METRICS.get(metric).scalar(value)
        if "accuracy" in self.metrics:
            out["eval/accuracy"] = conditional_accuracy(self.model, self.extractor, self.n, self.seed, generator=generator,
                                                        class_names=self.class_names)["overall"]
        return out

    def is_best(self, values: dict) -> bool:
        value = values[f"eval/{self.metrics[0]}"]
        better = self.best is None or (value < self.best if self.lower_is_better else value > self.best)
        if better:
            self.best = value
        return better
