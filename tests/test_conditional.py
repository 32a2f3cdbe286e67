"""Conditional and auxiliary families: parameter counts, conditioning, heads, label subsets, sampling."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from typer.testing import CliRunner

import gantrain
from gantrain.cli import app
from gantrain.config import validate
from gantrain.classify import classifier_accuracy
from gantrain.data import ImageSource, load_dataset, make_pipeline
from gantrain.data.labels import keep_labels_per_class
from gantrain.errors import UserError
from gantrain.evaluate import conditional_accuracy
from gantrain.extractors import Extractor, get_extractor
from gantrain.losses import class_cross_entropy, get_loss
from gantrain.optimizers import build_optimizer
from gantrain.run import build_model
from gantrain.trainer import GANTrainer

runner = CliRunner()
TINY_CONV = {"g_base_channels": 4, "g_widths": [8, 8, 4], "d_widths": [4, 8]}


def _count(model):
    return int(sum(np.prod(v.shape) for v in model.weights))


def _model(family, num_classes=10, **params):
    cfg = validate({"model": {"family": family, **params}, "data": {"loader": "mnist", "batch_size": 8}})
    return build_model(cfg, (28, 28, 1), num_classes), cfg


def test_acgan_parameter_counts_match_reference():
    model, _ = _model("acgan")
    # Keras-GAN's acgan.py: G 327,113 and D 94,987, less the biases of the convs right before batch
    # norm, which cancel (layers.bias_before): G's three (64 + 128 + 64), D's three (32 + 64 + 128).
    assert _count(model.generator) == 327_113 - (64 + 128 + 64) == 326_857
    assert _count(model.discriminator) == 94_987 - (32 + 64 + 128) == 94_763
    assert _count(model.generator) + _count(model.discriminator) == 421_620


def test_infogan_chen_networks_match_the_paper_layer_by_layer():
    model, _ = _model("infogan", arch="chen")  # MNIST: 62 noise + 10 categorical + 2 continuous = 74 inputs
    # Chen et al. appendix C.1, counted by hand (no bias before a batch norm; BN keeps 4 numbers a unit):
    # G: FC 74->1024 (75,776) + BN (4,096); FC 1024->7*7*128 (6,422,528) + BN (25,088);
    #    4x4 up-conv 128->64 (131,072) + BN (256); 4x4 up-conv 64->1 with bias (1,025).
    assert _count(model.generator) == 75_776 + 4_096 + 6_422_528 + 25_088 + 131_072 + 256 + 1_025 == 6_659_841
    # D: 4x4 conv 1->64 with bias (1,088); 4x4 conv 64->128 (131,072) + BN (512); FC 6272->1024
    #    (6,422,528) + BN (4,096); D head FC 1024->1 (1,025); Q: FC 1024->128 (131,072) + BN (512),
    #    categorical 128->10 (1,290), continuous 128->2 (258).
    assert _count(model.discriminator) == 1_088 + 131_072 + 512 + 6_422_528 + 4_096 + 1_025 + 131_072 + 512 + 1_290 + 258 == 6_693_453
    shapes = [layer.output.shape[1:] for layer in model.generator.layers if isinstance(layer, tf.keras.layers.Conv2DTranspose)]
    assert shapes == [(14, 14, 64), (28, 28, 1)]  # two 4x4 stride-2 up-convolutions from 7x7
    out = model.discriminate(model.generate(model.sample_latent(tf.random.Generator.from_seed(0), 3), training=False), None, training=False)
    assert out["logits"].shape == (3, 1) and out["cat_logits"].shape == (3, 10) and out["code_means"].shape == (3, 2)


@pytest.mark.parametrize("key, value, says", [
    ("g_widths", [8, 8, 4], "model.g_widths: sets a width of the acgan networks"),
    ("d_norm", "instance", "model.d_norm: instance normalises over height and width"),
])
def test_infogan_chen_refuses_what_its_networks_cannot_honour(key, value, says):
    with pytest.raises(UserError, match=says):
        validate({"model": {"family": "infogan", "arch": "chen", key: value}, "data": {"loader": "mnist"}})
    validate({"model": {"family": "infogan", key: value}, "data": {"loader": "mnist"}})  # the acgan body takes it


@pytest.mark.parametrize("family", ["cgan", "cdcgan", "acgan", "infogan"])
def test_labels_really_condition_the_generator(family):
    model, _ = _model(family)
    rng = tf.random.Generator.from_seed(1)
    latent = model.sample_latent(rng, 1, labels=[0])
    images = []
    for label in (0, 1, 7):
        fixed = dict(latent, labels=tf.constant([label]))
        images.append(model.generate(fixed, training=False).numpy())
    assert not np.allclose(images[0], images[1]) and not np.allclose(images[1], images[2])
    again = model.generate(dict(latent, labels=tf.constant([0])), training=False).numpy()
    assert np.array_equal(images[0], again)  # same z and label: same image


def test_acgan_class_head_learns_on_real_mnist(mnist_dir):
    model, cfg = _model("acgan")
    source = load_dataset({"loader": "mnist", "root": str(mnist_dir), "split": "train"})
    trainer = GANTrainer(model, build_optimizer(cfg["optimizer"]["generator"]), build_optimizer(cfg["optimizer"]["discriminator"]),
                         get_loss("non_saturating"), 64, seed=0)
    probe = source.images[:512].astype(np.float32) / 127.5 - 1.0
    probe_labels = source.labels[:512]

    def class_loss():
        # training=True: batch statistics of real images, the mode in which D's class loss is trained.
        return float(class_cross_entropy(probe_labels, model.discriminate(probe, None, training=True)["class_logits"]))

    before = class_loss()
    it = iter(make_pipeline(source, 64, seed=0))
    for _ in range(40):
        trainer.train_step(it)
    after = class_loss()
    assert before > 2.0  # about log(10) untrained
    assert after < 0.8 * before, (before, after)


def test_sgan_keeps_exactly_labeled_per_class(mnist_dir):
    source = load_dataset({"loader": "mnist", "root": str(mnist_dir), "split": "train"})
    subset = keep_labels_per_class(source, 10, seed=0)
    counts = np.bincount(subset.labels[subset.labels >= 0], minlength=10)
    assert counts.tolist() == [10] * 10
    assert (subset.labels == -1).sum() == len(source) - 100
    kept = subset.labels >= 0
    assert np.array_equal(subset.labels[kept], source.labels[kept])  # the kept labels are the true ones
    assert np.array_equal(keep_labels_per_class(source, 10, seed=0).labels, subset.labels)  # seeded
    with pytest.raises(UserError, match="fewer than"):
        keep_labels_per_class(source, 7000, seed=0)


def test_sgan_real_fake_logit_is_logsumexp_of_class_logits():
    model, _ = _model("sgan", **TINY_CONV)
    images = tf.random.uniform([4, 28, 28, 1], -1, 1)
    out = model.discriminate(images, None, training=False)
    assert out["class_logits"].shape == (4, 10)
    expected = np.log(np.exp(out["class_logits"].numpy()).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(out["logits"].numpy(), expected, rtol=1e-5)


def test_infogan_q_head_shapes_and_loss():
    model, _ = _model("infogan", continuous_codes=3, info_weight=2.0, continuous_weight=0.5, **TINY_CONV)
    latent = model.sample_latent(tf.random.Generator.from_seed(0), 5)
    assert latent["z"].shape == (5, 62) and latent["codes"].shape == (5, 3) and latent["labels"].shape == (5,)
    assert float(tf.reduce_min(latent["codes"])) >= -1 and float(tf.reduce_max(latent["codes"])) <= 1
    out = model.discriminate(model.generate(latent, training=False), None, training=False)
    assert out["logits"].shape == (5, 1) and out["cat_logits"].shape == (5, 10) and out["code_means"].shape == (5, 3)
    logits, means = out["cat_logits"].numpy(), out["code_means"].numpy()
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    ce = -log_softmax[np.arange(5), latent["labels"].numpy()].mean()
    mse = ((latent["codes"].numpy() - means) ** 2).sum(axis=1).mean()
    expected = 2.0 * (ce + 0.5 * mse)
    assert float(model.info_loss(out, latent)) == pytest.approx(expected, rel=1e-5)
    assert model.g_extra_losses(out, latent).keys() == {"info_loss"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir):
    tmp = tmp_path_factory.mktemp("cond")
    base = {"data": {"loader": "mnist", "root": str(mnist_dir), "batch_size": 8},
            "train": {"steps": 2}, "log": {"every": 1, "checkpoint_every": 1, "num_samples": 20}}
    out = {}
    for family, extra in (("acgan", TINY_CONV), ("infogan", TINY_CONV), ("dcgan", {"g_widths": [8, 4], "d_widths": [4]}),
                          ("sgan", TINY_CONV)):
        cfg = {**base, "name": family, "model": {"family": family, **extra}}
        if family == "sgan":
            cfg["data"] = {**base["data"], "labeled_per_class": 5}
        out[family] = gantrain.fit(cfg, run_dir=tmp / family, progress=False)
    return out



def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_sample_label_and_per_class_grids(runs, tmp_path):
    code, out = _invoke("sample", runs["acgan"], "--label", 3, "--n", 16, "--out", tmp_path / "three.png")
    assert code == 0, out
    # 16 images -> 4x4 grid of 28 px cells with 2 px padding, upscaled x2 for display.
    assert Image.open(tmp_path / "three.png").size == (2 * (4 * 30 + 2), 2 * (4 * 30 + 2))
    code, out = _invoke("sample", runs["acgan"], "--per-class", 8, "--out", tmp_path / "classes.png")
    assert code == 0, out
    assert Image.open(tmp_path / "classes.png").size == (2 * (8 * 30 + 2), 2 * (10 * 30 + 2))  # 10 rows x 8
    assert "rows, top to bottom: 0=0, 1=1" in out
    code, out = _invoke("sample", runs["acgan"], "--labels", "0,1,2", "--n", 5, "--out", tmp_path / "three_rows.npy")
    assert code == 0, out
    assert np.load(tmp_path / "three_rows.npy").shape == (15, 28, 28, 1)


def test_labelled_samples_are_the_requested_class_inputs(runs):
    a = gantrain.sample(runs["acgan"], n=4, seed=5, labels=3)
    b = gantrain.sample(runs["acgan"], n=4, seed=5, labels=[3, 3, 3, 3])
    c = gantrain.sample(runs["acgan"], n=4, seed=5, labels=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("args, needle", [
    (["--label", "3"], "unconditional"),
    (["--per-class", "2"], "unconditional"),
    (["--traverse", "c1"], "no latent codes"),
])
def test_unconditional_family_rejects_labels(runs, tmp_path, args, needle):
    code, out = _invoke("sample", runs["dcgan"], *args, "--out", tmp_path / "x.png")
    assert code == 2 and needle in out and "Traceback" not in out


def test_label_out_of_range_is_refused(runs, tmp_path):
    code, out = _invoke("sample", runs["acgan"], "--label", 10, "--out", tmp_path / "x.png")
    assert code == 2 and "classes 0..9" in out


def test_infogan_traversal_grid(runs, tmp_path):
    code, out = _invoke("sample", runs["infogan"], "--traverse", "c1", "--steps", 6, "--out", tmp_path / "t.png")
    assert code == 0, out
    assert Image.open(tmp_path / "t.png").size == (2 * (6 * 30 + 2), 2 * (10 * 30 + 2))  # 10 categorical rows x 6 steps
    code, out = _invoke("sample", runs["infogan"], "--traverse", "c9", "--out", tmp_path / "t.png")
    assert code == 2 and "c1, c2" in out


def test_class_grids_during_training_have_one_row_per_class(runs):
    grid = Image.open(sorted((runs["acgan"] / "samples").glob("*.png"))[-1])
    assert grid.size == (2 * (2 * 30 + 2), 2 * (10 * 30 + 2))  # num_samples 20 -> 10 classes x 2


def test_sgan_logs_test_accuracy_and_classify_reports_it(runs):
    rows = [json.loads(line) for line in (runs["sgan"] / "metrics.jsonl").read_text().splitlines()]
    accs = [r["test_accuracy"] for r in rows if "test_accuracy" in r]
    assert len(accs) == 2
    code, out = _invoke("classify", runs["sgan"])
    assert code == 0, out
    assert f"accuracy {accs[-1]:.4f} on 10000 images" in out
    code, out = _invoke("classify", runs["acgan"])
    assert code == 2 and "no classifier head" in out
    code, out = _invoke("classify", runs["sgan"], "--split", "tset")
    assert code == 2 and "--split 'tset': valid splits are train, test" in out


def test_conditional_family_needs_labels(tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((28, 28), i * 40, np.uint8)).save(folder / f"{i}.png")
    cfg = {"model": {"family": "acgan", **TINY_CONV}, "data": {"loader": "image_folder", "root": str(folder), "image_size": 28, "channels": 1, "batch_size": 2},
           "train": {"steps": 1}}
    with pytest.raises(UserError, match="model.family 'acgan' reads the data roles image, label in every step, but .* provides only image"):
        gantrain.fit(cfg, run_dir=tmp_path / "r", progress=False)
    # validate refuses it too, before anything heavy, naming the family and the loader
    from typer.testing import CliRunner

    import yaml
    from gantrain.cli import app

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "model.family 'acgan' reads the data roles image, label" in result.output
    assert "data.loader 'image_folder' provides only image (no label" in result.output


class RuleClassifier:
    """A stand-in SGAN: its classifier head says class (pixel (0, 0) in 0..255) // 64, as one-hot logits."""

    def classify(self, images):
        value = (images[:, 0, 0, 0] + 1.0) * 127.5
        return 5.0 * tf.one_hot(tf.cast(tf.floor(value / 64.0), tf.int32), 4)


def test_classifier_accuracy_of_a_known_rule():
    # Pixel values away from multiples of 64, so float round-off cannot move one across a boundary.
    values = np.array([10, 70, 130, 200, 250, 100, 30, 140, 20, 190, 90])
    labels = np.array([0, 1, 2, 3, 3, 0, 0, 1, 2, 2, 1], np.int32)  # rule: 0 1 2 3 3 1 0 2 0 2 1
    images = np.zeros((len(values), 4, 4, 1), np.uint8)
    images[:, 0, 0, 0] = values
    source = ImageSource(images, labels, ["a", "b", "c", "d"])
    expected = float((values // 64 == labels).mean())  # 8 of 11
    assert expected == 8 / 11
    assert classifier_accuracy(RuleClassifier(), source, batch=3) == expected  # 4 batches, the last one short


class LabelPainter:
    """A stand-in conditional generator: the image for class k is 4x4x1 filled with k / 10."""

    conditional = True
    labels_are_classes = True

    def __init__(self, class_names):
        self.class_names, self.num_classes = list(class_names), len(class_names)

    def sample_latent(self, rng, n, labels=None):
        return {"labels": labels}

    def generate(self, latent, training=False, generator=None):
        value = tf.cast(latent["labels"], tf.float32) / 10.0
        return tf.ones([len(value), 4, 4, 1]) * value[:, None, None, None]


class LabelReader(Extractor):
    """A stand-in classifier: reads the class painted into an image and answers rule(class), one-hot."""

    has_probs = True

    def __init__(self, class_names, rule):
        self.class_names, self.rule = list(class_names), rule

    def protocol(self):
        return {"extractor": "label_reader"}

    def _batch(self, images):
        painted = tf.cast(tf.round(images[:, 0, 0, 0] * 10.0), tf.int32)
        return tf.zeros([len(painted), 2]), tf.one_hot(self.rule(painted), len(self.class_names))


NAMES = ["zero", "one", "two"]


def test_conditional_accuracy_of_a_perfect_classifier():
    acc = conditional_accuracy(LabelPainter(NAMES), LabelReader(NAMES, lambda k: k), n=30, seed=0)
    assert acc == {"overall": 1.0, "per_class": [1.0, 1.0, 1.0], "generated": 30}


def test_conditional_accuracy_of_a_constant_classifier():
    acc = conditional_accuracy(LabelPainter(NAMES), LabelReader(NAMES, lambda k: tf.zeros_like(k)), n=31, seed=0)
    assert acc == {"overall": 1 / 3, "per_class": [1.0, 0.0, 0.0], "generated": 30}  # 10 per class


def test_conditional_accuracy_of_a_shifted_classifier():
    acc = conditional_accuracy(LabelPainter(NAMES), LabelReader(NAMES, lambda k: (k + 1) % 3), n=9, seed=0)
    assert acc == {"overall": 0.0, "per_class": [0.0, 0.0, 0.0], "generated": 9}


@pytest.mark.parametrize("classifier_names, needle", [
    (["one", "zero", "two"], "class 0 is 'zero' in the run but 'one'"),  # same names, another order
    (["a", "b", "c"], "class 0 is 'zero' in the run but 'a'"),
    ([], "does not name its classes"),
])
def test_conditional_accuracy_refuses_a_classifier_with_other_classes(classifier_names, needle):
    reader = LabelReader(classifier_names or ["x", "y", "z"], lambda k: k)
    reader.class_names = classifier_names
    with pytest.raises(UserError, match=needle):
        conditional_accuracy(LabelPainter(NAMES), reader, n=30, seed=0)


def test_conditional_accuracy_refuses_the_shipped_classifier_of_another_dataset():
    fashion = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
    with pytest.raises(UserError, match="class 0 is 't-shirt' in the run but '0'"):
        conditional_accuracy(LabelPainter(fashion), get_extractor("mnist_classifier"), n=10, seed=0)
    with pytest.raises(UserError, match="run's meta.json names no classes"):
        conditional_accuracy(LabelPainter([]), get_extractor("mnist_classifier"), n=10, seed=0)
