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
    TensorFlow is imported, so this only helps if ``convmixer`` is imported first;
    ``onednn_enabled`` reports what TensorFlow actually does.
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(ONEDNN_VARIABLE, "1")


def onednn_enabled():
    """Whether the imported TensorFlow runs oneDNN kernels (None if TensorFlow is not in use)."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a TensorFlow without the probe
        return None
    return bool(_pywrap_util_port.IsMklEnabled())
