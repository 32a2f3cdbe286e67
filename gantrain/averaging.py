"""Running averages of network weights: EMA of the generator, and historical averaging penalties.

Both keep their averages in non-trainable variables that are saved in checkpoints, so a resumed
run continues the same averages.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class EMAGenerator:
    """``ema = decay * ema + (1 - decay) * weights`` after every generator update.

    ``model`` is a copy of the generator (same architecture, own variables); sampling and grids use
    it when ``train.ema_decay`` is set. BatchNorm moving statistics are averaged like the weights.
    """

    def __init__(self, generator: keras.Model, decay: float):
        self.decay = decay
        self.model = keras.models.clone_model(generator)
        self.model.set_weights(generator.get_weights())
        self.source = generator

    def update(self) -> None:
        d = tf.constant(self.decay, tf.float32)
        for ema, w in zip(self.model.variables, self.source.variables):
            if "float" in str(ema.dtype):
                ema.assign(d * ema + (1.0 - d) * tf.cast(w, ema.dtype))
            else:  # e.g. a seed-generator state: just follow
                ema.assign(w)

    @property
    def variables(self):
        return self.model.variables


class HistoricalAverage:
    """Salimans et al.: penalty ``||theta - (1/t) sum_i theta_i||^2`` towards the mean of past weights."""

    def __init__(self, variables, name: str):
        self.params = list(variables)
        self.means = [tf.Variable(tf.identity(v), trainable=False, name=f"{name}_hist_mean_{i}") for i, v in enumerate(self.params)]
        self.count = tf.Variable(1.0, trainable=False, name=f"{name}_hist_count")

    def penalty(self) -> tf.Tensor:
        return tf.add_n([tf.reduce_sum(tf.square(p - m)) for p, m in zip(self.params, self.means)])

    def update(self) -> None:
        self.count.assign_add(1.0)
        for p, m in zip(self.params, self.means):
            m.assign_add((p - m) / self.count)

    @property
    def variables(self):
        return [*self.means, self.count]
