"""Per-epoch training inputs for each recipe.

Every random choice of epoch ``e`` (order, flips, crops, augmentation seeds) is
drawn from ``(seed, e)`` alone, never from a generator that lives across epochs.
That is what lets an interrupted run resume at epoch ``e`` and produce exactly
the history an uninterrupted run would have produced.
"""

from __future__ import annotations

import numpy as np

from .model import CIFAR10_MEAN


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, 0xC0FFEE])


def flip_epoch(x, y, seed: int, epoch: int):
    """The ``seed`` recipe: a fresh shuffle and a random horizontal flip of half the images.

    The Keras example also applied ``RandomCrop(32, 32)``, which on 32x32 images
    returns them unchanged, so it is left out (see recipes.DIFFERENCES).
    """
    rng = epoch_rng(seed, epoch)
    order = rng.permutation(len(x))
    flip = rng.random(len(x)) < 0.5
    xe = x[order]  # fancy indexing copies: the caller's array is never modified
    xe[flip] = xe[flip][:, :, ::-1, :]  # NHWC: axis 2 is the width
    return xe, y[order]


# torchvision's RandAugment has 31 magnitude bins: magnitude m is m/30 of each op's maximum.
RANDAUGMENT_BINS = 30
# torchvision's RandomErasing fills with 0 *after* normalisation, i.e. the mean pixel;
# Keras erases before normalisation, so it fills with the CIFAR-10 mean intensity.
ERASE_FILL = 255.0 * sum(CIFAR10_MEAN) / 3


def saturation_range(jitter: float) -> tuple[float, float]:
    """Keras' RandomSaturation factor f scales saturation by f/(1-f); torchvision scales it by 1 +- jitter.

    Solving f/(1-f) = s gives f = s/(1+s), so 1 +- jitter maps to this range
    (a plain 0.1 would scale saturation by -0.09..0.11: nearly grey images).
    """
    lo, hi = 1.0 - jitter, 1.0 + jitter
    return lo / (1.0 + lo), hi / (1.0 + hi)


def official_augmenter(recipe, seed: int, epoch: int):
    """Keras preprocessing layers approximating the official torchvision pipeline.

    RandomResizedCrop(scale=(0.75, 1), ratio=1) becomes a random zoom-in of up to
    1 - sqrt(0.75) ~ 13.4% of the side plus a matching random translation; the
    remaining steps map onto RandomFlip, RandAugment, RandomColorJitter and
    RandomErasing with strengths converted to torchvision's (differences listed
    in recipes.DIFFERENCES).
    """
    import keras
    from keras import layers

    s = int(epoch_rng(seed, epoch).integers(2**31 - 1))
    zoom = 1.0 - float(np.sqrt(recipe.crop_scale))
    steps = [
        layers.RandomZoom((-zoom, 0.0), fill_mode="reflect", seed=s),
        layers.RandomTranslation(zoom / 2, zoom / 2, fill_mode="reflect", seed=s + 1),
        layers.RandomFlip("horizontal", seed=s + 2),
        layers.RandAugment(value_range=(0, 255), num_ops=recipe.randaugment_n,
                           factor=recipe.randaugment_m / RANDAUGMENT_BINS, seed=s + 3),
        layers.RandomColorJitter(value_range=(0, 255), brightness_factor=recipe.jitter,
                                 contrast_factor=recipe.jitter, saturation_factor=saturation_range(recipe.jitter),
                                 seed=s + 4),
    ]
    if recipe.erasing_p > 0:
        # factor=(p, p): erase with probability exactly p (a scalar p means "uniform in (0, p)").
        steps.append(layers.RandomErasing(factor=(recipe.erasing_p, recipe.erasing_p), fill_value=ERASE_FILL,
                                          value_range=(0, 255), seed=s + 5))
    return keras.Sequential(steps, name="official_augmentation")


def official_epoch(x, y, recipe, seed: int, epoch: int, batch_size: int):
    """The ``official`` recipe: shuffled batches augmented by Keras layers in tf.data."""
    import tensorflow as tf

    rng = epoch_rng(seed, epoch)
    order = rng.permutation(len(x))
    augment = official_augmenter(recipe, seed, epoch)
    ds = tf.data.Dataset.from_tensor_slices((x[order].astype("float32"), y[order]))
    ds = ds.batch(batch_size).map(lambda a, b: (augment(a, training=True), b))
    return ds.prefetch(2)
