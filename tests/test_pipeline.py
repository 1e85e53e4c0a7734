import numpy as np
import pytest

from convmixer.pipeline import flip_epoch, official_augmenter, official_epoch, saturation_range
from convmixer.recipes import RECIPES


def _images(n=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype("uint8")


def test_flip_epoch_flips_the_width_axis_of_about_half_the_images():
    x, y = _images(400), np.arange(400)
    xe, ye = flip_epoch(x, y, seed=0, epoch=0)
    original = x[ye]  # labels are indices, so they tell where each image came from
    flipped = np.array([np.array_equal(a, b[:, ::-1]) for a, b in zip(xe, original)])
    same = np.array([np.array_equal(a, b) for a, b in zip(xe, original)])
    assert np.all(flipped | same)
    assert 150 < flipped.sum() < 250
    assert sorted(ye) == list(range(400)) and list(ye) != list(range(400))  # a permutation, shuffled


def test_flip_epoch_depends_only_on_seed_and_epoch_and_leaves_input_alone():
    x, y = _images(50), np.arange(50)
    before = x.copy()
    a, b = flip_epoch(x, y, 3, 7), flip_epoch(x, y, 3, 7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(flip_epoch(x, y, 3, 8)[1], a[1])
    assert np.array_equal(x, before)


def test_saturation_range_scales_saturation_like_torchvision():
    lo, hi = saturation_range(0.1)
    assert lo / (1 - lo) == pytest.approx(0.9) and hi / (1 - hi) == pytest.approx(1.1)


def test_colour_jitter_keeps_images_coloured():
    import keras

    x = _images(64).astype("float32")
    jitter = keras.layers.RandomSaturation(saturation_range(0.1), seed=1)
    out = np.asarray(jitter(x, training=True))

    def saturation(a):
        mx, mn = a.max(-1), a.min(-1)
        return np.mean((mx - mn) / np.maximum(mx, 1e-3))

    assert 0.85 < saturation(out) / saturation(x) < 1.15


def test_random_erasing_probability_is_the_recipes():
    aug = official_augmenter(RECIPES["official"], seed=0, epoch=0)
    erase = aug.layers[-1]
    assert type(erase).__name__ == "RandomErasing"
    x = np.full((400, 32, 32, 3), 7.0, dtype="float32")  # the fill value differs from 7, so erasing shows
    changed = np.any(np.asarray(erase(x, training=True)) != 7.0, axis=(1, 2, 3))
    assert 0.17 < changed.mean() < 0.33


def test_official_epoch_is_deterministic_per_seed_and_epoch():
    x, y = _images(40), np.arange(40) % 10
    recipe = RECIPES["official"]

    def first_batch(epoch):
        xb, yb = next(iter(official_epoch(x, y, recipe, seed=1, epoch=epoch, batch_size=20)))
        return np.asarray(xb), np.asarray(yb)

    a, b = first_batch(0), first_batch(0)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0])
    assert a[0].shape == (20, 32, 32, 3)
    assert not np.allclose(first_batch(1)[0], a[0])
