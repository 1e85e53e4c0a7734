"""MLP-Mixer (Tolstikhin et al. 2021) for 32x32 images, in Keras 3 layers.

::

    x = Conv2D(dim, patch, strides=patch)(image), flattened to S = (32 / patch)^2 tokens of dim channels
    depth x:  x += transpose(Dense(S)(GELU(Dense(token_mlp_dim)(transpose(LayerNorm(x))))))   token mixing
              x += Dense(dim)(GELU(Dense(channel_mlp_dim)(LayerNorm(x))))                    channel mixing
    LayerNorm, mean over tokens, Dense(num_classes)

The Conv2D with kernel = stride = patch is the paper's per-patch fully-connected
layer. As in the paper there is no position embedding (token mixing is
position-aware already) and the head reads the mean of the tokens. LayerNorm
eps is 1e-6, the reference implementation's (google-research/vision_transformer);
GELU is the exact (erf) form, like ConvMixer's. There is no dropout, because
ConvMixer has none. Inputs are pixels in [0, 255]; the model normalises them
like ``build_convmixer``.
"""

from __future__ import annotations

from ..cifar10 import IMAGE_SIZE
from .convmixer import check_int, check_normalization, check_patch_size, image_tokens

LN_EPSILON = 1e-6


def validate_mlp_mixer(
    dim, depth, patch_size, token_mlp_dim, channel_mlp_dim, num_classes=10, normalization="rescale"
):
    """Raise ValueError naming the parameter and what is allowed, before any Keras work."""
    for name, value in (
        ("dim", dim),
        ("depth", depth),
        ("token_mlp_dim", token_mlp_dim),
        ("channel_mlp_dim", channel_mlp_dim),
        ("num_classes", num_classes),
    ):
        check_int(name, value)
    check_patch_size(patch_size, IMAGE_SIZE)
    check_normalization(normalization)


def count_mlp_mixer_parameters(dim, depth, patch_size, token_mlp_dim, channel_mlp_dim, num_classes=10, channels=3):
    """Trainable parameters, computed without building the model."""
    validate_mlp_mixer(dim, depth, patch_size, token_mlp_dim, channel_mlp_dim, num_classes)
    tokens = (IMAGE_SIZE // patch_size) ** 2
    layer_norm = 2 * dim
    token_mixing = tokens * token_mlp_dim + token_mlp_dim + token_mlp_dim * tokens + tokens
    channel_mixing = dim * channel_mlp_dim + channel_mlp_dim + channel_mlp_dim * dim + dim
    block = layer_norm + token_mixing + layer_norm + channel_mixing
    embedding = channels * patch_size * patch_size * dim + dim
    return embedding + depth * block + layer_norm + dim * num_classes + num_classes


def count_mlp_mixer_macs(dim, depth, patch_size, token_mlp_dim, channel_mlp_dim, num_classes=10, channels=3):
    """Multiply-adds per image in the forward pass (convmixer.MACS_COVER), computed without building the model."""
    validate_mlp_mixer(dim, depth, patch_size, token_mlp_dim, channel_mlp_dim, num_classes)
    tokens = (IMAGE_SIZE // patch_size) ** 2
    embedding = tokens * channels * patch_size * patch_size * dim
    token_mixing = 2 * dim * tokens * token_mlp_dim  # per channel: tokens -> token_mlp_dim -> tokens
    channel_mixing = 2 * tokens * dim * channel_mlp_dim  # per token: dim -> channel_mlp_dim -> dim
    return embedding + depth * (token_mixing + channel_mixing) + dim * num_classes


def build_mlp_mixer(
    dim, depth, patch_size, token_mlp_dim, channel_mlp_dim, num_classes=10, normalization="rescale"
):
    """Return a ``keras.Model`` mapping (N, 32, 32, 3) images in [0, 255] to float32 logits."""
    validate_mlp_mixer(dim, depth, patch_size, token_mlp_dim, channel_mlp_dim, num_classes, normalization)
    import keras
    from keras import layers

    tokens = (IMAGE_SIZE // patch_size) ** 2
    inputs, x = image_tokens(dim, patch_size, normalization)
    for i in range(depth):
        y = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"block{i}_token_norm")(x)
        y = layers.Permute((2, 1), name=f"block{i}_to_channels_tokens")(y)  # Dense now mixes along tokens
        y = layers.Dense(token_mlp_dim, activation="gelu", name=f"block{i}_token_hidden")(y)
        y = layers.Dense(tokens, name=f"block{i}_token_out")(y)
        y = layers.Permute((2, 1), name=f"block{i}_to_tokens_channels")(y)
        x = layers.Add(name=f"block{i}_token_residual")([x, y])
        y = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"block{i}_channel_norm")(x)
        y = layers.Dense(channel_mlp_dim, activation="gelu", name=f"block{i}_channel_hidden")(y)
        y = layers.Dense(dim, name=f"block{i}_channel_out")(y)
        x = layers.Add(name=f"block{i}_channel_residual")([x, y])
    x = layers.LayerNormalization(epsilon=LN_EPSILON, name="final_norm")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)  # mean over tokens
    # float32 logits under a mixed-precision policy, so the softmax/loss stay accurate
    outputs = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=f"mlp_mixer_{dim}_{depth}_p{patch_size}")
