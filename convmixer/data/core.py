"""The dataset type, its errors, source names and the checks every source passes.

Every failure anywhere in the package is a :class:`DataError` with a one-line
message naming the file: a reproducibility study must fail loudly and clearly,
not with a traceback from deep inside tarfile or PIL.

:func:`_make_dataset` is the one way a :class:`Dataset` is built, so every
source (download, synthetic, local, cached) gets the same validation and the
same fingerprint.  The fingerprint is computed from the decoded arrays, so it
does not depend on the container, the format or whether the cache was used.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from ..cifar10 import IMAGE_SIZE

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

# Quoted in every "not found / not recognised" error, so the user sees what would work.
ACCEPTED_SOURCES = (
    "'cifar10' (download), 'synthetic[:N_TRAIN:N_TEST]', or a path to: "
    "cifar-10-python.tar.gz or an extracted cifar-10-batches-py/ folder; "
    "cifar-10-binary.tar.gz or an extracted cifar-10-batches-bin/ folder; "
    "an image folder train/<class>/*.png|jpg + test/<class>/*, or a .zip/.tar of one"
)


class DataError(ValueError):
    """Any problem finding, reading or validating a data source."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays elementwise is meaningless here
class Dataset:
    x_train: np.ndarray  # uint8, (N, 32, 32, 3)
    y_train: np.ndarray  # int64, (N,)
    x_test: np.ndarray  # uint8, (M, 32, 32, 3)
    y_test: np.ndarray  # int64, (M,)
    class_names: tuple[str, ...]
    fingerprint: str  # "sha256:<hex>" of the four arrays (see _fingerprint)
    source: str  # resolved source, e.g. "cifar10", "synthetic", "/abs/path.zip"
    description: str  # short human-readable provenance
    lossy_jpeg: bool  # True when any image was decoded from a JPEG file


def resolve_source(source: str | os.PathLike | None) -> str:
    """Map None/"default" to $CONVMIXER_DATA or "cifar10"; make paths absolute.

    Pure string manipulation: the disk is not touched.
    """
    if source is None or (isinstance(source, str) and source == "default"):
        source = os.environ.get("CONVMIXER_DATA") or "cifar10"
    if isinstance(source, str) and _is_named_source(source):
        return source
    # Anything else (including every PathLike) is a path.
    return os.path.abspath(os.path.expanduser(os.fspath(source)))


def _is_synthetic(text: str) -> bool:
    return text == "synthetic" or text.startswith("synthetic:")


def _is_named_source(text: str) -> bool:
    return text == "cifar10" or _is_synthetic(text)


def _require_exists(path: str) -> None:
    if not os.path.exists(path):
        raise DataError(f"data source {path} does not exist; accepted: {ACCEPTED_SOURCES}")


def _why(err: BaseException) -> str:
    """An exception as one line, "Type: message", for DataError messages."""
    return f"{type(err).__name__}: {err}".rstrip(": ")


def _fingerprint(x_train, y_train, x_test, y_test) -> str:
    """sha256 over name, dtype, shape and bytes of the arrays, in a fixed order."""
    h = hashlib.sha256()
    for name, arr in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        # Explicit little-endian dtypes so the digest is platform independent.
        arr = np.ascontiguousarray(arr, dtype="|u1" if name.startswith("x") else "<i8")
        h.update(f"{name}:{arr.dtype.str}:{arr.shape};".encode())
        h.update(memoryview(arr).cast("B"))
    return "sha256:" + h.hexdigest()


def _make_dataset(x_train, y_train, x_test, y_test, class_names, *, source, description, lossy_jpeg) -> Dataset:
    """Validate shapes/dtypes/labels, normalise dtypes, and fingerprint."""
    class_names = tuple(str(c) for c in class_names)
    if not class_names:
        raise DataError(f"{source}: no class names")
    arrays = {}
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x = np.asarray(x)
        y = np.asarray(y)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise DataError(f"{source}: {split} images have shape {x.shape} dtype {x.dtype}, expected (N, 32, 32, 3) uint8")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{source}: {split} labels have shape {y.shape} dtype {y.dtype}, expected ({len(x)},) integers")
        if len(x) == 0:
            raise DataError(f"{source}: the {split} split is empty")
        if y.min() < 0 or y.max() >= len(class_names):
            raise DataError(
                f"{source}: {split} labels span {y.min()}..{y.max()}, outside 0..{len(class_names) - 1} "
                f"({len(class_names)} class names)"
            )
        x = np.ascontiguousarray(x)
        if not x.flags.writeable:  # np.frombuffer views of archive bytes are read-only
            x = x.copy()
        arrays[split] = (x, y.astype(np.int64))
    (xtr, ytr), (xte, yte) = arrays["train"], arrays["test"]
    return Dataset(
        x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
        class_names=class_names,
        fingerprint=_fingerprint(xtr, ytr, xte, yte),
        source=source, description=description, lossy_jpeg=bool(lossy_jpeg),
    )
