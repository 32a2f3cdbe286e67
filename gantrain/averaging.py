"""Running averages of network weights: EMA of the generator, and historical averaging penalties.

Both keep their averages, and the update counts the averages depend on, in non-trainable
variables that are saved in checkpoints, so a resumed run continues the same averages.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Batches of generator inputs ``standing_statistics`` runs over at each refresh (BigGAN's standing
# statistics average 16 to 32 of them).
STANDING_BATCHES = 32


class EMAGenerator:
    """Exponential moving average of the generator's weights, with a warm-up.

    After every generator update, for each trainable weight ``w`` of the generator::

        d_t = min(decay, (1 + t) / (10 + t))      # t: updates done before this one
        ema = d_t * ema + (1 - d_t) * w

    This is ``tf.train.ExponentialMovingAverage`` with ``num_updates``. Without the warm-up an
    average with decay 0.999 still holds exp(-1) = 37% of the random initial weights after 1,000
    updates, and samples, scores and "best" checkpoints taken early are judged on those; with it
    the first update keeps 1/10 of the old value and the decay reaches ``decay`` after
    ``(10 decay - 1) / (1 - decay)`` updates. Every variable the generator does not train (batch-norm
    moving statistics, seed states) is copied, not averaged: an average of moving statistics would
    describe no network that ever ran. For batch-norm statistics the copy is a placeholder until
    ``standing_statistics`` (below) replaces it with the average's own.

    ``model`` is a copy of the generator (same architecture, own variables); sampling and grids use
    it when ``train.ema_decay`` is set. ``update`` runs in cross-replica context (inside
    ``tf.function`` and under a distribution strategy alike).

    The copied batch-norm statistics belong to the live weights, not to their average: with a
    fast-moving generator (batch-norm momentum 0.8 as the ACGAN body, or a high learning rate) the
    pair is far off, e.g. a CDCGAN at step 1,000 scored FID 214 with them and 54 with the average's
    own statistics. So before the average is used (grids, evaluation, checkpoints) the trainer calls
    ``standing_statistics``, which recomputes them for the averaged weights ("standing statistics",
    as BigGAN and StudioGAN do for their EMA generators), over the inputs that generator takes in
    training: fresh noise for the noise families, a fixed set of real source images for the
    image-to-image ones (``Trainer.refresh_averages``).
    """

    def __init__(self, generator: keras.Model, decay: float):
        self.decay = decay
        self.model = keras.models.clone_model(generator)
        self.model.set_weights(generator.get_weights())
        self.source = generator
        # int64: exact at any step count; saved with the weights so a resumed run continues the schedule.
        self.num_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_num_updates")

    def decay_now(self) -> tf.Tensor:
        """The decay the next update uses, ``min(decay, (1 + t) / (10 + t))``.

        Returns:
            A float32 scalar (float32, not float64, so it also runs where float64 does not: TPUs).
        """
        t = tf.cast(self.num_updates, tf.float32)
        return tf.minimum(tf.constant(self.decay, tf.float32), (1.0 + t) / (10.0 + t))

    def update(self) -> None:
        decay = self.decay_now()
        # Matched by position; whether a weight is averaged is the generator's call (a layer
        # frozen after the copy was made is followed, not averaged).
        for ema, w in zip(self.model.variables, self.source.variables):
            if w.trainable:
                d = tf.cast(decay, ema.dtype)
                ema.assign(d * ema + (1 - d) * tf.cast(w, ema.dtype))
            else:
                ema.assign(w)
        self.num_updates.assign_add(1)

    def standing_statistics(self, inputs) -> bool:
        """Set the copy's batch-norm moving statistics to the mean of its batch statistics over ``inputs``.

        Each batch of ``inputs`` (generator inputs) runs through the copy in training mode with the
        momentum of every BatchNormalization layer set to ``i / (i + 1)`` for the i-th batch, which
        makes the moving mean and variance the running average of the batches' means and (biased)
        variances; the layers' momenta are restored afterwards. Runs eagerly. Dropout is active, as
        in a training step (the statistics then describe what the live generator's describe), and
        draws from the copy's own seed state, which the next ``update`` copies over from the generator.

        Returns:
            False when the copy has no batch normalization (nothing to do; ``inputs`` is not read).
        """
        norms = self._batch_norms()
        if not norms:
            return False
        momenta = [layer.momentum for layer in norms]
        try:
            for i, batch in enumerate(inputs):
                for layer in norms:
                    layer.momentum = i / (i + 1)
                self.model(batch, training=True)
        finally:
            for layer, momentum in zip(norms, momenta):
                layer.momentum = momentum
        return True

    @property
    def has_batch_norm(self) -> bool:
        """Whether ``standing_statistics`` has anything to recompute (and so reads its inputs)."""
        return bool(self._batch_norms())

    def _batch_norms(self) -> list:
        return [layer for layer in self.model._flatten_layers(include_self=False, recursive=True)
                if isinstance(layer, keras.layers.BatchNormalization)]

    @property
    def variables(self):
        """What a checkpoint saves: the copy's variables by position, then the update counter."""
        return [*self.model.variables, self.num_updates]


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
