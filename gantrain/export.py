"""``export``: a trained run's generators as files that other programs load without gantrain.

``gantrain export RUN --format keras|savedmodel|tflite --out PATH [--checkpoint best|latest|N] [--float16]``

Which weights: the generators of the chosen checkpoint, each its EMA copy when the run kept one
(``train.ema_decay``: the weights its grids and scores come from), as ``sample``, ``translate``
and ``upscale`` use them. Noise families export ``generator``; pix2pix, srresnet and srgan
``generator``; cyclegan ``g_ab`` (A -> B) and ``g_ba`` (B -> A). Exports compute in float32
whatever ``train.precision`` the run trained in (mixed precision is a training speed-up; its
variables are float32 already).

Where the files go: one generator is written to PATH itself when PATH ends in the format's suffix
(``.keras``, ``.tflite``; a SavedModel is always a folder, so PATH), else to PATH/<name>.<suffix>.
Several generators go to PATH/<name>.keras, PATH/<name>/ (SavedModel) or PATH/<name>.tflite.
Nothing that exists is replaced without ``--overwrite`` (and then only files, or folders that
are SavedModels); each file is written under a temporary name and renamed into place.

Formats:

- ``keras``: a ``.keras`` file that ``keras.saving.load_model(path)`` opens with safe mode on and
  gantrain not installed: the network is rebuilt from standard Keras layers with the trained
  weights. gantrain's own layers are rewritten exactly: ``PixelShuffle`` (srresnet, srgan) as a
  stride-r ``Conv2DTranspose`` whose fixed 0/1 kernel moves each channel to its sub-pixel, and
  ``ReflectionPad2D`` (cyclegan) as one-row ``Cropping2D`` slices concatenated in mirrored order
  (this needs the network's image size, which cyclegan's is), and ``WeightNormDense`` (sgan_mlp)
  as a ``Dense`` with its effective kernel ``g * v / ||v||``. A layer with no such rewrite is
  refused with its name; the SavedModel and TFLite formats need no Python classes. Inputs are
  named as in the serving signature below; InfoGAN's export takes ``z``, ``label`` and ``codes``
  (it one-hot encodes and concatenates them itself), and a pix2pix ``output: chroma`` export takes
  the luminance and returns the RGB image (G's chroma joined with it, as ``translate`` does).
- ``savedmodel``: ``tf.saved_model.save`` of a ``tf.Module`` with the ``serving_default``
  signature below (TF Serving, ``tf.saved_model.load(path).signatures["serving_default"]``).
- ``tflite``: that signature converted by ``tf.lite.TFLiteConverter`` with fixed shapes: batch 1,
  and for translation families the trained image size (super-resolution: the LR side of the
  training crops, ``data.hr_size`` / scale), the weights traced in as constants. float32 by
  default; ``--float16`` stores the weights as float16 (post-training float16 quantisation: about
  half the file; outputs move by about 1e-3 on images in [-1, 1]).

The serving signature (``serving_default``; keyword arguments, one output)::

    noise families (gan, dcgan, sgan, cgan, cdcgan, acgan, infogan):
        z       float32 [batch, latent_dim]   noise, N(0, 1) in training
        label   int32   [batch]               cgan, cdcgan, acgan: the class, 0 .. classes - 1;
                                              infogan: the categorical code, 0 .. categories - 1
        codes   float32 [batch, continuous]   infogan: the continuous codes, U(-1, 1) in training
        -> images float32 [batch, H, W, C] in [-1, 1]
    translation families (pix2pix, cyclegan, srresnet, srgan):
        images  float32 [batch, H, W, C_in] in [-1, 1]  pix2pix, cyclegan: the trained H x W;
                                              srresnet, srgan: any size (None)
        -> images float32 [batch, H', W', C] in [-1, 1]  (srresnet, srgan: H' = scale x H)

C_in is the channel count the network takes (pix2pix ``output: chroma``: 1, the luminance); a grey
image for a colour model is repeated over the channels by the caller.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from gantrain.errors import UserError
from gantrain.models.base import FamilyModel
from gantrain.models.pix2pix import UV_RANGE, Pix2PixModel
from gantrain.models.sgan_mlp import WeightNormDense
from gantrain.models.super_resolution import PixelShuffle
from gantrain.models.translation import ReflectionPad2D
from gantrain.rundir import build_model, open_checkpoint, restore_networks

FORMATS = {"keras": ".keras", "savedmodel": "", "tflite": ".tflite"}
# Serving input names of the latent keys of ``FamilyModel.sample_latent`` (the sample command's --label is "label").
LATENT_NAMES = {"z": "z", "labels": "label", "codes": "codes"}


@dataclass
class Generators:
    """The restored generators of a run, ready to export."""

    model: FamilyModel
    networks: dict  # name -> keras.Model with the exported weights
    family: str
    step: int
    weights: dict  # name -> the checkpoint key its weights came from (``ema_g_ab``, ``generator``, ...)


def load_generators(run, which: str | int = "latest") -> Generators:
    """Every generator of ``run`` (a run directory or checkpoint prefix), restored in float32."""
    prefix, _, cfg, meta = open_checkpoint(run, which)
    float32 = {**cfg, "train": {**cfg["train"], "precision": "float32"}}
    model = build_model(float32, tuple(meta["image_shape"]), meta["num_classes"])
    family = cfg["model"]["family"]
    if model.generates:
        names = ["generator"]
    elif model.can_translate:
        names = list(dict.fromkeys(model.translators.values()))
    else:
        raise UserError(f"{run}: model family {family!r} has no generator to export")
    step, keys = restore_networks(model, cfg, prefix, names, what="generator")
    return Generators(model, {n: model.networks[n] for n in names}, family, step, keys)


# -- standard Keras layers for gantrain's own -------------------------------------------------------
def pixel_shuffle_kernel(factor: int, channels: int) -> np.ndarray:
    """The Conv2DTranspose kernel (r, r, C, r*r*C) that performs ``depth_to_space`` (PixelShuffle).

    A stride-r, r x r transposed convolution writes ``out[h*r + i, w*r + j, c] = sum_k
    in[h, w, k] * K[i, j, c, k]``; with ``K[i, j, c, (i*r + j)*C + c] = 1`` and 0 elsewhere each
    output pixel is one input value times 1 plus zeros: exactly TensorFlow's NHWC depth_to_space.
    """
    r = factor
    kernel = np.zeros((r, r, channels, r * r * channels), np.float32)
    for i in range(r):
        for j in range(r):
            kernel[i, j, np.arange(channels), (i * r + j) * channels + np.arange(channels)] = 1.0
    return kernel


def standard_pixel_shuffle(x, factor: int, name: str):
    """PixelShuffle(factor) on the KerasTensor ``x`` as a fixed, untrainable Conv2DTranspose."""
    channels = x.shape[-1] // (factor * factor)
    conv = layers.Conv2DTranspose(channels, factor, strides=factor, padding="valid", use_bias=False, trainable=False, name=name)
    out = conv(x)
    conv.set_weights([pixel_shuffle_kernel(factor, channels)])
    return out


def standard_reflection_pad(x, padding: tuple[int, int], name: str):
    """ReflectionPad2D on the KerasTensor ``x`` (known height and width) with Cropping2D and Concatenate.

    Reflection (edge not repeated) puts rows p, p-1, ..., 1 above the image and rows H-2, ...,
    H-1-p below it; each is a one-row crop, then the same for the columns of the result.
    """
    ph, pw = padding
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None:
        raise UserError(f"--format keras: layer {name!r} (gantrain ReflectionPad2D) needs a known image size to be rebuilt from "
                        "standard Keras layers; use --format savedmodel or tflite")
    x = layers.Concatenate(axis=1, name=f"{name}_rows")(_mirrored(x, 1, ph, h, name))
    return layers.Concatenate(axis=2, name=name)(_mirrored(x, 2, pw, w, name))


def _mirrored(x, axis: int, p: int, n: int, name: str) -> list:
    """[rows p..1, x, rows n-2..n-1-p] along ``axis`` (1: height, 2: width), each a one-row Cropping2D."""
    def row(k, side):
        crop = ((k, n - 1 - k), (0, 0)) if axis == 1 else ((0, 0), (k, n - 1 - k))
        return layers.Cropping2D(crop, name=f"{name}_{'row' if axis == 1 else 'col'}_{side}{k}")(x)

    return [*(row(k, "before") for k in range(p, 0, -1)), x, *(row(k, "after") for k in range(n - 2, n - 2 - p, -1))]


def standard_weight_norm_dense(x, layer: WeightNormDense):
    """A Dense with the weight-normalised layer's effective kernel ``g * v / ||v||`` and bias ``b``
    (an exported network is frozen, so folding the scale in loses nothing)."""
    dense = layers.Dense(layer.units, activation=layer.activation, dtype=layer.dtype_policy, name=layer.name)
    out = dense(x)
    dense.set_weights([(layer.direction() * layer.scale).numpy(), layer.bias.numpy()])
    return out


def _standard_call(layer, *args, **kwargs):
    """``keras.models.clone_model``'s call_function: gantrain layers become standard ones, others are called as they are."""
    if isinstance(layer, PixelShuffle):
        return standard_pixel_shuffle(args[0], layer.factor, layer.name)
    if isinstance(layer, ReflectionPad2D):
        return standard_reflection_pad(args[0], layer.padding, layer.name)
    if isinstance(layer, WeightNormDense):
        return standard_weight_norm_dense(args[0], layer)
    if type(layer).__module__.split(".")[0] != "keras":
        raise UserError(f"--format keras: layer {layer.name!r} is gantrain's {type(layer).__name__}, which has no standard Keras equivalent "
                        f"here, so the .keras file would need `import {type(layer).__module__}` to load; use --format savedmodel or tflite")
    return layer(*args, **kwargs)


def standard_model(network: keras.Model, input_name: str | None = None) -> keras.Model:
    """``network`` rebuilt from standard Keras layers only; it shares the trained layers (and weights).

    ``input_name`` renames a one-input network's input (SRResNet's ``lr_images`` -> ``images``).
    """
    inputs = None if input_name is None else keras.Input(network.input_shape[1:], dtype=network.inputs[0].dtype, name=input_name)
    return keras.models.clone_model(network, input_tensors=inputs, clone_function=lambda layer: layer, call_function=_standard_call,
                                    recursive=True)


# -- what each format exports ---------------------------------------------------------------------
def serving_specs(gens: Generators, name: str, fixed: bool = False) -> dict[str, tf.TensorSpec]:
    """The serving signature's inputs (module docstring); ``fixed``: batch 1 and known image sizes (TFLite)."""
    model, network = gens.model, gens.networks[name]
    batch = 1 if fixed else None
    if model.generates:
        latent = model.sample_latent(tf.random.Generator.from_seed(0), 1)
        unknown = set(latent) - set(LATENT_NAMES)
        if unknown:
            raise UserError(f"{gens.family}: latent input {sorted(unknown)[0]!r} has no serving name; this family cannot be exported yet")
        return {LATENT_NAMES[k]: tf.TensorSpec([batch, *t.shape[1:]], t.dtype, name=LATENT_NAMES[k])
                for k, t in latent.items() if 0 not in t.shape[1:]}
    h, w, channels = network.input_shape[1:]
    if fixed and h is None:  # super-resolution: the trained HR crops at the model's scale
        h, w = (None if side is None else side // (model.scale if model.can_upscale else 1) for side in model.image_shape[:2])
        if h is None or w is None:
            raise UserError(f"--format tflite: this {gens.family} run trained on images of no fixed size, and TFLite needs one; "
                            "use --format savedmodel or keras")
    return {"images": tf.TensorSpec([batch, h, w, channels], tf.float32, name="images")}


def serving_function(gens: Generators, name: str, fixed: bool = False):
    """A tf.function of the serving inputs (keyword arguments) -> {"images": float32 in [-1, 1]}.

    ``fixed`` (TFLite): batch 1, known image sizes, and the weights traced in as constants. The
    converter keeps Keras 3 variables as TFLite resource variables, which nothing initialises in
    the converted model (its outputs are NaN or garbage), so they are mapped to their values.
    """
    model, network = gens.model, gens.networks[name]
    specs = serving_specs(gens, name, fixed)
    order = list(specs)
    values = [v.numpy() for v in network.variables] if fixed else None

    if model.generates:
        def images(inputs):
            latent = {k: inputs[v] for k, v in LATENT_NAMES.items() if v in inputs}
            if "codes" not in latent and model.has_codes:  # InfoGAN without continuous codes: an empty block
                latent["codes"] = tf.zeros([tf.shape(inputs["z"])[0], 0])
            return model.generate(latent, training=False, generator=network)
    else:
        direction = {net: d for d, net in model.translators.items()}[name]

        def images(inputs):
            return model.translate(inputs["images"], direction, networks={name: network})

    def serve(*tensors):
        inputs = dict(zip(order, tensors))
        if values is None:
            return {"images": tf.cast(images(inputs), tf.float32)}
        with keras.StatelessScope(state_mapping=[(v, tf.constant(a)) for v, a in zip(network.variables, values)]):
            return {"images": tf.cast(images(inputs), tf.float32)}

    return tf.function(serve, input_signature=[specs[k] for k in order])


def keras_export_model(gens: Generators, name: str) -> keras.Model:
    """The model written to the .keras file: standard layers, inputs named as the serving signature."""
    model = gens.model
    network = standard_model(gens.networks[name], None if model.generates else "images")
    if model.has_codes:  # InfoGAN's G takes [z, one_hot(code), codes] concatenated: take them apart
        specs = serving_specs(gens, name)
        z = keras.Input(specs["z"].shape[1:], name="z")
        label = keras.Input((), dtype="int32", name="label")
        parts = [z, layers.CategoryEncoding(model.num_classes, output_mode="one_hot", name="label_one_hot")(label)]
        inputs = [z, label]
        if "codes" in specs:
            inputs.append(keras.Input(specs["codes"].shape[1:], name="codes"))
            parts.append(inputs[-1])
        return keras.Model(inputs, network(layers.Concatenate(name="latent")(parts)), name=name)
    if isinstance(model, Pix2PixModel) and model.chroma:
        return chroma_model(network, name)
    return network


def chroma_model(network: keras.Model, name: str) -> keras.Model:
    """Luminance (H, W, 1) -> RGB: pix2pix's ``assemble`` of the input's Y and G's chroma, in standard layers.

    YUV -> RGB is linear: ``rgb = [y, u, v] @ K`` (K: tf.image.yuv_to_rgb of the identity). G's
    tanh output is scaled to (U, V) by UV_RANGE, folded into K; the clip to [0, 1] is a ReLU with
    max_value 1.
    """
    yuv_to_rgb = tf.image.yuv_to_rgb(tf.eye(3)).numpy()
    kernel = np.diag([1.0, *UV_RANGE]).astype(np.float32) @ yuv_to_rgb
    luma = keras.Input(network.input_shape[1:], name="images")
    y = layers.Rescaling(0.5, offset=0.5, name="luma_to_unit")(luma)
    yuv = layers.Concatenate(name="yuv")([y, network(luma)])
    to_rgb = layers.Dense(3, use_bias=False, trainable=False, name="yuv_to_rgb")
    rgb = to_rgb(yuv)
    to_rgb.set_weights([kernel])
    rgb = layers.ReLU(max_value=1.0, name="clip_unit")(rgb)
    return keras.Model(luma, layers.Rescaling(2.0, offset=-1.0, name="unit_to_signed")(rgb), name=name)


def describe_signature(gens: Generators, name: str, fixed: bool = False) -> str:
    """One line: the serving inputs and output of ``name``, e.g. ``z float32 [None, 100] -> images float32 [None, 28, 28, 1] in [-1, 1]``."""
    def shape(s):
        return "[" + ", ".join("None" if d is None else str(d) for d in s) + "]"

    specs = serving_specs(gens, name, fixed)
    out = serving_function(gens, name, fixed).get_concrete_function().structured_outputs["images"]
    ranges = {"label": f" (0..{gens.model.num_classes - 1})"} if gens.model.generates and gens.model.conditional else {}
    args = ", ".join(f"{k} {s.dtype.name} {shape(s.shape)}{ranges.get(k, '')}" for k, s in specs.items())
    return f"{args} -> images float32 {shape(out.shape)} in [-1, 1]"


# -- writing --------------------------------------------------------------------------------------
def check_format(fmt: str, float16: bool) -> None:
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if float16 and fmt != "tflite":
        raise UserError(f"--float16: quantises TFLite models only; drop it or use --format tflite (got --format {fmt})")


def check_writable(out: Path) -> None:
    """Refuse an --out that cannot be created: below a file, or in a folder this user cannot write."""
    parent = out.parent if not out.is_dir() else out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is a file, not a folder; choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: cannot write in {parent} (permission denied); choose another --out")


def targets(out: Path, fmt: str, names: list[str]) -> dict[str, Path]:
    """Where each generator goes (module docstring)."""
    suffix = FORMATS[fmt]
    other = {s: f for f, s in FORMATS.items() if s and f != fmt}
    if out.suffix in other:  # dcgan.keras with --format tflite: a folder named dcgan.keras is surely not meant
        raise UserError(f"--out {out}: a {out.suffix} name for --format {fmt}; give a {suffix or 'folder'} name, or --format {other[out.suffix]}")
    if len(names) == 1 and (fmt == "savedmodel" or out.suffix == suffix):
        return {names[0]: out}
    if suffix and out.suffix == suffix:
        raise UserError(f"--out {out}: this run has {len(names)} generators ({', '.join(names)}); give a folder, they are written as "
                        f"{out.with_suffix('')}/<name>{suffix}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; give a {suffix or 'folder'} path or a folder")
    return {n: out / f"{n}{suffix}" for n in names}


def _taken(path: Path) -> bool:
    return path.is_file() or path.is_symlink() or (path.is_dir() and any(path.iterdir()))


def check_targets(paths: dict[str, Path], fmt: str, overwrite: bool) -> None:
    taken = [p for p in paths.values() if _taken(p)]
    if taken and not overwrite:
        if fmt == "savedmodel" and not (taken[0] / "saved_model.pb").is_file():
            raise UserError(f"--out {taken[0]}: a folder that holds other files (not a SavedModel); choose a new folder name")
        raise UserError(f"--out {taken[0]}: already exists; pass --overwrite to replace it, or choose another --out")
    for path in taken:
        if fmt == "savedmodel" and not (path.is_dir() and (path / "saved_model.pb").is_file()):
            raise UserError(f"--overwrite: {path} is not a SavedModel (no saved_model.pb); refusing to replace it")
        if fmt != "savedmodel" and path.is_dir():
            raise UserError(f"--out {path}: is a folder; refusing to replace it with a {fmt} file")


def _publish(tmp: Path, target: Path) -> None:
    """Move the finished ``tmp`` to ``target``, replacing what --overwrite allowed there."""
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old)
    else:
        tmp.replace(target)


def _save_savedmodel(gens: Generators, name: str, path: Path) -> None:
    module = tf.Module()
    module.generator = gens.networks[name]  # tracked: its variables are saved with the function
    module.serve = serving_function(gens, name)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve.get_concrete_function()})


def _tflite_bytes(gens: Generators, name: str, float16: bool) -> bytes:
    serve = serving_function(gens, name, fixed=True)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], tf.Module())
    if float16:  # post-training float16 quantisation of the weights
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def _write(gens: Generators, name: str, fmt: str, target: Path, float16: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}{target.suffix}")  # .keras files must end in .keras
    try:
        if fmt == "keras":
            keras_export_model(gens, name).save(str(tmp))
        elif fmt == "savedmodel":
            _save_savedmodel(gens, name, tmp)
        else:
            tmp.write_bytes(_tflite_bytes(gens, name, float16))
        _publish(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def export(run, fmt: str, out, which: str | int = "latest", float16: bool = False, overwrite: bool = False) -> tuple[Generators, dict[str, Path]]:
    """Export every generator of ``run`` as ``fmt`` under ``out``; returns the generators and the written paths by name."""
    out = Path(out)
    check_format(fmt, float16)
    check_writable(out)
    gens = load_generators(run, which)
    paths = targets(out, fmt, list(gens.networks))
    check_targets(paths, fmt, overwrite)
    for name, path in paths.items():
        try:
            _write(gens, name, fmt, path, float16)
        except OSError as err:
            raise UserError(f"--out {path}: cannot write ({err.strerror or err})") from None
    return gens, paths
