"""The run folder's file names, and atomic writes that fail in one line.

Every write goes to a temporary file in the same folder, is fsynced and then
renamed over its target, so a reader (or a kill) sees the old file or the new
one, never half of one. A write that fails (no space, read-only, permission)
raises :class:`WriteError`, an ``OSError`` whose message names the path and the reason.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

PARAMS = "params.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
ERROR = "error.json"
WEIGHTS = "model.weights.h5"
NOTEBOOK = "train.ipynb"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_STATE = "state.npz"  # weights, optimizer slots and progress after the last completed epoch
# Per-image test predictions of the tested weights: true label, predicted class, probability of the true class.
PREDICTIONS = "test_predictions.npz"

_UMASK = os.umask(0)
os.umask(_UMASK)


class WriteError(OSError):
    """A write that failed; the message is one line: the path and the reason (e.g. "No space left on device")."""


def folder_problem(path, *, write: bool = True) -> str | None:
    """Why a folder cannot be at ``path`` (None: it looks possible), in a few words, from the nearest part
    of the path that exists: checked before any expensive work, so a bad --out or --results is refused at
    once rather than after the data is loaded. ``write``: it must also be writable (or creatable)."""
    path = os.path.abspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        return "is a file, not a folder"
    existing = path
    while not os.path.lexists(existing):  # lexists: False, never an error, where a folder above is not searchable
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"is inside {existing}, a file, not a folder"
    if not os.access(existing, os.X_OK):
        return f"cannot be reached: {existing} is not searchable by this user"
    if write and not os.access(existing, os.W_OK):
        return f"cannot be written: {existing} is not writable by this user"
    return None


def write_error(path, exc: OSError) -> WriteError:
    """``exc`` as a WriteError naming ``path`` (an existing WriteError is returned unchanged)."""
    if isinstance(exc, WriteError):
        return exc
    reason = exc.strerror or str(exc) or type(exc).__name__
    return WriteError(f"cannot write {path}: {reason}")


def atomic_write_bytes(path, data: bytes):
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    On failure nothing is left behind (the temporary file is removed) and the
    previous content of ``path``, if any, is unchanged.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; records are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj) -> str:
    """Standard JSON only: NaN and infinities are an error (ValueError), never written as ``NaN``."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"


def atomic_write_json(path, obj):
    atomic_write_text(path, dumps_json(obj))


def atomic_write_csv(path, rows: list[dict]):
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def temp_path_for(path) -> Path:
    """A sibling temporary name for libraries that write files themselves (e.g. Keras weights)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{''.join(path.suffixes)}")
