"""The official augmentation against torchvision's documented behaviour.

torchvision applies the official script's transforms to PIL images, where each
step is Pillow's own code (ImageEnhance, ImageOps, Image.transform/rotate/resize).
So the reference here is Pillow itself, and the magnitudes are torchvision's
``RandAugment._augmentation_space`` with 31 bins.
"""

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from convmixer.training import augment as A
from convmixer.training.recipes import RECIPES, get_recipe


def _images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 32, 32, 3)).astype("uint8")
    x[: n // 2] = x[: n // 2] // 4 + 60  # low-contrast images exercise autocontrast/equalize
    return x


def _pil(x, fn):
    return np.stack([np.asarray(fn(Image.fromarray(a))) for a in x])


@pytest.mark.parametrize("factor", [0.5, 0.76, 1.24, 1.9])
@pytest.mark.parametrize("ours, enhancer", [
    (A.brightness, ImageEnhance.Brightness), (A.saturation, ImageEnhance.Color),
    (A.contrast, ImageEnhance.Contrast), (A.sharpness, ImageEnhance.Sharpness),
])
def test_colour_ops_equal_pillow(ours, enhancer, factor):
    x = _images()
    np.testing.assert_array_equal(ours(x, np.full(len(x), factor)), _pil(x, lambda i: enhancer(i).enhance(factor)))


def test_histogram_and_bit_ops_equal_pillow():
    x = _images()
    np.testing.assert_array_equal(A.posterize(x, np.full(len(x), 6)), _pil(x, lambda i: ImageOps.posterize(i, 6)))
    np.testing.assert_array_equal(A.solarize(x, np.full(len(x), 187.0)), _pil(x, lambda i: ImageOps.solarize(i, 187)))
    np.testing.assert_array_equal(A.autocontrast(x), _pil(x, ImageOps.autocontrast))
    np.testing.assert_array_equal(A.equalize(x), _pil(x, ImageOps.equalize))
    flat = np.full((2, 32, 32, 3), 77, dtype="uint8")  # Pillow leaves flat channels alone
    np.testing.assert_array_equal(A.equalize(flat), flat)
    np.testing.assert_array_equal(A.autocontrast(flat), flat)


@pytest.mark.parametrize("angle", [8.0, -8.0, 30.0])
def test_rotate_equals_pillow_rotate_about_the_centre(angle):
    x = _images()
    np.testing.assert_array_equal(
        A.apply_op(x, "Rotate", angle), _pil(x, lambda i: i.rotate(angle, Image.NEAREST, fillcolor=(0, 0, 0))))


def test_shear_and_translate_follow_torchvision_geometry():
    x = _images(4)
    # ShearX by v about the top-left corner: output (X, Y) reads input (X + v Y, Y) at pixel centres.
    ref = _pil(x, lambda i: i.transform((32, 32), Image.AFFINE, (1, 0.08, 0, 0, 1, 0), Image.NEAREST))
    np.testing.assert_array_equal(A.apply_op(x, "ShearX", 0.08), ref)
    # TranslateX by int(v) pixels (torchvision truncates the magnitude), filled with black.
    shifted = A.apply_op(x, "TranslateX", 3.87)
    np.testing.assert_array_equal(shifted[:, :, 3:], x[:, :, :-3])
    assert not shifted[:, :, :3].any()
    np.testing.assert_array_equal(A.apply_op(x, "TranslateY", -3.87)[:, :-3], x[:, 3:])


def test_magnitudes_are_torchvisions_31_bin_space():
    assert A.randaugment_magnitude("Rotate", 8) == (pytest.approx(8.0), True)
    assert A.randaugment_magnitude("ShearX", 8)[0] == pytest.approx(0.3 * 8 / 30)
    assert A.randaugment_magnitude("TranslateY", 8)[0] == pytest.approx(150 / 331 * 32 * 8 / 30)
    assert A.randaugment_magnitude("Brightness", 8)[0] == pytest.approx(0.24)
    assert A.randaugment_magnitude("Posterize", 8) == (7.0, False)
    assert A.randaugment_magnitude("Posterize", 12) == (6.0, False)
    assert A.randaugment_magnitude("Solarize", 8)[0] == pytest.approx(255 * 22 / 30)
    with pytest.raises(ValueError, match="randaugment_m"):
        A.randaugment_magnitude("Rotate", 31)


def test_rand_augment_picks_one_op_per_image_at_the_documented_magnitude():
    """Every output is one of torchvision's 14 ops at exactly m=8 (either sign), and they vary per image."""
    image = _images(1, seed=3)[:1]
    out = A.rand_augment(np.repeat(image, 300, axis=0), np.random.default_rng(0), num_ops=1, magnitude=8)
    candidates = {}
    for op in A.RANDAUGMENT_OPS:
        value, signed = A.randaugment_magnitude(op, 8)
        for v in ({value, -value} if signed else {value}):
            candidates[(op, v)] = A.apply_op(image, op, v)[0]
    # The rotation candidates are Pillow's own rotation by +-8 degrees, nothing larger.
    np.testing.assert_array_equal(candidates[("Rotate", 8.0)], _pil(image, lambda i: i.rotate(8, Image.NEAREST))[0])
    seen = set()
    for o in out:
        match = [key for key, c in candidates.items() if np.array_equal(o, c)]
        assert match, "an output that no torchvision op at m=8 produces"
        seen.add(match[0][0])
    assert len(seen) >= 12  # per image, not one op for the whole batch


def test_random_resized_crop_equals_pillow_crop_then_bilinear_resize():
    x = _images(40)
    out = A.random_resized_crop(x, np.random.default_rng(1), 0.75)
    rng = np.random.default_rng(1)  # the same draws, in the order the function makes them
    side = np.round(np.sqrt(1024 * rng.uniform(0.75, 1.0, 40))).astype(int)
    top = np.floor(rng.random(40) * (33 - side)).astype(int)
    left = np.floor(rng.random(40) * (33 - side)).astype(int)
    assert side.min() >= 28 and side.max() <= 32 and len(set(side)) >= 4  # area fraction in [0.75, 1]
    ref = np.stack([np.asarray(Image.fromarray(a).crop((l, t, l + s, t + s)).resize((32, 32), Image.BILINEAR))
                    for a, s, t, l in zip(x, side, top, left)])
    np.testing.assert_array_equal(out, ref)


def test_colour_jitter_is_multiplicative_within_its_range_per_image():
    grey = np.full((400, 32, 32, 3), 100, dtype="uint8")  # contrast and saturation leave flat grey alone
    out = A.color_jitter(grey, np.random.default_rng(0), 0.1)
    values = out[:, 0, 0, 0].astype(int)
    assert values.min() >= 90 and values.max() <= 110  # brightness x U(0.9, 1.1), truncated
    assert values.min() <= 91 and values.max() >= 108 and len(set(values)) > 10


def test_random_erasing_probability_area_and_fill():
    x = np.full((2000, 32, 32, 3), 7, dtype="uint8")
    out = A.random_erasing(x, np.random.default_rng(0), p=0.25)
    erased = np.all(out == A.ERASE_FILL, axis=-1)
    fraction = erased.mean(axis=(1, 2))
    assert 0.22 < (fraction > 0).mean() < 0.28
    hit = fraction[fraction > 0]
    assert hit.min() >= 0.015 and hit.max() <= 0.36  # scale=(0.02, 0.33) of the area, up to rounding
    # After the model's own normalisation layer the erased pixels are 0, as torchvision erases after Normalize.
    from convmixer.models.convmixer import input_normalization

    normalised = np.asarray(input_normalization("mean_std")(out[:64].astype("float32")))
    assert np.abs(normalised[erased[:64]]).max() < 1e-4 and np.abs(normalised[~erased[:64]]).min() > 0.5


def test_official_augment_is_per_image_and_keeps_the_pixel_range():
    x = np.repeat(_images(1, seed=5)[:1], 64, axis=0)
    out = A.official_augment(x, np.random.default_rng(0), RECIPES["official"])
    assert out.dtype == np.float32 and out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 255
    assert len({o.tobytes() for o in out}) == 64  # identical inputs, 64 different outputs


def test_logged_recipe_is_the_scripts_logged_configuration():
    r = get_recipe("official-logged")
    assert (r.lr, r.weight_decay, r.randaugment_n, r.randaugment_m) == (0.05, 0.005, 2, 12)
    assert (r.crop_scale, r.jitter, r.erasing_p, r.epochs, r.batch_size) == (1.0, 0.0, 0.0, 25, 512)
    out = A.official_augment(_images(8), np.random.default_rng(0), r)  # scale 1.0, no jitter or erasing
    assert out.shape == (8, 32, 32, 3)


@pytest.mark.parametrize("overrides, name", [
    ({"lr": float("nan")}, "lr"), ({"lr": float("inf")}, "lr"), ({"clipnorm": -1.0}, "clipnorm"),
    ({"randaugment_m": 31}, "randaugment_m"), ({"erasing_p": 1.5}, "erasing_p"), ({"crop_scale": 0.0}, "crop_scale"),
    ({"weight_decay": -0.1}, "weight_decay"), ({"jitter": -0.1}, "jitter"),
])
def test_recipe_numbers_must_be_finite_and_in_range(overrides, name):
    with pytest.raises(ValueError, match=f"recipe_overrides.{name} must be"):
        get_recipe("official", overrides)
