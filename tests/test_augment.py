"""DiffAugment against independent numpy re-implementations of the official ops (Zhao et al. 2020).

The references below follow the authors' DiffAugment_tf.py line by line (brightness, saturation,
contrast; pad-by-one-and-gather translation; scatter-of-clipped-positions cutout). The random draws
are reproduced in the test from the same stateless seeds the module documents: a policy's seed is
split into one seed per draw, in the order the draws are listed.
"""

import numpy as np
import pytest
import tensorflow as tf

from gantrain.augment import color, cutout, diff_augment, translation


def _split(seed, n):
    return tf.random.experimental.stateless_split(tf.constant(seed, tf.int64), n)


def _draws(seed, n, shape):
    """``n`` U[0, 1) draws of ``shape``, one per split of ``seed``."""
    return [tf.random.stateless_uniform(shape, seed=s).numpy() for s in _split(seed, n)]


def _int_draw(seed, shape, lo, hi):
    return tf.random.stateless_uniform(shape, seed=seed, minval=lo, maxval=hi, dtype=tf.int32).numpy().ravel()


def ref_color(x, u_brightness, u_saturation, u_contrast):
    """Official rand_brightness, rand_saturation, rand_contrast for U[0, 1) draws of shape (B, 1, 1, 1)."""
    x = x.astype(np.float64) + (u_brightness - 0.5)
    mean = x.mean(axis=3, keepdims=True)
    x = (x - mean) * (u_saturation * 2) + mean
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (u_contrast + 0.5) + mean


def ref_color_jacobian(n_pixels, n_channels, saturation, contrast):
    """d out / d in of the colour ops for one image, flattened in (pixel, channel) order."""
    n = n_pixels * n_channels
    channel_mean = np.kron(np.eye(n_pixels), np.full((n_channels, n_channels), 1.0 / n_channels))
    image_mean = np.full((n, n), 1.0 / n)
    sat = saturation * np.eye(n) + (1 - saturation) * channel_mean
    con = contrast * np.eye(n) + (1 - contrast) * image_mean
    return con @ sat  # brightness adds a constant: identity Jacobian


def ref_translation(x, shift_h, shift_w):
    """Official rand_translation for integer shifts of shape (B,): pad by one, gather clipped indices."""
    b, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.empty_like(x)
    for i in range(b):
        rows = np.clip(np.arange(h) + shift_h[i] + 1, 0, h + 1)
        cols = np.clip(np.arange(w) + shift_w[i] + 1, 0, w + 1)
        out[i] = padded[i][np.ix_(rows, cols)]
    return out


def ref_cutout_mask(h, w, size_h, size_w, offset_h, offset_w):
    """Official rand_cutout mask: zero the clipped grid positions offset - size // 2 + [0, size)."""
    mask = np.ones((len(offset_h), h, w), np.float32)
    for i in range(len(offset_h)):
        rows = np.clip(offset_h[i] + np.arange(size_h) - size_h // 2, 0, h - 1)
        cols = np.clip(offset_w[i] + np.arange(size_w) - size_w // 2, 0, w - 1)
        mask[i][np.ix_(rows, cols)] = 0.0
    return mask


def _official_size(n, ratio):
    return int(n * ratio + 0.5)


def _translation_draws(seed, b, h, w, ratio=0.125):
    sh, sw = _official_size(h, ratio), _official_size(w, ratio)
    seeds = _split(seed, 2)
    return _int_draw(seeds[0], [b, 1, 1], -sh, sh + 1), _int_draw(seeds[1], [b, 1, 1], -sw, sw + 1)


def _cutout_draws(seed, b, h, w, ratio=0.5):
    ch, cw = _official_size(h, ratio), _official_size(w, ratio)
    seeds = _split(seed, 2)
    return ch, cw, _int_draw(seeds[0], [b, 1, 1], 0, h + (1 - ch % 2)), _int_draw(seeds[1], [b, 1, 1], 0, w + (1 - cw % 2))


def test_color_equals_official_ops_without_clipping():
    x = np.random.default_rng(0).uniform(-1, 1, (6, 5, 4, 3)).astype(np.float32)
    seed = [7, 11]
    u = _draws(seed, 3, [6, 1, 1, 1])
    expected = ref_color(x, *u)
    assert np.mean(np.abs(expected) > 1) > 0.05  # the batch really leaves [-1, 1]
    np.testing.assert_allclose(color(tf.constant(x), tf.constant(seed, tf.int64)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_color_jacobian_is_the_official_linear_map():
    x = tf.Variable(np.array([[[[0.9, -1.0, 0.8], [1.0, -0.7, 0.95]], [[-0.9, 1.0, -1.0], [0.6, 0.9, -0.85]]]], np.float32))
    seed = tf.constant([12, 1], tf.int64)
    u = _draws([12, 1], 3, [1, 1, 1, 1])
    assert (np.abs(ref_color(x.numpy(), *u)) > 1.1).sum() >= 4  # outputs outside [-1, 1]: a clip would zero their rows
    u_sat, u_con = u[1].item(), u[2].item()
    with tf.GradientTape() as tape:
        y = color(x, seed)
    jacobian = tape.jacobian(y, x).numpy().reshape(12, 12)
    np.testing.assert_allclose(jacobian, ref_color_jacobian(4, 3, 2 * u_sat, u_con + 0.5), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("h, w", [(28, 20), (16, 16), (7, 9)])
def test_translation_equals_official_op(h, w):
    b = 32
    x = np.random.default_rng(1).uniform(-1, 1, (b, h, w, 2)).astype(np.float32)
    seed = [2, 9]
    dy, dx = _translation_draws(seed, b, h, w)
    assert (dy != 0).any() and (dx != 0).any() and (dy != dx).any()
    assert np.abs(dy).max() == _official_size(h, 0.125)  # the extreme shifts are exercised
    np.testing.assert_array_equal(translation(tf.constant(x), tf.constant(seed, tf.int64)).numpy(), ref_translation(x, dy, dx))


@pytest.mark.parametrize("h, w", [(28, 28), (27, 27), (8, 8), (7, 7), (28, 7), (9, 14)])
def test_cutout_equals_official_mask(h, w):
    b = 64
    x = np.random.default_rng(2).uniform(0.5, 1, (b, h, w, 3)).astype(np.float32)  # no zeros of its own
    seed = [4, 4]
    ch, cw, cy, cx = _cutout_draws(seed, b, h, w)
    mask = ref_cutout_mask(h, w, ch, cw, cy, cx)
    np.testing.assert_array_equal(cutout(tf.constant(x), tf.constant(seed, tf.int64)).numpy(), x * mask[..., None])


@pytest.mark.parametrize("size, cut", [(28, 14), (27, 14), (8, 4), (7, 4)])
def test_cutout_square_has_the_official_size(size, cut):
    b = 64
    out = cutout(tf.ones([b, size, size, 1]), tf.constant([8, 3], tf.int64)).numpy()[..., 0]
    _, _, cy, cx = _cutout_draws([8, 3], b, size, size)
    inside = (cy - cut // 2 >= 0) & (cy - cut // 2 + cut <= size) & (cx - cut // 2 >= 0) & (cx - cut // 2 + cut <= size)
    assert inside.sum() >= 5  # enough squares away from the border to measure
    for i in np.flatnonzero(inside):
        rows, cols = np.nonzero(out[i] == 0)
        assert len(rows) == cut * cut, (i, len(rows))
        assert (rows.min(), rows.max(), cols.min(), cols.max()) == (cy[i] - cut // 2, cy[i] - cut // 2 + cut - 1, cx[i] - cut // 2, cx[i] - cut // 2 + cut - 1)


def test_diff_augment_is_the_official_pipeline_and_deterministic():
    x = np.random.default_rng(3).uniform(-1, 1, (8, 12, 10, 3)).astype(np.float32)
    seed = tf.constant([21, 5], tf.int64)
    policies = ["color", "translation", "cutout"]
    out = diff_augment(tf.constant(x), policies, seed).numpy()
    np.testing.assert_array_equal(out, diff_augment(tf.constant(x), policies, seed).numpy())
    np.testing.assert_array_equal(out, tf.function(lambda v, s: diff_augment(v, policies, s))(tf.constant(x), seed).numpy())
    assert not np.allclose(out, diff_augment(tf.constant(x), policies, tf.constant([21, 6], tf.int64)).numpy())
    # The same result from the references, each policy drawing from its own split of the seed.
    s_color, s_trans, s_cut = (list(s) for s in tf.random.experimental.stateless_split(seed, 3).numpy())
    expected = ref_color(x, *_draws(s_color, 3, [8, 1, 1, 1]))
    expected = ref_translation(expected, *_translation_draws(s_trans, 8, 12, 10))
    ch, cw, cy, cx = _cutout_draws(s_cut, 8, 12, 10)
    expected = expected * ref_cutout_mask(12, 10, ch, cw, cy, cx)[..., None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_flip_mirrors_about_half_the_images_and_leaves_the_rest():
    from gantrain.augment import flip

    x = tf.random.stateless_uniform([64, 5, 7, 2], seed=[3, 4], minval=-1, maxval=1)
    out = flip(x, tf.constant([1, 2])).numpy()
    mirrored = np.array([np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, x.numpy())])
    same = np.array([np.array_equal(o, xi) for o, xi in zip(out, x.numpy())])
    assert (mirrored ^ same).all()  # each image is itself or its mirror, never both (no symmetric image here)
    assert 20 <= mirrored.sum() <= 44  # Binomial(64, 1/2): outside this band with probability < 0.2%
    np.testing.assert_array_equal(flip(x, tf.constant([1, 2])).numpy(), out)  # stateless: same seed, same result


def test_classifier_training_pipeline_augments_each_image_by_a_mirror_and_a_shift():
    """Every image the classifier trains on is its source image, maybe mirrored, shifted by at most
    1/8 of the side with zero fill (checked against all 2 x 9 x 9 candidates built in numpy), with its
    own label; one epoch holds every image once, and a second epoch draws other augmentations."""
    from gantrain.extractors.classifier import augmented

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (10, 32, 32, 3)).astype(np.float32)
    labels = np.arange(10)
    ds, steps = augmented(x, labels, batch_size=4, epochs=2, seed=5, augment=("flip", "translation"))
    assert steps == 3
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 6

    def candidates(img):
        out = []
        for m in (img, img[:, ::-1]):
            padded = np.pad(m, ((4, 4), (4, 4), (0, 0)))
            out += [(dy, dx, mirror, padded[4 + dy:36 + dy, 4 + dx:36 + dx]) for dy in range(-4, 5) for dx in range(-4, 5) for mirror in [m is not img]]
        return out

    draws = []
    for epoch in (0, 1):
        seen = []
        for images, ys in batches[3 * epoch:3 * epoch + 3]:
            for image, y in zip(images, ys):
                match = [(dy, dx, mirror) for dy, dx, mirror, c in candidates(x[y]) if np.array_equal(c, image)]
                assert match, f"image {y} is not a mirrored/shifted copy of its source"
                seen.append(int(y))
                draws.append((epoch, int(y), match[0]))
        assert sorted(seen) == list(range(10))
    by_epoch = [{y: m for e, y, m in draws if e == epoch} for epoch in (0, 1)]
    assert by_epoch[0] != by_epoch[1]
    assert len({m for e, y, m in draws}) > 5  # the shifts and mirrors vary between images
