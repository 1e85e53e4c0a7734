"""The ``"cifar10"`` source: the canonical archive, downloaded and verified by Keras."""

from __future__ import annotations

import os

from .archives import _open_members
from .core import ACCEPTED_SOURCES, Dataset, DataError, _make_dataset
from .formats import _decode_python, _detect_layout

# The canonical archive, exactly as keras.datasets.cifar10 fetches it.
CIFAR10_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
# keras 3 names its extraction dir "<fname>" and the tarball's top folder sits inside.
_KERAS_FNAME = "cifar-10-batches-py-target"
_KERAS_INNER = "cifar-10-batches-py"

_CANONICAL_DESCRIPTION = "CIFAR-10, canonical python archive (checksum verified)"


def _installed_backend_for_keras():
    """Keras falls back on TensorFlow, which an install for JAX (pip install '.[jax]') lacks: name an
    installed backend before keras is first imported here (get_file uses none of its arithmetic). A
    run's own backend is chosen before its process imports keras (guards.select_backend)."""
    import importlib.util
    import sys

    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND") or importlib.util.find_spec("tensorflow"):
        return
    for backend in ("jax", "torch"):
        if importlib.util.find_spec(backend) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return


def _load_canonical() -> Dataset:
    """Fetch (or reuse from ~/.keras/datasets) the verified archive, as keras does."""
    _installed_backend_for_keras()
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
