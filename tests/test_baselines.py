import subprocess
import sys

import numpy as np
import pytest

from convmixer.models import baselines
from convmixer.models.baselines import (
    BASELINES,
    MATCH_TOLERANCE,
    build_model,
    count_model_parameters,
    matched_hyperparameters,
)
from convmixer.models.mlp_mixer import build_mlp_mixer, count_mlp_mixer_parameters, validate_mlp_mixer
from convmixer.models.convmixer import count_parameters
from convmixer.models.resnet import build_resnet, count_resnet_parameters, validate_resnet
from convmixer.models.vit import build_vit, count_vit_parameters, validate_vit

# The claim-1 reference: ConvMixer-64/4, patch 2, kernel 9.
TARGET = count_parameters(64, 4, 2, 9)
PATCHES = {"resnet": [None], "vit": [2, 4], "mlp_mixer": [2, 4]}

SMALL = [
    ("resnet", {"width": 4, "blocks_per_stage": 1}),
    ("resnet", {"width": 5, "blocks_per_stage": 2}),
    ("vit", {"dim": 8, "depth": 1, "heads": 2, "mlp_ratio": 2, "patch_size": 4}),
    ("vit", {"dim": 12, "depth": 2, "heads": 3, "mlp_ratio": 1.5, "patch_size": 2}),
    ("mlp_mixer", {"dim": 8, "depth": 1, "patch_size": 4, "token_mlp_dim": 4, "channel_mlp_dim": 16}),
    ("mlp_mixer", {"dim": 6, "depth": 2, "patch_size": 8, "token_mlp_dim": 3, "channel_mlp_dim": 10}),
    ("convmixer", {"width": 8, "depth": 1, "patch_size": 4, "kernel_size": 3}),
]
MATCHED = [(arch, p) for arch in BASELINES for p in PATCHES[arch]]


def built_size(model):
    import keras

    return int(sum(int(keras.ops.size(w)) for w in model.trainable_weights))


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize("arch,hp", SMALL)
@pytest.mark.parametrize("num_classes", [10, 7])
def test_counted_parameters_equal_the_built_model(arch, hp, num_classes):
    model = build_model(arch, hp, num_classes=num_classes)
    assert count_model_parameters(arch, hp, num_classes=num_classes) == built_size(model)


def test_module_counters_agree_with_their_builders():
    assert count_resnet_parameters(6, 3) == built_size(build_resnet(6, 3))
    assert count_vit_parameters(16, 1, 4, 4, 8, num_classes=5) == built_size(build_vit(16, 1, 4, 4, 8, num_classes=5))
    assert count_mlp_mixer_parameters(10, 1, 2, 7, 20) == built_size(build_mlp_mixer(10, 1, 2, 7, 20))


@pytest.mark.parametrize("arch,patch", MATCHED)
def test_matched_baselines_are_within_tolerance_of_convmixer_64_4(arch, patch):
    hp = matched_hyperparameters(arch, TARGET, patch)
    count = count_model_parameters(arch, hp)
    assert abs(count - TARGET) <= MATCH_TOLERANCE * TARGET
    assert hp.get("patch_size") == patch
    assert count == built_size(build_model(arch, hp))


@pytest.mark.parametrize("arch,patch", MATCHED)
def test_matching_finds_an_exact_family_member_and_keeps_families_fixed(arch, patch):
    members = baselines.family(arch, patch)
    member = members[len(members) // 3]
    assert matched_hyperparameters(arch, count_model_parameters(arch, member), patch) == member
    if arch != "resnet":  # one size knob only: depth and ratios are fixed
        assert {m["depth"] for m in members} == {4}
    if arch == "vit":
        assert all(m["mlp_ratio"] == 2 and m["dim"] % m["heads"] == 0 for m in members)
        assert {m["heads"] for m in members if m["dim"] >= 16} == {4}
    if arch == "mlp_mixer":
        assert all(m["token_mlp_dim"] == m["dim"] // 2 and m["channel_mlp_dim"] == 2 * m["dim"] for m in members)


@pytest.mark.parametrize("arch,hp", SMALL[::2] + SMALL[3:4])
def test_forward_maps_pixels_to_float32_logits(arch, hp):
    model = build_model(arch, hp)
    logits = np.asarray(model(images(4)))
    assert logits.shape == (4, 10) and logits.dtype == np.float32 and np.isfinite(logits).all()


@pytest.mark.parametrize("arch", BASELINES)
def test_logits_stay_float32_under_mixed_precision(arch):
    import keras

    hp = matched_hyperparameters(arch, TARGET, PATCHES[arch][-1])
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        model = build_model(arch, hp)
        logits = model(images(2))
    finally:
        keras.config.set_dtype_policy("float32")  # the policy is global: leave none behind for other tests
    assert logits.dtype == "float32" and model.get_layer("logits").compute_dtype == "float32"
    assert model.layers[-2].compute_dtype == "bfloat16"  # the body does run in bfloat16


@pytest.mark.parametrize("arch,hp", SMALL[::2])
def test_models_normalise_pixels_themselves(arch, hp):
    rescale = build_model(arch, hp)
    mean_std = build_model(arch, hp, normalization="mean_std")
    assert rescale.layers[1].name == "rescale" and mean_std.layers[1].name == "mean_std"
    from convmixer.cifar10 import CIFAR10_MEAN, CIFAR10_STD

    pixels = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    expected = (pixels / 255.0 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    np.testing.assert_allclose(np.asarray(mean_std.layers[1](pixels)), expected, atol=1e-4)
    np.testing.assert_allclose(np.asarray(rescale.layers[1](pixels)), pixels / 255.0, atol=1e-6)


def test_resnet_follows_the_cifar_layout():
    model = build_resnet(4, 2)
    assert model.name == "resnet14_w4"
    assert model.get_layer("stage0_block1_conv2").output.shape[1:] == (32, 32, 4)
    assert model.get_layer("stage1_block0_conv1").output.shape[1:] == (16, 16, 8)
    assert model.get_layer("stage2_block1_conv2").output.shape[1:] == (8, 8, 16)
    projections = sorted(layer.name for layer in model.layers if layer.name.endswith("projection"))
    assert projections == ["stage1_block0_projection", "stage2_block0_projection"]
    # pre-activation: the residual adds the raw block input, not its BN-ReLU
    add = model.get_layer("stage0_block1_residual")
    assert model.get_layer("stage0_block0_residual").output.name in {t.name for t in add.input}


def test_vit_and_mixer_token_grids():
    vit = build_vit(8, 1, 2, 2, 2)
    assert vit.get_layer("position_embedding").trainable_weights[0].shape == (256, 8)
    assert vit.get_layer("block0_attention").num_heads == 2
    mixer = build_mlp_mixer(8, 1, 4, 4, 16)
    assert mixer.get_layer("block0_token_out").units == 64  # mixes along the 8x8 tokens
    assert mixer.get_layer("block0_channel_out").units == 8


@pytest.mark.slow
@pytest.mark.parametrize("arch,hp", SMALL)
def test_a_few_training_steps_lower_the_loss(arch, hp):
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = np.arange(64) % 10
    colours = rng.integers(0, 256, (10, 1, 1, 3))  # one colour per class, plus noise: learnable in a few steps
    x = np.clip(colours[labels] + rng.normal(0, 30, (64, 32, 32, 3)), 0, 255).astype("float32")
    model = build_model(arch, hp)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(x, labels, batch_size=64, verbose=0)
    model.fit(x, labels, batch_size=8, epochs=8, verbose=0)  # 64 steps
    after = model.evaluate(x, labels, batch_size=64, verbose=0)
    assert after < 0.85 * before, (before, after)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: validate_resnet(0, 2), "width must be an integer >= 1"),
        (lambda: validate_resnet(8, 1.5), "blocks_per_stage must be an integer >= 1"),
        (lambda: validate_vit(30, 2, 4, 2, 2), "heads must divide dim=30"),
        (lambda: validate_vit(32, 2, 4, 2, 3), r"patch_size must divide the image size 32: allowed \[1, 2, 4, 8"),
        (lambda: validate_vit(32, 2, 4, 0, 2), "mlp_ratio must be a number > 0"),
        (lambda: validate_vit(32, 2, 4, 1.3, 2), r"mlp_ratio must be a number > 0 with mlp_ratio \* dim a whole"),
        (lambda: validate_vit(32, 0, 4, 2, 2), "depth must be an integer >= 1"),
        (lambda: validate_mlp_mixer(32, 2, 4, 0, 64), "token_mlp_dim must be an integer >= 1"),
        (lambda: validate_mlp_mixer(32, 2, 5, 16, 64), "patch_size must divide the image size 32"),
        (lambda: validate_mlp_mixer(32, 2, 4, 16, 64, normalization="imagenet"), "normalization must be one of"),
        (lambda: build_model("transformer", {}), r"architecture must be one of \['convmixer', 'resnet', 'vit', 'mlp_"),
        (lambda: build_model("vit", {**SMALL[2][1], "kernel_size": 9}), "kernel_size does not apply to vit"),
        (lambda: count_model_parameters("resnet", {"width": 8}), "resnet needs blocks_per_stage"),
        (lambda: count_model_parameters("convmixer", {**SMALL[-1][1], "kernel_size": 4}), "kernel_size must be an odd"),
        (lambda: matched_hyperparameters("resnet", TARGET, 2), "patch_size does not apply to resnet"),
        (lambda: matched_hyperparameters("vit", TARGET, 3), "patch_size must divide the image size 32"),
        (lambda: matched_hyperparameters("vit", TARGET), "patch_size must divide the image size 32"),
        (lambda: matched_hyperparameters("mlp_mixer", TARGET, 6), "patch_size must divide the image size 32"),
        (lambda: matched_hyperparameters("convmixer", TARGET, 2), "convmixer is the reference"),
        (lambda: matched_hyperparameters("vit", 0, 2), "target_params must be an integer >= 1"),
        (lambda: matched_hyperparameters("mlp_mixer", 500, 2), "mlp_mixer at patch_size 2 cannot match target_params"),
    ],
)
def test_bad_hyperparameters_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_counting_matching_and_rejecting_do_not_import_keras():
    # The run configuration chooses the Keras backend, so none of this may load Keras first.
    code = (
        "import sys\n"
        "from convmixer.models import baselines as b\n"
        "b.matched_hyperparameters('vit', 40266, 2)\n"
        "b.count_model_parameters('resnet', {'width': 8, 'blocks_per_stage': 1})\n"
        "try:\n    b.build_model('vit', {'kernel_size': 3})\nexcept ValueError:\n    pass\n"
        "assert 'keras' not in sys.modules, 'keras was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_a_baseline_trains_through_the_project_path_and_reloads(tmp_path):
    """A ViT run: same train() as ConvMixer, a record naming its architecture, weights that reload."""
    import numpy as np

    from convmixer.training.config import RunConfig
    from convmixer.data import load_cifar10
    from convmixer.records import read_json
    from convmixer.training.train import load_trained_model, train

    config = RunConfig(architecture="vit", patch_size=8, hyperparameters={"dim": 8, "depth": 1, "heads": 1,
                                                                             "mlp_ratio": 2},
                       recipe="official", epochs=1, batch_size=32, data="synthetic:64:32")
    metrics = train(config, tmp_path / "run")
    assert metrics["status"] == "completed" and config.run_id.startswith("vit_depth1_dim8_heads1_mlp_ratio2_p8")
    params = read_json(tmp_path / "run" / "params.json")
    assert params["architecture"] == "vit" and params["kernel_size"] is None
    model = load_trained_model(tmp_path / "run")
    ds = load_cifar10("synthetic:64:32")
    logits = model.predict(ds.x_test, verbose=0)
    assert np.mean(logits.argmax(-1) == ds.y_test) == pytest.approx(metrics["test_accuracy"], abs=1e-6)
