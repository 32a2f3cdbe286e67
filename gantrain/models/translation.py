"""Image-to-image networks: the pix2pix U-Net, the CycleGAN ResNet generator and the PatchGAN critic.

Each builder returns a functional ``keras.Model`` and raises ``ValueError`` (one line, naming the
size and what would work) for a shape the architecture cannot take; ``check_*_shape`` returns that
message, or None, without building anything, so a family can turn it into a config error. Any
side may be ``None`` (a fully convolutional build for images of any valid size), except that the
U-Net then needs an explicit ``depth``.

Papers followed: Isola et al. 2017 (pix2pix), appendix 6.1; Zhu et al. 2017 (CycleGAN),
appendix 7.2, after Johnson et al. 2016. Where the paper's text is silent or cannot be right the
reference code (junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``) decides, and the
docstring of the builder says so. Common to all three:

- weights drawn from N(0, 0.02) (both papers), biases zero;
- a conv followed by a norm has no bias (the norm's mean subtraction cancels it; the reference
  drops it for batch norm and keeps a dead one for instance norm);
- ``norm``: ``batch`` (BatchNormalization, momentum 0.9 = PyTorch's 0.1, synchronised across
  replicas inside :func:`gantrain.models.layers.synchronized_batch_norm`), ``instance`` (per sample
  and channel, *without* a learned scale and offset: the reference's
  ``InstanceNorm2d(affine=False)``; neither paper says) or ``none``. Both norms use Keras's epsilon
  1e-3, so batch norm in training mode at batch 1 computes exactly instance norm (then its scale
  and offset, 1 and 0 at initialisation).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from gantrain.models.layers import batch_norm

NORMS = ("batch", "instance", "none")
LEAKY_SLOPE = 0.2
BN_MOMENTUM = 0.9
MAX_UNET_DEPTH = 8  # pix2pix's 256x256 U-Net: eight stride-2 convs down to a 1x1 bottleneck


def _init():
    # A fresh initializer per layer: Keras seeds each unseeded one from Python's `random` when it
    # is made, so seeding.owned_seed around a build makes the weights reproducible.
    return keras.initializers.RandomNormal(0.0, 0.02)


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")


def _norm(x, norm: str):
    if norm == "batch":
        return batch_norm(BN_MOMENTUM)(x)
    if norm == "instance":
        return layers.GroupNormalization(groups=-1, center=False, scale=False)(x)
    return x


def _conv(width: int, kernel: int, strides: int = 1, padding: str = "valid", use_bias: bool = True, transpose: bool = False):
    cls = layers.Conv2DTranspose if transpose else layers.Conv2D
    return cls(width, kernel, strides=strides, padding=padding, use_bias=use_bias, kernel_initializer=_init())


def _check_input_shape(input_shape) -> tuple:
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[2] is None or any(n is not None and n < 1 for n in shape):
        raise ValueError(f"input_shape must be (height, width, channels), positive, with known channels; got {input_shape!r}")
    return shape


def _size(shape) -> str:
    return "x".join("?" if n is None else str(n) for n in shape[:2])


def _twos(n: int) -> int:
    """How many times 2 divides n (n > 0)."""
    return (n & -n).bit_length() - 1


@keras.saving.register_keras_serializable(package="gantrain")
class ReflectionPad2D(layers.Layer):
    """Pads height and width by mirroring without repeating the edge (``tf.pad`` mode REFLECT,
    ``np.pad`` mode "reflect", PyTorch's ``ReflectionPad2d``). Each padded side needs more rows (or
    columns) than the padding."""

    def __init__(self, padding: int | tuple[int, int] = 1, **kwargs):
        super().__init__(**kwargs)
        self.padding = (padding, padding) if isinstance(padding, int) else tuple(int(p) for p in padding)

    def call(self, inputs):
        ph, pw = self.padding
        return tf.pad(inputs, [[0, 0], [ph, ph], [pw, pw], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        ph, pw = self.padding
        b, h, w, c = input_shape
        return (b, None if h is None else h + 2 * ph, None if w is None else w + 2 * pw, c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


# -- U-Net generator (pix2pix) ---------------------------------------------------------------------
def unet_default_depth(height: int, width: int) -> int:
    """log2 of the smaller side, rounded down and capped at 8: 32x32 -> 5, 64x128 -> 6, 256 -> 8."""
    return min(MAX_UNET_DEPTH, min(height, width).bit_length() - 1)


def check_unet_shape(input_shape, depth: int | None = None) -> str | None:
    """Why :func:`unet_generator` cannot take ``input_shape`` (H, W, C) with ``depth``, or None."""
    h, w, _ = _check_input_shape(input_shape)
    if depth is None:
        if h is None or w is None:
            return f"the U-Net's depth comes from the image size, which is open here ({_size((h, w))}): give depth explicitly"
        depth = unet_default_depth(h, w)
        if depth < 2:
            return f"the U-Net needs images of at least 4x4 (two downsamplings); got {h}x{w}"
    if depth < 2:
        return f"the U-Net needs depth >= 2 (at least one skip connection and one dropout layer); got {depth}"
    step = 2 ** depth
    bad = [(side, n) for side, n in (("height", h), ("width", w)) if n is not None and n % step]
    if not bad:
        return None
    near = "; ".join(f"{side} {n}: nearest {' or '.join(str(m) for m in _multiples(n, step))}" for side, n in bad)
    known = [n for n in (h, w) if n is not None]
    fits = min(min(_twos(n) for n in known), MAX_UNET_DEPTH)
    alt = f"; or depth {fits} or less" if fits >= 2 else ""
    return (f"a U-Net of depth {depth} halves the image {depth} times, so height and width must be multiples of "
            f"{step}; got {_size((h, w))} ({near}{alt})")


def _multiples(n: int, step: int) -> list[int]:
    below, above = n // step * step, (n // step + 1) * step
    return [m for m in (below, above) if m > 0]


def unet_generator(input_shape, out_channels: int, ngf: int = 64, depth: int | None = None, norm: str = "batch",
                   dropout: float = 0.5, name: str = "unet_generator") -> keras.Model:
    """The pix2pix U-Net (Isola et al. 2017, appendix 6.1.1): image (B, H, W, C) -> image (B, H, W, out) in [-1, 1].

    Encoder: ``depth`` 4x4 stride-2 convs of widths ``min(ngf * 2**i, ngf * 8)`` (C64-C128-C256-
    C512-C512-C512-C512-C512 at depth 8), each Conv-Norm-LeakyReLU(0.2). Decoder: ``depth - 1``
    4x4 stride-2 transposed convs mirroring the encoder widths (CD512-CD512-CD512-C512-C256-C128-C64),
    each ConvT-Norm-Dropout-ReLU, dropout on the first three only; after each, the mirrored encoder
    layer's output is concatenated (the paper's "U-Net decoder: CD512-CD1024-CD1024-C1024-C1024-
    C512-C256-C128" lists those concatenations' widths). Then a 4x4 stride-2 transposed conv to
    ``out_channels`` (with bias) and tanh. Keras's "same" padding of these even-kernel stride-2
    convs is the reference's padding 1 exactly. With ngf 64 and depth 8 it has 54,414,531 weights:
    the reference's 54.414 M plus the biases of the first and the bottleneck conv, which no norm follows.

    Args:
        input_shape: (H, W, C); H and W must be multiples of ``2**depth`` (or None when ``depth`` is
            given: a fully convolutional build).
        out_channels: channels of the output image.
        ngf: width of the first layer (64 in the paper).
        depth: number of downsamplings, >= 2. Default: ``unet_default_depth(H, W)`` (5 at 32x32,
            8 at 256x256, the paper's, whose bottleneck is 1x1).
        norm: ``batch`` (the paper), ``instance`` or ``none``. None on the first layer (the paper)
            nor on the bottleneck (the reference code; the paper's text puts batch norm there, but
            on a 1x1 bottleneck at batch 1 any norm outputs its offset whatever the input, which
            cuts the innermost path).
        dropout: rate of the dropout after the first three decoder convs (fewer when depth < 4),
            as the paper (the reference code drops only in its ngf*8 blocks, so none at 32x32);
            the generator's only noise source (no z). It is active when the model runs with
            ``training=True``; the paper also samples with dropout on and batch norm on the test
            batch's statistics, i.e. ``training=True``.
        name: the model's name.

    Returns:
        A keras.Model with one input.
    """
    shape = _check_input_shape(input_shape)
    problem = check_unet_shape(shape, depth)
    if problem:
        raise ValueError(problem)
    if depth is None:
        depth = unet_default_depth(shape[0], shape[1])
    _check_norm(norm)
    bias = norm == "none"

    images = keras.Input(shape, name="images")
    x, skips = images, []
    for i in range(depth):
        normed = 0 < i < depth - 1
        x = _conv(min(ngf * 2 ** i, ngf * 8), 4, 2, "same", bias or not normed)(x)
        if normed:
            x = _norm(x, norm)
        x = layers.LeakyReLU(LEAKY_SLOPE)(x)
        skips.append(x)
    for j, skip in enumerate(reversed(skips[:-1])):
        x = _conv(skip.shape[-1], 4, 2, "same", bias, transpose=True)(x)
        x = _norm(x, norm)
        if j < 3 and dropout > 0:
            x = layers.Dropout(dropout)(x)
        x = layers.ReLU()(x)
        x = layers.Concatenate()([x, skip])
    x = _conv(out_channels, 4, 2, "same", True, transpose=True)(x)
    return keras.Model(images, layers.Activation("tanh")(x), name=name)


# -- ResNet generator (CycleGAN) -------------------------------------------------------------------
def check_resnet_shape(input_shape) -> str | None:
    """Why :func:`resnet_generator` cannot take ``input_shape`` (H, W, C), or None."""
    h, w, _ = _check_input_shape(input_shape)
    bad = [n for n in (h, w) if n is not None and (n % 4 or n < 8)]
    if not bad:
        return None
    near = [m for m in _multiples(bad[0], 4) if m >= 8] or [8]
    return (f"the ResNet generator downsamples twice by 2 and reflection-pads the H/4 x W/4 maps, so height and "
            f"width must be multiples of 4 and at least 8; got {_size((h, w))} (nearest for {bad[0]}: "
            f"{' or '.join(str(m) for m in near)})")


def _residual_block(x, width: int, norm: str):
    """Johnson et al.'s block as CycleGAN's reference: x + [pad-conv3-norm-ReLU-pad-conv3-norm](x), no
    activation after the sum."""
    y = ReflectionPad2D(1)(x)
    y = _norm(_conv(width, 3, use_bias=norm == "none")(y), norm)
    y = layers.ReLU()(y)
    y = ReflectionPad2D(1)(y)
    y = _norm(_conv(width, 3, use_bias=norm == "none")(y), norm)
    return layers.Add()([x, y])


def resnet_generator(input_shape, out_channels: int, ngf: int = 64, blocks: int = 9, norm: str = "instance",
                     name: str = "resnet_generator") -> keras.Model:
    """CycleGAN's generator (Zhu et al. 2017, appendix 7.2, after Johnson et al. 2016): image -> image in [-1, 1].

    c7s1-64, d128, d256, R256 x ``blocks``, u128, u64, c7s1-``out_channels``:

    - c7s1-k: reflection pad 3, 7x7 conv, norm, ReLU; the last one has a bias, no norm, and tanh
      (the paper's notation would end in ReLU; the reference ends in tanh, as images in [-1, 1]
      need);
    - dk: 3x3 stride-2 conv with zero padding 1 (the reference; Keras's "same" would pad 0 and 1),
      norm, ReLU;
    - Rk: two 3x3 convs with reflection padding 1, the residual sum not activated;
    - uk: 3x3 stride-2 transposed conv laid out as PyTorch's ``padding=1, output_padding=1`` (a
      "valid" transposed conv with its first row and column cropped), norm, ReLU.

    The widths scale with ``ngf`` (64 in the paper). The paper uses 6 blocks for 128x128 images and 9
    for 256x256 and larger; the caller picks. With ngf 64 and 9 blocks this has 11,372,931 weights:
    the reference's 11.378 M less the 5,248 biases instance norm cancels.

    Args:
        input_shape: (H, W, C), H and W multiples of 4 and at least 8, or None (fully convolutional).
        out_channels: channels of the output image.
        ngf: width of the first layer.
        blocks: residual blocks at H/4 x W/4.
        norm: ``instance`` (the paper; without scale and offset, as the reference), ``batch`` or ``none``.
        name: the model's name.

    Returns:
        A keras.Model with one input.
    """
    shape = _check_input_shape(input_shape)
    problem = check_resnet_shape(shape)
    if problem:
        raise ValueError(problem)
    _check_norm(norm)
    bias = norm == "none"

    images = keras.Input(shape, name="images")
    x = ReflectionPad2D(3)(images)
    x = layers.ReLU()(_norm(_conv(ngf, 7, use_bias=bias)(x), norm))
    for mult in (2, 4):
        x = layers.ZeroPadding2D(1)(x)
        x = layers.ReLU()(_norm(_conv(ngf * mult, 3, 2, use_bias=bias)(x), norm))
    for _ in range(blocks):
        x = _residual_block(x, ngf * 4, norm)
    for mult in (2, 1):
        x = _conv(ngf * mult, 3, 2, "valid", bias, transpose=True)(x)  # (2h + 1) x (2w + 1)
        x = layers.Cropping2D(((1, 0), (1, 0)))(x)  # PyTorch's padding=1, output_padding=1 -> 2h x 2w
        x = layers.ReLU()(_norm(x, norm))
    x = ReflectionPad2D(3)(x)
    x = _conv(out_channels, 7)(x)
    return keras.Model(images, layers.Activation("tanh")(x), name=name)


# -- PatchGAN discriminator (pix2pix, CycleGAN) ----------------------------------------------------
def patchgan_receptive_field(n_layers: int = 3) -> int:
    """Side of the input square one output logit sees: 16, 34, 70, 142 for n_layers 1, 2, 3, 4."""
    field = 1 + 3 + 3  # the two stride-1 4x4 convs
    for _ in range(n_layers):
        field = (field - 1) * 2 + 4
    return field


def patchgan_output_size(side: int, n_layers: int = 3) -> int:
    """Logits along a side of ``side`` pixels: each stride-2 conv floors side / 2, each stride-1 conv
    takes 1 (32 -> 2, 64 -> 6, 128 -> 14, 256 -> 30 at n_layers 3)."""
    for _ in range(n_layers):
        side //= 2
    return side - 2


def check_patchgan_shape(input_shape, n_layers: int = 3) -> str | None:
    """Why :func:`patchgan_discriminator` cannot take ``input_shape`` (H, W, C), or None."""
    h, w, _ = _check_input_shape(input_shape)
    if n_layers < 1:
        return f"the PatchGAN needs n_layers >= 1; got {n_layers}"
    least = 3 * 2 ** n_layers  # the smallest side with one logit
    if any(n is not None and patchgan_output_size(n, n_layers) < 1 for n in (h, w)):
        return f"a PatchGAN with n_layers={n_layers} needs height and width of at least {least}; got {_size((h, w))}"
    return None


def patchgan_discriminator(input_shape, ndf: int = 64, n_layers: int = 3, norm: str = "batch", condition_channels: int = 0,
                           name: str = "patchgan_discriminator") -> keras.Model:
    """The PatchGAN of pix2pix (Isola et al. 2017, appendix 6.1.2) and CycleGAN: a map of real/fake logits.

    C64-C128-C256-C512 then a conv to one channel, all 4x4 with zero padding 1: ``n_layers``
    stride-2 convs of widths ``ndf * min(2**i, 8)``, one stride-1 conv of width
    ``ndf * min(2**n_layers, 8)``, each Conv-Norm-LeakyReLU(0.2) without norm on the first, then the
    stride-1 conv to 1 channel: logits, no sigmoid (the losses take logits). The strides are the
    reference code's: the paper's text says stride 2 for every conv, but then a logit would see
    94x94 pixels, not the 70x70 the paper names this critic by; with the reference's it sees
    ``patchgan_receptive_field(n_layers)`` = 70 at n_layers 3 (measured in the tests).

    Output: (B, H', W', 1) with ``H' = patchgan_output_size(H, n_layers)``: 2x2 at 32x32, 6x6 at
    64, 14x14 at 128, 30x30 at 256, 2x6 at 32x64. With ndf 64, n_layers 3 and batch norm it has the
    reference's 2.765 M weights for 3 input channels (2.769 M conditional, 3 + 3).

    Args:
        input_shape: (H, W, C) of the judged image; sides at least ``3 * 2**n_layers`` or None.
        ndf: width of the first conv (64 in the paper).
        n_layers: stride-2 convs (3: the 70x70 PatchGAN).
        norm: ``batch`` (pix2pix), ``instance`` (CycleGAN's reference) or ``none``.
        condition_channels: > 0 makes the critic conditional (pix2pix): the model takes
            ``[image, condition]``, the condition (H, W, condition_channels) concatenated on the
            channel axis before the first conv (condition first, as the reference's
            ``cat(real_A, fake_B)``).
        name: the model's name.

    Returns:
        A keras.Model: image -> logits, or [image, condition] -> logits.
    """
    shape = _check_input_shape(input_shape)
    problem = check_patchgan_shape(shape, n_layers)
    if problem:
        raise ValueError(problem)
    _check_norm(norm)
    bias = norm == "none"

    image = keras.Input(shape, name="image")
    inputs = image
    x = image
    if condition_channels:
        condition = keras.Input((shape[0], shape[1], condition_channels), name="condition")
        inputs = [image, condition]
        x = layers.Concatenate()([condition, image])
    widths = [ndf * min(2 ** i, 8) for i in range(n_layers + 1)]
    for i, width in enumerate(widths):
        x = layers.ZeroPadding2D(1)(x)
        x = _conv(width, 4, 2 if i < n_layers else 1, use_bias=bias or i == 0)(x)
        if i > 0:
            x = _norm(x, norm)
        x = layers.LeakyReLU(LEAKY_SLOPE)(x)
    x = layers.ZeroPadding2D(1)(x)
    logits = _conv(1, 4)(x)
    return keras.Model(inputs, logits, name=name)
