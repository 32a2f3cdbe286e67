"""Super-resolution networks: SRResNet (the SRGAN generator) and the SRGAN discriminator (Ledig et al. 2017).

Both builders return a functional, fully convolutional ``keras.Model`` on ``(None, None, C)``
inputs in [-1, 1], so one built model takes training crops and whole images of any size alike.
:func:`check_sr_shape` says, without building anything, why a high-resolution (HR) image size
does not suit a scale (the families check the multiples themselves, in data/sr_pairs.py, and let the
discriminator take crops below 16 px, see below).

Choices the paper leaves open, common to both networks:

- conv kernels are drawn as PyTorch's default ``Conv2d`` init, U(+-1/sqrt(fan_in)) (the public
  SRResNet/SRGAN reimplementations keep it); biases start at zero;
- a conv followed by batch norm has no bias (the norm's mean subtraction cancels it);
- batch norm uses momentum 0.9 (PyTorch's 0.1) through :func:`gantrain.models.layers.batch_norm`,
  so it is synchronised across replicas where the trainer asks.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from gantrain.models.layers import batch_norm

SCALES = (2, 3, 4, 8)
BN_MOMENTUM = 0.9
LEAKY_SLOPE = 0.2
PRELU_INIT = 0.25  # torch.nn.PReLU's default, which the paper's Torch code used
D_FILTERS = (1, 1, 2, 2, 4, 4, 8, 8)  # multiples of ``width``: 64-64-128-128-256-256-512-512 in the paper
D_STRIDES = (1, 2, 1, 2, 1, 2, 1, 2)
D_MIN_SIDE = 2 ** D_STRIDES.count(2)  # 16: four stride-2 convs leave one pixel


def _init():
    # A fresh initializer per layer: Keras seeds each unseeded one from Python's `random` when it is
    # made, so seeding.owned_seed around a build makes the weights reproducible. scale 1/3 with a
    # uniform fan-in draw is U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's kaiming_uniform(a=sqrt(5)).
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def _conv(filters: int, kernel: int, strides: int = 1, use_bias: bool = True):
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=use_bias, kernel_initializer=_init())


def _prelu():
    # One slope per channel, shared over height and width, so the layer builds for any image size.
    return layers.PReLU(alpha_initializer=keras.initializers.Constant(PRELU_INIT), shared_axes=[1, 2])


def _multiples(n: int, step: int) -> list[int]:
    return [m for m in (n // step * step, (n // step + 1) * step) if m > 0]


def _size(shape) -> str:
    return "x".join("?" if n is None else str(n) for n in shape[:2])


@keras.saving.register_keras_serializable(package="gantrain")
class PixelShuffle(layers.Layer):
    """Sub-pixel rearrangement (Shi et al. 2016): (B, H, W, r*r*C) -> (B, r*H, r*W, C).

    TensorFlow's NHWC ``depth_to_space``: output pixel ``(h*r + i, w*r + j, c)`` is input
    ``(h, w, (i*r + j)*C + c)``. PyTorch's ``PixelShuffle`` orders the channels ``c*r*r + i*r + j``
    instead; the conv before it is learned, so the two are the same network up to a permutation of
    that conv's filters (weights do not transfer between the two without it).
    """

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, inputs):
        return ops.depth_to_space(inputs, self.factor, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.factor
        return (b, None if h is None else h * r, None if w is None else w * r, None if c is None else c // (r * r))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _check_scale(scale: int) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(map(str, SCALES))}; got {scale!r}")


def upsampling_factors(scale: int) -> list[int]:
    """The pixel-shuffle factors of the upsampling blocks: 2 -> [2], 3 -> [3], 4 -> [2, 2], 8 -> [2, 2, 2]."""
    _check_scale(scale)
    return [3] if scale == 3 else [2] * (scale.bit_length() - 1)


def srresnet_generator(channels: int, scale: int, width: int = 64, blocks: int = 16, name: str = "generator") -> keras.Model:
    """SRResNet (Ledig et al. 2017, figure 4): a low-resolution image -> the image ``scale`` times larger.

    - 9x9 conv to ``width`` + PReLU;
    - ``blocks`` residual blocks: 3x3 conv, BN, PReLU, 3x3 conv, BN, + the block's input;
    - 3x3 conv, BN, + the first PReLU's output (the global skip);
    - upsampling (sub-pixel convolution, Shi et al. 2016): for scale 2, 4, 8, log2(scale) blocks of
      3x3 conv to ``4 * width``, pixel shuffle by 2, PReLU; for scale 3 one block of 3x3 conv to
      ``9 * width``, pixel shuffle by 3, PReLU;
    - 9x9 conv to ``channels`` and tanh (images in [-1, 1]; the paper's output layer is linear on
      [-1, 1] targets, the tanh keeps the product's convention for every generator).

    PReLU has one slope per channel shared over space, starting at 0.25. With the paper's width 64,
    16 blocks, scale 4 and 3 channels the model has 1,552,771 weights, of which 1,548,547 are
    trained (the other 4,224 are batch norm's moving statistics): the 1.5 M that Lim et al. 2017
    (EDSR, table 1) list for SRResNet; the SRGAN paper gives no count.

    Args:
        channels: channels of the input and of the output image (1 or 3).
        scale: 2, 3, 4 or 8.
        width: feature maps in the trunk (64 in the paper).
        blocks: residual blocks (16 in the paper).
        name: the model's name.

    Returns:
        A keras.Model: (B, H, W, channels) in [-1, 1] -> (B, scale*H, scale*W, channels) in [-1, 1],
        for any H and W.
    """
    factors = upsampling_factors(scale)
    if channels < 1 or width < 1 or blocks < 0:
        raise ValueError(f"channels and width must be >= 1 and blocks >= 0; got {channels}, {width}, {blocks}")

    lr_images = keras.Input((None, None, channels), name="lr_images")
    head = _prelu()(_conv(width, 9)(lr_images))
    x = head
    for _ in range(blocks):
        y = _prelu()(batch_norm(BN_MOMENTUM)(_conv(width, 3, use_bias=False)(x)))
        y = batch_norm(BN_MOMENTUM)(_conv(width, 3, use_bias=False)(y))
        x = layers.Add()([x, y])
    x = batch_norm(BN_MOMENTUM)(_conv(width, 3, use_bias=False)(x))
    x = layers.Add()([head, x])
    for r in factors:
        x = _prelu()(PixelShuffle(r)(_conv(r * r * width, 3)(x)))
    sr_images = layers.Activation("tanh")(_conv(channels, 9)(x))
    return keras.Model(lr_images, sr_images, name=name)


def srgan_discriminator(channels: int, width: int = 64, dense: int = 1024, name: str = "discriminator") -> keras.Model:
    """The SRGAN discriminator (Ledig et al. 2017, figure 4): an image -> one real/fake logit.

    Eight 3x3 conv blocks of ``width`` x (1, 1, 2, 2, 4, 4, 8, 8) filters (64 to 512 in the paper)
    with strides (1, 2, 1, 2, 1, 2, 1, 2), each conv, BN (all but the first), LeakyReLU(0.2); then
    Dense(``dense``), LeakyReLU(0.2), Dense(1). The output is a logit, no sigmoid: the losses take
    logits. "same" padding, so each stride-2 conv takes a side n to ceil(n / 2).

    One deviation: the paper flattens the 6x6x512 maps of its 96x96 crops into the dense layer,
    which fixes the input size (and puts 18.9 M weights in that layer alone); here global average
    pooling over the last maps feeds it instead, so the same network judges crops of any size ("same"
    padding: below 16x16 the last blocks see a single pixel, which :func:`check_sr_shape` reports). With width 64, dense 1024 and 3 channels that is 5,217,281
    weights (5,213,569 trained, 3,712 moving statistics).

    Args:
        channels: channels of the judged images.
        width: filters of the first two convs.
        dense: units of the hidden dense layer (1024 in the paper).
        name: the model's name.

    Returns:
        A keras.Model: (B, H, W, channels) -> (B, 1) logits, for any H and W.
    """
    if channels < 1 or width < 1 or dense < 1:
        raise ValueError(f"channels, width and dense must be >= 1; got {channels}, {width}, {dense}")
    images = keras.Input((None, None, channels), name="images")
    x = images
    for i, (mult, stride) in enumerate(zip(D_FILTERS, D_STRIDES)):
        x = _conv(width * mult, 3, stride, use_bias=i == 0)(x)
        if i > 0:
            x = batch_norm(BN_MOMENTUM)(x)
        x = layers.LeakyReLU(LEAKY_SLOPE)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.LeakyReLU(LEAKY_SLOPE)(layers.Dense(dense, kernel_initializer=_init())(x))
    logits = layers.Dense(1, kernel_initializer=_init())(x)
    return keras.Model(images, logits, name=name)


def check_sr_shape(image_shape, scale, discriminator: bool = True) -> str | None:
    """Why HR images of ``image_shape`` (H, W, C) cannot be used at ``scale``, or None.

    The LR image is the HR image downscaled by ``scale``, so each known side must be a multiple of
    it; with ``discriminator`` (SRGAN), each side must also be at least 16 pixels, which the
    discriminator's four stride-2 convs bring down to one. ``None`` sides are not checked.
    """
    if scale not in SCALES:
        return f"the scale must be one of {', '.join(map(str, SCALES))}; got {scale!r}"
    sides = tuple(image_shape)[:2]
    bad = [(side, n) for side, n in zip(("height", "width"), sides) if n is not None and (n < scale or n % scale)]
    if bad:
        near = "; ".join(f"{side} {n}: nearest {' or '.join(map(str, _multiples(n, scale)))}" for side, n in bad)
        return (f"the LR image is the HR image divided by the scale {scale}, so HR height and width must be multiples "
                f"of {scale}; got {_size(sides)} ({near})")
    if discriminator and any(n is not None and n < D_MIN_SIDE for n in sides):
        return (f"the SRGAN discriminator halves the image 4 times, so HR height and width must be at least "
                f"{D_MIN_SIDE}; got {_size(sides)}")
    return None
