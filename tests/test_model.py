import math

import numpy as np
import pytest

from convmixer.models.convmixer import (
    BN_EPSILON,
    BN_MOMENTUM,
    PAPER_PARAM_COUNTS,
    build_convmixer,
    count_parameters,
    trainable_parameters,
)


@pytest.mark.parametrize("patch,kernel", sorted(PAPER_PARAM_COUNTS))
def test_parameter_counts_match_the_paper(patch, kernel):
    model = build_convmixer(256, 8, patch, kernel)
    assert trainable_parameters(model) == PAPER_PARAM_COUNTS[(patch, kernel)]
    assert count_parameters(256, 8, patch, kernel) == PAPER_PARAM_COUNTS[(patch, kernel)]


@pytest.mark.parametrize("patch", [1, 2, 4, 8])
def test_output_shape_and_token_grid(patch):
    model = build_convmixer(16, 2, patch, 3, num_classes=7)
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype("float32")
    assert model(x).shape == (3, 7)
    assert model.get_layer("stem_conv").output.shape[1:3] == (32 // patch, 32 // patch)


def test_layer_order_matches_official_definition():
    model = build_convmixer(8, 1, 2, 3)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer", "Rescaling",
        "Conv2D", "Activation", "BatchNormalization",
        "DepthwiseConv2D", "Activation", "BatchNormalization", "Add",
        "Conv2D", "Activation", "BatchNormalization",
        "GlobalAveragePooling2D", "Dense",
    ]
    dw = model.get_layer("block0_depthwise")
    assert dw.padding == "same" and dw.use_bias and dw.kernel_size == (3, 3)
    # the residual adds the block input (stem output) to the depthwise branch
    add = model.get_layer("block0_residual")
    assert {t.name for t in add.input} >= {model.get_layer("stem_bn").output.name}


def test_batchnorm_matches_pytorch_defaults():
    model = build_convmixer(8, 1, 2, 3)
    bns = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    assert len(bns) == 3
    for bn in bns:
        assert bn.epsilon == BN_EPSILON == 1e-5
        assert bn.momentum == BN_MOMENTUM == 0.9  # PyTorch momentum 0.1


def test_gelu_is_the_exact_erf_form():
    model = build_convmixer(8, 1, 2, 3)
    act = model.get_layer("stem_act")
    x = np.linspace(-4, 4, 81).astype("float32")
    exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    tanh_approx = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    got = np.asarray(act(x))
    np.testing.assert_allclose(got, exact, atol=1e-6)
    assert np.abs(got - tanh_approx).max() > 1e-4  # would pass with the approximation otherwise


def test_mean_std_normalization_is_torchvision_normalize_of_pixels_in_0_1():
    model = build_convmixer(8, 1, 2, 3, normalization="mean_std")
    norm = model.get_layer("mean_std")
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2471, 0.2435, 0.2616])  # the script's values
    pixels = np.array([[[[0, 0, 0], [255, 255, 255], [0.4914 * 255, 0.4822 * 255, 0.4465 * 255]]]], "float32")
    expected = (pixels / 255.0 - mean) / std  # black, white (the std matters) and the mean pixel (0)
    np.testing.assert_allclose(np.asarray(norm(pixels)), expected, atol=1e-4)
    np.testing.assert_allclose(expected[0, 0, 2], 0.0, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"patch_size": 3}, r"patch_size must divide the image size 32: allowed \[1, 2, 4, 8, 16, 32\]"),
        ({"patch_size": 0}, "patch_size"),
        ({"kernel_size": 4}, "kernel_size must be an odd integer"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"width": 0}, "width must be an integer >= 1"),
        ({"depth": -1}, "depth must be an integer >= 1"),
        ({"activation": "swish"}, r"activation must be one of \['gelu', 'relu'\]"),
        ({"normalization": "zca"}, "normalization must be one of"),
    ],
)
def test_impossible_settings_are_rejected(kwargs, match):
    args = {"width": 8, "depth": 1, "patch_size": 2, "kernel_size": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        build_convmixer(**args)


def test_pytorch_initialisation_draws_each_layer_within_pytorchs_bound():
    # recipe_overrides {"initialisation": "pytorch"}: nn.Conv2d / nn.Linear's defaults, U(+-1/sqrt(fan_in)) for
    # kernel and bias, fan_in = inputs x kernel area (one input per output for the depthwise, groups=dim).
    import keras

    from convmixer.models.convmixer import pytorch_default_init

    model = build_convmixer(64, 2, 2, 5)
    before = [w.numpy().copy() for w in model.weights]
    pytorch_default_init(model, seed=7)
    fan_ins = {"stem_conv": 3 * 2 * 2, "block0_depthwise": 5 * 5, "block0_pointwise": 64, "logits": 64}
    for name, fan_in in fan_ins.items():
        layer = model.get_layer(name)
        bound = 1 / math.sqrt(fan_in)
        for w in (layer.kernel.numpy(), layer.bias.numpy()):
            assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound  # the whole interval is used
        if layer.kernel.numpy().size > 1000:  # uniform: sd = bound / sqrt(3)
            assert layer.kernel.numpy().std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    bn = model.get_layer("block0_depthwise_bn")
    assert np.all(bn.gamma.numpy() == 1) and np.all(bn.beta.numpy() == 0)  # BatchNorm as PyTorch's, untouched
    assert sum(not np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights)) == 2 * (2 + 2 * 2)
    again = build_convmixer(64, 2, 2, 5)
    pytorch_default_init(again, seed=7)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.weights, again.weights))
    pytorch_default_init(again, seed=8)
    assert not np.array_equal(model.get_layer("logits").kernel.numpy(), again.get_layer("logits").kernel.numpy())
    assert isinstance(model.get_layer("block0_depthwise"), keras.layers.DepthwiseConv2D)


def test_pytorch_initialisation_is_a_recipe_override_for_convmixer_only():
    from convmixer.training.config import RunConfig

    config = RunConfig(recipe="official-logged", recipe_overrides={"initialisation": "pytorch"})
    assert config.recipe_obj.initialisation == "pytorch"
    assert RunConfig(recipe="official-logged").recipe_obj.initialisation == "keras"  # the default: ids unchanged
    assert config.run_id != RunConfig(recipe="official-logged").run_id
    with pytest.raises(ValueError, match=r"initialisation must be one of \['keras', 'pytorch'\]"):
        RunConfig(recipe_overrides={"initialisation": "torch"})
    with pytest.raises(ValueError, match="initialisation 'pytorch' applies to convmixer only"):
        RunConfig(architecture="resnet", hyperparameters={"width": 6, "blocks_per_stage": 3}, kernel_size=None,
                  patch_size=None, recipe_overrides={"initialisation": "pytorch"})
