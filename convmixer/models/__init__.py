"""The models: ConvMixer and claim 1's baselines, each built from Keras 3 layers only.

  convmixer   the ConvMixer builder (the official PyTorch definition, layer for layer) and its counts
  layers      Keras layers with faster CPU arithmetic (same weights, same results)
  resnet      a CIFAR pre-activation ResNet
  vit         a Vision Transformer
  mlp_mixer   an MLP-Mixer
  baselines   one registry: build any architecture, count its parameters and multiply-adds, and size-match
              a baseline to a ConvMixer

Every model takes pixels in [0, 255] and normalises them itself. Keras is
imported only when a model is built.
"""

from .baselines import (
    ARCHITECTURES,
    BASELINES,
    HYPERPARAMETERS,
    build_model,
    count_model_macs,
    count_model_parameters,
    matched_hyperparameters,
)
from .convmixer import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    PAPER_PARAM_COUNTS,
    build_convmixer,
    count_macs,
    count_parameters,
    trainable_parameters,
    validate_architecture,
)

__all__ = [
    "ARCHITECTURES",
    "BASELINES",
    "HYPERPARAMETERS",
    "build_model",
    "count_model_macs",
    "count_model_parameters",
    "matched_hyperparameters",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "PAPER_PARAM_COUNTS",
    "build_convmixer",
    "count_macs",
    "count_parameters",
    "trainable_parameters",
    "validate_architecture",
]
