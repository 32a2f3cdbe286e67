"""Optimizer builders. Each trained network gets its own instance (Keras 3 refuses to share one)."""

from __future__ import annotations

import keras

from gantrain.registry import OPTIMIZERS
from gantrain.schema import Context, Field

_LR = Field(2e-4, "learning rate", "float", min=0, min_exclusive=True, max=10)


class _Optimizer:
    def __init__(self, build):
        self.build = build

    def check(self, params: dict, path: tuple, ctx: Context) -> None:
        """Cross-field rules for one optimizer section (none needed yet beyond the schema)."""


def _adam(p: dict) -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=p["learning_rate"], beta_1=p["beta_1"], beta_2=p["beta_2"], epsilon=p["epsilon"])


def _rmsprop(p: dict) -> keras.optimizers.Optimizer:
    return keras.optimizers.RMSprop(learning_rate=p["learning_rate"], rho=p["rho"], momentum=p["momentum"], epsilon=p["epsilon"])


def _sgd(p: dict) -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(learning_rate=p["learning_rate"], momentum=p["momentum"], nesterov=p["nesterov"])


_EPS = Field(1e-7, "numerical epsilon", "float", min=0, min_exclusive=True)

OPTIMIZERS.register("adam", description="Adam (learning_rate, beta_1, beta_2, epsilon)", schema={
    "learning_rate": _LR,
    "beta_1": Field(0.5, "first-moment decay (0.5 is the usual GAN choice, Radford et al.)", "float", min=0, max=0.999999),
    "beta_2": Field(0.999, "second-moment decay", "float", min=0, max=0.999999),
    "epsilon": _EPS,
})(_Optimizer(_adam))

OPTIMIZERS.register("rmsprop", description="RMSprop (learning_rate, rho, momentum, epsilon); WGAN's choice", schema={
    "learning_rate": _LR,
    "rho": Field(0.9, "decay of the squared-gradient average", "float", min=0, max=0.999999),
    "momentum": Field(0.0, "momentum", "float", min=0, max=0.999999),
    "epsilon": _EPS,
})(_Optimizer(_rmsprop))

OPTIMIZERS.register("sgd", description="SGD with optional (Nesterov) momentum", schema={
    "learning_rate": _LR,
    "momentum": Field(0.0, "momentum", "float", min=0, max=0.999999),
    "nesterov": Field(False, "Nesterov momentum", "bool"),
})(_Optimizer(_sgd))


def build_optimizer(params: dict) -> keras.optimizers.Optimizer:
    return OPTIMIZERS.get(params["name"]).build(params)
