"""FID, KID, Inception Score and k-NN precision/recall: pure functions, float64 inside.

References: Heusel et al. 2017 (FID), Binkowski et al. 2018 (KID), Salimans et al. 2016 (IS),
Kynkaanniemi et al. 2019 (improved precision and recall). The numerical guards follow the
reference FID code: a singular covariance product is retried with ``eps * I`` added to both
covariances, and a square root with a significant imaginary part is refused, not silently cut.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from gantrain.errors import UserError


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of (n, d) features, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (n, d), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, max_imag: float = 1e-3) -> float:
    """Frechet distance between Gaussians N(mu1, sigma1), N(mu2, sigma2).

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``.

    Args:
      mu1, mu2: (d,) means. sigma1, sigma2: (d, d) covariances.
      eps: added to both diagonals when the product is singular (its square root not finite).
      max_imag: largest tolerated imaginary part of the square root's diagonal (round-off).
    Raises:
      ValueError: when the square root has a significant imaginary component.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different sizes: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    singular = any(issubclass(w.category, linalg.LinAlgWarning) for w in caught)
    if singular or not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if imag > max_imag:
            raise ValueError(f"the covariance square root has an imaginary component of {imag:.3g}; too few samples for the feature size?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def polynomial_mmd2(x, y) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3 (Binkowski et al. 2018).

    Args:
      x: (m, d) features, m >= 2. y: (n, d) features, n >= 2 (n may differ from m).
    Returns:
      sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1)) - 2 mean k(x_i, y_j).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d, m, n = x.shape[1], len(x), len(y)
    kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def kernel_inception_distance(real, fake, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation of unbiased MMD^2 over random subsets (Binkowski et al. 2018).

    Args:
      real, fake: (n_real, d), (n_fake, d) features.
      subsets: how many subset pairs. subset_size: samples per side, capped at the smaller side.
      seed: each subset draws ``size`` reals, then ``size`` fakes, without replacement, from
        ``np.random.default_rng(seed)``.
    Returns:
      (mean, population standard deviation) of the subsets' MMD^2.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    rng = np.random.default_rng(seed)
    values = [polynomial_mmd2(real[rng.choice(len(real), size, replace=False)], fake[rng.choice(len(fake), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def inception_score(probs, splits: int = 10, seed: int | None = 0) -> tuple[float, float]:
    """``exp(E_x KL(p(y|x) || p(y)))`` per split; mean and standard deviation over splits.

    The samples are shuffled before splitting: images that arrive sorted by class (a folder of
    class subfolders, a per-class sample grid) would otherwise give each split a few classes, a
    peaked marginal p(y) and an underestimated score.

    Args:
      probs: (n, classes) class probabilities of generated images (softmax outputs).
      splits: number of parts (``np.array_split`` sizes: the first ``n % splits`` get one more).
      seed: the split order is ``np.random.default_rng(seed).permutation(n)``; None keeps the
        given order.
    Returns:
      (mean, population standard deviation) of the per-split scores.
    """
    p = np.asarray(probs, np.float64)
    if seed is not None:
        p = p[np.random.default_rng(seed).permutation(len(p))]
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _distances(a: np.ndarray, b: np.ndarray, b2: np.ndarray) -> np.ndarray:
    d2 = (a * a).sum(axis=1)[:, None] + b2[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0))


def _manifold_coverage(reference: np.ndarray, queries: np.ndarray, k: int, batch: int = 1024) -> float:
    """Fraction of ``queries`` inside the union of k-NN balls around ``reference`` points.

    Works in row blocks, so memory stays at ``batch x len(reference)`` distances.
    """
    r2 = (reference * reference).sum(axis=1)
    radii = np.concatenate([
        np.partition(_distances(reference[i : i + batch], reference, r2), k, axis=1)[:, k]  # index 0 is the point itself
        for i in range(0, len(reference), batch)
    ])
    inside = [(_distances(queries[i : i + batch], reference, r2) <= radii[None, :]).any(axis=1) for i in range(0, len(queries), batch)]
    return float(np.concatenate(inside).mean())


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision (fakes on the real manifold) and recall (reals on the fake manifold)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if len(real) <= k or len(fake) <= k:
        raise UserError(f"precision/recall with k={k} needs more than {k} samples on each side")
    return _manifold_coverage(real, fake, k), _manifold_coverage(fake, real, k)
