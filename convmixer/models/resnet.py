"""CIFAR-style pre-activation ResNet (He et al. 2016, "Identity Mappings in Deep Residual Networks").

The 3-stage CIFAR layout of the paper, with the stage widths scaled by ``width``::

    conv3x3(width)
    stage 1: blocks_per_stage x block(width,     stride 1)
    stage 2: blocks_per_stage x block(2 * width, first stride 2)
    stage 3: blocks_per_stage x block(4 * width, first stride 2)
    BN, ReLU, global average pool, dense(num_classes)

    block(out, stride): y = BN-ReLU(x); z = conv3x3(out, stride)(y); z = BN-ReLU(z); z = conv3x3(out)(z)
                        return z + (conv1x1(out, stride)(y) if the shape changes else x)

``width=16`` gives the paper's 16/32/64 channels; ``blocks_per_stage`` n gives
ResNet-(6n+2) (1, 2, 3 -> ResNet-8, -14, -20). As in the authors' code
(KaimingHe/resnet-1k-layers, resnet-pre-act.lua, there with bottleneck blocks) the
stem is a bare convolution, every block pre-activates its own input, and a
projection shortcut reads that pre-activated input BN-ReLU(x), not x.

Convolutions have no bias (each feeds a BatchNorm, whose shift makes a bias
redundant) and are initialised N(0, 2 / (k * k * out_channels)), both as in that
code. BatchNorm uses model.py's PyTorch defaults, like ConvMixer's.
Inputs are pixels in [0, 255]; the model normalises them like ``build_convmixer``.
"""

from __future__ import annotations

from .convmixer import BN_EPSILON, BN_MOMENTUM, input_normalization, check_int, check_normalization

STAGES = 3  # the CIFAR layout: 32x32, 16x16 and 8x8 feature maps


def validate_resnet(width, blocks_per_stage, num_classes=10, normalization="rescale"):
    """Raise ValueError naming the parameter and what is allowed, before any Keras work."""
    for name, value in (("width", width), ("blocks_per_stage", blocks_per_stage), ("num_classes", num_classes)):
        check_int(name, value)
    check_normalization(normalization)


def _stage_widths(width):
    return [width * 2**s for s in range(STAGES)]


def count_resnet_parameters(width, blocks_per_stage, num_classes=10, channels=3):
    """Trainable parameters, computed without building the model (BN moving statistics are not trainable)."""
    validate_resnet(width, blocks_per_stage, num_classes)
    total = 9 * channels * width  # stem conv, no bias
    in_ch = width
    for stage, out_ch in enumerate(_stage_widths(width)):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            total += 2 * in_ch + 9 * in_ch * out_ch  # BN, conv3x3
            total += 2 * out_ch + 9 * out_ch * out_ch  # BN, conv3x3
            if stride != 1 or in_ch != out_ch:
                total += in_ch * out_ch  # 1x1 projection shortcut
            in_ch = out_ch
    total += 2 * in_ch  # final BN
    return total + in_ch * num_classes + num_classes


def count_resnet_macs(width, blocks_per_stage, num_classes=10, channels=3):
    """Multiply-adds per image in the forward pass (convmixer.MACS_COVER), computed without building the model."""
    validate_resnet(width, blocks_per_stage, num_classes)
    side = 32
    total = side * side * 9 * channels * width  # stem conv
    in_ch = width
    for stage, out_ch in enumerate(_stage_widths(width)):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            side //= stride  # "same" padding: a stride-2 conv halves the map, and both convs see the new size
            total += side * side * 9 * (in_ch * out_ch + out_ch * out_ch)
            if stride != 1 or in_ch != out_ch:
                total += side * side * in_ch * out_ch  # 1x1 projection shortcut
            in_ch = out_ch
    return total + in_ch * num_classes


def build_resnet(width, blocks_per_stage, num_classes=10, normalization="rescale"):
    """Return a ``keras.Model`` mapping (N, 32, 32, 3) images in [0, 255] to float32 logits."""
    validate_resnet(width, blocks_per_stage, num_classes, normalization)
    import keras
    from keras import layers

    def conv(filters, size, stride, name):
        init = keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")
        return layers.Conv2D(
            filters, size, strides=stride, padding="same", use_bias=False, kernel_initializer=init, name=name
        )

    from .layers import BatchNormalization  # Keras' BatchNormalization, fused on the CPU (layers.py)

    def bn_relu(x, prefix):
        x = BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_bn")(x)
        return layers.Activation("relu", name=f"{prefix}_relu")(x)

    inputs = keras.Input((32, 32, 3), name="image")
    x = input_normalization(normalization)(inputs)
    x = conv(width, 3, 1, "stem_conv")(x)
    in_ch = width
    for stage, out_ch in enumerate(_stage_widths(width)):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            name = f"stage{stage}_block{block}"
            pre = bn_relu(x, f"{name}_pre")
            if stride != 1 or in_ch != out_ch:
                shortcut = conv(out_ch, 1, stride, f"{name}_projection")(pre)
            else:
                shortcut = x
            y = conv(out_ch, 3, stride, f"{name}_conv1")(pre)
            y = bn_relu(y, f"{name}_mid")
            y = conv(out_ch, 3, 1, f"{name}_conv2")(y)
            x = layers.Add(name=f"{name}_residual")([y, shortcut])
            in_ch = out_ch
    x = bn_relu(x, "final")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    # float32 logits under a mixed-precision policy, so the softmax/loss stay accurate
    outputs = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=f"resnet{6 * blocks_per_stage + 2}_w{width}")
