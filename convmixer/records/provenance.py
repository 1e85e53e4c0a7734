"""What a record says about where it came from: code commit, libraries, device, portable paths."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from ..paths import REPOSITORY, portable_path  # noqa: F401 (re-exported: records names them)


def default_results_dir() -> Path:
    """Where a run writes when no folder is given: the checkout's ``results/`` when the package runs from
    a clone of the repository (the sweep's default from its root), whatever the working directory;
    ``./results`` when it is installed from an archive (Colab opens a notebook without a checkout)."""
    if (REPOSITORY / "pyproject.toml").is_file() and (REPOSITORY / "notebooks").is_dir():
        return REPOSITORY / "results"
    return Path.cwd() / "results"


# Set by ``sweep --allow-dirty`` for its notebook kernels (and forwarded to a cluster's workers): the
# run's code has uncommitted changes, and its record says so (metrics.json's allow_dirty).
ALLOW_DIRTY_ENV = "CONVMIXER_ALLOW_DIRTY"

# What decides how a run trains: the package, the notebooks papermill executes, the grids and the
# dependencies. Changes elsewhere (results/, report/, README.md, which building the report rewrites)
# do not make the code that produced a run unrecoverable.
CODE_PATHS = (":(top)convmixer", ":(top)notebooks", ":(top)grids", ":(top)pyproject.toml")


def git_commit(cwd=None) -> str:
    """The commit of the code that produced a run ("+dirty" when the code has uncommitted changes)."""
    here = Path(cwd or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            cwd=here, capture_output=True, text=True, timeout=10, check=True,  # a failed check is not "clean"
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


def parse_cpuinfo(text: str) -> dict:
    """/proc/cpuinfo's text as the first CPU's ``model_name`` and ``flags`` and every core's clock (``mhz``):
    the one reader of that file, for the records' CPU name and vector extension and for bench's peak."""
    info = {"model_name": None, "flags": frozenset(), "mhz": []}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and info["model_name"] is None:
            info["model_name"] = value.strip()
        elif key == "flags" and not info["flags"]:
            info["flags"] = frozenset(value.split())
        elif key == "cpu MHz":
            try:
                info["mhz"].append(float(value))
            except ValueError:
                pass
    return info


def read_cpuinfo(path="/proc/cpuinfo") -> dict:
    """``parse_cpuinfo`` of ``path``; empty fields where it cannot be read (not Linux, say)."""
    try:
        return parse_cpuinfo(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return parse_cpuinfo("")


def cpu_name() -> str:
    return read_cpuinfo()["model_name"] or platform.processor() or platform.machine()


# Widest vector instruction set first: CPUs sold under one name ("AMD EPYC") differ here, and
# it changes CPU timings (TensorFlow turns oneDNN on by itself only with AVX-512).
VECTOR_EXTENSIONS = ("avx512f", "avx2", "avx")


def cpu_vector_extension(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's widest vector extension from ``VECTOR_EXTENSIONS``, or None where unknown."""
    flags = read_cpuinfo(cpuinfo_path)["flags"]
    return next((ext for ext in VECTOR_EXTENSIONS if ext in flags), None)


def device_description() -> dict:
    """What trained the run: kind (CPU/GPU/TPU), a name, the CPU's vector extension and cores."""
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
    return {"kind": kind, "name": name, "cpu_vector_extension": cpu_vector_extension(),
            "cpu_count": os.cpu_count(), "backend": backend}
