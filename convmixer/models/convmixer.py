"""ConvMixer, layer for layer as the official PyTorch definition.

Reference (locuslab/convmixer, ``convmixer.py``)::

    nn.Sequential(
        nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size), GELU, BatchNorm2d(dim),
        *[nn.Sequential(
            Residual(nn.Sequential(
                nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"), GELU, BatchNorm2d(dim))),
            nn.Conv2d(dim, dim, kernel_size=1), GELU, BatchNorm2d(dim),
        ) for _ in range(depth)],
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(dim, n_classes))

Two details matter for porting weights and for matching numbers:

* PyTorch's ``nn.GELU()`` is the exact (erf) GELU. ``keras.activations.gelu`` is
  exact by default (``approximate=False``; ``keras.ops.gelu`` is not), and the
  tests check the layer against the erf formula.
* PyTorch BatchNorm uses eps=1e-5 and updates running stats as
  ``running = (1 - 0.1) * running + 0.1 * batch``; Keras' ``momentum`` is the weight
  of the *old* value, so PyTorch's 0.1 is Keras' 0.9 (Keras' default eps is 1e-3).

Inputs are images in the uint8 range [0, 255] (any dtype); the model normalises them
itself (x/255, or the official script's CIFAR mean/std) so that saved models are
self-contained and augmentation can work on plain pixels.
"""

from __future__ import annotations

import math

from ..cifar10 import CIFAR10_MEAN, CIFAR10_STD, IMAGE_SIZE

# Trainable-parameter counts from the paper's CIFAR-10 table (ConvMixer-256/8),
# keyed by (patch_size, kernel_size). Tests and the report check the builder
# against them.
PAPER_PARAM_COUNTS = {
    (1, 3): 559_114,
    (1, 5): 591_882,
    (1, 9): 706_570,
    (2, 9): 708_874,
    (4, 9): 718_090,
}

BN_EPSILON = 1e-5  # PyTorch BatchNorm2d default
BN_MOMENTUM = 0.9  # Keras convention for PyTorch's momentum=0.1
ACTIVATIONS = ("gelu", "relu")
# How the model maps [0, 255] pixels to network inputs. "rescale" is x/255 (the
# Keras example the reference report used); "mean_std" is the per-channel CIFAR-10
# mean/std standardisation of the official training script.
INPUT_NORMALIZATIONS = ("rescale", "mean_std")


def check_int(name, value, low=1):
    """One line naming ``name`` unless ``value`` is an integer >= ``low`` (bools are not integers here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def check_patch_size(patch_size, image_size=32):
    """One line naming ``patch_size`` unless it divides the image size."""
    if not isinstance(patch_size, int) or isinstance(patch_size, bool) or patch_size < 1 or image_size % patch_size:
        allowed = [d for d in range(1, image_size + 1) if image_size % d == 0]
        raise ValueError(f"patch_size must divide the image size {image_size}: allowed {allowed}, got {patch_size!r}")


def check_normalization(normalization):
    if normalization not in INPUT_NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {list(INPUT_NORMALIZATIONS)}, got {normalization!r}")


def validate_architecture(
    width, depth, patch_size, kernel_size, image_size=32, num_classes=10, activation="gelu", normalization="rescale"
):
    """Raise ValueError naming the parameter and what is allowed, before any Keras work."""
    for name, value in (("width", width), ("depth", depth), ("num_classes", num_classes)):
        check_int(name, value)
    check_patch_size(patch_size, image_size)
    if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 1 (1, 3, 5, 7, 9, ...), got {kernel_size!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    check_normalization(normalization)


def count_parameters(width, depth, patch_size, kernel_size, num_classes=10, channels=3):
    """Trainable parameters of ConvMixer-width/depth, computed without building it.

    Lets the report and the config check sizes instantly; the tests check that
    it agrees with the Keras model and with the paper.
    """
    bn = 2 * width  # gamma and beta; moving statistics are not trainable
    stem = channels * patch_size * patch_size * width + width + bn
    depthwise = kernel_size * kernel_size * width + width + bn
    pointwise = width * width + width + bn
    head = width * num_classes + num_classes
    return stem + depth * (depthwise + pointwise) + head


# What a multiply-add count covers, for every model's counter: the multiplications of the layers that
# carry weight matrices or mix tokens (convolutions, dense layers, attention's two matrix products).
# Normalisation, activations, pooling, residual adds and bias adds are left out, as fvcore and ptflops
# do: each is a few operations per activation value, not a matrix product.
MACS_COVER = "convolutions, dense layers and attention products; not normalisation, activations, pooling or adds"


def count_macs(width, depth, patch_size, kernel_size, num_classes=10, channels=3, image_size=32):
    """Multiply-adds per image in the forward pass (``MACS_COVER``), computed without building the model."""
    validate_architecture(width, depth, patch_size, kernel_size, image_size, num_classes)
    positions = (image_size // patch_size) ** 2  # every layer after the stem keeps the patch grid
    stem = positions * channels * patch_size * patch_size * width
    depthwise = positions * kernel_size * kernel_size * width
    pointwise = positions * width * width
    return stem + depth * (depthwise + pointwise) + width * num_classes


def input_normalization(normalization):
    """The first layer of every model here: images in [0, 255] to [0, 1] ("rescale") or to CIFAR-10's
    per-channel mean and standard deviation ("mean_std")."""
    from keras import layers

    if normalization == "rescale":
        return layers.Rescaling(1.0 / 255.0, name="rescale")
    mean = [255.0 * m for m in CIFAR10_MEAN]
    variance = [(255.0 * s) ** 2 for s in CIFAR10_STD]
    return layers.Normalization(mean=mean, variance=variance, name="mean_std")


def image_tokens(dim, patch_size, normalization):
    """The ViT's and MLP-Mixer's stem: (N, 32, 32, 3) images in [0, 255] -> (inputs, (N, tokens, dim) patch
    embeddings), the patch embedding a strided convolution (one matmul on the CPU, layers.py)."""
    import keras
    from keras import layers

    from .layers import Conv2D

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = input_normalization(normalization)(inputs)
    x = Conv2D(dim, patch_size, strides=patch_size, name="patch_embedding")(x)
    return inputs, layers.Reshape(((IMAGE_SIZE // patch_size) ** 2, dim), name="tokens")(x)


def build_convmixer(
    width,
    depth,
    patch_size,
    kernel_size,
    num_classes=10,
    activation="gelu",
    image_size=32,
    normalization="rescale",
):
    """Return a ``keras.Model`` mapping (N, image_size, image_size, 3) images in [0, 255] to logits."""
    validate_architecture(width, depth, patch_size, kernel_size, image_size, num_classes, activation, normalization)
    import keras
    from keras import layers

    # Keras' layers, with faster CPU arithmetic for the same weights and results (layers.py)
    from .layers import Activation, BatchNormalization, Conv2D, DepthwiseConv2D

    def act_bn(x, prefix):
        x = Activation(activation, name=f"{prefix}_act")(x)
        return BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_bn")(x)

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = input_normalization(normalization)(inputs)
    x = Conv2D(width, patch_size, strides=patch_size, name="stem_conv")(x)
    x = act_bn(x, "stem")
    for i in range(depth):
        residual = x
        x = DepthwiseConv2D(kernel_size, padding="same", use_bias=True, name=f"block{i}_depthwise")(x)
        x = act_bn(x, f"block{i}_depthwise")
        x = layers.Add(name=f"block{i}_residual")([x, residual])
        x = Conv2D(width, 1, name=f"block{i}_pointwise")(x)
        x = act_bn(x, f"block{i}_pointwise")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    # float32 logits under a mixed-precision policy, so the softmax/loss stay accurate
    outputs = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=f"convmixer_{width}_{depth}_p{patch_size}_k{kernel_size}")


def pytorch_default_init(model, seed: int) -> None:
    """Re-draw every convolution and dense layer's weights as PyTorch initialises nn.Conv2d and nn.Linear
    (the official script's model), in place: kernel and bias uniform in +-1/sqrt(fan_in)
    (``kaiming_uniform_(a=sqrt(5))`` for the kernel), fan_in = inputs x kernel area, where a depthwise
    convolution (``groups=dim``) has one input per output. BatchNorm starts at 1 and 0 in both frameworks.

    Draws from numpy with ``seed``, layer by layer in the model's order, so a run is repeatable.
    """
    import keras
    import numpy as np

    rng = np.random.default_rng([seed, 0x7079746F])  # "pyto": apart from every other stream of the seed
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel = layer.kernel
            fan_in = kernel.shape[0] * kernel.shape[1]
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = layer.kernel
            fan_in = int(np.prod(kernel.shape[:-1]))
        else:
            continue
        bound = 1.0 / np.sqrt(fan_in)
        kernel.assign(rng.uniform(-bound, bound, kernel.shape).astype(kernel.dtype))
        if layer.bias is not None:
            layer.bias.assign(rng.uniform(-bound, bound, layer.bias.shape).astype(layer.bias.dtype))


def trainable_parameters(model):
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
