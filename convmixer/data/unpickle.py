"""The python-format batches: a restricted, bounded unpickler.

The python release is a pickle, so a data file could execute code if read with
:func:`pickle.load`.  This unpickler only admits numpy's array-reconstruction
helpers (and ``_codecs.encode`` for latin-1 text, how Python 3 writes bytes at
pickle protocol 2).  Every array a pickle declares is bounded by the file's own
length before it is allocated, and each batch by CIFAR-10's (at most 10,000
rows of 3,072 uint8 values).  An array is accepted only with its bytes: numpy
allocates a declared array uninitialised, so one declared without them would
be whatever memory held before, trained on as if it were images.
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
    ("numpy", "dtype"): (("numpy",), "dtype"),
}


_BATCH_ROWS = 10_000  # every CIFAR-10 batch, training or test, holds 10,000 images


def _latin1_bytes(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it (bytes written as latin-1 text), and only that."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError(f"refuses _codecs.encode({type(text).__name__}, {encoding!r}): not a plain CIFAR-10 pickle")
    return text.encode("latin1")


class _NdarrayName:
    """What ``numpy.ndarray`` means inside a pickle: the type ``_reconstruct`` is asked to rebuild.

    Never the class itself: ``numpy.ndarray(shape, dtype)`` allocates an
    uninitialised array, so a pickle that calls it gets memory, not data.
    """

    label = "a pickle"  # each unpickler names its file in a subclass

    def __new__(cls, *args, **kwargs):
        raise DataError(f"refuses to call numpy.ndarray from {cls.label}: it makes an array without its bytes "
                        "(not a plain CIFAR-10 pickle)")


class _DeclaredArray:
    """An array ``_reconstruct`` declared: it becomes one when the pickle sends its bytes (``__setstate__``,
    the BUILD that follows in every real pickle of an array); ``array`` stays None until then."""

    def __init__(self, label: str, shape: tuple, limit: int):
        self.label, self.shape, self.limit = label, shape, limit
        self.array = None

    def __setstate__(self, state):
        # numpy's ndarray state: ([version,] shape, dtype, is_fortran, raw bytes)
        body = state[1:] if isinstance(state, tuple) and len(state) == 5 else state
        if not isinstance(body, tuple) or len(body) != 4:
            raise DataError(f"{self.label}: unreadable array state: not a plain CIFAR-10 pickle")
        shape, dtype, _, raw = body
        if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(raw, (bytes, bytearray)):
            raise DataError(f"{self.label}: an array's bytes must be raw bytes of a plain dtype, got "
                            f"{type(raw).__name__} of {dtype!r}")
        try:
            nbytes = int(np.prod([int(d) for d in shape], dtype=object)) * dtype.itemsize
        except (TypeError, ValueError) as err:
            raise DataError(f"{self.label}: unreadable array shape {shape!r} ({err})") from err
        if nbytes != len(raw) or nbytes > self.limit:
            raise DataError(f"{self.label}: an array of shape {tuple(shape)} {dtype} needs {nbytes:,} bytes, "
                            f"the pickle sends {len(raw):,} (truncated or forged)")
        array = _numpy_attr(_MULTIARRAY, "_reconstruct")(np.ndarray, (0,), b"b")
        array.__setstate__(state)
        self.array = array


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else executable.

    numpy's ``_reconstruct`` would allocate the shape it is given before any
    data arrives, so a few forged bytes could ask for gigabytes: every declared
    array must fit in the pickle's own ``limit`` bytes, and stays a
    ``_DeclaredArray`` until its bytes arrive (``declared`` lists them all).
    """

    def __init__(self, file, label: str, limit: int):
        super().__init__(file, encoding="bytes")  # originals are Python 2 pickles
        self._label = label
        self._limit = limit
        self.declared: list[_DeclaredArray] = []
        self._ndarray = type("ndarray", (_NdarrayName,), {"label": label})

    def _bounded_reconstruct(self, subtype, shape, dtype):
        if subtype is not self._ndarray:
            raise DataError(f"refuses to rebuild {subtype!r} from {self._label}: not a plain CIFAR-10 pickle")
        try:
            dims = [int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,))]
            nbytes = int(np.prod(dims, dtype=object)) * np.dtype(dtype).itemsize
        except (TypeError, ValueError) as err:
            raise DataError(f"{self._label}: unreadable array declaration ({err})") from err
        if min(dims, default=0) < 0 or nbytes > self._limit:
            raise DataError(f"{self._label}: declares an array of shape {tuple(dims)} ({nbytes:,} bytes) in a "
                            f"{self._limit:,}-byte file (truncated or forged)")
        declared = _DeclaredArray(self._label, tuple(dims), self._limit)
        self.declared.append(declared)
        return declared

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        if (module, name) == ("numpy", "ndarray"):
            return self._ndarray
        entry = _PICKLE_ALLOWED.get((module, name))
        if entry is None:
            raise DataError(f"refuses to load {module}.{name} from {self._label}: not a plain CIFAR-10 pickle")
        if name == "_reconstruct":
            return self._bounded_reconstruct
        return _numpy_attr(*entry)

    def persistent_load(self, pid):
        raise DataError(f"refuses persistent id in {self._label}: not a plain CIFAR-10 pickle")


def _safe_unpickle(blob: bytes, label: str) -> dict:
    unpickler = _CifarUnpickler(io.BytesIO(blob), label, len(blob))
    try:
        obj = unpickler.load()
    except DataError:
        raise
    except Exception as err:  # pickle/numpy raise many types on corrupt input
        raise DataError(f"cannot unpickle {label}: {_why(err)} (truncated or corrupt?)") from err
    for declared in unpickler.declared:
        if declared.array is None:
            raise DataError(f"{label}: declares an array of shape {declared.shape} without its bytes "
                            "(it would be uninitialised memory): not a plain CIFAR-10 pickle")
    if not isinstance(obj, dict):
        raise DataError(f"{label}: expected a dict in a CIFAR-10 pickle, got {type(obj).__name__}")
    # The arrays a CIFAR-10 pickle holds are its dict's values; any other place is refused by the checks
    # of what each value must be.
    return {k: v.array if isinstance(v, _DeclaredArray) else v for k, v in obj.items()}


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
