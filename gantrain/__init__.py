"""gantrain: config-driven GAN training on TensorFlow 2 / Keras 3.

Python API (usable from a notebook)::

    import gantrain
    run_dir = gantrain.fit("configs/dcgan_mnist.yaml", overrides=["train.steps=200"])
    images = gantrain.sample(run_dir, n=16, seed=1)   # float32 (16, 28, 28, 1) in [-1, 1]
"""

from __future__ import annotations

__version__ = "0.1.0"


def fit(config=None, overrides=None, run_dir=None, resume=None, overwrite=False, progress=True):
    """Train from a YAML path or a config dict; see :func:`gantrain.run.fit`. Returns the run directory."""
    from gantrain.run import fit as _fit

    return _fit(config, overrides=overrides, run_dir=run_dir, resume=resume, overwrite=overwrite, progress=progress)


def sample(run, n=64, seed=0, checkpoint="latest", labels=None):
    """Generate ``n`` images from a run directory or checkpoint; float32 (n, H, W, C) in [-1, 1].

    ``labels`` (conditional families): one class for all, or a list of ``n`` classes.
    """
    from gantrain.sampling import generate, load_model

    model, _, _ = load_model(run, checkpoint)
    if isinstance(labels, int):
        labels = [labels] * n
    return generate(model, n, seed, labels)


def load_config(path, overrides=None):
    """Read and validate a config file into a resolved dict."""
    from gantrain.config import load_config as _load

    return _load(path, overrides)
