import numpy as np

from convmixer.training.pipeline import flip_epoch, official_epoch
from convmixer.training.recipes import RECIPES


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


def test_official_epoch_covers_every_image_once_and_resumes_identically():
    x, y = _images(50), np.arange(50)
    recipe = RECIPES["official"]
    batches = list(official_epoch(x, y, recipe, seed=2, epoch=3, batch_size=16))
    assert [len(b) for _, b in batches] == [16, 16, 16, 2]
    assert sorted(np.concatenate([b for _, b in batches])) == list(range(50))
    assert all(a.dtype == np.float32 and a.shape[1:] == (32, 32, 3) for a, _ in batches)
    # A consumer that stops early (a killed epoch) leaves no thread behind, and a new pass is identical.
    gen = official_epoch(x, y, recipe, seed=2, epoch=3, batch_size=16)
    next(gen)
    gen.close()
    again = list(official_epoch(x, y, recipe, seed=2, epoch=3, batch_size=16))
    for (a, _), (b, _) in zip(batches, again):
        np.testing.assert_array_equal(a, b)
