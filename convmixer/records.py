"""Run records on disk: atomic writes, and the provenance every run stores.

A run folder is complete exactly when ``metrics.json`` exists with status
"completed"; it is written last, by rename, so an interrupted run never leaves
a record that looks complete.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
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

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path, data: bytes):
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; records are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


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


REPOSITORY = Path(__file__).resolve().parent.parent


def portable_path(source) -> str:
    """How a record names a local file: relative to the repository when inside it, else by file name.

    Records never hold a machine's absolute paths; the data fingerprint, not the
    path, says which data a run used. Named sources ("cifar10", "synthetic:...") pass through.
    """
    text = str(source)
    if not os.path.isabs(text):
        return text
    try:
        return Path(text).resolve().relative_to(REPOSITORY).as_posix()
    except ValueError:
        return Path(text).name


def temp_path_for(path) -> Path:
    """A sibling temporary name for libraries that write files themselves (e.g. Keras weights)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{''.join(path.suffixes)}")


def git_commit(cwd=None) -> str:
    """The commit of the code that produced a run ("+dirty" when the tree has changes)."""
    here = Path(cwd or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict:
    import keras
    import numpy

    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": numpy.__version__}
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    elif backend == "jax":
        import jax

        versions["jax"] = jax.__version__
    elif backend == "torch":
        import torch

        versions["torch"] = torch.__version__
    return versions


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description() -> dict:
    """What trained the run: kind (CPU/GPU/TPU), a name, and the CPU cores Keras could use."""
    import keras

    kind, name = "CPU", cpu_name()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        tpus = tf.config.list_physical_devices("TPU")
        if tpus:
            kind, name = "TPU", tpus[0].name
        elif gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            kind, name = "GPU", details.get("device_name", gpus[0].name)
    elif backend == "jax":
        import jax

        dev = jax.devices()[0]
        if dev.platform != "cpu":
            kind, name = dev.platform.upper(), getattr(dev, "device_kind", str(dev))
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            kind, name = "GPU", torch.cuda.get_device_name(0)
    return {"kind": kind, "name": name, "cpu_count": os.cpu_count(), "backend": backend}
