"""Refusals before any work: a backend that is missing, a model too large for the machine, a
record that must not be overwritten, and a loss that stopped being finite."""

from __future__ import annotations

import importlib.util
import os
import sys

from .config import RunConfig

class RunConflict(RuntimeError):
    """The output folder holds a different configuration's record, or a corrupt one."""


class RunRefused(ValueError):
    """The run cannot train here (backend missing, model too large, output path unusable); nothing was written."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: the run stops and is recorded as failed."""


BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def check_backend_installed(backend: str):
    module = BACKEND_MODULES.get(backend, backend)
    if importlib.util.find_spec(module) is None:
        raise RunRefused(f"backend {backend!r} needs the {module} package, which is not installed "
                         f"(pip install {module}, or choose another --backend)")


def training_memory_estimate(config: RunConfig, num_classes: int = 10) -> int:
    """A lower bound of the memory (bytes) one training step of ``config`` needs, in float32.

    Weights, gradients and AdamW's two slots (4 copies of the parameters), and for
    a ConvMixer the activations backpropagation keeps: the stem's two and at least
    four per block (the depthwise and pointwise convolutions' outputs and their
    normalisations), each batch x tokens x width. The real need is higher; a run
    whose lower bound exceeds the machine's memory cannot train, so it is refused
    before any work.
    """
    architecture = getattr(config, "architecture", "convmixer")
    if architecture != "convmixer":  # the baselines: their parameters alone
        from ..models.baselines import count_model_parameters

        return 4 * 4 * count_model_parameters(architecture, config.model_hyperparameters, num_classes)
    from ..models.convmixer import count_parameters

    params = count_parameters(config.width, config.depth, config.patch_size, config.kernel_size, num_classes)
    tokens = (32 // config.patch_size) ** 2
    activations = config.batch_size * tokens * config.width * (2 + 4 * config.depth)
    return 4 * (4 * params + activations)


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: RunConfig, available: int | None = None):
    need = training_memory_estimate(config)
    available = physical_memory() if available is None else available
    if available and need > available:
        raise RunRefused(
            f"{config.run_id} (batch {config.batch_size}) needs at least {need / 2**30:,.1f} GiB to train "
            f"(parameters, optimizer state, activations), more than this machine's {available / 2**30:,.1f} GiB "
            "of memory"
        )


def select_backend(backend: str):
    """Make Keras use ``backend``; an error if Keras is already running another one."""
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise RuntimeError(
                f"backend {backend!r} requested but Keras was already imported with "
                f"{keras.backend.backend()!r}; set KERAS_BACKEND={backend} before importing keras"
            )
    else:
        os.environ["KERAS_BACKEND"] = backend
