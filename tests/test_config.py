"""Config loading, validation, ``--set`` overrides and their error messages (plus the CLI surface).

Every error case asserts a :class:`UserError` whose message names the offending key path and,
for values that came from the file, ``<file>:<line>:``; values from ``--set`` name the flag.
Validation never loads data, so the data roots below only need to be strings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gantrain.cli import app
from gantrain.config import load_config, locked_differences, validate
from gantrain.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Four lines; anything appended starts on line 5.
BASE = "model:\n  family: gan\ndata:\n  loader: mnist\n"


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


class Names:
    """A message part computed when the test runs: the registry's names, as the error lists them."""

    def __init__(self, registry: str, prefix: str):
        self.registry, self.prefix = registry, prefix

    def __str__(self) -> str:
        import gantrain.registry as registries
        from gantrain.config import _ensure_registered

        _ensure_registered()
        names = getattr(registries, self.registry).names()
        assert names, self.registry
        return self.prefix + ", ".join(names)


VALID_MODELS, VALID_DATASETS = Names("MODELS", "valid: "), Names("DATASETS", "valid: ")
VALID_LOSSES, VALID_OPTIMIZERS = Names("LOSSES", "valid: "), Names("OPTIMIZERS", "valid: ")
CHOOSE_MODELS, CHOOSE_DATASETS = Names("MODELS", "choose one of "), Names("DATASETS", "choose one of ")


def test_registries_hold_the_core_components():
    from gantrain.config import _ensure_registered
    from gantrain.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS

    _ensure_registered()
    assert {"dcgan", "gan"} <= set(MODELS.names())
    assert {"mnist", "fashion_mnist", "cifar10", "image_folder"} <= set(DATASETS.names())
    assert {"non_saturating", "minimax"} <= set(LOSSES.names())
    assert {"adam", "rmsprop", "sgd"} <= set(OPTIMIZERS.names())


def load_error(path: Path, overrides=None) -> str:
    with pytest.raises(UserError) as info:
        load_config(path, overrides)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# Errors from the file: (id, yaml text, substrings the message must contain, line of the key or None)
# ---------------------------------------------------------------------------------------------
FILE_CASES = [
    # document shape
    ("empty-file", "", ["config file is empty"], None),
    ("comments-only", "# nothing here\n\n", ["config file is empty"], None),
    ("list-document", "- model\n- data\n", ["expected a mapping of sections", "got list"], None),
    ("scalar-document", "42\n", ["expected a mapping of sections", "got int"], None),
    ("string-document", "just some words\n", ["expected a mapping of sections", "got str"], None),
    # unknown keys, each with a did-you-mean hint
    ("unknown-top-level", BASE + "sed: 1\n", ["sed: unknown key", "did you mean 'seed'"], 5),
    ("unknown-top-level-section", BASE + "trian:\n  steps: 5\n", ["trian: unknown key", "did you mean 'train'"], 5),
    ("unknown-in-data", BASE + "  batch_sise: 32\n", ["data.batch_sise: unknown key", "did you mean 'batch_size'"], 5),
    ("unknown-in-train", BASE + "train:\n  stesp: 100\n", ["train.stesp: unknown key", "did you mean 'steps'"], 6),
    ("unknown-in-log", BASE + "log:\n  evrey: 10\n", ["log.evrey: unknown key", "did you mean 'every'"], 6),
    (
        "unknown-in-family-params",
        "model:\n  family: dcgan\n  g_width: [256, 128, 64]\ndata:\n  loader: mnist\n",
        ["model.g_width: unknown key", "did you mean 'g_widths'"],
        3,
    ),
    (
        "unknown-in-optimizer-params",
        BASE + "optimizer:\n  generator:\n    learning_rat: 0.001\n",
        ["optimizer.generator.learning_rat: unknown key", "did you mean 'learning_rate'"],
        7,
    ),
    (
        "unknown-in-rmsprop-params",
        BASE + "optimizer:\n  discriminator:\n    name: rmsprop\n    beta_1: 0.5\n",
        ["optimizer.discriminator.beta_1: unknown key", "rho"],
        8,
    ),
    # wrong types
    ("string-for-int", BASE + "train:\n  steps: '100'\n", ["train.steps", "expected an integer", "'100'"], 6),
    ("float-for-int", BASE + "train:\n  steps: 1.5\n", ["train.steps", "expected an integer", "1.5"], 6),
    ("whole-float-for-int", BASE + "  batch_size: 64.0\n", ["data.batch_size", "expected an integer"], 5),
    ("bool-for-int", BASE + "seed: true\n", ["seed", "expected an integer"], 5),
    ("int-for-bool", BASE + "train:\n  jit_compile: 1\n", ["train.jit_compile", "expected true or false"], 6),
    ("string-for-bool", BASE + "train:\n  deterministic: 'yes'\n", ["train.deterministic", "expected true or false"], 6),
    ("list-for-str", BASE + "name: [a, b]\n", ["name", "expected a non-empty string"], 5),
    ("empty-str", BASE + "name: ''\n", ["name", "expected a non-empty string"], 5),
    ("string-for-float", BASE + "optimizer:\n  generator:\n    learning_rate: fast\n", ["optimizer.generator.learning_rate", "expected a number"], 7),
    ("null-for-required", BASE + "train:\n  steps:\n", ["train.steps", "must not be empty"], 6),
    ("scalar-for-section", BASE + "train: 5\n", ["train", "expected a mapping"], 5),
    ("scalar-for-select-section", BASE + "loss: minimax\n", ["loss", "expected a mapping"], 5),
    ("int-list-not-list", "model:\n  family: gan\n  g_widths: 256\ndata:\n  loader: mnist\n", ["model.g_widths", "non-empty list"], 3),
    ("int-list-empty", "model:\n  family: gan\n  d_widths: []\ndata:\n  loader: mnist\n", ["model.d_widths", "non-empty list"], 3),
    # ranges
    ("batch-size-zero", BASE + "  batch_size: 0\n", ["data.batch_size", "must be >= 1", "got 0"], 5),
    ("batch-size-negative", BASE + "  batch_size: -3\n", ["data.batch_size", "must be >= 1", "got -3"], 5),
    ("steps-negative", BASE + "train:\n  steps: -5\n", ["train.steps", "must be >= 1"], 6),
    ("d-steps-zero", BASE + "train:\n  d_steps: 0\n", ["train.d_steps", "must be >= 1"], 6),
    ("d-steps-too-big", BASE + "train:\n  d_steps: 101\n", ["train.d_steps", "must be <= 100"], 6),
    ("epochs-zero", BASE + "train:\n  epochs: 0\n", ["train.epochs", "must be > 0"], 6),
    ("epochs-infinite", BASE + "train:\n  epochs: .inf\n", ["train.epochs", "finite"], 6),
    ("seed-negative", BASE + "seed: -1\n", ["seed", "must be >= 0"], 5),
    ("learning-rate-zero", BASE + "optimizer:\n  generator:\n    learning_rate: 0\n", ["optimizer.generator.learning_rate", "must be > 0"], 7),
    ("num-samples-too-big", BASE + "log:\n  num_samples: 5000\n", ["log.num_samples", "must be <= 1024"], 6),
    # Seeds feed keras.utils.set_random_seed (numpy: 0 <= seed < 2**32); a bigger one passes
    # validation today and then crashes `gantrain fit` with a ValueError traceback.
    ("seed-beyond-2**32", BASE + "seed: 4294967296\n", ["seed"], 5),
    # unknown registry names: the message lists the valid ones
    ("unknown-family", "model:\n  family: gann\ndata:\n  loader: mnist\n", ["model.family", "unknown model family 'gann'", "did you mean 'gan'", VALID_MODELS], 2),
    ("unknown-loader", "model:\n  family: gan\ndata:\n  loader: mnst\n", ["data.loader", "unknown dataset 'mnst'", "did you mean 'mnist'", VALID_DATASETS], 4),
    ("unknown-loss", BASE + "loss:\n  name: hinges\n", ["loss.name", "unknown loss 'hinges'", VALID_LOSSES], 6),
    ("unknown-optimizer", BASE + "optimizer:\n  generator:\n    name: adamw\n", ["optimizer.generator.name", "unknown optimizer 'adamw'", "did you mean 'adam'", VALID_OPTIMIZERS], 7),
    ("family-not-a-string", "model:\n  family: 3\ndata:\n  loader: mnist\n", ["model.family", "expected a name"], 2),
    # required keys
    ("missing-model-family", "model:\n  latent_dim: 10\ndata:\n  loader: mnist\n", ["model.family", "required", CHOOSE_MODELS], 1),
    ("missing-model-section", "data:\n  loader: mnist\n", ["model.family", "required", CHOOSE_MODELS], None),
    ("missing-data-loader", "model:\n  family: gan\ndata:\n  batch_size: 8\n", ["data.loader", "required", CHOOSE_DATASETS], 3),
    ("image-folder-without-root", "model:\n  family: gan\ndata:\n  loader: image_folder\n", ["data.root", "must not be empty"], 3),
    # loader parameters
    ("mnist-bad-split", BASE + "  split: validation\n", ["data.split", "'validation' is not one of train, test"], 5),
    ("image-folder-channels-2", "model:\n  family: gan\ndata:\n  loader: image_folder\n  root: faces\n  channels: 2\n", ["data.channels", "2 is not one of 1, 3"], 6),
    ("image-folder-channels-4", "model:\n  family: gan\ndata:\n  loader: image_folder\n  root: faces\n  channels: 4\n", ["data.channels", "is not one of 1, 3"], 6),
    ("image-size-zero", "model:\n  family: gan\ndata:\n  loader: image_folder\n  root: faces\n  image_size: 0\n", ["data.image_size", "must be >= 1"], 6),
    ("image-size-huge", "model:\n  family: gan\ndata:\n  loader: image_folder\n  root: faces\n  image_size: 5000\n", ["data.image_size", "must be <= 4096"], 6),
    ("image-size-three-numbers", "model:\n  family: gan\ndata:\n  loader: image_folder\n  root: faces\n  image_size: [1, 2, 3]\n", ["data.image_size", "expected a size"], 6),
    ("image-size-string", "model:\n  family: gan\ndata:\n  loader: image_folder\n  root: faces\n  image_size: big\n", ["data.image_size", "expected a size"], 6),
    ("image-size-pair-with-string", "model:\n  family: gan\ndata:\n  loader: image_folder\n  root: faces\n  image_size: [64, abc]\n", ["data.image_size", "expected an integer"], 6),
    ("image-folder-bad-on-error", "model:\n  family: gan\ndata:\n  loader: image_folder\n  root: faces\n  on_error: ignore\n", ["data.on_error", "not one of fail, skip"], 6),
    # cross-field: DCGAN shapes
    (
        "dcgan-non-square",
        "model:\n  family: dcgan\ndata:\n  loader: image_folder\n  root: faces\n  image_size: [112, 92]\n",
        ["model:", "family 'dcgan' cannot produce 112x92x3", "square", "data.image_size"],
        1,
    ),
    (
        "dcgan-not-divisible",
        "model:\n  family: dcgan\ndata:\n  loader: image_folder\n  root: faces\n  image_size: 30\n",
        ["model:", "30x30x3", "not divisible by", "= 4", "data.image_size or model.g_widths"],
        1,
    ),
    (
        "dcgan-one-width",
        "model:\n  family: dcgan\n  g_widths: [64]\ndata:\n  loader: mnist\n",
        ["model:", "model.g_widths needs at least 2 entries"],
        1,
    ),
    (
        "dcgan-mnist-too-deep",
        "model:\n  family: dcgan\n  g_widths: [512, 256, 128, 64]\ndata:\n  loader: mnist\n",
        ["model:", "28x28x1", "not divisible by", "= 8"],
        1,
    ),
    # An alias that refers back to its own mapping (a cycle) must be a UserError, not a crash.
    ("recursive-alias", BASE + "train: &t\n  steps: 5\n  again: *t\n", ["train"], None),
]


@pytest.mark.parametrize("text, expected, line", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_file_errors(tmp_path, text, expected, line):
    path = write(tmp_path, text)
    msg = load_error(path)
    assert str(path) in msg, msg
    if line is not None:
        assert msg.startswith(f"{path}:{line}: "), msg
    for part in map(str, expected):
        assert part in msg, f"{part!r} not in {msg!r}"
    assert "\n" not in msg, "a UserError is printed as one line"


SYNTAX_CASES = [
    ("unclosed-flow-mapping", "model: {family: gan\n", 2, 1),
    ("tab-indent", "model:\n\tfamily: gan\n", 2, 1),
    ("bad-indent", "model:\n  family: gan\n data:\n  loader: mnist\n", 3, 2),
    ("unclosed-list", BASE + "model_x: [1, 2\n", 6, 1),
    ("python-tag", BASE + "seed: !!python/object:os.system ls\n", 5, 7),
]


@pytest.mark.parametrize("text, line, column", [c[1:] for c in SYNTAX_CASES], ids=[c[0] for c in SYNTAX_CASES])
def test_yaml_syntax_errors_have_line_and_column(tmp_path, text, line, column):
    path = write(tmp_path, text)
    msg = load_error(path)
    assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: YAML syntax error: ", msg), msg
    assert msg.startswith(f"{path}:{line}:{column}: YAML syntax error: "), msg


def test_missing_config_file(tmp_path):
    msg = load_error(tmp_path / "nope.yaml")
    assert "nope.yaml" in msg and "not found" in msg


def test_directory_as_config_file(tmp_path):
    msg = load_error(tmp_path)
    assert "not found" in msg and "directory" in msg


def test_non_utf8_config_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    msg = load_error(path)
    assert str(path) in msg and "cannot read" in msg


# ---------------------------------------------------------------------------------------------
# Errors from --set: (id, overrides, substrings, extra yaml appended to BASE)
# ---------------------------------------------------------------------------------------------
SET_CASES = [
    ("set-empty-key", ["=5"], ["--set '=5'", "expected KEY.PATH=VALUE"], ""),
    ("set-double-dot", ["a..b=1"], ["--set 'a..b=1'", "expected KEY.PATH=VALUE"], ""),
    ("set-no-equals", ["noequals"], ["--set 'noequals'", "expected KEY.PATH=VALUE"], ""),
    ("set-trailing-dot", ["train.=1"], ["--set 'train.=1'", "expected KEY.PATH=VALUE"], ""),
    ("set-invalid-yaml", ["train.steps=[1"], ["--set 'train.steps=[1'", "not valid YAML"], ""),
    ("set-invalid-yaml-flow", ["optimizer.generator={name: adam"], ["--set", "not valid YAML"], ""),
    ("set-into-scalar", ["seed.x=1"], ["--set 'seed.x=1'", "seed is a value, not a section"], "seed: 3\n"),
    ("set-into-nested-scalar", ["data.loader.x=1"], ["--set 'data.loader.x=1'", "data.loader is a value, not a section"], ""),
    ("set-unknown-key", ["train.stepz=5"], ["--set train.stepz=5", "train.stepz: unknown key", "did you mean 'steps'"], ""),
    ("set-unknown-section", ["trian.steps=5"], ["--set trian.steps=5", "trian: unknown key", "did you mean 'train'"], ""),
    ("set-bad-range", ["data.batch_size=0"], ["--set data.batch_size=0", "data.batch_size", "must be >= 1"], ""),
    ("set-bad-type-over-file-value", ["train.steps=lots"], ["--set train.steps=lots", "train.steps", "expected an integer"], "train:\n  steps: 100\n"),
    ("set-empty-value", ["train.steps="], ["--set train.steps=", "train.steps", "must not be empty"], ""),
    ("set-unknown-family", ["model.family=gann"], ["--set model.family=gann", "model.family", VALID_MODELS], ""),
    # `seed` is not in the file: the bad value still came from --set, and the message must say so
    # (it should not blame the config file, which has no `seed` at all).
    ("set-into-default-scalar", ["seed.x=1"], ["--set", "seed"], ""),
    # A whole section replaced from --set: a bad value inside it came from --set, not from the
    # file line where the old section's key used to be.
    ("set-whole-section", ["train={steps: 0}"], ["--set", "train.steps", "must be >= 1"], "train:\n  steps: 100\n"),
]


@pytest.mark.parametrize("overrides, expected, extra", [c[1:] for c in SET_CASES], ids=[c[0] for c in SET_CASES])
def test_set_errors(tmp_path, overrides, expected, extra):
    path = write(tmp_path, BASE + extra)
    msg = load_error(path, overrides)
    for part in map(str, expected):
        assert part in msg, f"{part!r} not in {msg!r}"
    assert "\n" not in msg


# ---------------------------------------------------------------------------------------------
# Successful loads
# ---------------------------------------------------------------------------------------------
def test_defaults_are_filled_in(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    assert cfg["name"] == "exp"
    assert cfg["seed"] == 0
    expected_train = {"steps": 10000, "epochs": None, "d_steps": 1, "jit_compile": None, "deterministic": False}
    assert {k: cfg["train"][k] for k in expected_train} == expected_train
    expected_data = {"loader": "mnist", "batch_size": 64, "root": None, "split": "train"}
    assert {k: cfg["data"][k] for k in expected_data} == expected_data
    assert cfg["loss"]["name"] == "non_saturating"
    assert cfg["model"]["family"] == "gan"
    assert cfg["model"]["latent_dim"] == 100
    for key in ("generator", "discriminator"):
        opt = cfg["optimizer"][key]
        assert opt["name"] == "adam"
        assert opt["learning_rate"] == pytest.approx(2e-4)
        assert set(opt) == {"name", "learning_rate", "beta_1", "beta_2", "epsilon", "clip_value", "schedule", "warmup_steps", "decay_start", "final_factor"}
        assert (opt["schedule"], opt["warmup_steps"], opt["decay_start"], opt["final_factor"]) == ("constant", 0, None, 0.0)
    assert cfg["log"]["every"] == 100 and cfg["log"]["keep_checkpoints"] == 5


def test_validate_does_not_mutate_its_input():
    raw = {"model": {"family": "gan"}, "data": {"loader": "mnist"}}
    before = repr(raw)
    validate(raw)
    assert repr(raw) == before


@pytest.mark.parametrize("text", ["1e-4", "1E-4", "1.0e-4", "0.0001", "+1e-4"])
def test_exponent_without_dot_is_a_float(tmp_path, text):
    cfg = load_config(write(tmp_path, BASE + f"optimizer:\n  generator:\n    learning_rate: {text}\n"))
    value = cfg["optimizer"]["generator"]["learning_rate"]
    assert isinstance(value, float)
    assert value == pytest.approx(1e-4)


def test_exponent_without_dot_in_set_is_a_float(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["optimizer.discriminator.learning_rate=3e-5"])
    assert cfg["optimizer"]["discriminator"]["learning_rate"] == pytest.approx(3e-5)


def test_plain_ints_stay_ints(tmp_path):
    cfg = load_config(write(tmp_path, BASE + "train:\n  steps: 1000\nseed: 12\n"))
    assert cfg["train"]["steps"] == 1000 and isinstance(cfg["train"]["steps"], int)
    assert cfg["seed"] == 12


def test_set_overrides_are_applied_as_yaml(tmp_path):
    path = write(tmp_path, BASE + "  batch_size: 32\ntrain:\n  steps: 10\n")
    cfg = load_config(path, ["train.steps=2000", "data.batch_size=64"])
    assert cfg["train"]["steps"] == 2000 and type(cfg["train"]["steps"]) is int
    assert cfg["data"]["batch_size"] == 64 and type(cfg["data"]["batch_size"]) is int


def test_set_later_override_wins_and_creates_sections(tmp_path):
    cfg = load_config(
        write(tmp_path, BASE),
        ["train.steps=5", "train.steps=6", "train.jit_compile=true", "model.g_widths=[8, 16]", "optimizer.generator.name=sgd"],
    )
    assert cfg["train"]["steps"] == 6
    assert cfg["train"]["jit_compile"] is True
    assert cfg["model"]["g_widths"] == [8, 16]
    assert cfg["optimizer"]["generator"]["name"] == "sgd"
    assert "nesterov" in cfg["optimizer"]["generator"]


def test_set_does_not_change_the_file(tmp_path):
    path = write(tmp_path, BASE)
    load_config(path, ["train.steps=5"])
    assert path.read_text() == BASE


def test_relative_root_resolved_against_config_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(tmp_path, "model:\n  family: gan\ndata:\n  loader: image_folder\n  root: ../faces\n", "configs/exp.yaml")
    cfg = load_config(path)
    assert cfg["data"]["root"] == str((tmp_path / "faces").resolve())


def test_relative_root_from_config_given_by_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "model:\n  family: gan\ndata:\n  loader: mnist\n  root: data/mnist\n", "configs/exp.yaml")
    cfg = load_config("configs/exp.yaml")
    assert cfg["data"]["root"] == str((tmp_path / "configs" / "data" / "mnist").resolve())


def test_absolute_and_home_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path, BASE + "  root: ~/mnist\n")
    assert load_config(path)["data"]["root"] == str(tmp_path / "home" / "mnist")
    path = write(tmp_path, BASE + f"  root: {tmp_path / 'abs'}\n")
    assert load_config(path)["data"]["root"] == str(tmp_path / "abs")


def test_relative_root_from_set_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    """A path typed on the command line is relative to where the command runs.

    configs/dcgan_cifar10.yaml documents ``--set data.root=../shared/data/cifar10-jpeg-test``,
    run from the project root, which only works if --set paths are taken from the cwd.
    """
    project = tmp_path / "project"
    path = write(project, "model:\n  family: gan\ndata:\n  loader: cifar10\n", "configs/exp.yaml")
    monkeypatch.chdir(project)
    cfg = load_config(path, ["data.root=../shared/data/cifar10-jpeg-test"])
    assert cfg["data"]["root"] == str((tmp_path / "shared" / "data" / "cifar10-jpeg-test").resolve())


def test_name_defaults_to_file_stem_and_can_be_set(tmp_path):
    assert load_config(write(tmp_path, BASE, "my_experiment.yaml"))["name"] == "my_experiment"
    assert load_config(write(tmp_path, BASE + "name: custom\n", "other.yaml"))["name"] == "custom"
    assert load_config(write(tmp_path, BASE, "third.yml"), ["name=from_set"])["name"] == "from_set"


def test_image_size_number_becomes_a_pair(tmp_path):
    cfg = load_config(write(tmp_path, "model:\n  family: dcgan\ndata:\n  loader: image_folder\n  root: f\n  image_size: 32\n"))
    assert cfg["data"]["image_size"] == [32, 32]
    cfg = load_config(write(tmp_path, "model:\n  family: gan\ndata:\n  loader: image_folder\n  root: f\n  image_size: [112, 92]\n  channels: 1\n"))
    assert cfg["data"]["image_size"] == [112, 92] and cfg["data"]["channels"] == 1


SHIPPED = sorted((REPO / "configs").glob("*.yaml"))


def shipped_overrides(path: Path) -> list[str]:
    loader = yaml.safe_load(path.read_text())["data"]["loader"]
    if loader == "mnist":
        return [f"data.root={(SHARED_DATA / 'mnist').resolve()}"]
    if loader == "cifar10":
        return [f"data.root={(SHARED_DATA / 'cifar10-jpeg-test').resolve()}"]
    return []


def test_there_are_shipped_configs():
    assert len(SHIPPED) >= 3, SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_configs_validate(path):
    overrides = shipped_overrides(path)
    cfg = load_config(path, overrides)
    assert cfg["name"] == path.stem
    if overrides:
        assert cfg["data"]["root"] == overrides[0].split("=", 1)[1]
    # and without the data override too: validation never touches data
    assert load_config(path)["data"]["loader"] == cfg["data"]["loader"]


def test_locked_differences(tmp_path):
    old = load_config(write(tmp_path, BASE))
    same = load_config(write(tmp_path, BASE), ["train.steps=99999", "log.every=7", "optimizer.generator.learning_rate=0.1"])
    assert locked_differences(old, same) == []

    changed = load_config(write(tmp_path, BASE), ["model.latent_dim=64", "train.steps=5"])
    diffs = locked_differences(old, changed)
    assert len(diffs) == 1
    assert diffs[0].startswith("model.latent_dim: 100 -> 64")

    opt = load_config(write(tmp_path, BASE), ["optimizer.discriminator.name=sgd"])
    assert any(d.startswith("optimizer.discriminator.name:") for d in locked_differences(old, opt))


# ---------------------------------------------------------------------------------------------
# The CLI surface
# ---------------------------------------------------------------------------------------------
def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # older Click: keep stderr apart
    except TypeError:
        return CliRunner()  # Click >= 8.2: stderr is always captured separately


def _stderr(result) -> str:
    try:
        return result.stderr
    except ValueError:  # older Click with mixed streams
        return result.output


def test_cli_validate_bad_config(tmp_path):
    path = write(tmp_path, BASE + "  batch_size: 0\n", "bad.yaml")
    result = _runner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    err_lines = _stderr(result).strip().splitlines()
    assert len(err_lines) == 1, err_lines
    assert err_lines[0].startswith("error: ")
    assert f"{path}:5: data.batch_size" in err_lines[0]
    assert "Traceback" not in result.output


def test_cli_validate_bad_set(tmp_path):
    path = write(tmp_path, BASE, "good.yaml")
    result = _runner().invoke(app, ["validate", str(path), "--set", "noequals"])
    assert result.exit_code == 2
    assert _stderr(result).strip().startswith("error: --set 'noequals'")
    assert "Traceback" not in result.output


def test_cli_validate_missing_file(tmp_path):
    result = _runner().invoke(app, ["validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert _stderr(result).startswith("error: ")
    assert "Traceback" not in result.output


def test_cli_validate_good_config_prints_resolved_yaml(tmp_path):
    path = write(tmp_path, BASE, "good.yaml")
    result = _runner().invoke(app, ["validate", str(path), "--set", "train.steps=7"])
    assert result.exit_code == 0, result.output
    assert "steps: 7" in result.stdout
    printed = yaml.safe_load(result.stdout)
    assert printed["train"]["steps"] == 7
    assert printed["train"]["d_steps"] == 1
    assert printed["name"] == "good"
    # the printed config is itself a valid config
    again = write(tmp_path, result.stdout, "again.yaml")
    assert load_config(again)["train"]["steps"] == 7


def test_cli_list_names_components():
    result = _runner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for name in ("dcgan", "gan", "mnist", "image_folder", "cifar10", "non_saturating", "minimax", "adam"):
        assert re.search(rf"^\s+{name}\s", result.stdout, re.M), name


def test_cli_list_keys():
    result = _runner().invoke(app, ["list", "--keys"])
    assert result.exit_code == 0, result.output
    for key in ("train.d_steps", "data.batch_size", "model.g_widths", "optimizer.*.learning_rate", "data.root"):
        assert key in result.stdout, key


def test_set_steps_replaces_epochs_and_back(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("model: {family: gan}\ndata: {loader: mnist}\ntrain: {epochs: 50}\n")
    cfg = load_config(path, ["train.steps=2000"])
    assert cfg["train"]["steps"] == 2000 and cfg["train"]["epochs"] is None
    path.write_text("model: {family: gan}\ndata: {loader: mnist}\ntrain: {steps: 7}\n")
    assert load_config(path, ["train.epochs=2"])["train"]["epochs"] == 2.0


# Which update each shipped config uses is part of what it reproduces, so it is written out, not
# left to train.update: auto; the README's config table states it.
REFERENCE_UPDATES = {
    "gan_mnist": ("alternating", "fresh"),  # Keras-GAN gan.py
    "cgan_mnist": ("alternating", "fresh"),  # Keras-GAN cgan.py
    "acgan_mnist": ("alternating", "reuse"),  # the ACGAN reference: G's step reuses the D step's noise and labels
    "sgan_mnist": ("alternating", "fresh"),
    "sgan_mlp_mnist": ("alternating", "fresh"),  # improved-gan's train_mnist_feature_matching.py: D step, then G step with fresh noise
    "infogan_mnist": ("alternating", "fresh"),
    "lsgan_mnist": ("alternating", "fresh"),
    "wgan_mnist": ("alternating", "fresh"),
    "wgan_gp_mnist": ("alternating", "fresh"),
    "dcgan_mnist_tutorial": ("simultaneous", "fresh"),  # the TensorFlow DCGAN tutorial's train_step
}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_configs_state_their_update_order(path):
    raw = yaml.safe_load(path.read_text())
    assert "update" in raw["train"], f"{path.name}: write train.update explicitly (which update the recipe uses)"
    cfg = load_config(path)
    if path.stem in REFERENCE_UPDATES:
        assert (cfg["train"]["update"], cfg["train"]["g_noise"]) == REFERENCE_UPDATES[path.stem]
    readme = (REPO / "README.md").read_text()
    row = next((line for line in readme.splitlines() if line.startswith(f"| `configs/{path.name}`")), None)
    assert row is not None and cfg["train"]["update"] in row, f"README's config table: no row naming {path.name} and its update"


@pytest.mark.parametrize("override", ["seed=5", "data.batch_size=32", "train.d_steps=2", "train.update=alternating", "train.g_noise=reuse", "data.labeled_per_class=10"])
def test_keys_that_place_a_run_in_its_data_stream_are_locked_on_resume(tmp_path, override):
    """Review item 6: the data position is computed from them, so a change continues on another stream."""
    old = load_config(write(tmp_path, BASE))
    diffs = locked_differences(old, load_config(write(tmp_path, BASE), [override]))
    assert [d.split(":")[0] for d in diffs] == [override.split("=")[0]]


def test_schedule_milestones_must_fall_inside_the_run():
    base = {"model": {"family": "dcgan"}, "data": {"loader": "mnist"}, "train": {"steps": 100}}
    with pytest.raises(UserError, match=r"optimizer.generator.decay_start: decay would start at step 100, after the run ends \(train.steps 100\)"):
        validate({**base, "optimizer": {"generator": {"schedule": "linear", "decay_start": 100}}})
    with pytest.raises(UserError, match=r"optimizer.discriminator.warmup_steps: 100 warm-up steps leave nothing of train.steps 100"):
        validate({**base, "optimizer": {"discriminator": {"warmup_steps": 100}}})
    with pytest.raises(UserError, match=r"optimizer.generator.decay_start: only a linear or cosine schedule decays"):
        validate({**base, "optimizer": {"generator": {"decay_start": 10}}})
    with pytest.raises(UserError, match=r"optimizer.generator.schedule: 'step' is not one of constant, linear, cosine"):
        validate({**base, "optimizer": {"generator": {"schedule": "step"}}})


def test_a_family_default_applies_only_where_the_config_is_silent():
    """pix2pix and CycleGAN train at batch 1 by default (the papers); other families keep 64; a set value wins."""
    data = {"loader": "image_folder", "root": "unused", "image_size": 32}
    assert validate({"model": {"family": "pix2pix"}, "data": data})["data"]["batch_size"] == 1
    assert validate({"model": {"family": "cyclegan"}, "data": data})["data"]["batch_size"] == 1
    assert validate({"model": {"family": "pix2pix"}, "data": {**data, "batch_size": 16}})["data"]["batch_size"] == 16
    assert validate({"model": {"family": "dcgan"}, "data": data})["data"]["batch_size"] == 64
    raw = {"model": {"family": "pix2pix"}, "data": dict(data)}
    validate(raw)
    assert "batch_size" not in raw["data"]  # the caller's dict is left alone
