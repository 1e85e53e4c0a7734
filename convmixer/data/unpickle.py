"""The python-format batches: a restricted, bounded unpickler.

The python release is a pickle, so a data file could execute code if read with
:func:`pickle.load`.  This unpickler only admits numpy's array-reconstruction
helpers (and ``_codecs.encode`` for latin-1 text, how Python 3 writes bytes at
pickle protocol 2).  Every array a pickle declares is bounded by the file's own
length before it is allocated, and each batch by CIFAR-10's (at most 10,000
rows of 3,072 uint8 values).
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from .core import IMAGE_SIZE, DataError, _why


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
