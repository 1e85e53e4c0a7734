"""Which CIFAR-10 layout a container holds, and decoding it into arrays.

Three layouts, recognised by member names under an optional top-level folder:

* python: the canonical release, ``data_batch_1..5``, ``test_batch``,
  ``batches.meta`` (pickles, read by :mod:`.unpickle`);
* binary: ``data_batch_1..5.bin``, ``test_batch.bin``, ``batches.meta.txt``
  (records of one label byte and three 32x32 colour planes);
* images: ``train/<class>/*`` and ``test/<class>/*`` PNG or JPEG files.

Each decoder returns ``(x_train, y_train, x_test, y_test, class_names)``;
validation and fingerprinting happen later, in :func:`.core._make_dataset`.
"""

from __future__ import annotations

import io
import posixpath
from dataclasses import dataclass

import numpy as np

from .archives import _Members
from .core import ACCEPTED_SOURCES, CIFAR10_CLASSES, IMAGE_SIZE, DataError, _why
from .unpickle import _python_batch, _python_class_names

_IMAGE_EXTS = (".png", ".jpg", ".jpeg")
_JPEG_EXTS = (".jpg", ".jpeg")
_PY_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_PY_MEMBERS = _PY_TRAIN + ("test_batch", "batches.meta")
_BIN_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_BIN_MEMBERS = _BIN_TRAIN + ("test_batch.bin", "batches.meta.txt")
_BIN_RECORD = 1 + 3 * IMAGE_SIZE * IMAGE_SIZE  # label byte + R, G, B planes

# The most bytes a member may hold, so that a forged archive cannot make the reader decompress
# gigabytes (archives.py refuses a larger member before reading it).
# A batch file: the largest in CIFAR-10 is a python batch, 31,035,704 bytes (10,000 x 3,072 pixel
# bytes plus labels and file names); re-pickled at protocol 2, Python 3 stores those bytes as latin-1
# text in UTF-8, up to twice as long: 64 MiB holds that, and a binary batch (30,730,000 bytes) too.
BATCH_MEMBER_LIMIT = 64 * 2**20
# An image: 32 x 32 pixels are at most 8 KiB even as uncompressed 16-bit RGBA; 1 MiB leaves room for
# the metadata an export tool may add (colour profiles, EXIF thumbnails).
IMAGE_MEMBER_LIMIT = 2**20


def _is_jpeg(name: str) -> bool:
    return name.lower().endswith(_JPEG_EXTS)


# --------------------------------------------------------------------------
# Layout detection
# --------------------------------------------------------------------------

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
    blobs = members.read([layout.prefix + r for r in required], BATCH_MEMBER_LIMIT, f"{layout.kind}-format batch file")
    return {r: blobs[layout.prefix + r] for r in required}


# --------------------------------------------------------------------------
# Batch formats: python (pickles, see .unpickle) and binary
# --------------------------------------------------------------------------

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
        row = {f: i for i, (f, _) in enumerate(files)}
        x = np.empty((len(files), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        # One member in memory at a time, in the order the container reads fastest.
        for f, blob in members.iter_read(list(row), IMAGE_MEMBER_LIMIT, "32x32 image"):
            x[row[f]] = _decode_image(blob, members.where(f))
        out += [x, np.array([label for _, label in files], dtype=np.int64)]
    return (*out, names)
