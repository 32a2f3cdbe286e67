"""A family the package does not know, defined only here: two generators, two discriminators, a cycle loss.

It is registered (with a toy unpaired dataset that provides the roles ``domain_a`` and ``domain_b``)
for this module only, and trained by ``gantrain.fit`` through the generic trainer with nothing
edited elsewhere: its own optimizer group for D_B (``optimizer.discriminator_b``), an EMA of one
generator, checkpoints of every network and optimizer, and an exact resume.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from PIL import Image

import gantrain
from gantrain.config import locked_differences, validate
from gantrain.data import Source, shuffled_indices, to_unit_range
from gantrain.errors import UserError
from gantrain.losses import get_loss
from gantrain.models.base import Family, FamilyModel
from gantrain.models.plan import Group, Losses, Plan, Update
from gantrain.registry import DATASETS, MODELS
from gantrain.rundir import build_model
from gantrain.trainer import Trainer, TrainOptions

SIZE = 8


# -- the data: two unpaired domains of different sizes, each shuffled on its own ------------------
class UnpairedToy(Source):
    class_names: list = []
    location = ""

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.a, self.b = a, b
        self.description = f"toy unpaired ({len(a)} A, {len(b)} B)"

    roles = ("domain_a", "domain_b")
    image_shape = (SIZE, SIZE, 1)

    def __len__(self):
        return len(self.a)

    def pipeline(self, batch_size, seed, start_batch=0):
        a, b = tf.constant(self.a), tf.constant(self.b)
        both = tf.data.Dataset.zip(shuffled_indices(len(self.a), batch_size, seed, start_batch),
                                   shuffled_indices(len(self.b), batch_size, seed + 1, start_batch))
        return both.map(lambda i, j: {"domain_a": to_unit_range(tf.gather(a, i)), "domain_b": to_unit_range(tf.gather(b, j))})


def toy_domains():
    """A: bright horizontal bars; B: bright vertical bars (24 and 20 images)."""
    rng = np.random.default_rng(0)
    a = np.zeros((24, SIZE, SIZE, 1), np.uint8)
    b = np.zeros((20, SIZE, SIZE, 1), np.uint8)
    for img in a:
        img[rng.integers(0, SIZE), :, 0] = 255
    for img in b:
        img[:, rng.integers(0, SIZE), 0] = 255
    return a, b


class ToyLoader:
    def image_shape(self, params):
        return (SIZE, SIZE, 1)

    def has_splits(self, params):
        return False

    def check(self, params):
        return UnpairedToy.roles

    def load(self, params, split=None):
        return UnpairedToy(*toy_domains())


# -- the family ---------------------------------------------------------------------------------
def _translator(name):
    x = inp = keras.Input((SIZE, SIZE, 1))
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    return keras.Model(inp, layers.Conv2D(1, 3, padding="same", activation="tanh")(x), name=name)


def _critic(name):
    x = inp = keras.Input((SIZE, SIZE, 1))
    x = layers.Conv2D(4, 3, strides=2, padding="same")(x)
    return keras.Model(inp, layers.Dense(1)(layers.Flatten()(layers.LeakyReLU(0.2)(x))), name=name)


class ToyCycleModel(FamilyModel):
    groups = (Group("generator", "g", ("g_ab", "g_ba")), Group("discriminator", "d", ("d_a",)), Group("discriminator_b", "d_b", ("d_b",)))
    averaged = ("g_ab",)
    can_translate = True

    def __init__(self, cycle_weight):
        self.cycle_weight = cycle_weight
        self._networks = {"g_ab": _translator("g_ab"), "g_ba": _translator("g_ba"), "d_a": _critic("d_a"), "d_b": _critic("d_b")}

    @property
    def networks(self):
        return self._networks

    def g_losses(self, loss, ctx):
        n = self.networks
        a, b = ctx.batch["domain_a"], ctx.batch["domain_b"]
        fake_b, fake_a = n["g_ab"](a, training=True), n["g_ba"](b, training=True)
        adversarial = loss.g_loss(n["d_b"](fake_b, training=True), 1.0) + loss.g_loss(n["d_a"](fake_a, training=True), 1.0)
        cycle = tf.reduce_mean(tf.abs(n["g_ba"](fake_b, training=True) - a)) + tf.reduce_mean(tf.abs(n["g_ab"](fake_a, training=True) - b))
        return Losses({"adv_loss": adversarial, "cycle_loss": self.cycle_weight * cycle})

    def d_losses(self, loss, ctx, critic, real_role, generator, source_role):
        n = self.networks
        fake = n[generator](ctx.batch[source_role], training=True)
        return Losses({"adv_loss": loss.d_loss(n[critic](ctx.batch[real_role], training=True), n[critic](fake, training=True), 1.0, 0.0)})

    def plan(self, loss, options):
        return Plan((
            Update("generator", lambda ctx: self.g_losses(loss, ctx)),
            Update("discriminator", lambda ctx: self.d_losses(loss, ctx, "d_a", "domain_a", "g_ba", "domain_b"), fresh_data=False),
            Update("discriminator_b", lambda ctx: self.d_losses(loss, ctx, "d_b", "domain_b", "g_ab", "domain_a"), fresh_data=False),
        ))

    def grid_inputs(self, n, seed, source):
        return {"a": to_unit_range(source.a[:n])}

    def grid_images(self, inputs, networks):
        a = inputs["a"]
        fake_b = networks["g_ab"](a, training=False)
        return np.concatenate([a.numpy(), fake_b.numpy(), networks["g_ba"](fake_b, training=False).numpy()]), 3


class ToyCycle(Family):
    roles = ("domain_a", "domain_b")
    extra_optimizers = {"discriminator_b": "D_B's optimizer (D_A uses optimizer.discriminator)"}

    def build(self, params, image_shape, num_classes):
        return ToyCycleModel(params["cycle_weight"])


@pytest.fixture(scope="module")
def registered():
    from gantrain.schema import Field

    MODELS.register("toy_cycle", description="test-only two-generator family", schema={"cycle_weight": Field(10.0, "cycle weight", "float", min=0)})(ToyCycle())
    DATASETS.register("toy_unpaired", description="test-only unpaired domains")(ToyLoader())
    yield
    MODELS.unregister("toy_cycle")
    DATASETS.unregister("toy_unpaired")


def _config(steps, **train):
    return {
        "seed": 3,
        "model": {"family": "toy_cycle"},
        "data": {"loader": "toy_unpaired", "batch_size": 4},
        "loss": {"name": "least_squares"},
        "optimizer": {"generator": {"learning_rate": 2e-3}, "discriminator": {"learning_rate": 1e-3}, "discriminator_b": {"name": "sgd", "learning_rate": 5e-3}},
        "train": {"steps": steps, "update": "alternating", "ema_decay": 0.9, **train},
        "log": {"every": 1, "sample_every": 2, "checkpoint_every": 2, "num_samples": 4},
    }


def _checkpoint_values(run):
    prefix = tf.train.latest_checkpoint(str(run / "checkpoints"))
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix) if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


@pytest.fixture(scope="module")
def runs(registered, tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    full = gantrain.fit(_config(4), run_dir=root / "full", progress=False)
    part = gantrain.fit(_config(2), run_dir=root / "part", progress=False)
    gantrain.fit(_config(4), run_dir=None, resume=part, progress=False)
    return full, part


def test_trains_every_network_with_its_own_optimizer(runs):
    full, _ = runs
    values = _checkpoint_values(full)
    entries = {name.split("/")[0] for name in values}
    assert {"g_ab", "g_ba", "d_a", "d_b", "g_optimizer", "d_optimizer", "d_b_optimizer", "ema_g_ab", "rng", "step"} <= entries
    # Every optimizer stepped once per training step, the SGD of D_B included (entry 0000: its iteration count).
    iterations = {k.split("/")[0]: int(v) for k, v in values.items() if k.split("/")[0].endswith("_optimizer") and k.split("/")[1] == "0000"}
    assert iterations == {"g_optimizer": 4, "d_optimizer": 4, "d_b_optimizer": 4}
    rows = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert {"g_loss", "g_adv_loss", "g_cycle_loss", "d_loss", "d_b_loss", "lr_g", "lr_d", "lr_d_b"} <= set(rows[0])
    assert (rows[0]["lr_g"], rows[0]["lr_d"], rows[0]["lr_d_b"]) == (pytest.approx(2e-3), pytest.approx(1e-3), pytest.approx(5e-3))
    assert all(r["g_loss"] == pytest.approx(r["g_adv_loss"] + r["g_cycle_loss"], rel=1e-5) for r in rows)
    assert sorted(p.name for p in (full / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    # The grid the family declared: A, G_AB(A), G_BA(G_AB(A)) in three rows of 4 8x8 images, 2 px
    # apart, shown 8x: (3 x 10 + 2) x 8 high, (4 x 10 + 2) x 8 wide; its first cell is the first A image.
    grid = np.asarray(Image.open(full / "samples" / "step_000004.png"))
    assert grid.shape == (256, 336)
    np.testing.assert_array_equal(grid[16:80:8, 16:80:8], toy_domains()[0][0, :, :, 0])


def test_sampling_commands_refuse_a_family_that_does_not_generate_from_noise(runs, tmp_path):
    full, _ = runs
    with pytest.raises(UserError, match=r"model family 'toy_cycle' does not draw images from noise"):
        gantrain.sample(full, n=2)
    cfg = _config(2)
    cfg["eval"] = {"metrics": ["fid"]}
    with pytest.raises(UserError, match=r"eval.metrics: model family 'toy_cycle' does not draw images from noise"):
        gantrain.fit(cfg, run_dir=tmp_path / "e", progress=False)
    assert not (tmp_path / "e").exists()


def test_resumes_exactly(runs):
    full, part = runs
    a, b = _checkpoint_values(full), _checkpoint_values(part)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # The same losses at every step, the two logged after the resume included (the throughput differs).
    strip = lambda run: [{k: v for k, v in json.loads(line).items() if k not in ("images_per_sec", "time")} for line in (run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert strip(full) == strip(part) and len(strip(full)) == 4


def test_first_step_minimises_the_family_losses_computed_independently(registered):
    """The logged losses of step 1 are the family's losses at the initial weights, computed here by hand."""
    cfg = validate(_config(1))
    model = build_model(cfg, (SIZE, SIZE, 1), 0)
    initial = {name: [v.numpy() for v in net.variables] for name, net in model.networks.items()}
    source = ToyLoader().load(cfg["data"])
    opts = {g: keras.optimizers.SGD(0.1) for g in ("generator", "discriminator", "discriminator_b")}
    trainer = Trainer(model, opts, get_loss("least_squares"), 4, 3, options=TrainOptions.from_config(cfg))
    batch = next(iter(source.pipeline(4, 3)))
    out = trainer.train_step(iter(source.pipeline(4, 3)))

    # By hand, in numpy-friendly TF ops: least squares, G's fakes toward 1, D's reals to 1 and fakes to 0.
    nets = {name: keras.models.clone_model(net) for name, net in model.networks.items()}
    for name, net in nets.items():
        net.set_weights(initial[name])
    a, b = batch["domain_a"], batch["domain_b"]
    fb, fa = nets["g_ab"](a), nets["g_ba"](b)
    g_adv = 0.5 * np.mean((nets["d_b"](fb).numpy() - 1) ** 2) + 0.5 * np.mean((nets["d_a"](fa).numpy() - 1) ** 2)
    cycle = 10.0 * (np.mean(np.abs(nets["g_ba"](fb).numpy() - a.numpy())) + np.mean(np.abs(nets["g_ab"](fa).numpy() - b.numpy())))
    assert float(out["g_adv_loss"]) == pytest.approx(g_adv, rel=1e-5)
    assert float(out["g_cycle_loss"]) == pytest.approx(cycle, rel=1e-5)
    # D_A's update runs after G's: on the updated G_BA, so apply G's SGD step by hand first.
    with tf.GradientTape() as tape:
        fb, fa = nets["g_ab"](a), nets["g_ba"](b)
        total = (0.5 * tf.reduce_mean((nets["d_b"](fb) - 1) ** 2) + 0.5 * tf.reduce_mean((nets["d_a"](fa) - 1) ** 2)
                 + 10.0 * (tf.reduce_mean(tf.abs(nets["g_ba"](fb) - a)) + tf.reduce_mean(tf.abs(nets["g_ab"](fa) - b))))
    g_vars = nets["g_ab"].trainable_variables + nets["g_ba"].trainable_variables
    for v, g in zip(g_vars, tape.gradient(total, g_vars)):
        v.assign_sub(0.1 * g)
    d_a = 0.5 * np.mean((nets["d_a"](a).numpy() - 1) ** 2) + 0.5 * np.mean(nets["d_a"](nets["g_ba"](b)).numpy() ** 2)
    assert float(out["d_loss"]) == pytest.approx(d_a, rel=1e-5)


def test_an_update_trains_only_its_groups_networks(registered):
    cfg = validate(_config(1))
    model = build_model(cfg, (SIZE, SIZE, 1), 0)
    opts = {g: keras.optimizers.SGD(0.1) for g in ("generator", "discriminator", "discriminator_b")}
    trainer = Trainer(model, opts, get_loss("least_squares"), 4, 3, options=TrainOptions.from_config(cfg))
    batch = next(iter(ToyLoader().load(cfg["data"]).pipeline(4, 3)))
    before = {name: [v.numpy().copy() for v in net.trainable_variables] for name, net in model.networks.items()}
    trainer.update("discriminator_b", batch, {}, tf.constant([1, 2], tf.int64))
    moved = {name: any(not np.array_equal(b, v.numpy()) for b, v in zip(before[name], net.trainable_variables)) for name, net in model.networks.items()}
    assert moved == {"g_ab": False, "g_ba": False, "d_a": False, "d_b": True}


def test_data_without_the_roles_and_unknown_groups_are_refused(registered, mnist_dir, tmp_path):
    cfg = _config(2)
    cfg["data"] = {"loader": "mnist", "root": str(mnist_dir)}
    with pytest.raises(UserError, match=r"model.family 'toy_cycle' reads the data roles domain_a, domain_b .* provides only image, label"):
        gantrain.fit(cfg, run_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    # optimizer.discriminator_b exists only for a family that declares the group.
    with pytest.raises(UserError, match=r"optimizer.discriminator_b: unknown key"):
        validate({"model": {"family": "dcgan"}, "data": {"loader": "mnist"}, "optimizer": {"discriminator_b": {"name": "sgd"}}})
    # A declared group's optimizer may not change on resume, like the built-in groups' (its slots would not fit).
    old, new = validate(_config(2)), validate(_config(2))
    new["optimizer"]["discriminator_b"]["name"] = "adam"
    assert locked_differences(old, new) == ["optimizer.discriminator_b.name: 'sgd' -> 'adam'"]
