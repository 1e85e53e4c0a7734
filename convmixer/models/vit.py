"""Vision Transformer (Dosovitskiy et al. 2021) for 32x32 images, in Keras 3 layers.

::

    tokens = Conv2D(dim, patch, strides=patch)(image), flattened to (32 / patch)^2 tokens
    tokens += learned position embedding
    depth x:  tokens += MultiHeadAttention(LayerNorm(tokens))          (pre-norm)
              tokens += Dense(dim)(GELU(Dense(mlp_ratio * dim)(LayerNorm(tokens))))
    LayerNorm, mean over tokens, Dense(num_classes)

The classifier reads the *mean* of the tokens rather than a class token: no
extra parameters, and the ViT paper finds the two equally good once each has
its own learning rate (its Appendix D.3). There is no dropout,
because ConvMixer has none and the comparison gives every architecture the
same regularisation. LayerNorm eps is 1e-6, the reference implementation's
(google-research/vision_transformer); GELU is the exact (erf) form, like ConvMixer's.
Inputs are pixels in [0, 255]; the model normalises them like ``build_convmixer``.
"""

from __future__ import annotations

from ..cifar10 import IMAGE_SIZE
from .convmixer import check_int, check_normalization, check_patch_size, image_tokens

LN_EPSILON = 1e-6
_POSITION_EMBEDDING = []  # the layer class, once defined


def position_embedding_class():
    """A layer adding a learned (tokens, dim) table to (N, tokens, dim) inputs.

    Defined on first use, not at import: the run configuration picks the Keras
    backend, so importing this module must not import Keras.
    """
    if not _POSITION_EMBEDDING:
        import keras

        @keras.saving.register_keras_serializable(package="convmixer")
        class PositionEmbedding(keras.layers.Layer):
            def build(self, input_shape):
                self.embedding = self.add_weight(
                    shape=tuple(input_shape[1:]),
                    initializer=keras.initializers.RandomNormal(stddev=0.02),
                    name="embedding",
                )

            def call(self, x):
                return x + self.embedding  # Keras casts the float32 variable to the compute dtype

        _POSITION_EMBEDDING.append(PositionEmbedding)
    return _POSITION_EMBEDDING[0]


def _mlp_dim(dim, mlp_ratio):
    return int(round(mlp_ratio * dim))


def validate_vit(dim, depth, heads, mlp_ratio, patch_size, num_classes=10, normalization="rescale"):
    """Raise ValueError naming the parameter and what is allowed, before any Keras work."""
    for name, value in (("dim", dim), ("depth", depth), ("heads", heads), ("num_classes", num_classes)):
        check_int(name, value)
    if dim % heads:
        raise ValueError(f"heads must divide dim={dim} (each head gets dim / heads channels), got {heads!r}")
    check_patch_size(patch_size, IMAGE_SIZE)
    if (
        not isinstance(mlp_ratio, (int, float))
        or isinstance(mlp_ratio, bool)
        or mlp_ratio <= 0
        or abs(mlp_ratio * dim - _mlp_dim(dim, mlp_ratio)) > 1e-9
    ):
        raise ValueError(f"mlp_ratio must be a number > 0 with mlp_ratio * dim a whole number, got {mlp_ratio!r}")
    check_normalization(normalization)


def count_vit_parameters(dim, depth, heads, mlp_ratio, patch_size, num_classes=10, channels=3):
    """Trainable parameters, computed without building the model."""
    validate_vit(dim, depth, heads, mlp_ratio, patch_size, num_classes)
    tokens = (IMAGE_SIZE // patch_size) ** 2
    hidden = _mlp_dim(dim, mlp_ratio)
    layer_norm = 2 * dim
    attention = 4 * (dim * dim + dim)  # query, key, value and output projections, each with bias
    mlp = dim * hidden + hidden + hidden * dim + dim
    block = layer_norm + attention + layer_norm + mlp
    embedding = channels * patch_size * patch_size * dim + dim + tokens * dim
    return embedding + depth * block + layer_norm + dim * num_classes + num_classes


def count_vit_macs(dim, depth, heads, mlp_ratio, patch_size, num_classes=10, channels=3):
    """Multiply-adds per image in the forward pass (convmixer.MACS_COVER), computed without building the model."""
    validate_vit(dim, depth, heads, mlp_ratio, patch_size, num_classes)
    tokens = (IMAGE_SIZE // patch_size) ** 2
    embedding = tokens * channels * patch_size * patch_size * dim
    projections = 4 * tokens * dim * dim  # query, key, value and output, heads * (dim / heads) = dim wide
    # scores (query . key) and the weighted sum of values: tokens x tokens x (dim / heads) per head
    attention = 2 * tokens * tokens * dim
    mlp = 2 * tokens * dim * _mlp_dim(dim, mlp_ratio)
    return embedding + depth * (projections + attention + mlp) + dim * num_classes


def build_vit(dim, depth, heads, mlp_ratio, patch_size, num_classes=10, normalization="rescale"):
    """Return a ``keras.Model`` mapping (N, 32, 32, 3) images in [0, 255] to float32 logits."""
    validate_vit(dim, depth, heads, mlp_ratio, patch_size, num_classes, normalization)
    import keras
    from keras import layers

    inputs, x = image_tokens(dim, patch_size, normalization)
    x = position_embedding_class()(name="position_embedding")(x)
    for i in range(depth):
        y = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"block{i}_attention_norm")(x)
        y = layers.MultiHeadAttention(heads, dim // heads, name=f"block{i}_attention")(y, y)
        x = layers.Add(name=f"block{i}_attention_residual")([x, y])
        y = layers.LayerNormalization(epsilon=LN_EPSILON, name=f"block{i}_mlp_norm")(x)
        y = layers.Dense(_mlp_dim(dim, mlp_ratio), activation="gelu", name=f"block{i}_mlp_hidden")(y)
        y = layers.Dense(dim, name=f"block{i}_mlp_out")(y)
        x = layers.Add(name=f"block{i}_mlp_residual")([x, y])
    x = layers.LayerNormalization(epsilon=LN_EPSILON, name="final_norm")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)  # mean over tokens, no class token
    # float32 logits under a mixed-precision policy, so the softmax/loss stay accurate
    outputs = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=f"vit_{dim}_{depth}_h{heads}_p{patch_size}")
