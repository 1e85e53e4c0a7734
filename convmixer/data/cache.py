"""The decoded-array cache of local sources.

Decoding 60,000 JPEGs is slow, so the decoded arrays of a local source are
cached as a plain ``.npz`` (no pickles) keyed by the source's content: the
bytes of a file, or the listing (names, sizes, mtimes) of a folder.  The cache
is an optimisation only: an unreadable, invalid or unwritable cache is logged
and rebuilt, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from .core import DataError, _why

# One logger for the whole package: its records are named "convmixer.data".
log = logging.getLogger(__package__)

# Part of every cache key: bump when the decoding of any local format changes,
# to invalidate old caches. 2: a pickled array without its bytes is refused, so
# a version-1 cache may hold what such a pickle decoded to (uninitialised memory).
_CACHE_VERSION = "2"


@dataclass(frozen=True)
class _Decoded:
    """A local source decoded, before validation: exactly what a cache file holds."""

    arrays: tuple  # x_train, y_train, x_test, y_test
    class_names: tuple[str, ...]
    container: str  # "folder", "tar", "zip"
    layout: str  # "python", "binary", "images"
    lossy_jpeg: bool


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
