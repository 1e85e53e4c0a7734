"""CIFAR-10 loading for the ConvMixer reproducibility study.

One entry point, :func:`load_cifar10`, turns a *source* into a :class:`Dataset`
of uint8 NHWC images and int64 labels.  Sources:

* ``"cifar10"``: the canonical python archive, downloaded by Keras with its
  sha256 verified (needs network, or a pre-filled ``~/.keras/datasets``).
* ``"synthetic"`` / ``"synthetic:N_TRAIN:N_TEST"``: a small generated,
  learnable stand-in for tests and smoke runs.
* a local path: the python or binary CIFAR-10 release (tarball or extracted
  folder), or an image folder ``train/<class>/*``, ``test/<class>/*`` (folder,
  .zip or tar, possibly under one top-level folder).

Design notes (why it looks like this):

* Archives are read in place (tarfile/zipfile), never extracted, so a hostile
  archive cannot write outside a temp dir and nothing needs cleaning up.
* The python release is a pickle; it is read with a restricted unpickler that
  only admits numpy's array-reconstruction helpers (and ``_codecs.encode`` for
  latin-1 text, how Python 3 writes bytes at pickle protocol 2). Every array a
  pickle declares is bounded by the file's own length before it is allocated,
  and each batch by CIFAR-10's (at most 10,000 rows of 3,072 uint8 values).
* Every failure is a :class:`DataError` with a one-line message naming the file:
  a reproducibility study must fail loudly and clearly, not with a traceback
  from deep inside tarfile or PIL.
* Decoding 60,000 JPEGs is slow, so decoded arrays of local sources are cached
  as a plain ``.npz`` keyed by the source's content.  The dataset fingerprint is
  computed from the arrays, so it does not depend on whether the cache was used.
"""

from __future__ import annotations

import hashlib
import io
import logging
import lzma
import os
import pickle
import posixpath
import re
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CIFAR10_CLASSES",
    "DataError",
    "Dataset",
    "resolve_source",
    "load_cifar10",
    "describe_source",
    "validation_split",
    "take_subset",
]

log = logging.getLogger(__name__)

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

# The canonical archive, exactly as keras.datasets.cifar10 fetches it.
CIFAR10_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
# keras 3 names its extraction dir "<fname>" and the tarball's top folder sits inside.
_KERAS_FNAME = "cifar-10-batches-py-target"
_KERAS_INNER = "cifar-10-batches-py"

ACCEPTED_SOURCES = (
    "'cifar10' (download), 'synthetic[:N_TRAIN:N_TEST]', or a path to: "
    "cifar-10-python.tar.gz or an extracted cifar-10-batches-py/ folder; "
    "cifar-10-binary.tar.gz or an extracted cifar-10-batches-bin/ folder; "
    "an image folder train/<class>/*.png|jpg + test/<class>/*, or a .zip/.tar of one"
)

IMAGE_SIZE = 32
_IMAGE_EXTS = (".png", ".jpg", ".jpeg")
_JPEG_EXTS = (".jpg", ".jpeg")
_PY_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_PY_MEMBERS = _PY_TRAIN + ("test_batch", "batches.meta")
_BIN_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_BIN_MEMBERS = _BIN_TRAIN + ("test_batch.bin", "batches.meta.txt")
_BIN_RECORD = 1 + 3 * IMAGE_SIZE * IMAGE_SIZE  # label byte + R, G, B planes

_SYNTHETIC_DEFAULT = (2000, 500)
_SYNTHETIC_SEED = 0
# Bump when the decoding of any local format changes, to invalidate old caches.
_CACHE_VERSION = "1"


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


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

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


def load_cifar10(source: str | os.PathLike | None = None, *, cache_dir: str | None = None) -> Dataset:
    """Load CIFAR-10 (or a stand-in) from ``source``; see the module docstring."""
    resolved = resolve_source(source)
    if resolved == "cifar10":
        return _load_canonical()
    if _is_synthetic(resolved):
        return _load_synthetic(resolved)
    return _load_local(resolved, cache_dir)


def describe_source(source: str | os.PathLike | None) -> str:
    """The description :func:`load_cifar10` would give, without decoding images.

    For local paths this lists the archive/folder (no pixel decoding); for
    "cifar10" it does not download anything.
    """
    resolved = resolve_source(source)
    if resolved == "cifar10":
        return _CANONICAL_DESCRIPTION
    if _is_synthetic(resolved):
        return _synthetic_description(*_parse_synthetic(resolved))
    _require_exists(resolved)
    with _open_members(resolved) as members:
        layout = _detect_layout(members)
        lossy = layout.kind == "images" and any(_is_jpeg(n) for n in layout.files)
        names = _image_class_names(layout, members) if layout.kind == "images" else ()
        return _describe_local(resolved, members.container, layout.kind, lossy, names)


def validation_split(x, y, fraction: float = 0.1, seed: int = 0):
    """Split (x, y) into (x_train, y_train, x_val, y_val), stratified by class.

    Each class contributes ``fraction`` of its examples to validation (largest
    remainder rounding, so the total is exactly round(fraction * N)).  Both parts
    are shuffled with ``np.random.default_rng(seed)``: sources such as the JPEG
    copy are grouped by class, so taking a contiguous tail would be wrong.
    """
    given = fraction
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        fraction = float("nan")  # rejected just below
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction must be in (0, 1), got fraction={given!r}")
    labels = _labels_1d(x, y)
    n = len(labels)
    n_val = int(np.floor(fraction * n + 0.5))
    if not 0 < n_val < n:
        raise DataError(f"validation fraction={fraction} of {n} examples leaves an empty split")

    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    val_counts = _largest_remainder(sizes * fraction, n_val)
    val_parts, train_parts = [], []
    for cls, k in zip(classes, val_counts):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        val_parts.append(idx[:k])
        train_parts.append(idx[k:])
    train_idx = rng.permutation(np.concatenate(train_parts))
    val_idx = rng.permutation(np.concatenate(val_parts))
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def take_subset(x, y, n: int | None, seed: int = 0, *, name: str = "n"):
    """A seeded, class-balanced, shuffled subset of exactly ``n`` examples.

    ``n=None`` returns the inputs unchanged.  Classes get equal shares; a class
    with too few examples gives all it has and the rest is spread over others.
    ``name`` is the parameter the caller exposes (e.g. "train_subset"), for errors.
    """
    if n is None:
        return x, y
    labels = _labels_1d(x, y)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"{name} must be a positive integer, got {n!r}")
    if n > len(labels):
        raise DataError(f"{name}={n} exceeds the {len(labels)} available examples")

    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    counts = _balanced_counts(sizes, int(n), rng)
    parts = [
        rng.permutation(np.flatnonzero(labels == cls))[:k]
        for cls, k in zip(classes, counts)
    ]
    idx = rng.permutation(np.concatenate(parts))
    return x[idx], y[idx]


# --------------------------------------------------------------------------
# Source names
# --------------------------------------------------------------------------

def _is_synthetic(text: str) -> bool:
    return text == "synthetic" or text.startswith("synthetic:")


def _is_named_source(text: str) -> bool:
    return text == "cifar10" or _is_synthetic(text)


def _require_exists(path: str) -> None:
    if not os.path.exists(path):
        raise DataError(f"data source {path} does not exist; accepted: {ACCEPTED_SOURCES}")


# --------------------------------------------------------------------------
# Dataset assembly and fingerprint
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# "cifar10": the canonical download
# --------------------------------------------------------------------------

_CANONICAL_DESCRIPTION = "CIFAR-10, canonical python archive (checksum verified)"


def _load_canonical() -> Dataset:
    """Fetch (or reuse from ~/.keras/datasets) the verified archive, as keras does."""
    try:
        import keras  # lazy: keras pulls in a backend, which is slow to import
    except ImportError as err:
        raise DataError(
            f"the 'cifar10' source needs keras to download the archive ({err}); "
            f"set CONVMIXER_DATA to a local copy instead: {ACCEPTED_SOURCES}"
        ) from err
    try:
        # Same arguments as keras.datasets.cifar10.load_data, so both share one cache.
        path = keras.utils.get_file(
            fname=_KERAS_FNAME, origin=CIFAR10_ORIGIN, extract=True, file_hash=CIFAR10_SHA256,
        )
    except Exception as err:  # urllib, hash mismatch, extraction: all mean "no usable archive"
        raise DataError(
            f"downloading CIFAR-10 from {CIFAR10_ORIGIN} failed ({type(err).__name__}: {err}); "
            f"without network, set CONVMIXER_DATA (or pass a path) to a local copy: {ACCEPTED_SOURCES}"
        ) from err
    path = os.fspath(path)
    inner = os.path.join(path, _KERAS_INNER)
    folder = inner if os.path.isdir(inner) else path
    with _open_members(folder) as members:
        layout = _detect_layout(members)
        if layout.kind != "python":
            raise DataError(f"{folder}: the downloaded CIFAR-10 archive has no python-format batches")
        arrays = _decode_python(members, layout)
    return _make_dataset(*arrays, source="cifar10", description=_CANONICAL_DESCRIPTION, lossy_jpeg=False)


# --------------------------------------------------------------------------
# "synthetic": a fast, learnable stand-in
# --------------------------------------------------------------------------

def _parse_synthetic(text: str) -> tuple[int, int]:
    if text == "synthetic":
        return _SYNTHETIC_DEFAULT
    match = re.fullmatch(r"synthetic:(\d+):(\d+)", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise DataError(f"bad synthetic source {text!r}: expected 'synthetic' or 'synthetic:N_TRAIN:N_TEST' with N >= 1")
    return int(match.group(1)), int(match.group(2))


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


# --------------------------------------------------------------------------
# Local sources: uniform access to folders, tarballs and zips
# --------------------------------------------------------------------------

def _is_junk(name: str) -> bool:
    """Hidden files and macOS zip debris (__MACOSX/, ._foo.jpg) are not data."""
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def _is_jpeg(name: str) -> bool:
    return name.lower().endswith(_JPEG_EXTS)


class _Members:
    """Read-only view of a folder/tar/zip as relative posix names -> bytes."""

    container = ""  # "folder", "tar" or "zip": used in descriptions

    def __init__(self, path: str):
        self.path = path
        self.names: list[str] = []

    def where(self, name: str) -> str:
        """How to name a member in an error message."""
        return f"{self.path}:{name}"

    def read(self, names) -> dict[str, bytes]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _FolderMembers(_Members):
    container = "folder"

    def __init__(self, path: str):
        super().__init__(path)
        for root, dirs, files in os.walk(path):
            dirs.sort()
            rel_root = os.path.relpath(root, path)
            for fname in sorted(files):
                rel = fname if rel_root == "." else posixpath.join(rel_root.replace(os.sep, "/"), fname)
                if not _is_junk(rel):
                    self.names.append(rel)

    def where(self, name: str) -> str:
        return os.path.join(self.path, *name.split("/"))

    def read(self, names) -> dict[str, bytes]:
        out = {}
        for name in names:
            try:
                with open(self.where(name), "rb") as fh:
                    out[name] = fh.read()
            except OSError as err:
                raise DataError(f"cannot read {self.where(name)}: {err.strerror or err}") from err
        return out


# Exceptions the stdlib archive readers raise on truncated/corrupt input.
_ARCHIVE_ERRORS = (
    tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
    ValueError, NotImplementedError, RuntimeError,
)


class _TarMembers(_Members):
    container = "tar"

    def __init__(self, path: str):
        super().__init__(path)
        try:
            self._tar = tarfile.open(path, mode="r:*")
            members = [m for m in self._tar.getmembers() if m.isfile()]
        except _ARCHIVE_ERRORS as err:
            raise DataError(f"cannot read tar archive {path}: {_why(err)} (truncated or corrupt?)") from err
        self._by_name = {}
        for m in members:
            name = m.name[2:] if m.name.startswith("./") else m.name
            if not _is_junk(name):
                self._by_name[name] = m
        self.names = sorted(self._by_name)

    def read(self, names) -> dict[str, bytes]:
        # Read in archive order: seeking backwards in a .tar.gz restarts decompression.
        wanted = sorted(((n, self._by_name[n]) for n in names), key=lambda item: item[1].offset_data)
        out = {}
        for name, m in wanted:
            try:
                out[name] = self._tar.extractfile(m).read()
            except _ARCHIVE_ERRORS as err:
                raise DataError(f"cannot read {self.where(name)}: {_why(err)} (truncated or corrupt archive?)") from err
        return out

    def close(self) -> None:
        self._tar.close()


class _ZipMembers(_Members):
    container = "zip"

    def __init__(self, path: str):
        super().__init__(path)
        try:
            self._zip = zipfile.ZipFile(path)
            infos = [i for i in self._zip.infolist() if not i.is_dir()]
        except _ARCHIVE_ERRORS as err:
            raise DataError(f"cannot read zip archive {path}: {_why(err)} (truncated or corrupt?)") from err
        self.names = sorted(i.filename for i in infos if not _is_junk(i.filename))

    def read(self, names) -> dict[str, bytes]:
        out = {}
        for name in names:
            try:
                out[name] = self._zip.read(name)
            except _ARCHIVE_ERRORS as err:
                raise DataError(f"cannot read {self.where(name)}: {_why(err)} (truncated or corrupt archive?)") from err
        return out

    def close(self) -> None:
        self._zip.close()


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".rstrip(": ")


def _sniff(path: str) -> str | None:
    """Archive type from magic bytes (content, not file name): 'zip', 'tar' or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from err
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    compressed = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
    if head.startswith(compressed) or head[257:262] == b"ustar":
        return "tar"
    return None


def _open_members(path: str) -> _Members:
    if os.path.isdir(path):
        return _FolderMembers(path)
    kind = _sniff(path)
    if kind == "zip":
        return _ZipMembers(path)
    if kind == "tar":
        return _TarMembers(path)
    raise DataError(f"{path} is not a recognised CIFAR-10 source (not a folder, tar or zip); accepted: {ACCEPTED_SOURCES}")


@dataclass(frozen=True)
class _Layout:
    kind: str  # "python", "binary" or "images"
    prefix: str  # "" or "some/folder/" holding the data inside the container
    files: tuple[str, ...] = ()  # image members (images layout only)


def _shortest(prefixes) -> str:
    return min(prefixes, key=lambda p: (p.count("/"), p))


def _detect_layout(members: _Members) -> _Layout:
    """Which of the three layouts ``members`` holds, judged by member names."""
    py, binary, images = set(), set(), set()
    for name in members.names:
        folder, base = posixpath.split(name)
        prefix = folder + "/" if folder else ""
        if base in _PY_MEMBERS:
            py.add(prefix)
        elif base in _BIN_MEMBERS:
            binary.add(prefix)
        elif base.lower().endswith(_IMAGE_EXTS):
            parts = name.split("/")
            if len(parts) >= 3 and parts[-3] in ("train", "test"):
                images.add("".join(p + "/" for p in parts[:-3]))
    # Prefer the canonical release if a folder happens to hold several layouts.
    if py:
        return _Layout("python", _shortest(py))
    if binary:
        return _Layout("binary", _shortest(binary))
    if images:
        prefix = _shortest(images)
        files = tuple(
            n for n in members.names
            if n.startswith(prefix) and n.lower().endswith(_IMAGE_EXTS) and n[len(prefix):].count("/") == 2
        )
        return _Layout("images", prefix, files)
    raise DataError(
        f"{members.path}: no CIFAR-10 data found in this {members.container}; accepted: {ACCEPTED_SOURCES}"
    )


def _read_required(members: _Members, layout: _Layout, required) -> dict[str, bytes]:
    """Read ``required`` basenames under the layout prefix, naming any that are missing."""
    present = set(members.names)
    missing = [r for r in required if layout.prefix + r not in present]
    if missing:
        where = members.where(layout.prefix) if layout.prefix else members.path
        raise DataError(f"{where}: {layout.kind}-format CIFAR-10 is missing {', '.join(missing)}")
    blobs = members.read([layout.prefix + r for r in required])
    return {r: blobs[layout.prefix + r] for r in required}


# --------------------------------------------------------------------------
# Python (pickle) format
# --------------------------------------------------------------------------

def _numpy_attr(modules, name):
    """First of ``modules`` that imports, then ``name`` from it.

    numpy 2 pickles name ``numpy._core``; numpy 1 and the original CIFAR pickles
    name ``numpy.core``.  Resolving to the real module avoids numpy 2's
    deprecation shim and works on numpy 1.26 as well.
    """
    import importlib

    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(name)


_MULTIARRAY = ("numpy._core.multiarray", "numpy.core.multiarray")
_NUMERIC = ("numpy._core.numeric", "numpy.core.numeric")
# Everything a CIFAR-10 batch pickle (a dict of lists, bytes and one ndarray) needs.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): (_MULTIARRAY, "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): (_MULTIARRAY, "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): (_NUMERIC, "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): (_NUMERIC, "_frombuffer"),
    ("numpy", "ndarray"): (("numpy",), "ndarray"),
    ("numpy", "dtype"): (("numpy",), "dtype"),
}


_BATCH_ROWS = 10_000  # every CIFAR-10 batch, training or test, holds 10,000 images


def _latin1_bytes(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it (bytes written as latin-1 text), and only that."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError(f"refuses _codecs.encode({type(text).__name__}, {encoding!r}): not a plain CIFAR-10 pickle")
    return text.encode("latin1")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else executable.

    ``_reconstruct`` allocates the shape it is given before any data arrives, so
    a few forged bytes could ask for gigabytes (or yield an all-zero array):
    every declared array must fit in the pickle's own ``limit`` bytes.
    """

    def __init__(self, file, label: str, limit: int):
        super().__init__(file, encoding="bytes")  # originals are Python 2 pickles
        self._label = label
        self._limit = limit

    def _bounded_reconstruct(self, subtype, shape, dtype):
        if subtype is not np.ndarray:
            raise DataError(f"refuses to rebuild {subtype!r} from {self._label}: not a plain CIFAR-10 pickle")
        try:
            dims = [int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,))]
            nbytes = int(np.prod(dims, dtype=object)) * np.dtype(dtype).itemsize
        except (TypeError, ValueError) as err:
            raise DataError(f"{self._label}: unreadable array declaration ({err})") from err
        if min(dims, default=0) < 0 or nbytes > self._limit:
            raise DataError(f"{self._label}: declares an array of shape {tuple(dims)} ({nbytes:,} bytes) in a "
                            f"{self._limit:,}-byte file (truncated or forged)")
        return _numpy_attr(_MULTIARRAY, "_reconstruct")(subtype, tuple(dims), dtype)

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        entry = _PICKLE_ALLOWED.get((module, name))
        if entry is None:
            raise DataError(f"refuses to load {module}.{name} from {self._label}: not a plain CIFAR-10 pickle")
        if name == "_reconstruct":
            return self._bounded_reconstruct
        return _numpy_attr(*entry)

    def persistent_load(self, pid):
        raise DataError(f"refuses persistent id in {self._label}: not a plain CIFAR-10 pickle")


def _safe_unpickle(blob: bytes, label: str) -> dict:
    try:
        obj = _CifarUnpickler(io.BytesIO(blob), label, len(blob)).load()
    except DataError:
        raise
    except Exception as err:  # pickle/numpy raise many types on corrupt input
        raise DataError(f"cannot unpickle {label}: {_why(err)} (truncated or corrupt?)") from err
    if not isinstance(obj, dict):
        raise DataError(f"{label}: expected a dict in a CIFAR-10 pickle, got {type(obj).__name__}")
    return obj


def _get_key(obj: dict, key: str, label: str):
    """CIFAR pickles have bytes keys (Python 2); re-pickled copies may have str keys."""
    for k in (key.encode(), key):
        if k in obj:
            return obj[k]
    raise DataError(f"{label}: CIFAR-10 pickle has no {key!r} entry")


def _python_batch(blob: bytes, label: str) -> tuple[np.ndarray, np.ndarray]:
    obj = _safe_unpickle(blob, label)
    data = _get_key(obj, "data", label)
    labels = _get_key(obj, "labels", label)
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072
            or not 0 < data.shape[0] <= _BATCH_ROWS):
        shape = getattr(data, "shape", None)
        raise DataError(f"{label}: 'data' must be a uint8 array of shape (N, 3072) with 1 <= N <= {_BATCH_ROWS:,}, "
                        f"got {type(data).__name__} {getattr(data, 'dtype', '')} {shape}")
    if isinstance(labels, (list, tuple)) and len(labels) != len(data):
        raise DataError(f"{label}: {len(data)} images but {len(labels)} labels")
    try:
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise DataError(f"{label}: 'labels' is not a list of integers ({err})") from err
    if len(y) != len(data):
        raise DataError(f"{label}: {len(data)} images but {len(y)} labels")
    # Rows are channel-planar (3 x 32 x 32); the project uses NHWC.
    x = data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return x, y


def _python_class_names(blob: bytes, label: str) -> tuple[str, ...]:
    names = _get_key(_safe_unpickle(blob, label), "label_names", label)
    try:
        return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    except (TypeError, UnicodeDecodeError) as err:
        raise DataError(f"{label}: unreadable 'label_names' ({err})") from err


def _decode_batches(members: _Members, layout: _Layout, train_names, test_name, meta_name, batch, class_names):
    """The five training batches, the test batch and the class names of either archive format."""
    blobs = _read_required(members, layout, (*train_names, test_name, meta_name))
    where = lambda base: members.where(layout.prefix + base)  # noqa: E731
    train = [batch(blobs[b], where(b)) for b in train_names]
    x_test, y_test = batch(blobs[test_name], where(test_name))
    names = class_names(blobs[meta_name], where(meta_name))
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test, names


def _decode_python(members: _Members, layout: _Layout):
    return _decode_batches(members, layout, _PY_TRAIN, "test_batch", "batches.meta",
                           _python_batch, _python_class_names)


# --------------------------------------------------------------------------
# Binary format
# --------------------------------------------------------------------------

def _binary_batch(blob: bytes, label: str) -> tuple[np.ndarray, np.ndarray]:
    if len(blob) == 0 or len(blob) % _BIN_RECORD:
        raise DataError(f"{label}: size {len(blob)} is not a multiple of the {_BIN_RECORD}-byte CIFAR-10 record (truncated?)")
    records = np.frombuffer(blob, dtype=np.uint8).reshape(-1, _BIN_RECORD)
    y = records[:, 0].astype(np.int64)
    x = records[:, 1:].reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return x, y


def _binary_class_names(blob: bytes, label: str) -> tuple[str, ...]:
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{label}: not a text file ({err})") from err
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _decode_binary(members: _Members, layout: _Layout):
    return _decode_batches(members, layout, _BIN_TRAIN, "test_batch.bin", "batches.meta.txt",
                           _binary_batch, _binary_class_names)


# --------------------------------------------------------------------------
# Image-folder format
# --------------------------------------------------------------------------

def _split_files(layout: _Layout) -> dict[str, dict[str, list[str]]]:
    """{"train"|"test": {class: sorted member names}}."""
    tree: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for name in layout.files:
        split, cls, _ = name[len(layout.prefix):].split("/")
        if split in tree:
            tree[split].setdefault(cls, []).append(name)
    for classes in tree.values():
        for files in classes.values():
            files.sort()  # deterministic order regardless of container listing order
    return tree


def _image_class_names(layout: _Layout, members: _Members, tree=None) -> tuple[str, ...]:
    tree = tree or _split_files(layout)
    root = members.where(layout.prefix) if layout.prefix else members.path
    for split in ("train", "test"):
        if not tree[split]:
            raise DataError(f"{root}: image folder has no {split}/<class>/ images")
    train, test = set(tree["train"]), set(tree["test"])
    if train != test:
        raise DataError(
            f"{root}: train and test class folders differ "
            f"(only in train: {sorted(train - test)}, only in test: {sorted(test - train)})"
        )
    # Canonical label order when these are the CIFAR-10 classes, else alphabetical.
    return CIFAR10_CLASSES if train == set(CIFAR10_CLASSES) else tuple(sorted(train))


def _decode_image(blob: bytes, label: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as im:
            # Check the header size before decoding: also stops decompression bombs.
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                raise DataError(f"{label}: image is {im.size[0]}x{im.size[1]}, expected 32x32")
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{label}: cannot decode image ({_why(err)})") from err


def _decode_images(members: _Members, layout: _Layout):
    tree = _split_files(layout)
    names = _image_class_names(layout, members, tree)
    out = []
    for split in ("train", "test"):
        files = [(f, label) for label, cls in enumerate(names) for f in tree[split][cls]]
        blobs = members.read([f for f, _ in files])
        x = np.empty((len(files), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        for i, (f, _) in enumerate(files):
            x[i] = _decode_image(blobs.pop(f), members.where(f))  # pop: free bytes as we go
        out += [x, np.array([label for _, label in files], dtype=np.int64)]
    return (*out, names)


# --------------------------------------------------------------------------
# Local loading with an .npz cache
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Decoded:
    arrays: tuple  # x_train, y_train, x_test, y_test
    class_names: tuple[str, ...]
    container: str  # "folder", "tar", "zip"
    layout: str  # "python", "binary", "images"
    lossy_jpeg: bool


def _decode_local(path: str) -> _Decoded:
    """Detect the layout of ``path`` and decode all of it (the slow step)."""
    decoders = {"python": _decode_python, "binary": _decode_binary, "images": _decode_images}
    with _open_members(path) as members:
        layout = _detect_layout(members)
        *arrays, names = decoders[layout.kind](members, layout)
        lossy = layout.kind == "images" and any(_is_jpeg(n) for n in layout.files)
        return _Decoded(tuple(arrays), tuple(names), members.container, layout.kind, lossy)


def _describe_local(path: str, container: str, layout: str, lossy: bool, class_names) -> str:
    from .records import portable_path

    path = portable_path(path)
    if layout in ("python", "binary"):
        return f"CIFAR-10 {layout}-format {container} {path}"
    text = f"image-folder {container} {path}"
    if lossy:  # results from a JPEG copy are not comparable pixel-for-pixel with CIFAR-10
        is_cifar = tuple(class_names) == CIFAR10_CLASSES
        text += " (JPEG re-encoding of CIFAR-10, lossy)" if is_cifar else " (JPEG images, lossy)"
    return text


def _source_key(path: str) -> str:
    """Content key: sha256 of a file's bytes, or of a folder's listing (names, sizes, mtimes)."""
    h = hashlib.sha256(f"convmixer-data-cache-v{_CACHE_VERSION}\0".encode())
    try:
        if os.path.isdir(path):
            h.update(b"folder\0")
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for fname in sorted(files):
                    full = os.path.join(root, fname)
                    st = os.stat(full)
                    rel = os.path.relpath(full, path).replace(os.sep, "/")
                    h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        else:
            h.update(b"file\0")
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from err
    return h.hexdigest()


def _default_cache_dir() -> str:
    return os.environ.get("CONVMIXER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "convmixer")


def _read_cache(cache_file: str) -> _Decoded | None:
    """The cached decode, or None if absent or unreadable (then it is rebuilt)."""
    if not os.path.exists(cache_file):
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as npz:
            arrays = tuple(npz[k] for k in ("x_train", "y_train", "x_test", "y_test"))
            decoded = _Decoded(
                arrays=arrays,
                class_names=tuple(str(c) for c in npz["class_names"]),
                container=str(npz["container"]),
                layout=str(npz["layout"]),
                lossy_jpeg=bool(npz["lossy_jpeg"]),
            )
    except Exception as err:  # zip/npy/Key errors from a damaged file: just rebuild
        log.warning("ignoring unreadable dataset cache %s (%s); rebuilding it", cache_file, _why(err))
        return None
    return decoded


def _write_cache(cache_file: str, decoded: _Decoded) -> None:
    """Atomic write (temp file + os.replace) so readers never see half a file."""
    cache_dir = os.path.dirname(cache_file)
    tmp = None
    try:
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".npz")
        x_train, y_train, x_test, y_test = decoded.arrays
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                class_names=np.array(decoded.class_names, dtype=str),
                container=np.array(decoded.container), layout=np.array(decoded.layout),
                lossy_jpeg=np.array(decoded.lossy_jpeg),
            )
        os.replace(tmp, cache_file)
        tmp = None
    except OSError as err:  # the cache is an optimisation; a read-only home must not break loading
        log.warning("could not write dataset cache %s (%s)", cache_file, _why(err))
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def _load_local(path: str, cache_dir: str | None) -> Dataset:
    _require_exists(path)
    cache_file = os.path.join(cache_dir or _default_cache_dir(), f"cifar10-{_source_key(path)}.npz")
    decoded = _read_cache(cache_file)
    dataset = None
    if decoded is not None:
        try:
            dataset = _build_local(path, decoded)
        except DataError as err:  # a cache that decodes but fails validation is also rebuilt
            log.warning("ignoring invalid dataset cache %s (%s); rebuilding it", cache_file, err)
    if dataset is None:
        decoded = _decode_local(path)
        dataset = _build_local(path, decoded)  # validate before caching
        _write_cache(cache_file, decoded)
    return dataset


def _build_local(path: str, decoded: _Decoded) -> Dataset:
    description = _describe_local(path, decoded.container, decoded.layout, decoded.lossy_jpeg, decoded.class_names)
    return _make_dataset(
        *decoded.arrays, decoded.class_names,
        source=path, description=description, lossy_jpeg=decoded.lossy_jpeg,
    )


# --------------------------------------------------------------------------
# Split helpers
# --------------------------------------------------------------------------

def _labels_1d(x, y) -> np.ndarray:
    """Labels as a 1-D integer array; accepts (N,) or keras-style (N, 1)."""
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"labels must have shape (N,) or (N, 1), got {np.shape(y)}")
    if len(x) != len(labels):
        raise DataError(f"x has {len(x)} examples but y has {len(labels)} labels")
    return labels


def _largest_remainder(quotas: np.ndarray, total: int) -> np.ndarray:
    """Integer counts close to ``quotas`` that sum to ``total`` (Hamilton's method)."""
    counts = np.floor(quotas).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        order = np.argsort(-(quotas - counts), kind="stable")  # biggest remainders first, ties by class
        counts[order[:short]] += 1
    return counts


def _balanced_counts(sizes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-class counts summing to ``n``, as equal as the class sizes allow (water filling)."""
    counts = np.zeros(len(sizes), dtype=np.int64)
    remaining = n
    while remaining > 0:
        open_classes = np.flatnonzero(counts < sizes)
        share = remaining // len(open_classes)
        if share == 0:
            # Fewer leftovers than classes: a seeded choice of who gets one more.
            counts[rng.permutation(open_classes)[:remaining]] += 1
            break
        for c in open_classes:
            add = min(share, int(sizes[c] - counts[c]))
            counts[c] += add
            remaining -= add
    return counts
