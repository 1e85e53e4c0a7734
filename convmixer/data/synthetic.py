"""The ``"synthetic"`` / ``"synthetic:N_TRAIN:N_TEST"`` source: a fast, learnable stand-in.

Generated from a fixed seed, so every run of it sees the same arrays (and the
same fingerprint); meant for tests and smoke runs, never for claims about CIFAR-10.
"""

from __future__ import annotations

import re

import numpy as np

from .core import IMAGE_SIZE, Dataset, DataError, _is_synthetic, _make_dataset

_SYNTHETIC_DEFAULT = (2000, 500)
_SYNTHETIC_SEED = 0
# At most CIFAR-10's own split sizes: the stand-in never needs more, and a size checked here, before
# anything is generated, cannot ask for gigabytes (each image is 3,072 bytes, and generating it
# takes several times that in float32).
_SYNTHETIC_MAX = (50_000, 10_000)


def check_synthetic(text: str) -> None:
    """DataError for a malformed ``synthetic:N_TRAIN:N_TEST`` source (nothing is generated); other sources
    pass: a path is checked when a run opens it, on the machine that trains."""
    if _is_synthetic(text):
        _parse_synthetic(text)


def _parse_synthetic(text: str) -> tuple[int, int]:
    if text == "synthetic":
        return _SYNTHETIC_DEFAULT
    match = re.fullmatch(r"synthetic:(\d{1,9}):(\d{1,9})", text)
    sizes = (int(match.group(1)), int(match.group(2))) if match else None
    if sizes is None or not all(1 <= n <= most for n, most in zip(sizes, _SYNTHETIC_MAX)):
        raise DataError(f"bad synthetic source {text!r}: expected 'synthetic' or 'synthetic:N_TRAIN:N_TEST' with "
                        f"1 <= N_TRAIN <= {_SYNTHETIC_MAX[0]:,} and 1 <= N_TEST <= {_SYNTHETIC_MAX[1]:,} "
                        "(CIFAR-10's sizes)")
    return sizes


def _synthetic_description(n_train: int, n_test: int) -> str:
    return f"synthetic 10-class 32x32 data ({n_train} train / {n_test} test, seed {_SYNTHETIC_SEED}; not CIFAR-10)"


def _synthetic_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Class = colour tint + stripe orientation; random phase, brightness and noise.

    The tint alone is separable by a linear model and the stripes need spatial
    filters, so a tiny ConvMixer learns it in a couple of epochs, while the
    noise keeps it from being a lookup table.
    """
    n = len(labels)
    hues = np.arange(10) / 10.0
    # Distinct, evenly spaced tints (a cheap HSV->RGB on the colour wheel), in [-1, 1].
    tints = np.stack([np.cos(2 * np.pi * (hues + k / 3.0)) for k in range(3)], axis=1)
    angles = np.pi * np.arange(10) / 10.0  # 10 stripe orientations, 18 degrees apart
    coords = np.arange(IMAGE_SIZE, dtype=np.float32)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")

    # float32 throughout: this must stay well under a second for test suites.
    theta = angles[labels][:, None, None].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    stripes = np.sin(np.float32(2 * np.pi / 8.0) * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)  # period 8 px
    brightness = rng.uniform(-20, 20, size=(n, 1, 1, 1)).astype(np.float32)
    img = rng.standard_normal(size=(n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    img *= 20.0
    img += 128.0 + 45.0 * tints[labels][:, None, None, :].astype(np.float32) + brightness
    img += 40.0 * stripes[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % 10).astype(np.int64)


def _load_synthetic(text: str) -> Dataset:
    n_train, n_test = _parse_synthetic(text)
    rng = np.random.default_rng(_SYNTHETIC_SEED)
    y_train = _balanced_labels(n_train, rng)
    y_test = _balanced_labels(n_test, rng)
    x_train = _synthetic_images(y_train, rng)
    x_test = _synthetic_images(y_test, rng)
    return _make_dataset(
        x_train, y_train, x_test, y_test, tuple(f"class{i}" for i in range(10)),
        source=text, description=_synthetic_description(n_train, n_test), lossy_jpeg=False,
    )
