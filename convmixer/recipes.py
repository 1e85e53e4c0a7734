"""The two named training recipes and what each one changes from its original.

``seed``      the recipe of the reference report: the Keras ConvMixer example
              (keras.io/examples/vision/convmixer), trained with TensorFlow Addons' AdamW.
``official``  the authors' CIFAR-10 script (locuslab/convmixer-cifar10, ``train.py``).

A recipe is plain data; ``train.py`` turns it into an optimizer, a schedule and an
input pipeline. Config overrides may replace any field listed in ``OVERRIDABLE``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

SCHEDULES = ("constant", "triangular")
AUGMENTATIONS = ("flip", "official")
SELECTIONS = ("best_val", "last")


@dataclass(frozen=True)
class Recipe:
    name: str
    epochs: int
    batch_size: int
    lr: float
    # Weight decay *as the original optimizer applied it*: decoupled and not
    # multiplied by the learning rate (TF Addons) or multiplied by it (PyTorch).
    weight_decay: float
    weight_decay_scaled_by_lr: bool
    schedule: str  # "constant" or "triangular" (0 -> lr at 2/5 -> lr/20 at 4/5 -> 0)
    augmentation: str  # "flip" or "official"
    normalization: str  # model input normalisation, see model.INPUT_NORMALIZATIONS
    val_fraction: float  # held out from the training set; 0 trains on all of it
    selection: str  # which epoch's weights give the test accuracy
    clipnorm: float | None = None
    # official-augmentation strengths (ignored by "flip")
    crop_scale: float = 0.75
    randaugment_n: int = 1
    randaugment_m: int = 8
    jitter: float = 0.1
    erasing_p: float = 0.25

    @property
    def keras_weight_decay(self) -> float:
        """The ``weight_decay`` for ``keras.optimizers.AdamW`` that applies the same decay.

        Keras 3's AdamW updates ``w -= lr * wd * w`` (like PyTorch). TF Addons'
        ``AdamW`` updated ``w -= wd * w``, independent of the learning rate. With a
        constant learning rate the two agree when ``wd_keras = wd_tfa / lr``.
        """
        if self.weight_decay_scaled_by_lr:
            return self.weight_decay
        return self.weight_decay / self.lr


RECIPES = {
    "seed": Recipe(
        name="seed",
        epochs=40,
        batch_size=128,
        lr=1e-3,
        weight_decay=1e-4,  # tfa.optimizers.AdamW(weight_decay=1e-4): not scaled by lr
        weight_decay_scaled_by_lr=False,
        schedule="constant",
        augmentation="flip",
        normalization="rescale",
        val_fraction=0.1,
        selection="best_val",
    ),
    "official": Recipe(
        name="official",
        epochs=25,
        batch_size=512,
        lr=0.01,
        weight_decay=0.01,  # torch.optim.AdamW(weight_decay=0.01): scaled by lr
        weight_decay_scaled_by_lr=True,
        schedule="triangular",
        augmentation="official",
        normalization="mean_std",
        val_fraction=0.0,  # the script trains on all 50,000 images and reports the last epoch
        selection="last",
    ),
}

# Fields a config may override, with the type each must have.
OVERRIDABLE = {
    "lr": float,
    "weight_decay": float,
    "schedule": str,
    "augmentation": str,
    "val_fraction": float,
    "selection": str,
    "clipnorm": float,
    "crop_scale": float,
    "randaugment_n": int,
    "randaugment_m": int,
    "jitter": float,
    "erasing_p": float,
}

CHOICES = {"schedule": SCHEDULES, "augmentation": AUGMENTATIONS, "selection": SELECTIONS}


def normalize_overrides(overrides: dict | None) -> dict:
    """Validated overrides with ints given for float fields stored as floats (so they hash alike)."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise ValueError(f"recipe_overrides must be a mapping, got {overrides!r}")
    clean = {}
    for key, value in overrides.items():
        if key not in OVERRIDABLE:
            raise ValueError(f"recipe_overrides: unknown key {key!r}; allowed keys are {sorted(OVERRIDABLE)}")
        wanted = OVERRIDABLE[key]
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not (value is None and key == "clipnorm"):
            if not isinstance(value, wanted) or isinstance(value, bool):
                raise ValueError(f"recipe_overrides.{key} must be a {wanted.__name__}, got {value!r}")
            if key in CHOICES and value not in CHOICES[key]:
                raise ValueError(f"recipe_overrides.{key} must be one of {list(CHOICES[key])}, got {value!r}")
        clean[key] = value
    return clean


def get_recipe(name: str, overrides: dict | None = None) -> Recipe:
    """The named recipe with ``overrides`` applied; clear errors for unknown names and values."""
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {name!r}")
    recipe = dataclasses.replace(RECIPES[name], **normalize_overrides(overrides))
    if not 0.0 <= recipe.val_fraction < 1.0:
        raise ValueError(f"recipe_overrides.val_fraction must be in [0, 1), got {recipe.val_fraction!r}")
    if recipe.selection == "best_val" and recipe.val_fraction == 0:
        raise ValueError("recipe_overrides: selection 'best_val' needs val_fraction > 0")
    if recipe.lr <= 0 or recipe.weight_decay < 0:
        raise ValueError("recipe_overrides: lr must be > 0 and weight_decay >= 0")
    return recipe


def learning_rate_at(recipe: Recipe, t: float, epochs: int) -> float:
    """Learning rate at fractional epoch ``t`` (``epoch + (step + 1) / steps``).

    The official script's ``np.interp([t], [0, epochs*2//5, epochs*4//5, epochs],
    [0, lr_max, lr_max/20, 0])``, evaluated per step, integer divisions included.
    """
    if recipe.schedule == "constant":
        return recipe.lr
    knots = [0, epochs * 2 // 5, epochs * 4 // 5, epochs]
    return float(np.interp(t, knots, [0.0, recipe.lr, recipe.lr / 20.0, 0.0]))


# One row per difference; README and the report render this table.
DIFFERENCES = [
    {
        "recipe": "seed",
        "aspect": "optimizer",
        "original": "tfa.optimizers.AdamW(lr=1e-3, weight_decay=1e-4): decay not multiplied by lr",
        "here": "keras.optimizers.AdamW(lr=1e-3, weight_decay=1e-4/1e-3=0.1): same update, TF Addons is end-of-life",
    },
    {
        "recipe": "seed",
        "aspect": "augmentation",
        "original": "RandomCrop(32, 32) + RandomFlip('horizontal')",
        "here": "horizontal flip only: RandomCrop(32, 32) on 32x32 images returns them unchanged (a no-op)",
    },
    {
        "recipe": "seed",
        "aspect": "randomness",
        "original": "Keras layer RNG for flips, tf.data shuffle with a buffer of 10 batches",
        "here": "flips and a full permutation drawn per epoch from numpy (seed, epoch): a resumed run equals an uninterrupted one",
    },
    {
        "recipe": "seed",
        "aspect": "validation split",
        "original": "the first 5,000 training images in canonical order",
        "here": "a seeded, class-stratified 5,000 (the offline JPEG copy is grouped by class, so its first 5,000 are one class)",
    },
    {
        "recipe": "seed",
        "aspect": "model selection",
        "original": "ModelCheckpoint(save_best_only, val_accuracy), then test accuracy of that checkpoint",
        "here": "same: test accuracy of the epoch with the best validation accuracy (45,000/5,000 seeded split)",
    },
    {
        "recipe": "seed",
        "aspect": "BatchNorm and initialisation",
        "original": "Keras defaults: BatchNorm momentum 0.99, epsilon 1e-3; Keras initialisers",
        "here": (
            "PyTorch's BatchNorm settings (momentum 0.1 = Keras 0.9, epsilon 1e-5) in both recipes, so ported "
            "weights match; Keras initialisers (PyTorch's differ) -- matters most for 5-epoch runs"
        ),
    },
    {
        "recipe": "official",
        "aspect": "optimizer",
        "original": "torch.optim.AdamW(lr=0.01, weight_decay=0.01), decay multiplied by lr",
        "here": "keras.optimizers.AdamW(weight_decay=0.01): the same convention; Keras' epsilon 1e-7 vs PyTorch's 1e-8",
    },
    {
        "recipe": "official",
        "aspect": "precision",
        "original": "mixed precision (torch.cuda.amp) on GPU",
        "here": "float32",
    },
    {
        "recipe": "official",
        "aspect": "RandomResizedCrop",
        "original": "torchvision RandomResizedCrop(32, scale=(0.75, 1), ratio=(1, 1))",
        "here": (
            "keras RandomZoom (up to 1-sqrt(0.75) of the side) + RandomTranslation: a zoomed-in crop at a "
            "random position; not identical to torchvision's sampling"
        ),
    },
    {
        "recipe": "official",
        "aspect": "RandAugment",
        "original": "torchvision RandAugment(num_ops=1, magnitude=8): one of 14 ops at 8/30 of its range",
        "here": "keras.layers.RandAugment(num_ops=1, factor=8/30): Keras' op list and ranges differ from torchvision's",
    },
    {
        "recipe": "official",
        "aspect": "ColorJitter",
        "original": "torchvision ColorJitter(0.1, 0.1, 0.1)",
        "here": (
            "keras.layers.RandomColorJitter: contrast 0.1; saturation factor range converted so it scales by "
            "0.9-1.1; brightness is additive (+-0.1 x 255), not multiplicative"
        ),
    },
    {
        "recipe": "official",
        "aspect": "RandomErasing",
        "original": "torchvision RandomErasing(p=0.25), after normalisation, erased with 0 (the mean pixel)",
        "here": "keras.layers.RandomErasing(factor=(0.25, 0.25)), before normalisation, erased with the mean intensity",
    },
]
