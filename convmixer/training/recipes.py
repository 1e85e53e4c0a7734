"""The two named training recipes and what each one changes from its original.

``seed``      the recipe of the reference report: the Keras ConvMixer example
              (keras.io/examples/vision/convmixer), trained with TensorFlow Addons' AdamW.
``official``  the defaults of locuslab/convmixer-cifar10's ``train.py`` (its README says the
              script is not meant to replicate the paper's results exactly: torchvision's
              RandAugment and Random Erasing differ from timm's, and it has no Mixup/CutMix).
``official-logged``  that script's one logged configuration (its README: ConvMixer-256/8,
              p2 k5, 25 epochs, 92.60%): lr_max 0.05, weight decay 0.005, RandAugment
              n=2 m=12, crop scale 1.0, no jitter, no erasing.

A recipe is plain data; ``train.py`` turns it into an optimizer, a schedule and an
input pipeline. Config overrides may replace any field listed in ``OVERRIDABLE``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

SCHEDULES = ("constant", "triangular")
AUGMENTATIONS = ("flip", "official")
# Weight initialisers: Keras' defaults, or PyTorch's nn.Conv2d/nn.Linear defaults (the official script's;
# ConvMixer only, whose layers are all of those two kinds: models.convmixer.pytorch_default_init).
INITIALISATIONS = ("keras", "pytorch")
# Adam's epsilon: Keras' (1e-7, added to sqrt(v) before the bias correction) or PyTorch's (1e-8, added after it:
# the official script's torch.optim.AdamW; optim.make_optimizer).
ADAM_EPSILONS = ("keras", "pytorch")
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
    initialisation: str = "keras"  # see INITIALISATIONS
    adam_epsilon: str = "keras"  # see ADAM_EPSILONS

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
RECIPES["official-logged"] = dataclasses.replace(
    RECIPES["official"], name="official-logged", lr=0.05, weight_decay=0.005,
    crop_scale=1.0, randaugment_n=2, randaugment_m=12, jitter=0.0, erasing_p=0.0,
)

# Fields a config may override, with the type each must have.
OVERRIDABLE = {
    "lr": float,
    "weight_decay": float,
    # true: Keras 3 / PyTorch AdamW semantics for the weight_decay given (the keras-io
    # example's Keras 3 run); false: TF Addons' (the reference report's).
    "weight_decay_scaled_by_lr": bool,
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
    "initialisation": str,
    "adam_epsilon": str,
}

CHOICES = {"schedule": SCHEDULES, "augmentation": AUGMENTATIONS, "selection": SELECTIONS,
           "initialisation": INITIALISATIONS, "adam_epsilon": ADAM_EPSILONS}


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
            if not isinstance(value, wanted) or (wanted is not bool and isinstance(value, bool)):
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
    _check_keras_weight_decay(recipe)
    for name, low, high, allowed in NUMERIC_RANGES:
        value = getattr(recipe, name)
        if value is None:
            continue
        if not (math.isfinite(value) and low(value) and high(value)):
            raise ValueError(f"recipe_overrides.{name} must be {allowed}, got {value!r}")
    return recipe


# Keras keeps the learning rate and the weight decay in float32: a value outside its range becomes
# 0 or infinity there, and the loss NaN some epochs later.
FLOAT32_MAX = 3.4028235e38
MIN_LR = 1.2e-38  # float32's smallest normal number, rounded up


def _check_keras_weight_decay(recipe: Recipe):
    """A weight decay not scaled by the lr reaches Keras as weight_decay / lr: refuse an lr that makes it
    overflow, naming that division (the lr alone would look harmless, and the loss would blame it)."""
    lr, decay = recipe.lr, recipe.weight_decay
    if recipe.weight_decay_scaled_by_lr or not decay or not (math.isfinite(lr) and lr > 0) or not math.isfinite(decay):
        return
    if not decay / lr <= FLOAT32_MAX:
        raise ValueError(
            f"recipe_overrides.lr={lr!r}: the {recipe.name} recipe's weight decay is not scaled by the lr (TF Addons' "
            f"AdamW), so Keras' AdamW gets weight_decay / lr = {decay!r} / {lr!r} overflows float32; give lr >= "
            f"{decay / FLOAT32_MAX:.3g} or weight_decay_scaled_by_lr: true")


# Every numeric recipe field: (name, lower test, upper test, what is allowed).
NUMERIC_RANGES = [
    ("lr", lambda v: v >= MIN_LR, lambda v: True, f"a finite number >= {MIN_LR} (float32 makes a smaller one 0)"),
    ("weight_decay", lambda v: v >= 0, lambda v: True, "a finite number >= 0"),
    ("clipnorm", lambda v: v > 0, lambda v: True, "a finite number > 0 (or null for no clipping)"),
    ("crop_scale", lambda v: v > 0, lambda v: v <= 1, "a number in (0, 1]"),
    ("randaugment_n", lambda v: v >= 0, lambda v: v <= 16, "an integer in [0, 16]"),
    ("randaugment_m", lambda v: v >= 0, lambda v: v <= 30, "an integer in [0, 30] (torchvision's 31 bins)"),
    ("jitter", lambda v: v >= 0, lambda v: v < 1, "a number in [0, 1)"),
    ("erasing_p", lambda v: v >= 0, lambda v: v <= 1, "a number in [0, 1]"),
]


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
        "recipe": "Keras-example (seed)",
        "aspect": "optimizer",
        "original": "tfa.optimizers.AdamW(lr=1e-3, weight_decay=1e-4): decay not multiplied by lr",
        "here": "keras.optimizers.AdamW(lr=1e-3, weight_decay=1e-4/1e-3=0.1): same update, TF Addons is end-of-life",
    },
    {
        "recipe": "Keras-example (seed)",
        "aspect": "augmentation",
        "original": "RandomCrop(32, 32) + RandomFlip('horizontal')",
        "here": "horizontal flip only: RandomCrop(32, 32) on 32x32 images returns them unchanged (a no-op)",
    },
    {
        "recipe": "Keras-example (seed)",
        "aspect": "randomness",
        "original": "Keras layer RNG for flips, tf.data shuffle with a buffer of 10 batches",
        "here": "flips and a full permutation drawn per epoch from numpy (seed, epoch): a resumed run equals an uninterrupted one",
    },
    {
        "recipe": "Keras-example (seed)",
        "aspect": "validation split",
        "original": "the first 5,000 training images in canonical order",
        "here": "a seeded, class-stratified 5,000 (the offline JPEG copy is grouped by class, so its first 5,000 are one class)",
    },
    {
        "recipe": "Keras-example (seed)",
        "aspect": "model selection",
        "original": "ModelCheckpoint(save_best_only, val_accuracy), then test accuracy of that checkpoint",
        "here": "same: test accuracy of the epoch with the best validation accuracy (45,000/5,000 seeded split)",
    },
    {
        "recipe": "Keras-example (seed)",
        "aspect": "BatchNorm and initialisation",
        "original": "Keras defaults: BatchNorm momentum 0.99, epsilon 1e-3; Keras initialisers",
        "here": (
            "PyTorch's BatchNorm settings (momentum 0.1 = Keras 0.9, epsilon 1e-5) in both recipes, so ported "
            "weights match; Keras initialisers (PyTorch's differ)"
        ),
    },
    {
        "recipe": "Keras-example (seed), keras-io row",
        "aspect": "optimizer",
        "original": "keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4) in Keras 3: decay multiplied by lr",
        "here": "the same call: the Keras-example recipe with recipe_overrides {weight_decay_scaled_by_lr: true}",
    },
    {
        "recipe": "Keras-example (seed), keras-io row",
        "aspect": "everything else",
        "original": "as the Keras-example recipe's original (10 epochs, first 5,000 images for validation, Keras BatchNorm)",
        "here": "as the Keras-example recipe here: stratified 5,000, PyTorch's BatchNorm settings, flip only, numpy draws",
    },
]


def official_differences(recipe: Recipe) -> list[dict]:
    """The official script's known differences from this port, with the optimizer's and augmentation's settings
    taken from ``recipe`` (the script's defaults for ``official``, its logged run's for ``official-logged``)."""
    r = recipe
    augmentation = ", ".join(
        [f"RandomResizedCrop(32, scale=({r.crop_scale:g}, 1), ratio=(1, 1))", "RandomHorizontalFlip",
         f"RandAugment(num_ops={r.randaugment_n}, magnitude={r.randaugment_m})"]
        + ([f"ColorJitter({r.jitter:g}, {r.jitter:g}, {r.jitter:g})"] if r.jitter else [])
        + ([f"RandomErasing(p={r.erasing_p:g}) after Normalize"] if r.erasing_p else []))
    return [
        {
            "recipe": r.name,
            "aspect": "optimizer",
            "original": f"torch.optim.AdamW(lr={r.lr:g}, weight_decay={r.weight_decay:g}), decay multiplied by lr",
            "here": (f"keras.optimizers.AdamW(weight_decay={r.weight_decay:g}): the same convention; Keras' epsilon "
                     "1e-7 is added before the bias correction, PyTorch's 1e-8 after it (10/sqrt(1 - 0.999^t) times "
                     "larger at step t); override adam_epsilon: pytorch"),
        },
        {
            "recipe": r.name,
            "aspect": "precision",
            "original": "mixed precision (torch.cuda.amp) on GPU",
            "here": "float32",
        },
        {
            "recipe": r.name,
            "aspect": "initialisation",
            "original": (
                "PyTorch defaults: uniform weights with bound 1/sqrt(fan_in) (kaiming_uniform, a=sqrt(5)), "
                "uniform biases with the same bound"
            ),
            "here": (
                "Keras' Glorot, zero biases; depthwise fan_in k*k*dim, so at 256/8 p2 k5 the bounds are, against "
                "PyTorch's: depthwise 0.031/0.2, stem 0.076/0.289, 1x1 0.108/0.0625, classifier 0.150/0.0625; "
                "override initialisation: pytorch"
            ),
        },
        {
            "recipe": r.name,
            "aspect": "augmentation arithmetic",
            "original": f"torchvision on PIL images: {augmentation}",
            "here": (
                "the same steps, per image, on whole batches in numpy (augment.py); each step's pixels equal "
                "Pillow's (tested)" + ("; erasing fills the per-channel mean pixel before the model's "
                                       "normalisation, which is 0 after it" if r.erasing_p else "")
            ),
        },
        {
            "recipe": r.name,
            "aspect": "augmentation randomness",
            "original": "torch's global generator in DataLoader workers",
            "here": "numpy generators seeded by (seed, epoch, batch): same distributions, other draws; resumable",
        },
    ]


DIFFERENCES += official_differences(RECIPES["official"])
