"""Seeding what a run owns, and nothing else.

Keras 3 draws every unseeded initializer's and layer SeedGenerator's seed from Python's global
``random`` module at construction time, so seeding that module around a build makes the weights
reproducible. ``keras.utils.set_random_seed`` would also reset NumPy's, TensorFlow's and Python's
global generators for the rest of the process: a notebook that calls ``gantrain.sample`` between
its own random draws would silently get different numbers. ``owned_seed`` restores Python's
generator afterwards, and touches no other global state.
"""

from __future__ import annotations

import contextlib
import random


@contextlib.contextmanager
def owned_seed(seed: int):
    """Within this block, Keras layers and initializers created without a seed are seeded from ``seed``."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)
