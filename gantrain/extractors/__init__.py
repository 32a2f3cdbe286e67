"""Feature extractors for evaluation (registry EXTRACTORS).

Every extractor maps images in [-1, 1] (N, H, W, C) to float64 features (N, d) and, where it has
a classifier head, class probabilities (N, classes); ``protocol()`` says exactly what it is (name,
weights and their SHA-256, preprocessing) so each reported number carries it.

- ``mnist_classifier`` / ``fashion_mnist_classifier``: the small CNNs shipped in
  ``gantrain/extractors/weights`` (trained with ``gantrain classifier train``): 128-d penultimate
  features, softmax probabilities. Defaults for those datasets.
- ``classifier``: the same network from your own ``--weights STEM`` (any labelled dataset).
- ``inception_v3``: Keras InceptionV3 with ImageNet weights, 2048-d average-pool features.
- ``inception_tf2015``: the 2015-12-05 TensorFlow Inception graph of the original FID code.
"""

from __future__ import annotations

from gantrain.extractors.base import Extractor, default_extractor_name, get_extractor  # noqa: F401
from gantrain.extractors import inception  # noqa: F401  (registers the inception extractors)
