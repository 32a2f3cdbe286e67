"""Experiment configs: the documented defaults, YAML loading, ``--set`` overrides and validation.

This is the only module that knows YAML. ``load_config`` returns a fully resolved plain dict:
every default filled in, every value type- and range-checked, paths made absolute (relative paths
are taken from the config file's folder), cross-field rules checked. Any problem raises one
:class:`UserError` naming the key path and, where known, the file line.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from gantrain.errors import UserError
from gantrain.optimizers import SCHEDULE_FIELDS
from gantrain.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, PENALTIES
from gantrain.schema import Context, Field, Select, resolve

# ---------------------------------------------------------------------------------------------
# The defaults, in one place. Each model family, dataset, loss and optimizer adds the schema of
# its own parameters where it is registered; `gantrain list --keys` prints everything.
# ---------------------------------------------------------------------------------------------
SCHEMA: dict = {
    "name": Field(None, "experiment name; the run directory is runs/<name> (default: the config file's name)", "str", nullable=True),
    "seed": Field(0, "seeds weights, noise, data order and the fixed sample-grid noise", "int", min=0, max=2**32 - 1),
    "model": Select("family", MODELS, None, "model family (gantrain list)", common={
        "init_from": Field(None, "start a new run from another run's trained networks: every network of this family that the other run's latest "
                           "checkpoint holds under the same name (its EMA copy when it kept one), e.g. SRGAN's generator from an SRResNet run; "
                           "a shape mismatch is an error", "path", nullable=True),
    }),
    "data": Select(
        "loader",
        DATASETS,
        None,
        "dataset loader (gantrain list)",
        common={
            "batch_size": Field(64, "images per discriminator step", "int", min=1),
            "labeled_per_class": Field(None, "semi-supervised: keep labels on only this many images per class (the rest unlabeled)", "int", min=1, nullable=True),
            "pairs": Field(None, "derive (input, target) pairs from each image in the pipeline, for pix2pix on any image data: grey, sobel, canny, "
                           "blur or downscale of the image -> the image", "str", choices=("grey", "sobel", "canny", "blur", "downscale"), nullable=True),
            "pairs_factor": Field(None, "derived pairs: Gaussian sigma for canny (default 1) and blur (2), the factor for downscale (4)", "float", min=0, min_exclusive=True, nullable=True),
            "hr_size": Field(None, "super-resolution: side of the random square HR crops training batches are cut from (a multiple of "
                             "model.scale; null = the whole images); held-out images are always whole", "int", min=1, nullable=True),
            "pairs_jitter": Field(False, "derived pairs: pix2pix random jitter (resize by 286/256, random crop back, random mirror), the same on "
                                  "both sides of a pair; training batches only", "bool"),
        },
    ),
    "loss": Select(
        "name",
        LOSSES,
        "non_saturating",
        "adversarial loss pair (gantrain list)",
        common={
            "penalty": Field("none", "none | gradient_penalty (WGAN-GP, on real/fake interpolates) | r1 (on real images)", "str", choices=("none", "gradient_penalty", "r1")),
            "penalty_weight": Field(10.0, "weight of the penalty (lambda for WGAN-GP, gamma for R1)", "float", min=0),
            "real_target": Field(1.0, "D's target for real images; 0.9 = one-sided label smoothing (Salimans et al.)", "float", min=0, max=1),
            "fake_target": Field(0.0, "D's target for fakes; 0.1 with real_target 0.9 = two-sided smoothing", "float", min=0, max=1),
            "target_noise": Field(0.0, "noisy labels, redrawn each batch: real ~ U(real_target - n, real_target), fake ~ U(fake_target, fake_target + n); 0.2 as the anime DCGAN", "float", min=0, max=0.5),
            "g_target": Field(1.0, "the target G's loss pushes its fakes towards (BCE / least squares)", "float", min=0, max=1),
            "feature_matching": Field("none", "none | add | replace: G matches the mean D features of real and fake images, added to or instead of its adversarial loss", "str", choices=("none", "add", "replace")),
            "feature_matching_weight": Field(1.0, "weight of the feature-matching term", "float", min=0),
            "content": Field(None, "super-resolution content loss: pixel_mse, pixel_l1 or features (MSE of a feature network's activations; "
                             "null = the family's default, pixel_mse)", "str", choices=("pixel_mse", "pixel_l1", "features"), nullable=True),
            "content_network": Field("vgg19", "content: features: vgg19 (ImageNet weights from the file in loss.content_weights) or classifier "
                                     "(a `gantrain classifier train` stem in loss.content_weights: works offline)", "str", choices=("vgg19", "classifier")),
            "content_layer": Field(None, "content: features: the layer (vgg19: block5_conv4 = the paper's VGG54 by default, block2_conv2 = VGG22, "
                                   "block3_conv3 = the book's; classifier: block1_conv1 ... block2_conv2, default block2_conv2)", "str", nullable=True),
            "content_weights": Field(None, "content: features: the feature network's weights (vgg19: a local "
                                     "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5; classifier: the stem)", "path", nullable=True),
            "content_preprocess": Field(None, "content: features: caffe (VGG's ImageNet preprocessing) or none (null: caffe for vgg19, none for "
                                        "classifier)", "str", choices=("caffe", "none"), nullable=True),
            "content_scale": Field(None, "content: features: factor on the feature MSE (null: 1/12.75^2 for vgg19 as the paper, 1 for classifier)",
                                   "float", min=0, min_exclusive=True, nullable=True),
        },
    ),
    # One section per optimizer group of the family: these two always, plus any the family
    # declares (Family.extra_optimizers, see optimizer_section).
    "optimizer": {
        "generator": Select("name", OPTIMIZERS, "adam", "generator optimizer", common={"clip_value": Field(None, "weight clipping; only meaningful for the discriminator", "float", min=0, min_exclusive=True, nullable=True), **SCHEDULE_FIELDS}),
        "discriminator": Select("name", OPTIMIZERS, "adam", "discriminator optimizer", common={"clip_value": Field(None, "WGAN weight clipping: every D weight kept in [-c, c] after each update (0.01 in the paper)", "float", min=0, min_exclusive=True, nullable=True), **SCHEDULE_FIELDS}),
    },
    "train": {
        "steps": Field(10000, "training length in generator updates", "int", min=1),
        "epochs": Field(None, "training length in passes over the data (discriminator batches); when set it decides train.steps (the run's config.yaml records both); --set of either replaces the other", "float", min=0, min_exclusive=True, nullable=True),
        "d_steps": Field(1, "discriminator updates per generator update (n_critic)", "int", min=1, max=100),
        "update": Field("auto", "alternating (d_steps D steps, then a G step through the updated D; Goodfellow et al., Keras-GAN), simultaneous (one forward pass feeds both updates, G's gradient through the pre-update D, as the TF DCGAN tutorial; d_steps 1 only) or auto (simultaneous when d_steps is 1, else alternating)", "str", choices=("auto", "alternating", "simultaneous")),
        "g_noise": Field("fresh", "alternating update: the G step draws fresh noise and labels (fresh; Keras-GAN gan.py) or reuses the last D step's (reuse; Keras-GAN acgan.py)", "str", choices=("fresh", "reuse")),
        "jit_compile": Field(None, "compile the training step with XLA; null = auto: on for networks without convolutions on one replica (on CPU XLA made the MLP GAN 1.4x faster and the DCGAN 1.5x slower, see BENCHMARKS.md)", "bool", nullable=True),
        "steps_per_call": Field(None, "training steps per compiled call (fewer Python round trips); null = automatic (about 0.25 s of work per call, at most 50); hook cadence stays exact", "int", min=1, max=1000, nullable=True),
        "precision": Field("float32", "float32, mixed_float16 (GPUs; dynamic loss scaling) or mixed_bfloat16 (TPUs, recent CPUs/GPUs); losses are always computed in float32", "str", choices=("float32", "mixed_float16", "mixed_bfloat16")),
        "deterministic": Field(False, "enable TensorFlow op determinism (bit-identical reruns on CPU; slower)", "bool"),
        "on_nan": Field("stop", "non-finite loss: stop (keep the last good checkpoint) or rollback (reload it, scale the learning rates by nan_lr_factor)", "str", choices=("stop", "rollback")),
        "nan_lr_factor": Field(0.5, "learning-rate factor applied on each rollback", "float", min=0, max=1, min_exclusive=True),
        "nan_max_rollbacks": Field(3, "rollbacks allowed before stopping", "int", min=1),
        "ema_decay": Field(None, "keep an exponential moving average of G's weights (e.g. 0.999), with the (1 + t) / (10 + t) warm-up of TensorFlow's moving averages; sampling and grids then use it, with batch-norm statistics recomputed for the averaged weights (noise families)", "float", min=0, max=1, min_exclusive=True, nullable=True),
        "historical_averaging": {
            "generator": Field(0.0, "weight of ||theta - mean of past theta||^2 for G (0 = off)", "float", min=0),
            "discriminator": Field(0.0, "the same for D", "float", min=0),
        },
        "diffaugment": Field(None, "DiffAugment policies applied to real and fake images before D, e.g. [translation, cutout, color] (small datasets)", "str_list", choices=("color", "translation", "cutout"), nullable=True),
    },
    "eval": {
        "metrics": Field(None, "metrics computed during training, e.g. [fid, kid]; the first one picks the best checkpoint (checkpoints/best)", "str_list", choices=("fid", "kid", "is", "accuracy"), nullable=True),
        "every": Field(5000, "steps between evaluations (and always at the end)", "int", min=1),
        "n": Field(5000, "generated samples per evaluation (real features are computed once and cached)", "int", min=100),
        "split": Field("test", "real split compared with (datasets that have splits)", "str", choices=("train", "test")),
        "extractor": Field(None, "feature extractor (default: the dataset's domain classifier, else inception_v3)", "str", nullable=True),
        "weights": Field(None, "extractor weights file or classifier stem (Inception offline)", "path", nullable=True),
    },
    "distribute": {
        "strategy": Field("default", "default (one device) | mirrored (all GPUs of this machine, or distribute.devices) | multi_worker_mirrored (several machines; TF_CONFIG on each) | tpu; data.batch_size is the global batch", "str", choices=("default", "mirrored", "multi_worker_mirrored", "tpu")),
        "devices": Field(None, "mirrored only: devices to use, e.g. [/gpu:0, /gpu:1] (default: every GPU); naming /cpu:1 and up splits the CPU into logical devices (testing)", "str_list", nullable=True),
        "tpu": Field(None, "tpu only: the TPU name or grpc:// address (null: a local TPU VM or $TPU_NAME)", "str", nullable=True),
    },
    "log": {
        "every": Field(100, "steps between scalar logs (metrics.jsonl, TensorBoard, progress bar)", "int", min=1),
        "sample_every": Field(500, "steps between sample grids (samples/step_NNNNNN.png)", "int", min=1),
        "checkpoint_every": Field(1000, "steps between checkpoints (one is always written at the end)", "int", min=1),
        "keep_checkpoints": Field(5, "most recent checkpoints kept", "int", min=1),
        "num_samples": Field(64, "images in each sample grid (fixed noise, so grids compare over time)", "int", min=1, max=1024),
    },
}

# Keys that decide the shapes of the networks or optimizer slots: a resumed run must keep them
# (and, for every optimizer group, its optimizer's name and momentum: LOCKED_OPTIMIZER_KEYS).
LOCKED_OPTIMIZER_KEYS = ("name", "momentum")
LOCKED_PREFIXES = (
    "model.", "data.loader", "data.image_size", "data.channels", "data.resize", "data.hr_size", "data.pairs",
    "train.precision", "train.ema_decay", "train.historical_averaging.",
    # The data and noise streams: a resumed run finds its place in them from the step, the seed,
    # the batch size and the draws per step, so changing any of these would continue on another
    # stream instead of exactly where the run stopped.
    "seed", "data.batch_size", "data.labeled_per_class", "train.d_steps", "train.update", "train.g_noise",
)


CONTENT_KEYS = ("content", "content_network", "content_layer", "content_weights", "content_preprocess", "content_scale")


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str) -> tuple[Any, dict]:
    """Parse YAML text safely; return (data, {key path: "file:line"})."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where}: YAML syntax error: {problem}") from None
    lines: dict = {}
    _line_map(node, (), source, lines)
    return data, lines


def _line_map(node, path: tuple, source: str, out: dict, seen: frozenset = frozenset()) -> None:
    # `seen` stops at an alias that points back into its own mapping (a recursive document).
    if isinstance(node, yaml.MappingNode) and id(node) not in seen:
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = f"{source}:{key_node.start_mark.line + 1}"
            _line_map(value_node, path + (key,), source, out, seen | {id(node)})


def parse_override(item: str) -> tuple[tuple, Any]:
    """``"train.steps=2000"`` -> (("train", "steps"), 2000); the value is parsed as YAML."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise UserError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. --set train.steps=2000")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
    except yaml.YAMLError as err:
        raise UserError(f"--set {item!r}: the value is not valid YAML ({getattr(err, 'problem', err)})") from None
    return tuple(key.split(".")), value


def apply_overrides(raw: dict, overrides: list[str], lines: dict) -> dict:
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        path, value = parse_override(item)
        # train.steps and train.epochs are two ways to say one thing: the one set last wins.
        other = {("train", "steps"): "epochs", ("train", "epochs"): "steps"}.get(path)
        if other and isinstance(raw.get("train"), dict) and other in raw["train"]:
            del raw["train"][other]
            lines.pop(("train", other), None)
        node = raw
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"--set {item!r}: {'.'.join(path[: i + 1])} is a value, not a section")
            node = child
        node[path[-1]] = value
        # Errors under this key now point at the flag: forget the file lines of what it replaced,
        # and mark the sections it created.
        for key in [k for k in lines if k[: len(path)] == path]:
            del lines[key]
        for i in range(1, len(path) + 1):
            if path[:i] not in lines or i == len(path):
                lines[path[:i]] = f"--set {item}"
    return raw


def read_config_file(path: str | Path) -> tuple[dict, dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read config file: {err}") from None
    data, lines = parse_yaml(text, str(path))
    if data is None:
        raise UserError(f"{path}: config file is empty; see configs/ for examples")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections (model:, data:, ...), got {type(data).__name__}")
    return data, lines


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict:
    """Read, override, validate and resolve a config file."""
    path = Path(path)
    raw, lines = read_config_file(path)
    raw = apply_overrides(raw, overrides or [], lines)
    cfg = validate(raw, Context(str(path), lines, path.resolve().parent))
    if cfg["name"] is None:
        cfg["name"] = path.stem
    return cfg


def validate(raw: dict, ctx: Context | None = None) -> dict:
    """Resolve a raw config dict against the schema and check cross-field rules."""
    _ensure_registered()
    ctx = ctx or Context()
    cfg = resolve(schema_for(raw), with_family_defaults(raw), (), ctx)
    data_entry = DATASETS.entry(cfg["data"]["loader"])
    image_shape = tuple(data_entry.obj.image_shape(cfg["data"]))
    family = MODELS.get(cfg["model"]["family"])
    for key, reason in family.unsupported.items():
        path = tuple(key.split("."))
        if _lookup(cfg, path) != _default(path):
            ctx.fail(path, f"not available with model.family {cfg['model']['family']!r}: {reason}")
    if family.uses_content and cfg["loss"]["content"] != "features":
        for key in CONTENT_KEYS[1:]:  # the feature network's keys
            if cfg["loss"][key] != _default(("loss", key)):
                ctx.fail(("loss", key), f"configures the feature network of loss.content: features, but loss.content is "
                                        f"{cfg['loss']['content'] or 'pixel_mse (the default)'}; set loss.content: features or drop this key")
    if not family.uses_content:
        for key in CONTENT_KEYS:
            if cfg["loss"][key] != _default(("loss", key)):
                ctx.fail(("loss", key), f"only the super-resolution families (srresnet, srgan) have a content loss, not {cfg['model']['family']!r}")
        if cfg["data"]["hr_size"] is not None:
            ctx.fail(("data", "hr_size"), f"HR crops are for the super-resolution families (srresnet, srgan), not {cfg['model']['family']!r}")
    for key, reason in family.conflicts(cfg["model"]).items():
        ctx.fail(("model", key), reason)
    problem = family.check(cfg["model"], image_shape)
    if problem:
        ctx.fail(("model",), f"family {cfg['model']['family']!r} cannot produce {image_shape[0]}x{image_shape[1]}x{image_shape[2]} images from data.loader {cfg['data']['loader']!r}: {problem}")
    for key, opt in cfg["optimizer"].items():
        OPTIMIZERS.get(opt["name"]).check(opt, ("optimizer", key), ctx)
        check_schedule(opt, ("optimizer", key), cfg["train"], ctx)
    check_combinations(cfg, ctx)
    return cfg


def with_family_defaults(raw):
    """``raw`` with the family's own defaults (``Family.defaults``) for keys the config leaves unset."""
    model = raw.get("model") if isinstance(raw, dict) else None
    family = model.get("family") if isinstance(model, dict) else None
    if not isinstance(family, str) or family not in MODELS or not MODELS.get(family).defaults:
        return raw
    raw = copy.deepcopy(raw)
    for key, value in MODELS.get(family).defaults.items():
        *sections, last = key.split(".")
        node = raw
        for part in sections:
            if not isinstance(node.get(part, {}), dict):
                break  # a malformed section: resolve reports it
            node = node.setdefault(part, {})
        else:
            node.setdefault(last, value)
    return raw


def _lookup(cfg: dict, path: tuple):
    for part in path:
        cfg = cfg[part]
    return cfg


def _default(path: tuple):
    """The schema default of a dotted key that every config has (a Select's common fields included)."""
    spec = SCHEMA
    for part in path:
        spec = (spec.common if isinstance(spec, Select) else spec)[part]
    return spec.default


def schema_for(raw) -> dict:
    """SCHEMA with an ``optimizer.<group>`` section for each extra optimizer group of the raw config's family."""
    model = raw.get("model") if isinstance(raw, dict) else None
    family = model.get("family") if isinstance(model, dict) else None
    if not isinstance(family, str) or family not in MODELS or not MODELS.get(family).extra_optimizers:
        return SCHEMA  # an unknown family is reported by resolve, with the valid names
    extra = {name: optimizer_section(doc) for name, doc in MODELS.get(family).extra_optimizers.items()}
    return {**SCHEMA, "optimizer": {**SCHEMA["optimizer"], **extra}}


def optimizer_section(doc: str) -> Select:
    clip = Field(None, "weight clipping: every weight of this group kept in [-c, c] after each update", "float", min=0, min_exclusive=True, nullable=True)
    return Select("name", OPTIMIZERS, "adam", doc, common={"clip_value": clip, **SCHEDULE_FIELDS})


def check_combinations(cfg: dict, ctx: Context) -> None:
    """Refuse switches that do not make sense together, saying why."""
    loss = LOSSES.get(cfg["loss"]["name"])
    name = cfg["loss"]["name"]
    clip = cfg["optimizer"]["discriminator"]["clip_value"]
    if cfg["optimizer"]["generator"]["clip_value"] is not None:
        ctx.fail(("optimizer", "generator", "clip_value"), "weight clipping constrains the critic (discriminator), not the generator")
    if clip is not None and loss.bounded_output:
        ctx.fail(("optimizer", "discriminator", "clip_value"),
                 f"weight clipping makes the critic Lipschitz for the wasserstein loss; with loss {name!r} D's output is read through a sigmoid, "
                 "so clipping only cripples it (use loss.name: wasserstein)")
    if name == "wasserstein" and clip is None and cfg["loss"]["penalty"] == "none":
        ctx.fail(("loss", "name"), "the wasserstein loss needs a Lipschitz constraint on the critic: set optimizer.discriminator.clip_value "
                 "(WGAN, 0.01) or loss.penalty: gradient_penalty (WGAN-GP)")
    check_penalty(cfg, ctx)
    smoothing = (cfg["loss"]["real_target"], cfg["loss"]["fake_target"], cfg["loss"]["target_noise"], cfg["loss"]["g_target"]) != (1.0, 0.0, 0.0, 1.0)
    if name == "minimax" and cfg["loss"]["g_target"] != 1.0:
        ctx.fail(("loss", "g_target"), "the minimax generator loss log(1 - D(G(z))) has no target; use loss.name: non_saturating")
    if smoothing and not loss.uses_targets:
        ctx.fail(("loss", "real_target"), f"label smoothing and noisy labels set targets for BCE or least-squares losses; loss {name!r} has no targets")
    if cfg["train"]["update"] == "simultaneous" and cfg["train"]["d_steps"] != 1:
        ctx.fail(("train", "update"), "simultaneous updates take one D step per G step; set train.d_steps: 1 or train.update: alternating")
    dist = cfg["distribute"]
    if dist["devices"] and dist["strategy"] != "mirrored":
        ctx.fail(("distribute", "devices"), f"only the mirrored strategy takes a device list (distribute.strategy is {dist['strategy']!r})")
    if dist["tpu"] and dist["strategy"] != "tpu":
        ctx.fail(("distribute", "tpu"), f"a TPU address needs distribute.strategy: tpu (it is {dist['strategy']!r})")
    if cfg["loss"]["real_target"] <= cfg["loss"]["fake_target"]:
        ctx.fail(("loss", "real_target"), "must be above loss.fake_target")


def check_schedule(opt: dict, path: tuple, train: dict, ctx: Context) -> None:
    """A schedule's milestones must fall inside the run (known here unless train.epochs decides its length)."""
    steps = train["steps"] if train["epochs"] is None else None
    if opt["decay_start"] is not None and opt["schedule"] == "constant":
        ctx.fail(path + ("decay_start",), "only a linear or cosine schedule decays; set schedule: linear or cosine, or remove decay_start")
    if steps is None:
        return
    if opt["warmup_steps"] >= steps:
        ctx.fail(path + ("warmup_steps",), f"{opt['warmup_steps']} warm-up steps leave nothing of train.steps {steps}")
    if opt["decay_start"] is not None and opt["decay_start"] >= steps:
        ctx.fail(path + ("decay_start",), f"decay would start at step {opt['decay_start']}, after the run ends (train.steps {steps})")


def check_penalty(cfg: dict, ctx: Context) -> None:
    """Gradient penalties constrain the critic's gradient at each sample, so the critic must be one
    deterministic function of one sample (Gulrajani et al. 2017, section 4: no batch norm)."""
    penalty, model = cfg["loss"]["penalty"], cfg["model"]
    if penalty == "none" or not PENALTIES.get(penalty).per_sample:
        return
    what = {"gradient_penalty": "the gradient penalty", "r1": "the R1 penalty"}.get(penalty, f"the {penalty} penalty")
    if model.get("d_norm") == "batch":
        ctx.fail(("model", "d_norm"), f"{what} is per sample, but batch normalisation in D couples the samples of a batch "
                 "(Gulrajani et al.); set model.d_norm to layer_hwc (WGAN-GP's critic), layer, instance, spectral or none")
    if model.get("minibatch_kernels", 0) > 0:
        ctx.fail(("model", "minibatch_kernels"), f"{what} is per sample, but minibatch discrimination makes D's output for one image "
                 "depend on the rest of its batch; set model.minibatch_kernels: 0")
    if model.get("dropout", 0) > 0:
        ctx.fail(("model", "dropout"), f"{what} constrains the gradient of the critic, but with dropout every pass is another random "
                 "sub-network, so the penalty bounds none of them; set model.dropout: 0 (WGAN-GP's critic has no dropout)")


def locked_differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ between two resolved configs and may not change on resume."""
    a, b = dict(flatten(old)), dict(flatten(new))
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys if _locked(k) and a.get(k) != b.get(k)]


def _locked(key: str) -> bool:
    parts = key.split(".")
    return key.startswith(LOCKED_PREFIXES) or (len(parts) == 3 and parts[0] == "optimizer" and parts[2] in LOCKED_OPTIMIZER_KEYS)


def flatten(cfg: dict, prefix: str = ""):
    for key, value in cfg.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)


def _ensure_registered() -> None:
    # Importing the component packages runs their @register decorators.
    import gantrain.data  # noqa: F401
    import gantrain.losses  # noqa: F401
    import gantrain.models  # noqa: F401
    import gantrain.optimizers  # noqa: F401
