import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convmixer.training.config import PARAMETER_NAMES, RunConfig
from convmixer.training.recipes import RECIPES, get_recipe, learning_rate_at

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_come_from_the_recipe():
    assert (RunConfig(recipe="seed").epochs, RunConfig(recipe="seed").batch_size) == (40, 128)
    assert (RunConfig(recipe="official").epochs, RunConfig(recipe="official").batch_size) == (25, 512)


def test_run_id_is_readable_and_defaults_resolve_first():
    c = RunConfig(width=256, depth=8, kernel_size=9, patch_size=2, recipe="seed", epochs=40, seed=0)
    assert c.run_id.startswith("convmixer_256_8_k9_p2_seed-recipe_e40_s0-")
    assert len(c.run_id.split("-")[-1]) == 8
    assert RunConfig(kernel_size=9, patch_size=2, epochs=40).run_id == c.run_id  # defaults resolved first
    assert "_n100-" in RunConfig(train_subset=100).run_id
    assert RunConfig(recipe_overrides={"lr": 1}).run_id == RunConfig(recipe_overrides={"lr": 1.0}).run_id


CHANGED = {
    "width": 128, "depth": 4, "patch_size": 4, "kernel_size": 9, "activation": "relu", "recipe": "official",
    "recipe_overrides": {"lr": 0.002}, "epochs": 7, "batch_size": 64, "seed": 3, "data": "synthetic",
    "train_subset": 1000, "test_subset": 500, "backend": "jax", "precision": "mixed_bfloat16", "jit_compile": "on",
    "architecture": "resnet", "hyperparameters": {"width": 6, "blocks_per_stage": 1},
}
# A baseline is named by its architecture and its size together.
BASELINE = {"architecture": "resnet", "hyperparameters": {"width": 6, "blocks_per_stage": 1}}


@pytest.mark.parametrize("field", PARAMETER_NAMES)
def test_run_id_changes_with_every_field(field):
    assert set(CHANGED) == set(PARAMETER_NAMES)  # a new field must be added here too
    base = RunConfig()
    assert getattr(base, field) != CHANGED[field]
    changed = RunConfig(**(BASELINE if field in BASELINE else {field: CHANGED[field]}))
    assert changed.run_id != base.run_id


def test_baseline_fields_that_do_not_apply_are_refused_with_one_line():
    for bad, needle in [({**BASELINE, "kernel_size": 9}, "kernel_size does not apply to resnet"),
                        ({**BASELINE, "patch_size": 2}, "patch_size does not apply to resnet"),
                        ({"architecture": "vit", "patch_size": 4, "hyperparameters": {"dim": 32}}, "vit needs depth"),
                        ({"architecture": "transformer"}, "architecture must be one of"),
                        ({"hyperparameters": {"dim": 8}}, "hyperparameters apply to the baselines only")]:
        with pytest.raises(ValueError, match=needle):
            RunConfig(**bad)


def test_speed_fields_at_their_defaults_keep_older_run_ids():
    # Records made before precision/jit_compile existed were hashed without them; this id
    # is one such record's (results/runs/convmixer_64_4_k3_p4_seed-recipe_e4_s0-bc167bcc).
    config = RunConfig(width=64, depth=4, patch_size=4, kernel_size=3, epochs=4, seed=0)
    assert config.run_id == "convmixer_64_4_k3_p4_seed-recipe_e4_s0-bc167bcc"
    assert RunConfig(width=64, depth=4, patch_size=4, kernel_size=3, epochs=4, precision="float32").run_id != config.run_id


def test_round_trip_through_dict():
    c = RunConfig(kernel_size=7, recipe_overrides={"lr": 0.002})
    assert RunConfig.from_dict(c.to_dict()) == c
    assert sorted(c.to_dict()) == sorted(PARAMETER_NAMES)


@pytest.mark.parametrize(
    "values,error,match",
    [
        ({"kernal_size": 5}, ValueError, r"unknown configuration key\(s\) \['kernal_size'\]; allowed keys are"),
        ({"kernel_size": "5"}, TypeError, "kernel_size must be int or None, got str"),
        ({"epochs": 2.5}, TypeError, "epochs must be int or None"),
        ({"seed": True}, TypeError, "seed must be int"),
        ({"kernel_size": 4}, ValueError, "kernel_size must be an odd integer"),
        ({"patch_size": 3}, ValueError, "patch_size must divide"),
        ({"recipe": "fast"}, ValueError, r"recipe must be one of \['official', 'official-logged', 'seed'\]"),
        ({"recipe_overrides": {"momentum": 0.9}}, ValueError, "recipe_overrides: unknown key 'momentum'"),
        ({"recipe_overrides": {"schedule": "cosine"}}, ValueError, "recipe_overrides.schedule must be one of"),
        ({"epochs": 0}, ValueError, "epochs must be an integer from 1 to 10,000"),
        ({"epochs": 10**23}, ValueError, "epochs must be an integer from 1 to 10,000, got 1000000000"),
        ({"batch_size": 10**9}, ValueError, "batch_size must be an integer from 1 to 50,000"),
        ({"train_subset": 0}, ValueError, "train_subset must be None or an integer from 10 to 50,000"),
        ({"train_subset": 5}, ValueError, r"from 10 to 50,000 \(at least one image of each of the 10 classes"),
        ({"test_subset": 10_001}, ValueError, "test_subset must be None or an integer from 1 to 10,000"),
        ({"recipe_overrides": {"lr": 1e-320}}, ValueError,
         r"recipe_overrides.lr=1e-320: .*weight_decay / lr = 0.0001 / 1e-320 overflows"),
        ({"backend": "mxnet"}, ValueError, r"backend must be one of \['tensorflow', 'jax', 'torch'\]"),
        ({"precision": "fp16"}, ValueError, r"precision must be one of \['auto', 'float32', 'mixed_float16', 'mixed_bfloat16'\]"),
        ({"jit_compile": True}, TypeError, r"jit_compile must be str"),
        ({"jit_compile": "yes"}, ValueError, r"jit_compile must be one of \['auto', 'on', 'off'\]"),
    ],
)
def test_bad_values_name_the_parameter(values, error, match):
    with pytest.raises(error, match=match):
        RunConfig.from_dict(values)


def test_the_command_line_names_a_number_that_is_not_whole_in_one_line():
    for flag, value in (("--epochs", "1e23"), ("--seed", "1.5"), ("--train-subset", "ten")):
        proc = subprocess.run([sys.executable, "-m", "convmixer", "train", flag, value], capture_output=True,
                              text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1
        assert f"argument {flag}: expected a whole number" in proc.stderr and repr(value) in proc.stderr


def test_an_lr_whose_keras_weight_decay_overflows_is_refused_as_that_not_as_the_lr():
    from convmixer.training.recipes import get_recipe

    assert get_recipe("seed", {"lr": 1e-30}).keras_weight_decay == pytest.approx(1e26)  # large, but a float32
    with pytest.raises(ValueError, match=r"give lr >= 2.9\d*e-43 or weight_decay_scaled_by_lr: true"):
        get_recipe("seed", {"lr": 1e-43})  # 1e-4 / 1e-43 = 1e39: more than float32 holds
    get_recipe("seed", {"lr": 1e-37, "weight_decay_scaled_by_lr": True})  # no division: fine
    with pytest.raises(ValueError, match=r"recipe_overrides.lr must be a finite number >= 1.2e-38"):
        get_recipe("official", {"lr": 1e-320})  # float32 would make it 0: the lr itself is the problem


def test_seed_recipe_weight_decay_is_converted_from_tf_addons():
    seed = RECIPES["seed"]
    assert seed.keras_weight_decay == pytest.approx(1e-4 / 1e-3)
    official = RECIPES["official"]
    assert official.keras_weight_decay == pytest.approx(0.01)  # PyTorch's AdamW already scales by lr


def test_keras_adamw_step_equals_tf_addons_decoupled_decay():
    """One AdamW step: Keras with wd/lr must equal TF Addons' update w -= wd*w + adam_step."""
    import keras

    recipe = RECIPES["seed"]
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5, 4)).astype("float32")
    g = rng.normal(size=(5, 4)).astype("float32")
    var = keras.Variable(w0)
    opt = keras.optimizers.AdamW(learning_rate=recipe.lr, weight_decay=recipe.keras_weight_decay)
    opt.apply([keras.ops.convert_to_tensor(g)], [var])

    # TF Addons' AdamW (DecoupledWeightDecayExtension on Adam, epsilon 1e-7):
    b1, b2, eps, lr, wd = 0.9, 0.999, 1e-7, recipe.lr, recipe.weight_decay
    m, v = (1 - b1) * g, (1 - b2) * g * g
    lr_t = lr * np.sqrt(1 - b2) / (1 - b1)
    expected = w0 - wd * w0 - lr_t * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(np.asarray(var), expected, rtol=1e-5, atol=1e-7)
    # and the naive port (weight_decay=1e-4 in Keras) would be 1000x too weak
    naive = w0 - lr * 1e-4 * w0 - lr_t * m / (np.sqrt(v) + eps)
    assert np.abs(naive - expected).max() > 1e-5


def test_pytorch_epsilon_adamw_steps_as_torch_optim_adamw_does():
    """adam_epsilon: pytorch (the gap diagnostic) against torch.optim.AdamW's update written out in numpy:
    decay, then lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). Runs without PyTorch installed."""
    import keras

    from convmixer.training.optim import PYTORCH_ADAM_EPSILON, make_optimizer

    recipe = get_recipe("official-logged", {"adam_epsilon": "pytorch"})
    lr, wd, b1, b2, eps = recipe.lr, recipe.weight_decay, 0.9, 0.999, PYTORCH_ADAM_EPSILON
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(6, 5))
    grads = [rng.normal(scale=1e-8, size=(6, 5)) for _ in range(3)]  # where epsilon's placement matters

    def run(optimizer):
        var = keras.Variable(w0.astype("float64"), dtype="float64")
        for g in grads:
            optimizer.apply([keras.ops.convert_to_tensor(g, dtype="float64")], [var])
        return np.asarray(var)

    w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        w = w * (1 - lr * wd)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        w = w - lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    ours = run(make_optimizer(recipe, lr))
    np.testing.assert_allclose(ours, w, rtol=0, atol=1e-6)  # the optimizer keeps lr and betas in float32
    # Keras' own placement of the same epsilon is another update here: the override changes something
    keras_placement = run(keras.optimizers.AdamW(learning_rate=lr, weight_decay=recipe.keras_weight_decay,
                                                 epsilon=eps, global_clipnorm=recipe.clipnorm))
    assert np.abs(keras_placement - w).max() > 1e-2  # 0.08 here, against 4e-7 for the override


def test_official_schedule_is_the_piecewise_linear_one():
    r = RECIPES["official"]
    assert learning_rate_at(r, 0.0, 25) == 0.0
    assert learning_rate_at(r, 10.0, 25) == pytest.approx(0.01)  # 25*2//5 = 10
    assert learning_rate_at(r, 20.0, 25) == pytest.approx(0.0005)  # 25*4//5 = 20
    assert learning_rate_at(r, 25.0, 25) == 0.0
    assert learning_rate_at(r, 5.0, 25) == pytest.approx(0.005)
    assert learning_rate_at(RECIPES["seed"], 3.3, 40) == 1e-3


@pytest.mark.parametrize("epochs", [1, 2, 3, 5])
def test_keras_schedule_matches_the_reference_formula(epochs):
    from convmixer.training.optim import make_schedule

    r, steps = RECIPES["official"], 7
    sched = make_schedule(r, epochs, steps)
    for step in range(epochs * steps):
        want = learning_rate_at(r, (step + 1) / steps, epochs)
        assert float(sched(step)) == pytest.approx(want, abs=1e-7), step


def test_overrides_apply_and_are_validated():
    assert get_recipe("seed", {"lr": 2e-3}).lr == 2e-3
    assert get_recipe("seed", {"lr": 1}).lr == 1.0  # ints accepted for floats
    with pytest.raises(ValueError, match="selection 'best_val' needs val_fraction > 0"):
        get_recipe("seed", {"val_fraction": 0.0})
    with pytest.raises(ValueError, match="recipe_overrides.randaugment_n must be a int"):
        get_recipe("official", {"randaugment_n": 1.5})


def test_an_override_that_restates_the_recipes_value_is_the_same_run():
    from convmixer.training.config import RunConfig

    plain = RunConfig(recipe="official-logged", epochs=1)
    for same in ({"initialisation": "keras"}, {"lr": 0.05}, {"lr": 0.05, "initialisation": "keras"}):
        config = RunConfig(recipe="official-logged", epochs=1, recipe_overrides=same)
        assert config.recipe_overrides == {} and config.run_id == plain.run_id
    changed = RunConfig(recipe="official-logged", epochs=1, recipe_overrides={"lr": 0.05, "initialisation": "pytorch"})
    assert changed.recipe_overrides == {"initialisation": "pytorch"} and changed.run_id != plain.run_id


def test_weight_decay_convention_can_be_overridden_for_the_keras_io_row():
    # keras-io's Keras 3 example: keras.optimizers.AdamW(weight_decay=1e-4), decay multiplied by lr.
    keras3 = get_recipe("seed", {"weight_decay_scaled_by_lr": True})
    assert keras3.keras_weight_decay == 1e-4
    assert get_recipe("seed").keras_weight_decay == pytest.approx(0.1)  # TF Addons' 1e-4 at lr 1e-3
    with pytest.raises(ValueError, match="recipe_overrides.weight_decay_scaled_by_lr must be a bool"):
        get_recipe("seed", {"weight_decay_scaled_by_lr": 1})
    with pytest.raises(ValueError, match="recipe_overrides.lr must be a float"):
        get_recipe("seed", {"lr": True})


def test_readme_differences_table_matches_the_recipes():
    from pathlib import Path

    from convmixer.training.recipes import DIFFERENCES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- differences:start -->")[1].split("<!-- differences:end -->")[0]
    rows = [line.strip("| ").split(" | ") for line in block.strip().splitlines()[2:]]
    assert rows == [[d["recipe"], d["aspect"], d["original"], d["here"]] for d in DIFFERENCES]


# --- one schema: every RunConfig field reaches the CLI, the notebook and a grid --------------------

def _cli_config(values):
    from convmixer.__main__ import _config_from_args, build_parser

    argv = ["train"]
    for key, value in values.items():
        argv += ["--" + key.replace("_", "-"), json.dumps(value) if isinstance(value, dict) else str(value)]
    return _config_from_args(build_parser().parse_args(argv))


def _notebook_config(values):
    """The notebook's parameters cell, then papermill's injected assignments, then the notebook's own parsing."""
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    namespace = {}
    exec(cell.source, namespace)
    namespace.update(values)
    return RunConfig.from_dict({name: namespace[name] for name in PARAMETER_NAMES})


def _grid_config(values, tmp_path):
    import yaml

    from convmixer.sweep import load_grid

    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"base": values, "runs": [{}]}), encoding="utf-8")
    (config,) = load_grid(path)
    return config


@pytest.mark.parametrize("field", PARAMETER_NAMES)
def test_every_field_can_be_set_from_the_cli_the_notebook_and_a_grid(field, tmp_path):
    values = BASELINE if field in BASELINE else {field: CHANGED[field]}
    expected = RunConfig(**values)
    assert _cli_config(values) == expected
    assert _notebook_config(values) == expected
    assert _grid_config(values, tmp_path) == expected


def test_cli_help_and_notebook_parameters_carry_each_fields_help():
    import dataclasses

    import nbformat

    from convmixer.__main__ import build_parser

    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    nb = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for f in dataclasses.fields(RunConfig):
        assert "--" + f.name.replace("_", "-") in train_help
        line = next(x for x in cell.source.splitlines() if x.startswith(f.name + " = "))
        assert line.endswith("# " + f.metadata["help"]), f"notebooks/train.py: {f.name}'s help differs from RunConfig"


def test_whole_number_hyperparameters_share_a_run_id():
    hp = {"dim": 32, "depth": 4, "heads": 4}
    a = RunConfig(architecture="vit", patch_size=4, hyperparameters={**hp, "mlp_ratio": 2})
    b = RunConfig(architecture="vit", patch_size=4, hyperparameters={**hp, "mlp_ratio": 2.0})
    assert a.run_id == b.run_id and b.hyperparameters["mlp_ratio"] == 2
