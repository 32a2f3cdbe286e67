"""Sample-quality metrics as small pure functions over float64 features or class probabilities.

Each is registered in METRICS with what it needs (features or probabilities) so ``gantrain eval``
and evaluation during training can compute any of them the same way.
"""

from gantrain.metrics.scores import (  # noqa: F401
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
