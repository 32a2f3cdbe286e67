"""A history of generated images for the discriminator (Shrivastava et al. 2017; CycleGAN's ``ImagePool``).

CycleGAN updates each discriminator on a mix of the newest fakes and fakes from earlier steps, so
it does not chase the generator's latest move. :class:`ImagePool` is the reference's
``util/image_pool.py`` (junyanz/pytorch-CycleGAN-and-pix2pix) with its state in variables, so a
checkpoint carries it and a resumed run draws exactly what an uninterrupted one would, and with
its randomness drawn from a stateless seed, so the draws are a pure function of the step.
"""

from __future__ import annotations

import tensorflow as tf


class ImagePool(tf.Module):
    """A buffer of up to ``capacity`` images (50 in CycleGAN); ``query`` swaps a batch through it.

    The images of a batch are taken one after the other, as the reference does: while the
    buffer is not full, an image is stored and returned; once it is full, with probability 1/2 a
    uniformly drawn stored image is returned and the new one takes its place, otherwise the new
    image is returned. So a later image of a batch can draw one stored earlier in the same batch.
    ``capacity`` 0 returns every batch unchanged.

    State: ``buffer`` (capacity, H, W, C) float32, whatever the mixed-precision policy (a float16
    copy would round stored images), and ``count``, the images stored so far (int64). Both are
    non-trainable tf.Variables listed by :attr:`variables`, for the checkpoint. The pool is a
    tf.Module, so ``tf.train.Checkpoint(pool=pool)`` tracks it as well.

    Under a tf.distribute strategy with several replicas, call it in cross-replica context on
    the global batch: replicas that each swapped their own slice would need one buffer each, and
    :meth:`query` refuses that case rather than let the mirrored copies drift apart.
    """

    def __init__(self, image_shape, capacity: int = 50, name: str = "image_pool"):
        super().__init__(name=name)
        if capacity < 0:
            raise ValueError(f"ImagePool capacity must be >= 0; got {capacity}")
        self.capacity = int(capacity)
        self.image_shape = tuple(int(n) for n in image_shape)
        self.buffer = tf.Variable(tf.zeros((self.capacity, *self.image_shape), tf.float32), trainable=False, name=f"{name}_buffer")
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{name}_count")

    @property
    def variables(self):
        """What a checkpoint saves: the buffer, then the count."""
        return [self.buffer, self.count]

    def draws(self, batch, seed):
        """The random numbers :meth:`query` uses for a batch of ``batch`` images.

        Args:
            batch: the batch size (int or scalar tensor).
            seed: stateless seed, shape (2,), int32 or int64.

        Returns:
            ``(coins, slots)``, int32 (batch,) each: coins uniform in {0, 1}, slots uniform in
            [0, capacity). Image i, arriving at a full buffer, is swapped when ``coins[i] > 0.5``
            (the reference's test on a uniform float: the same fair coin), with the stored image at
            ``slots[i]``; the draws are made for every image and ignored while the buffer fills.
        """
        # Integer draws from a named generator (Philox): the same seed gives the same draws
        # eagerly, compiled, under XLA and on any device. "auto_select" lets XLA and each device
        # pick their own generator, and even with Philox named XLA turns the bits into floats
        # differently from TensorFlow's kernels, so the coin is drawn as an integer too.
        seeds = tf.random.experimental.stateless_split(seed, 2, alg="philox")
        coins = tf.random.stateless_uniform([batch], seed=seeds[0], minval=0, maxval=2, dtype=tf.int32, alg="philox")
        slots = tf.random.stateless_uniform([batch], seed=seeds[1], minval=0, maxval=max(self.capacity, 1), dtype=tf.int32, alg="philox")
        return coins, slots

    def query(self, images, seed):
        """Swap ``images`` through the buffer; return as many images, in ``images``' dtype.

        Runs eagerly, in tf.function and under XLA; the output carries no gradient (a stored
        image has no path to the current generator, and the new ones are returned as constants
        alike, as the reference's detached fakes).

        Args:
            images: (B, H, W, C) with the pool's image shape.
            seed: stateless seed, shape (2,): the draws are ``draws(B, seed)``.

        Returns:
            (B, H, W, C): image i is ``images[i]`` or the image the buffer held in the drawn slot
            just before image i arrived.
        """
        if self.capacity == 0:
            return tf.stop_gradient(images)
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            raise ValueError("ImagePool.query runs in cross-replica context under a multi-replica strategy "
                             "(one buffer for the global batch), not in each replica")
        x = tf.cast(tf.stop_gradient(images), tf.float32)
        n = tf.shape(x)[0]
        coins, slots = self.draws(n, seed)
        buffer = self.buffer.read_value()
        start = tf.cast(self.count, tf.int32)

        # The sequential algorithm, vectorised over the batch. Image i fills slot start + i while
        # there is room, otherwise it swaps into its drawn slot when its coin says so; `target` is
        # the slot image i writes. What image j (a swap) returns is what its slot held just
        # before it: the last earlier image of this batch that wrote that slot, if any, else the
        # buffer as it was. The new buffer holds, in each slot, the batch's last writer or the old image.
        i = tf.range(n)
        fills = start + i < self.capacity
        swaps = ~fills & (coins > 0)
        writes = fills | swaps
        target = tf.where(fills, start + i, slots)

        same_slot = tf.equal(target[:, None], target[None, :]) & writes[None, :]  # [j, k]: k wrote j's slot
        earlier = i[None, :] < i[:, None]
        last_before = tf.reduce_max(tf.where(same_slot & earlier, i[None, :], -1), axis=1)
        held = tf.where((last_before >= 0)[:, None, None, None], tf.gather(x, tf.maximum(last_before, 0)), tf.gather(buffer, slots))
        out = tf.where(swaps[:, None, None, None], held, x)

        wrote = tf.equal(target[None, :], tf.range(self.capacity)[:, None]) & writes[None, :]  # [slot, k]
        last_writer = tf.reduce_max(tf.where(wrote, i[None, :], -1), axis=1)
        new_buffer = tf.where((last_writer >= 0)[:, None, None, None], tf.gather(x, tf.maximum(last_writer, 0)), buffer)
        self.buffer.assign(new_buffer)
        self.count.assign(tf.minimum(tf.cast(self.capacity, tf.int64), self.count + tf.cast(n, tf.int64)))
        return tf.cast(out, images.dtype)
