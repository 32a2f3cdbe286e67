"""Evaluation metrics against closed forms and an independent reference; extractors; the eval CLI."""

import gzip
import itertools
import json
import math
import shutil
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from typer.testing import CliRunner

import gantrain
from gantrain.cli import app
from gantrain.data import load_dataset
from gantrain.errors import UserError
from gantrain.evaluate import code_accuracy, evaluate_folders, real_features
from gantrain.extractors import Extractor, get_extractor
from gantrain.extractors.classifier import SHIPPED, sha256
from gantrain.metrics import feature_statistics, frechet_distance, inception_score, kernel_inception_distance, precision_recall
from tests.conftest import tiny_config

runner = CliRunner()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTRAIN_CACHE", str(tmp_path / "cache"))


def eig_frechet(mu1, s1, mu2, s2):
    """Independent reference: Tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))), all symmetric PSD."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_frechet_identical_is_zero():
    f = np.random.default_rng(0).normal(size=(500, 8))
    mu, sigma = feature_statistics(f)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_frechet_diagonal_gaussians_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_matches_independent_computation():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2000, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(size=(2000, 16)) @ rng.normal(size=(16, 16)) + 0.5
    stats = (*feature_statistics(a), *feature_statistics(b))
    ours, ref = frechet_distance(*stats), eig_frechet(*stats)
    assert abs(ours - ref) / ref < 1e-6


def test_frechet_guards():
    # Singular covariances (a dead feature): retried with eps * I, finite and close to the truth.
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 4)), rng.normal(size=(300, 4)) + 1
    a[:, 0] = b[:, 0] = 0.0
    value = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert np.isfinite(value) and value == pytest.approx(eig_frechet(*feature_statistics(a), *feature_statistics(b)), rel=1e-3)
    # A product with a negative eigenvalue has an imaginary square root: refused, not dropped.
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_kid_near_zero_for_one_distribution_and_positive_when_shifted():
    rng = np.random.default_rng(3)
    a, b, c = rng.normal(size=(800, 10)), rng.normal(size=(800, 10)), rng.normal(size=(800, 10)) + 1.0
    same, same_std = kernel_inception_distance(a, b, subsets=20, subset_size=400)
    shifted, _ = kernel_inception_distance(a, c, subsets=20, subset_size=400)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 20 * max(abs(same), 1e-3)


def test_kid_hand_computed_tiny_case():
    # d = 1, k(a, b) = (a b + 1)^3. x = {0, 1}, y = {1, 2}:
    # k(0,1) = 1 -> xx = 1; k(1,2) = 27 -> yy = 27; xy = (k(0,1) + k(0,2) + k(1,1) + k(1,2)) / 4 = (1 + 1 + 8 + 27) / 4 = 9.25
    # MMD^2 = 1 + 27 - 2 * 9.25 = 9.5. One subset holding every sample gives exactly that, std 0.
    assert kernel_inception_distance([[0.0], [1.0]], [[1.0], [2.0]], subsets=1, subset_size=2) == (pytest.approx(9.5, rel=1e-12), 0.0)


def test_polynomial_mmd2_unequal_sizes_by_hand():
    # x = {0, 1}, y = {1, 2, 3}: yy = 2 (k(1,2) + k(1,3) + k(2,3)) / (3 * 2) = 2 (27 + 64 + 343) / 6 = 868 / 6;
    # xy = (1 + 1 + 1 + 8 + 27 + 64) / 6 = 17; MMD^2 = 1 + 868 / 6 - 34. (The old code divided yy by m (m - 1) = 2.)
    from gantrain.metrics import polynomial_mmd2

    assert polynomial_mmd2(np.array([[0.0], [1.0]]), np.array([[1.0], [2.0], [3.0]])) == pytest.approx(1 + 868 / 6 - 34, rel=1e-12)


def _mmd2_by_loops(x, y):
    """Unbiased MMD^2 (Binkowski et al. 2018, eq. 4) with k(a, b) = (a.b / d + 1)^3, pair by pair."""
    def k(a, b):
        return (float(np.dot(a, b)) / len(a) + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_subsets_match_an_independent_computation():
    rng = np.random.default_rng(11)
    real, fake = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 0.5
    # Subsets of min(subset_size, 7, 5) = 4 drawn without replacement, reals first, from default_rng(seed).
    draw = np.random.default_rng(5)
    values = []
    for _ in range(3):
        r, f = draw.choice(7, 4, replace=False), draw.choice(5, 4, replace=False)
        values.append(_mmd2_by_loops(real[r], fake[f]))
    mean, std = kernel_inception_distance(real, fake, subsets=3, subset_size=4, seed=5)
    assert mean == pytest.approx(np.mean(values), rel=1e-10) and std == pytest.approx(np.std(values), rel=1e-10)


def test_inception_score_extremes():
    confident_uniform = np.eye(10)[np.arange(1000) % 10]
    mean, std = inception_score(confident_uniform, splits=1)
    assert mean == pytest.approx(10.0, rel=1e-9) and std == 0.0
    constant = np.tile(np.eye(10)[3], (1000, 1))
    assert inception_score(constant)[0] == pytest.approx(1.0, rel=1e-9)


def _is_by_hand(rows):
    """exp(mean over x of KL(p(y|x) || p(y))) for one split, with plain Python sums."""
    m, c = len(rows), len(rows[0])
    marginal = [sum(r[j] for r in rows) / m for j in range(c)]
    kl = [sum(r[j] * math.log(r[j] / marginal[j]) for j in range(c) if r[j] > 0) for r in rows]
    return math.exp(sum(kl) / m)


def test_inception_score_two_splits_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8], [0.05, 0.95], [0.4, 0.6]])
    # The samples are shuffled with default_rng(seed) before splitting (a class-sorted sequence would
    # otherwise give each split few classes): split 1 is the first half of the permutation, split 2 the rest.
    order = np.random.default_rng(0).permutation(6)
    per_split = [_is_by_hand(probs[order[:3]].tolist()), _is_by_hand(probs[order[3:]].tolist())]
    mean, std = inception_score(probs, splits=2)
    assert mean == pytest.approx(np.mean(per_split), rel=1e-9)
    assert std == pytest.approx(abs(per_split[0] - per_split[1]) / 2, rel=1e-9)
    in_order = inception_score(probs, splits=2, seed=None)  # seed None: split in the given order
    assert in_order[0] == pytest.approx((_is_by_hand(probs[:3].tolist()) + _is_by_hand(probs[3:].tolist())) / 2, rel=1e-9)


def test_inception_score_of_class_sorted_samples_is_not_underestimated():
    # 100 confident samples of each of 10 classes, sorted by class: split in order, each of the 10
    # splits would see one class (IS 1.0); over a shuffle each sees about 10 (IS a little under 10).
    sorted_probs = np.eye(10)[np.repeat(np.arange(10), 100)]
    mean, _ = inception_score(sorted_probs, splits=10)
    assert 9.0 < mean < 10.0, mean


def test_precision_recall_hand_computed_radii():
    # k = 2, radius = distance to the 2nd nearest OTHER point (a point's own distance 0 does not count).
    # real 0, 1, 3, 7, 8 -> radii 3, 2, 3, 4, 5 -> balls cover [-3, 13]:
    #   fakes 0.5, 1.5, 2, 12, 12.5, 12.8 inside, 30, 30.5, 31.5 outside -> precision 6/9.
    # fake radii 1.5, 1, 1.5, 0.8, 0.5, 0.8, 1.5, 1, 1.5 -> balls cover [-1, 3.5], [11.2, 13.6], [28.5, 33]:
    #   reals 0, 1, 3 inside, 7, 8 outside -> recall 3/5.
    # (Counting the point itself as a neighbour would give 3/9 and 2/5; k = 3 would give 6/9 and 5/5.)
    real = np.array([0.0, 1.0, 3.0, 7.0, 8.0])[:, None]
    fake = np.array([0.5, 1.5, 2.0, 12.0, 12.5, 12.8, 30.0, 30.5, 31.5])[:, None]
    assert precision_recall(real, fake, k=2) == (pytest.approx(6 / 9, abs=1e-12), pytest.approx(3 / 5, abs=1e-12))
    # The same points embedded in 2-D, rotated: distances, so the answer, are unchanged.
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lift = lambda p: np.hstack([p, np.zeros_like(p)]) @ rot.T  # noqa: E731
    assert precision_recall(lift(real), lift(fake), k=2) == (pytest.approx(6 / 9, abs=1e-12), pytest.approx(3 / 5, abs=1e-12))


def test_precision_recall_identical_and_disjoint():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(300, 5))
    assert precision_recall(a, a.copy()) == (1.0, 1.0)
    p, r = precision_recall(a, a + 100.0)
    assert p == 0.0 and r == 0.0
    with pytest.raises(UserError):
        precision_recall(a[:3], a[:3])


def test_domain_fid_floor_and_noise(mnist_dir):
    extractor = get_extractor("mnist_classifier")
    train = load_dataset({"loader": "mnist", "root": str(mnist_dir), "split": "train"})
    test = load_dataset({"loader": "mnist", "root": str(mnist_dir), "split": "test"})
    t_feats, _, _ = real_features(test, {"k": "test"}, 5000, extractor)
    tr_feats, _, _ = real_features(train, {"k": "train"}, 5000, extractor)
    noise = np.random.default_rng(0).uniform(-1, 1, (5000, 28, 28, 1)).astype(np.float32)
    n_feats, _ = extractor(noise)
    floor = frechet_distance(*feature_statistics(tr_feats), *feature_statistics(t_feats))
    noise_fid = frechet_distance(*feature_statistics(n_feats), *feature_statistics(t_feats))
    assert floor < 2.0, floor
    assert noise_fid > 100 * floor and noise_fid > 100, noise_fid


@pytest.mark.parametrize("name, threshold, loader, root", [
    ("mnist_classifier", 0.99, "mnist", "mnist"),
    ("fashion_mnist_classifier", 0.90, "fashion_mnist", None),
])
def test_shipped_classifiers_reach_their_accuracy(name, threshold, loader, root, mnist_dir):
    extractor = get_extractor(name)
    data = {"loader": loader, "split": "test", "root": str(mnist_dir) if root else None}
    if root is None and not __import__("pathlib").Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.fail("Fashion-MNIST expected from Debian: apt-get install -y dataset-fashion-mnist (.ci/run does)")
    test = load_dataset(data)
    _, probs = extractor(test.images.astype(np.float32) / 127.5 - 1.0)
    accuracy = float((probs.argmax(axis=1) == test.labels).mean())
    assert accuracy > threshold
    assert accuracy == pytest.approx(extractor.meta["test_accuracy"], abs=1e-4)  # the record matches the weights


def test_real_feature_cache_hit_and_miss(mnist_dir, tmp_path):
    extractor = get_extractor("mnist_classifier")
    test = load_dataset({"loader": "mnist", "root": str(mnist_dir), "split": "test"})
    a, _, hit1 = real_features(test, {"k": 1}, 300, extractor)
    b, _, hit2 = real_features(test, {"k": 1}, 300, extractor)
    c, _, hit3 = real_features(test, {"k": 1}, 200, extractor)
    assert (hit1, hit2, hit3) == (False, True, False)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert c.shape == (200, 128)
    assert not list((tmp_path / "cache").rglob("*.tmp*"))  # written atomically, no leftovers


def _mnist_test_copy(src, dst, flip_first_pixel=False):
    """The MNIST test split's two IDX files copied to ``dst``, optionally with image 0's first pixel changed."""
    dst.mkdir(exist_ok=True)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        raw = gzip.decompress((src / f"{stem}.gz").read_bytes())
        if flip_first_pixel and "images" in stem:
            raw = raw[:16] + bytes([255 - raw[16]]) + raw[17:]  # 16-byte header, then image 0's pixels
        (dst / f"{stem}.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    return dst


def test_real_feature_cache_follows_the_data(mnist_dir, tmp_path, monkeypatch):
    # The data comes through $GANTRAIN_MNIST_ROOT, so the data config (the old key) is the same each time.
    extractor = get_extractor("mnist_classifier")
    data = {"loader": "mnist", "root": None, "split": "test"}
    same = _mnist_test_copy(mnist_dir, tmp_path / "same")
    changed = _mnist_test_copy(mnist_dir, tmp_path / "changed", flip_first_pixel=True)

    def features(folder):
        monkeypatch.setenv("GANTRAIN_MNIST_ROOT", str(folder))
        return real_features(load_dataset(data), data, 100, extractor)

    first, _, hit1 = features(same)
    again, _, hit2 = features(same)
    _, _, hit3 = features(changed)  # another folder holding one different image
    _mnist_test_copy(mnist_dir, same, flip_first_pixel=True)  # the file rewritten in place
    _, _, hit4 = features(same)
    _, _, hit5 = features(same)
    assert (hit1, hit2, hit3, hit4, hit5) == (False, True, False, False, True)
    np.testing.assert_array_equal(first, again)


def test_real_feature_cache_follows_the_weights_file(mnist_dir, tmp_path):
    test = load_dataset({"loader": "mnist", "root": str(mnist_dir), "split": "test"})
    stem = tmp_path / "clf"
    shutil.copy(SHIPPED / "mnist_classifier.json", tmp_path / "clf.json")
    shutil.copy(SHIPPED / "mnist_classifier.weights.h5", tmp_path / "clf.weights.h5")
    key = {"k": "weights"}
    _, _, hit1 = real_features(test, key, 100, get_extractor("classifier", str(stem)))
    _, _, hit2 = real_features(test, key, 100, get_extractor("classifier", str(stem)))
    # Other weights under the same name, the JSON record (and its recorded SHA-256) left as it was.
    extractor = get_extractor("classifier", str(stem))
    kernel = extractor.model.get_layer("features").kernel
    kernel.assign(kernel * 1.5)
    extractor.model.save_weights(tmp_path / "clf.weights.h5")
    retrained = get_extractor("classifier", str(stem))
    feats, _, hit3 = real_features(test, key, 100, retrained)
    assert (hit1, hit2, hit3) == (False, True, False)
    assert retrained.protocol()["weights_sha256"] == sha256(tmp_path / "clf.weights.h5")[:16]  # the file's, not the record's
    fresh, _, _ = real_features(test, key, 100, retrained, use_cache=False)
    np.testing.assert_array_equal(feats, fresh)


def test_inception_v3_plumbing_with_random_weights():
    extractor = get_extractor("inception_v3", "random")
    grey = np.random.default_rng(0).uniform(-1, 1, (5, 28, 28, 1)).astype(np.float32)
    feats, probs = extractor(grey, batch=2)  # 3 batches: 2 + 2 + 1
    assert feats.shape == (5, 2048) and probs.shape == (5, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)
    rgb = np.tile(grey, (1, 1, 1, 3))
    np.testing.assert_allclose(extractor(rgb)[0], feats, rtol=1e-4, atol=1e-5)  # grey is tiled to RGB
    assert "random" in extractor.protocol()["weights"]


def test_inception_v3_offline_without_weights_says_how(monkeypatch):
    from gantrain.data.download import DownloadError
    from gantrain.extractors import inception

    def offline(*args, **kwargs):
        raise DownloadError("no network")

    monkeypatch.setattr(inception, "fetch", offline)
    with pytest.raises(UserError, match="--weights PATH"):
        get_extractor("inception_v3")
    with pytest.raises(UserError, match="file not found"):
        get_extractor("inception_v3", "/nonexistent/inception.h5")


def test_inception_tf2015_graph_plumbing(tmp_path):
    # A stand-in graph with the original's tensor names: ExpandDims (1, H, W, 3) in [0, 255] -> pool_3, softmax.
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3], name="ExpandDims")
        mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        tf.tile(mean[..., :1], [1, 1, 1, 2048], name="pool_3")
        tf.nn.softmax(tf.tile(tf.reshape(mean[..., :1], [1, 1]), [1, 1008]), name="softmax")
    pb = tmp_path / "classify_image_graph_def.pb"
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    with tarfile.open(tmp_path / "inception-2015-12-05.tgz", "w:gz") as tar:
        tar.add(pb, arcname="classify_image_graph_def.pb")
    for path in (pb, tmp_path / "inception-2015-12-05.tgz"):
        extractor = get_extractor("inception_tf2015", str(path))
        images = np.stack([np.full((8, 8, 1), v, np.float32) for v in (-1.0, 0.0, 1.0)])
        feats, probs = extractor(images)
        assert feats.shape == (3, 2048) and probs.shape == (3, 1008)
        np.testing.assert_allclose(feats[:, 0], [0.0, 127.5, 255.0], rtol=1e-6)  # fed in [0, 255]
    (tmp_path / "bad.pb").write_bytes(b"not a graph")
    with pytest.raises(UserError):
        get_extractor("inception_tf2015", str(tmp_path / "bad.pb"))


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, mnist_dir):
    tmp = tmp_path_factory.mktemp("evalruns")
    cfg = tiny_config(mnist_dir)
    cfg["eval"] = {"metrics": ["fid", "kid"], "every": 3, "n": 200}
    cfg["log"]["checkpoint_every"] = 100  # evaluation keeps its own cadence
    dcgan = gantrain.fit(cfg, run_dir=tmp / "dcgan", progress=False)
    acgan = gantrain.fit({**tiny_config(mnist_dir), "model": {"family": "acgan", "g_base_channels": 4, "g_widths": [8, 8, 4], "d_widths": [4, 8]}},
                         overrides=["train.steps=2"], run_dir=tmp / "acgan", progress=False)
    infogan = gantrain.fit({**tiny_config(mnist_dir), "model": {"family": "infogan", "g_base_channels": 4, "g_widths": [8, 8, 4], "d_widths": [4, 8]},
                            "eval": {"metrics": ["accuracy"], "every": 2, "n": 100}}, overrides=["train.steps=2"], run_dir=tmp / "infogan", progress=False)
    return {"dcgan": dcgan, "acgan": acgan, "infogan": infogan}


def test_eval_during_training_logs_and_keeps_best(tiny_runs):
    run = tiny_runs["dcgan"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/fid" in r]
    assert [r["step"] for r in evals] == [3, 6] and all(r["eval/kid"] == r["eval/kid"] for r in evals)
    best = json.loads((run / "checkpoints" / "best" / "best.json").read_text())
    assert best["eval/fid"] == pytest.approx(min(r["eval/fid"] for r in evals), rel=1e-5)  # metrics.jsonl rounds to 6 digits
    assert (run / "checkpoints" / "best" / f"ckpt-{best['step']}.index").is_file()


def test_eval_cli_table_and_json(tiny_runs, tmp_path):
    run = tiny_runs["dcgan"]
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["eval", str(run), "--fid", "--kid", "--is", "--pr", "--n", "300", "--json", str(out), "--checkpoint", "best"])
    assert result.exit_code == 0, result.output
    for needle in ("FID", "KID", "IS", "PR", "generated: 300", "real_split: test", "real_count: 300", "extractor: mnist_classifier", "weights_sha256", "preprocessing", "checkpoint step"):
        assert needle in result.output, needle
    report = json.loads(out.read_text())
    assert report == json.loads((run / "eval.json").read_text())
    assert {r["metric"] for r in report["results"]} == {"fid", "kid", "is", "pr"}
    fid = next(r for r in report["results"] if r["metric"] == "fid")
    assert fid["value"] > 0 and fid["generated"] == 300 and fid["extractor"] == "mnist_classifier"
    default = runner.invoke(app, ["eval", str(run), "--n", "300"])
    assert default.exit_code == 0 and "FID" in default.output and "KID" not in default.output  # FID by default
    assert "cache hit" in default.output


def test_eval_conditional_accuracy(tiny_runs):
    result = runner.invoke(app, ["eval", str(tiny_runs["acgan"]), "--accuracy", "--n", "100"])
    assert result.exit_code == 0, result.output
    report = json.loads((tiny_runs["acgan"] / "eval.json").read_text())
    acc = report["results"][0]
    assert acc["metric"] == "accuracy" and acc["generated"] == 100
    # Recomputed here: 10 samples of each class (seed 0) through the shipped classifier, argmax == class.
    labels = np.repeat(np.arange(10), 10)
    _, probs = get_extractor("mnist_classifier")(gantrain.sample(tiny_runs["acgan"], n=100, seed=0, labels=labels.tolist()))
    hits = probs.argmax(axis=1) == labels
    assert acc["value"] == hits.mean()
    assert acc["per_class"] == [hits[labels == k].mean() for k in range(10)]
    bad = runner.invoke(app, ["eval", str(tiny_runs["dcgan"]), "--accuracy", "--n", "100"])
    assert bad.exit_code == 2 and "takes no labels" in bad.output


def _best_mapping_by_brute_force(codes, predicted, num_codes, num_classes):
    """Most agreeing samples over every one-to-one map of code values to classes (independent of the Hungarian solver)."""
    best = -1
    for classes in itertools.permutations(range(num_classes), min(num_codes, num_classes)):
        for chosen in itertools.combinations(range(num_codes), len(classes)):  # which codes get a class
            mapping = np.full(num_codes, -1)
            mapping[list(chosen)] = classes
            best = max(best, int(((mapping[codes] == predicted) & (mapping[codes] >= 0)).sum()))
    return best


@pytest.mark.parametrize("num_codes, num_classes", [(5, 5), (5, 3), (3, 5)])
def test_code_accuracy_is_the_best_one_to_one_mapping(num_codes, num_classes):
    rng = np.random.default_rng(num_codes * 10 + num_classes)
    codes = rng.integers(0, num_codes, 400)
    # Mostly a shuffled code -> class map, with noise, so the greedy choice and the optimum can differ.
    true_map = rng.permutation(max(num_codes, num_classes))[:num_codes] % num_classes
    predicted = np.where(rng.random(400) < 0.6, true_map[codes], rng.integers(0, num_classes, 400))
    got = code_accuracy(codes, predicted, num_codes, num_classes)
    assert got["overall"] * 400 == pytest.approx(_best_mapping_by_brute_force(codes, predicted, num_codes, num_classes))
    mapping = np.asarray(got["mapping"])
    assert len(set(mapping[mapping >= 0])) == (mapping >= 0).sum() == min(num_codes, num_classes)  # one-to-one
    for k in range(num_codes):
        expected = (predicted[codes == k] == mapping[k]).mean() if mapping[k] >= 0 else 0.0
        assert got["per_class"][k] == pytest.approx(expected)


def test_infogan_accuracy_is_code_accuracy(tiny_runs):
    run = tiny_runs["infogan"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/accuracy" in r] == [2]  # logged during training too
    result = runner.invoke(app, ["eval", str(run), "--accuracy", "--n", "100"])
    assert result.exit_code == 0, result.output
    assert "code accuracy" in result.output and "per code -> class" in result.output
    acc = json.loads((run / "eval.json").read_text())["results"][0]
    codes = np.repeat(np.arange(10), 10)  # 10 samples of each code value, seed 0, recomputed here
    _, probs = get_extractor("mnist_classifier")(gantrain.sample(run, n=100, seed=0, labels=codes.tolist()))
    predicted = probs.argmax(axis=1)
    assert acc["value"] * 100 == pytest.approx((np.asarray(acc["mapping"])[codes] == predicted).sum())  # under the reported mapping
    assert sorted(acc["mapping"]) == list(range(10))
    assert acc["value"] == pytest.approx(code_accuracy(codes, predicted, 10, 10)["overall"])  # and it is the best mapping's


def test_eval_two_folders(tmp_path, mnist_dir):
    test = load_dataset({"loader": "mnist", "root": str(mnist_dir), "split": "test"})
    for name, offset in (("a", 0), ("b", 200)):
        (tmp_path / name).mkdir()
        for i in range(150):
            Image.fromarray(test.images[offset + i, :, :, 0]).save(tmp_path / name / f"{i}.png")
    args = ["eval", "--real-a", str(tmp_path / "a"), "--real-b", str(tmp_path / "b"), "--fid", "--extractor", "mnist_classifier", "--size", "28", "--channels", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "real_a_count: 150" in result.output and "FID" in result.output
    result = runner.invoke(app, ["eval", "--real-a", str(tmp_path / "a"), "--fid"])
    assert result.exit_code == 2 and "--real-b" in result.output


def test_eval_unknown_split_is_one_line_naming_the_valid_ones(tiny_runs):
    result = runner.invoke(app, ["eval", str(tiny_runs["dcgan"]), "--split", "tset"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --split 'tset'") and "train, test" in lines[0], result.output


def test_eval_defaults_to_the_runs_own_eval_extractor(tiny_runs, tmp_path):
    """A run trained with eval.extractor/eval.weights (CIFAR-10's own classifier) is scored by
    `gantrain eval RUN` with that extractor, as its training curve was, not the loader's default;
    --extractor still overrides it."""
    import yaml

    stem = tmp_path / "own"  # the shipped MNIST classifier under another name: a distinct extractor
    shutil.copy(SHIPPED / "mnist_classifier.json", tmp_path / "own.json")
    shutil.copy(SHIPPED / "mnist_classifier.weights.h5", tmp_path / "own.weights.h5")
    run = tmp_path / "run"
    shutil.copytree(tiny_runs["dcgan"], run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["eval"].update(extractor="classifier", weights=str(stem))
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))

    default = runner.invoke(app, ["eval", str(run), "--fid", "--n", "200", "--json", str(tmp_path / "d.json")])
    explicit = runner.invoke(app, ["eval", str(run), "--fid", "--n", "200", "--extractor", "classifier", "--weights", str(stem),
                                   "--json", str(tmp_path / "e.json")])
    shipped = runner.invoke(app, ["eval", str(run), "--fid", "--n", "200", "--extractor", "mnist_classifier", "--json", str(tmp_path / "s.json")])
    assert default.exit_code == explicit.exit_code == shipped.exit_code == 0, default.output + explicit.output + shipped.output
    d, e, s = (json.loads((tmp_path / f"{k}.json").read_text())["results"][0] for k in "des")
    assert d["extractor"] == e["extractor"] == "classifier" and s["extractor"] == "mnist_classifier"
    assert d["weights"] == e["weights"] == str(tmp_path / "own.weights.h5")
    assert d["value"] == e["value"]


class StandIn(Extractor):
    """A cheap extractor for folder plumbing: the pixels as features, one-hot 'bright?' as probabilities.

    Records the images it was given, so a test can see which images each folder contributed.
    """

    name = "stand_in"
    has_probs = True

    def __init__(self):
        self.seen = []

    def protocol(self):
        return {"extractor": self.name}

    def _batch(self, images):
        self.seen.append(images.numpy())
        flat = tf.reshape(images, [tf.shape(images)[0], -1])
        bright = tf.cast(tf.reduce_mean(flat, axis=1) > 0, tf.int32)
        return flat, tf.one_hot(bright, 2)


@pytest.fixture
def stand_in(monkeypatch):
    extractor = StandIn()
    monkeypatch.setattr("gantrain.evaluate.get_extractor", lambda name, weights=None: extractor)
    return extractor


def _noisy_png(path, level, rng):
    Image.fromarray(np.clip(level + rng.integers(-20, 21, (4, 4)), 0, 255).astype(np.uint8)).save(path)


@pytest.fixture
def dark_light_folders(tmp_path):
    """A: 40 mixed images, flat. B: class subfolders dark/ and light/, 60 images each (sorted: all dark first)."""
    rng = np.random.default_rng(0)
    for sub in ("a", "b/dark", "b/light"):
        (tmp_path / sub).mkdir(parents=True)
    for i in range(40):
        _noisy_png(tmp_path / "a" / f"{i:03d}.png", 40 if i % 2 else 215, rng)
    for i in range(60):
        _noisy_png(tmp_path / "b" / "dark" / f"{i:03d}.png", 40, rng)
        _noisy_png(tmp_path / "b" / "light" / f"{i:03d}.png", 215, rng)
    return tmp_path / "a", tmp_path / "b"


def test_folder_eval_takes_a_random_subset_of_each_folder(stand_in, dark_light_folders):
    a, b = dark_light_folders
    report = evaluate_folders(a, b, ["fid"], 4, 1, "stand_in", n=40)
    assert report["results"][0]["real_a_count"] == 40 and report["results"][0]["real_b_count"] == 40
    b_images = stand_in.seen[1]
    light = float((b_images.reshape(40, -1).mean(axis=1) > 0).mean())
    assert 0.3 < light < 0.7, light  # not B's first 40 files in sorted order (all dark)


def test_folder_eval_inception_score_is_not_split_by_class(stand_in, dark_light_folders):
    a, b = dark_light_folders
    # All 120 images of B, class-sorted: in order, each of the 10 splits sees one class (IS 1.0).
    report = evaluate_folders(a, b, ["is"], 4, 1, "stand_in", n=120)
    assert report["results"][0]["real_b_count"] == 120
    assert report["results"][0]["value"]["mean"] > 1.7, report["results"][0]


def test_folder_eval_uses_the_extractors_input_shape(tmp_path, mnist_dir):
    test = load_dataset({"loader": "mnist", "root": str(mnist_dir), "split": "test"})
    for name, offset in (("a", 0), ("b", 100)):
        (tmp_path / name).mkdir()
        for i in range(20):
            Image.fromarray(test.images[offset + i, :, :, 0]).save(tmp_path / name / f"{i}.png")
    report = evaluate_folders(tmp_path / "a", tmp_path / "b", ["fid"], None, None, "mnist_classifier", n=20)
    assert report["results"][0]["real_a_count"] == 20 and "28x28x1" in report["results"][0]["preprocessing"]
    with pytest.raises(UserError, match="takes"):
        evaluate_folders(tmp_path / "a", tmp_path / "b", ["fid"], None, 3, "mnist_classifier", n=20)  # --channels overrides
    # The CLI's defaults are the extractor's too: no --size/--channels needed with a domain classifier.
    result = runner.invoke(app, ["eval", "--real-a", str(tmp_path / "a"), "--real-b", str(tmp_path / "b"), "--extractor", "mnist_classifier", "--n", "20"])
    assert result.exit_code == 0, result.output
    assert "28x28x1" in result.output


def test_folder_eval_n_means_n_through_the_cli(stand_in, monkeypatch):
    from gantrain.data.source import ImageSource

    sizes = {"big": 10001, "small": 30}

    def fake_folder(root, size, channels, labels, on_error):
        count = sizes[root.name]
        images = np.random.default_rng(count).integers(0, 256, (count, *size, channels), dtype=np.uint8)
        return ImageSource(images, np.full(count, -1, np.int32), [], f"{root} ({count} images)")

    monkeypatch.setattr("gantrain.evaluate.load_folder", fake_folder)  # where eval looks it up
    base = ["eval", "--real-a", "/x/big", "--fid", "--size", "8", "--channels", "1", "--no-cache"]
    default = runner.invoke(app, base + ["--real-b", "/x/big"])  # --n left at its default, 10,000
    assert default.exit_code == 0, default.output
    assert "real_a_count: 10000" in default.output and "real_b_count: 10000" in default.output
    fewer = runner.invoke(app, base + ["--real-b", "/x/small", "--n", "50"])
    assert fewer.exit_code == 0, fewer.output
    assert "real_a_count: 50" in fewer.output and "real_b_count: 30" in fewer.output
