"""Per-device speed settings: what makes training fast differs by device.

On a CPU the fastest path is TensorFlow with oneDNN, float32 and no XLA (XLA's
and JAX's CPU depthwise convolution is 10-70x slower here, and bfloat16 without
AMX halves speed). On a GPU it is XLA and mixed precision. ``choose_settings``
picks per device; a run's ``speed`` parameter can override each choice and the
choice is recorded in the run's metrics.
"""

from __future__ import annotations

import os
import sys

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn():
    """Turn TensorFlow's oneDNN kernels on unless the user chose otherwise.

    TensorFlow enables oneDNN by default only on CPUs with AVX-512-class features;
    on the AVX/FMA CPU here it stays off, and turning it on speeds a ConvMixer-256/8
    training step up 2.2x (benchmarks/README.md). The variable is read when
    TensorFlow is imported, so the CLI, ``train`` and the bench's children call this
    before anything imports it; ``onednn_enabled`` reports what TensorFlow actually does.
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(ONEDNN_VARIABLE, "1")


QUIET_MARK = "CONVMIXER_QUIET_TF"  # set when this package (not the user) chose TF_CPP_MIN_LOG_LEVEL


def quiet_tensorflow_logs() -> bool:
    """Keep TensorFlow's C++ start-up lines off stderr, unless the user set TF_CPP_MIN_LOG_LEVEL.

    Called by the command line and the training notebook; child processes (the
    sweep's notebook kernels) inherit the choice. Returns whether logs are quiet.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ and os.environ.get(QUIET_MARK) != "1":
        return False  # the user's own setting wins
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ[QUIET_MARK] = "1"
    return True


def import_tensorflow_quietly():
    """Import TensorFlow now, with stderr's file descriptor on /dev/null during the import.

    Since TensorFlow 2.19, TF_CPP_MIN_LOG_LEVEL no longer silences the lines its
    C++ libraries print while loading ("All log messages before
    absl::InitializeLog() ...", "oneDNN custom operations are on", "Could not
    find cuda drivers", each twice), so an error message would come after nine
    lines of them. Does nothing unless ``quiet_tensorflow_logs`` is in effect;
    an import error still reaches the user (raised after stderr is restored).
    """
    import importlib.util

    if "tensorflow" in sys.modules or os.environ.get(QUIET_MARK) != "1":
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def onednn_enabled(backend="tensorflow"):
    """Whether the imported TensorFlow runs oneDNN kernels (None if Keras does not run on TensorFlow)."""
    if backend != "tensorflow" or "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a TensorFlow without the probe
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


# Precision choices a run may ask for; "auto" lets choose_settings decide per device.
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
JIT_CHOICES = ("auto", "on", "off")


def validate_speed_options(precision, jit_compile):
    """ValueError naming the parameter and its allowed values (called by RunConfig)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if jit_compile not in JIT_CHOICES:
        raise ValueError(f"jit_compile must be one of {list(JIT_CHOICES)}, got {jit_compile!r}")


def choose_settings(device_kind, precision="auto", jit_compile="auto", gpu_compute_capability=None,
                    backend="tensorflow") -> dict:
    """The speed settings for one run: ``{"precision": ..., "jit_compile": bool, "chosen_by": ...}``.

    * CPU: float32 and no XLA. XLA's and JAX's CPU depthwise convolution is
      10-70x slower for this model, and mixed bfloat16 halves speed without AMX
      (benchmarks/README.md); oneDNN is turned on by ``prefer_onednn``.
    * GPU/TPU: XLA (it fuses the elementwise BatchNorm/GELU work that dominates a
      ConvMixer step) and mixed precision: bfloat16 where the hardware has it
      (compute capability >= 8.0, and TPUs), which needs no loss scaling, else
      float16 with Keras' automatic loss scaling.

    * JAX compiles with XLA on every device: without ``jit_compile`` Keras runs
      JAX op by op, which is slower still.

    ``precision`` / ``jit_compile`` other than "auto" override the choice; the
    result says which settings were chosen and which were asked for.
    """
    validate_speed_options(precision, jit_compile)
    accelerator = device_kind != "CPU"
    if precision == "auto":
        if not accelerator:
            chosen_precision = "float32"
        elif device_kind == "TPU" or (gpu_compute_capability is not None and gpu_compute_capability >= 8.0):
            chosen_precision = "mixed_bfloat16"
        else:
            chosen_precision = "mixed_float16"
    else:
        chosen_precision = precision
    chosen_jit = (accelerator or backend == "jax") if jit_compile == "auto" else jit_compile == "on"
    return {
        "precision": chosen_precision,
        "jit_compile": chosen_jit,
        "requested": {"precision": precision, "jit_compile": jit_compile},
        "device_kind": device_kind,
    }


def settings_for_device(device_kind, precision="auto", jit_compile="auto") -> dict:
    """``choose_settings`` for the running Keras backend, probing the GPU's compute capability if any."""
    import keras

    capability = gpu_compute_capability() if device_kind == "GPU" else None
    return choose_settings(device_kind, precision, jit_compile, capability, backend=keras.backend.backend())


def gpu_compute_capability():
    """Compute capability of the first GPU as a float (8.0, 9.0, ...), or None."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                major, minor = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
                return major + minor / 10
        elif backend == "jax":
            import jax

            dev = jax.devices()[0]
            if dev.platform == "gpu" and getattr(dev, "compute_capability", None):
                return float(dev.compute_capability)
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                major, minor = torch.cuda.get_device_capability(0)
                return major + minor / 10
    except Exception:  # a probe that fails must not stop training: fall back to float16
        return None
    return None
