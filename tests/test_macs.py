"""Multiply-adds per image: the counters in convmixer/models against counts made another way.

Two independent checks. A layer (or block) counted by hand from its shapes, as the
difference between two depths; and the whole model, walked layer by layer after
Keras has built it: every kernel's size times the positions Keras applies it at
(read from the layer's output shape), plus attention's two matrix products. The
walk knows nothing of the counters' formulas, so a wrong stride, token count or
width in a counter shows up as a mismatch.
"""

import math

import pytest

from convmixer.models import baselines
from convmixer.models.baselines import build_model, count_model_macs
from convmixer.models.convmixer import count_macs
from convmixer.models.mlp_mixer import count_mlp_mixer_macs
from convmixer.models.resnet import count_resnet_macs
from convmixer.models.vit import count_vit_macs

# Claim 1's models as trained (grids/cpu-architectures.yaml and the ConvMixers of grids/cpu-one-cycle.yaml).
CLAIM1 = [
    ("convmixer", {"width": 64, "depth": 4, "patch_size": 2, "kernel_size": 9}),
    ("convmixer", {"width": 64, "depth": 4, "patch_size": 2, "kernel_size": 3}),
    ("convmixer", {"width": 64, "depth": 4, "patch_size": 4, "kernel_size": 9}),
    ("resnet", {"width": 6, "blocks_per_stage": 3}),
    ("vit", {"dim": 32, "depth": 4, "heads": 4, "mlp_ratio": 2, "patch_size": 4}),
    ("mlp_mixer", {"dim": 26, "depth": 4, "patch_size": 2, "token_mlp_dim": 13, "channel_mlp_dim": 52}),
]
SMALL = [
    ("resnet", {"width": 4, "blocks_per_stage": 2}),
    ("vit", {"dim": 12, "depth": 2, "heads": 3, "mlp_ratio": 1.5, "patch_size": 8}),
    ("mlp_mixer", {"dim": 6, "depth": 2, "patch_size": 8, "token_mlp_dim": 3, "channel_mlp_dim": 10}),
    ("convmixer", {"width": 8, "depth": 2, "patch_size": 1, "kernel_size": 5}),
]


def walked_macs(model):
    """Multiply-adds read off a built Keras model, independently of the counters."""
    import keras

    total = 0
    for layer in model.layers:
        kernels = [w for w in layer.weights if w.path.endswith("kernel")]
        if isinstance(layer, keras.layers.MultiHeadAttention):
            tokens = layer.output.shape[1]
            # query, key, value and output projections, each applied at every token
            total += sum(tokens * math.prod(k.shape) for k in kernels)
            heads_by_key_dim = math.prod(layer.query_dense.kernel.shape[1:])
            total += 2 * tokens * tokens * heads_by_key_dim  # scores and the weighted sum of values
        elif kernels:
            (kernel,) = kernels
            positions = math.prod(layer.output.shape[1:-1])  # pixels, tokens or channels it runs over
            total += positions * math.prod(kernel.shape)
    return total


@pytest.mark.parametrize("arch,hp", CLAIM1 + SMALL)
def test_counted_macs_equal_a_walk_over_the_built_model(arch, hp):
    num_classes = 7 if arch == "vit" else 10  # the head's count follows the classes
    model = build_model(arch, hp, num_classes=num_classes)
    assert count_model_macs(arch, hp, num_classes=num_classes) == walked_macs(model)


def test_one_block_of_each_model_counted_by_hand():
    # ConvMixer-64 p2 k9: a 16 x 16 grid; depthwise 9 x 9 per channel, then a 64 x 64 pointwise conv.
    assert count_macs(64, 2, 2, 9) - count_macs(64, 1, 2, 9) == 16 * 16 * (9 * 9 * 64 + 64 * 64) == 2_375_680
    # ResNet width 6: one more block per stage, two 3x3 convs each: 32x32 at 6, 16x16 at 12, 8x8 at 24 channels.
    one_per_stage = 2 * 9 * (32 * 32 * 6 * 6 + 16 * 16 * 12 * 12 + 8 * 8 * 24 * 24)
    assert count_resnet_macs(6, 3) - count_resnet_macs(6, 2) == one_per_stage == 1_990_656
    # ViT-32 at patch 4: 64 tokens; q, k, v, out 32x32; scores and values 64 x 64 x 32; MLP 32 -> 64 -> 32.
    vit_block = 4 * 64 * 32 * 32 + 2 * 64 * 64 * 32 + 2 * 64 * 32 * 64
    assert count_vit_macs(32, 2, 4, 2, 4) - count_vit_macs(32, 1, 4, 2, 4) == vit_block == 786_432
    # MLP-Mixer-26 at patch 2: 256 tokens; token MLP 256 -> 13 -> 256 per channel, channel MLP 26 -> 52 -> 26.
    mixer_block = 26 * 2 * 256 * 13 + 256 * 2 * 26 * 52
    assert count_mlp_mixer_macs(26, 2, 2, 13, 52) - count_mlp_mixer_macs(26, 1, 2, 13, 52) == mixer_block == 865_280


def test_a_whole_small_convmixer_and_every_head_counted_by_hand():
    # ConvMixer-64/1 p2 k1: stem (256 patches of 2 x 2 x 3 values to 64), depthwise 1 x 1, pointwise 64 x 64, head.
    assert count_macs(64, 1, 2, 1) == 256 * 12 * 64 + 256 * 1 * 64 + 256 * 64 * 64 + 64 * 10
    # The head is one dense layer on the pooled features: one more class costs one multiply-add per feature.
    features = {"convmixer": 64, "resnet": 4 * 6, "vit": 32, "mlp_mixer": 26}
    for arch, hp in CLAIM1:
        extra = count_model_macs(arch, hp, num_classes=11) - count_model_macs(arch, hp, num_classes=10)
        assert extra == features[arch], arch


@pytest.mark.parametrize("arch,hp,message", [
    ("vit", {"dim": 30, "depth": 4, "heads": 4, "mlp_ratio": 2, "patch_size": 4}, "heads must divide dim=30"),
    ("mlp_mixer", {"dim": 8, "depth": 1, "patch_size": 3, "token_mlp_dim": 4, "channel_mlp_dim": 8},
     "patch_size must divide the image size 32"),
    ("resnet", {"width": 0, "blocks_per_stage": 1}, "width must be an integer >= 1"),
    ("convmixer", {"width": 8, "depth": 1, "patch_size": 2, "kernel_size": 4}, "kernel_size must be an odd"),
    ("resnet", {"width": 6}, "resnet needs blocks_per_stage"),
])
def test_bad_hyperparameters_are_named_in_one_line(arch, hp, message):
    with pytest.raises(ValueError, match=message):
        count_model_macs(arch, hp)


def test_the_dispatcher_covers_every_architecture():
    assert set(baselines.ARCHITECTURES) == {arch for arch, _ in CLAIM1}
