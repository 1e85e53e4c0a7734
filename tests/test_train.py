import io
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from convmixer import records
from convmixer.training.config import RunConfig
from convmixer.training.checkpoint import Checkpoint
from convmixer.training.guards import RunConflict
from convmixer.training.train import load_trained_model, train

# lr 0.01: enough for a 16-wide ConvMixer to learn the synthetic classes in 3 short epochs
TINY = dict(width=16, depth=1, patch_size=4, kernel_size=3, epochs=3, batch_size=64, data="synthetic:600:100",
            recipe_overrides={"lr": 0.01})
REQUIRED_METRICS = {
    "status", "test_accuracy", "best_val_accuracy", "trainable_parameters", "seconds_per_epoch",
    "images_per_second", "device", "versions", "git_commit", "dataset", "started", "finished", "selected_epoch",
}
CURVE_COLUMNS = ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "a"
    config = RunConfig(**TINY)
    metrics = train(config, out)
    return config, out, metrics


def test_run_writes_a_complete_record(finished_run):
    config, out, metrics = finished_run
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [records.PARAMS, records.HISTORY, records.METRICS, records.WEIGHTS, records.PREDICTIONS])  # no checkpoint
    params = records.read_json(out / records.PARAMS)
    assert params["run_id"] == config.run_id and params["kernel_size"] == 3
    history = pd.read_csv(out / records.HISTORY)
    assert list(history["epoch"]) == [1, 2, 3]
    assert set(CURVE_COLUMNS + ["seconds", "images_per_second"]) <= set(history.columns)
    assert REQUIRED_METRICS <= set(metrics) and sorted(metrics) == sorted(records.METRIC_NAMES)
    assert metrics["status"] == "completed"
    assert metrics["trainable_parameters"] == 3 * 16 * 16 + 16 + 32 + (9 * 16 + 16 + 32) + (16 * 16 + 16 + 32) + 170
    assert metrics["train_images"] == 540 and metrics["val_images"] == 60 and metrics["test_images"] == 100
    assert metrics["dataset"]["fingerprint"].startswith("sha256:")
    assert metrics["device"]["kind"] == "CPU"
    assert metrics["device"]["cpu_vector_extension"] == records.provenance.cpu_vector_extension()
    assert metrics["train_loop"] == "compiled custom step"
    # speed settings chosen for a CPU, and oneDNN on (the package turns it on before TensorFlow loads)
    assert metrics["speed"] == {"precision": "float32", "jit_compile": False, "device_kind": "CPU", "onednn": True,
                                "requested": {"precision": "auto", "jit_compile": "auto"},
                                "cpu_layers": ["depthwise gradients as forward depthwise convolutions",
                                               "exact GELU with a written gradient, XLA-fused", "fused BatchNorm in training",
                                               "patch and 1x1 convolutions as matmul"]}
    # the selected epoch is the one with the best validation accuracy
    assert metrics["best_val_accuracy"] == pytest.approx(history["val_accuracy"].max())
    assert history.loc[metrics["selected_epoch"] - 1, "val_accuracy"] == pytest.approx(history["val_accuracy"].max())


def test_synthetic_data_is_learned(finished_run):
    _, _, metrics = finished_run
    assert metrics["test_accuracy"] > 0.3  # chance is 0.1


def test_saved_weights_reproduce_the_test_accuracy(finished_run):
    from convmixer.data import load_cifar10

    _, out, metrics = finished_run
    model = load_trained_model(out)
    ds = load_cifar10(TINY["data"])
    acc = float(np.mean(np.argmax(model.predict(ds.x_test, verbose=0), axis=1) == ds.y_test))
    assert acc == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_the_record_keeps_per_image_predictions_that_give_its_accuracy(finished_run):
    from convmixer.data import load_cifar10
    from convmixer.training.evaluate import accuracy_of

    _, out, metrics = finished_run
    saved = records.RunRecord(out).predictions()
    ds = load_cifar10(TINY["data"])
    assert list(saved["label"]) == list(ds.y_test)  # the test images, in order
    # the same count of right images as the run's own evaluation (1e-6 is far below one image in 100)
    assert accuracy_of(saved) == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    right = saved["predicted"] == saved["label"]
    assert (saved["true_probability"][right] >= 0.0999).all()  # the top class of 10 has at least 1/10
    assert (saved["true_probability"][~right] <= 0.5).all()  # another class beat it


def test_same_seed_same_history_and_resume_equals_uninterrupted(finished_run, tmp_path, monkeypatch):
    config, out, metrics = finished_run
    reference = pd.read_csv(out / records.HISTORY)

    # Interrupt right after epoch 2's checkpoint, as a kill at that moment would.
    original_save = Checkpoint.save

    def save_then_die(self, model, optimizer, epoch, progress, improved):
        original_save(self, model, optimizer, epoch, progress, improved)
        if epoch == 2:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(Checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "b")
    assert not (tmp_path / "b" / records.METRICS).exists()  # does not look complete
    monkeypatch.setattr(Checkpoint, "save", original_save)

    resumed_metrics = train(config, tmp_path / "b")
    resumed = pd.read_csv(tmp_path / "b" / records.HISTORY)
    np.testing.assert_allclose(resumed[CURVE_COLUMNS].to_numpy(), reference[CURVE_COLUMNS].to_numpy(), rtol=1e-5)
    # epochs 1 and 3 traced the graph in their process; only epoch 2 counts as steady state
    assert list(resumed["includes_tracing"]) == [True, False, True]
    assert resumed_metrics["seconds_per_epoch"] == pytest.approx(resumed.loc[1, "seconds"])
    assert resumed_metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert resumed_metrics["selected_epoch"] == metrics["selected_epoch"]


def test_completed_run_is_not_retrained(finished_run):
    config, out, metrics = finished_run
    before = (out / records.HISTORY).stat().st_mtime_ns
    again = train(config, out)
    assert again == metrics
    assert (out / records.HISTORY).stat().st_mtime_ns == before


def test_other_configuration_never_overwrites_a_record(finished_run):
    config, out, _ = finished_run
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RunConflict, match="holds run"):
        train(RunConfig(**(TINY | {"kernel_size": 5})), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_official_recipe_trains_with_its_schedule(tmp_path):
    config = RunConfig(**(TINY | {"recipe": "official", "epochs": 3, "batch_size": 200, "recipe_overrides": {}}))
    metrics = train(config, tmp_path / "o")
    h = pd.read_csv(tmp_path / "o" / records.HISTORY)
    assert "test_accuracy" in h and "val_accuracy" not in h  # trains on all 300, like the authors
    assert metrics["train_images"] == 600 and metrics["selected_epoch"] == 3
    # lr after each epoch of 3 steps: triangular 0 -> 0.01 at epoch 1 -> 0.0005 at 2 -> 0 at 3
    np.testing.assert_allclose(h["lr"], [0.01, 0.0005, 0.0], atol=1e-7)


def test_cli_rejects_bad_values_before_loading_anything():
    code = (
        "import sys\n"
        "from convmixer.__main__ import main\n"
        "try:\n"
        "    main(['train', '--kernel-size', '4', '--data', 'synthetic'])\n"
        "except SystemExit as e:\n"
        "    print('EXIT', e.code)\n"
        "print('KERAS_LOADED', 'keras' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "kernel_size must be an odd integer" in proc.stderr
    assert "EXIT 2" in proc.stdout and "KERAS_LOADED False" in proc.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--patch-size", "3"], "patch_size must divide"),
        (["--recipe", "fast"], "recipe must be one of"),
        (["--epochs", "two"], "argument --epochs: expected a whole number (or none), got 'two'"),
        (["--recipe-overrides", '{"lr": "high"}'], "recipe_overrides.lr must be a float"),
        (["--data", "/nonexistent/cifar.tar.gz"], "/nonexistent/cifar.tar.gz"),
    ],
)
def test_cli_errors_are_one_line_and_nonzero(args, needle, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "convmixer", "train", "--out", str(tmp_path / "r"), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert any(needle in line for line in lines), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / records.METRICS).exists()


def test_cli_trains_a_run(tmp_path):
    out = tmp_path / "cli"
    # Without the test suite's own TF_CPP_MIN_LOG_LEVEL: the CLI must quiet TensorFlow's C++ logs itself.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [sys.executable, "-m", "convmixer", "train", "--width", "8", "--depth", "1", "--patch-size", "4",
         "--kernel-size", "3", "--epochs", "1", "--batch-size", "100", "--data", "synthetic:200:50",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for chatter in ("absl::InitializeLog", "oneDNN custom operations", "cuda drivers", "cpu_feature_guard"):
        assert chatter not in proc.stderr, proc.stderr[-2000:]
    epoch_lines = [line for line in proc.stdout.splitlines() if " epoch " in line]
    assert len(epoch_lines) == 1 and "img/s" in epoch_lines[0]
    assert json.loads((out / records.METRICS).read_text())["status"] == "completed"


def test_jax_backend_trains_a_run_with_xla(tmp_path):
    # The GPU machines have JAX, not TensorFlow: the same package must train there.
    out = tmp_path / "jax"
    proc = subprocess.run(
        [sys.executable, "-m", "convmixer", "train", "--backend", "jax", "--width", "16", "--depth", "1",
         "--patch-size", "4", "--kernel-size", "3", "--epochs", "2", "--batch-size", "50",
         "--data", "synthetic:300:100", "--recipe-overrides", '{"lr": 0.01}', "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / records.METRICS).read_text())
    assert metrics["status"] == "completed" and metrics["device"]["backend"] == "jax"
    assert metrics["train_loop"] == "model.fit"
    assert metrics["speed"]["jit_compile"] is True and metrics["speed"]["onednn"] is None
    assert metrics["speed"]["cpu_layers"] == []  # the fast layers are TensorFlow code: plain Keras layers here
    assert metrics["test_accuracy"] > 0.15  # it learned something in 2 epochs (chance: 0.1)


def test_unusable_checkpoint_is_ignored_and_leaves_the_model_untouched(tmp_path):
    import keras

    from convmixer.models.convmixer import build_convmixer

    def model_and_optimizer(width):
        model = build_convmixer(width, 1, 4, 3)
        optimizer = keras.optimizers.AdamW(1e-3)
        optimizer.build(model.trainable_variables)
        return model, optimizer

    ckpt = Checkpoint(tmp_path)
    ckpt.save(*model_and_optimizer(8), epoch=1, progress={"epoch": 1, "history": []}, improved=True)
    same = model_and_optimizer(8)
    assert ckpt.load(*same) == {"epoch": 1, "history": []}

    other, other_opt = model_and_optimizer(16)
    before = [w.copy() for w in other.get_weights()]
    assert ckpt.load(other, other_opt) is None
    assert all(np.array_equal(a, b) for a, b in zip(before, other.get_weights()))
    assert int(np.asarray(other_opt.iterations)) == 0

    ckpt.state.write_bytes(ckpt.state.read_bytes()[:100])  # truncated by a crash of the disk, say
    assert ckpt.load(*model_and_optimizer(8)) is None


def test_mixed_precision_run_trains_with_float32_logits_and_records_it(tmp_path):
    # The GPU default, forced on this CPU: bfloat16 compute, float32 logits and variables.
    config = RunConfig(**(TINY | {"epochs": 2, "precision": "mixed_bfloat16"}))
    try:
        metrics = train(config, tmp_path / "bf16")
        model = load_trained_model(tmp_path / "bf16")
    finally:
        import keras

        keras.config.set_dtype_policy("float32")  # the policy is global: leave none behind for other tests
    assert metrics["speed"]["precision"] == "mixed_bfloat16"
    assert metrics["status"] == "completed" and metrics["test_accuracy"] > 0.2
    assert model.get_layer("logits").compute_dtype == "float32"


def test_non_finite_loss_stops_the_run_and_records_it_as_failed(tmp_path, capsys):
    from convmixer.__main__ import main

    out = tmp_path / "diverged"
    with pytest.raises(SystemExit) as info:  # lr 1e30 is finite and > 0 (valid), but the weights blow up
        main(["train", "--width", "8", "--depth", "1", "--patch-size", "4", "--kernel-size", "3", "--epochs", "3",
              "--batch-size", "50", "--data", "synthetic:200:50", "--recipe-overrides", '{"lr": 1e30}',
              "--out", str(out)])
    err = capsys.readouterr().err
    assert info.value.code == 1 and len(err.strip().splitlines()) == 1 and "became non-finite" in err
    assert not (out / records.METRICS).exists()
    state = records.validate_record(out)
    assert state.state == "failed" and "became non-finite" in state.problem
    assert "NaN" not in (out / records.ERROR).read_text()  # standard JSON


def test_progress_bar_within_each_epoch_changes_nothing_but_the_terminal(finished_run, tmp_path, capsys):
    config, out, _ = finished_run
    log = io.StringIO()
    train(config, tmp_path / "bar", log=log, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/3" in err and "batch" in err and "img/s" in err  # tqdm: batches done, speed, time left
    assert len([line for line in log.getvalue().splitlines() if " epoch " in line]) == 3  # one line per epoch
    # the bar wraps the very batches the step takes: the same history as without it
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "bar" / records.HISTORY)[CURVE_COLUMNS].to_numpy(),
                                  pd.read_csv(out / records.HISTORY)[CURVE_COLUMNS].to_numpy())


def test_a_run_resumed_by_other_code_names_that_code(monkeypatch):
    from convmixer.training.session import note_resumed_code

    progress = {"git_commit": "aaa"}
    monkeypatch.setattr(records, "git_commit", lambda cwd=None: "aaa")
    note_resumed_code(progress)
    assert progress["resumed_with"] == []  # the same code: nothing to note
    monkeypatch.setattr(records, "git_commit", lambda cwd=None: "bbb")
    note_resumed_code(progress)
    note_resumed_code(progress)
    assert progress["resumed_with"] == ["bbb"]


def test_backfill_recreates_the_predictions_of_an_older_record_and_refuses_a_mismatch(finished_run, tmp_path):
    import shutil
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from backfill_predictions import backfill

    _, out, metrics = finished_run
    original = records.RunRecord(out).predictions()
    for name, accuracy in (("old", metrics["test_accuracy"]), ("tampered", metrics["test_accuracy"] - 0.05)):
        run = tmp_path / "runs" / name
        shutil.copytree(out, run)
        (run / records.PREDICTIONS).unlink()  # as records made before predictions were kept
        records.atomic_write_json(run / records.METRICS, {**metrics, "test_accuracy": accuracy})
    report = backfill(tmp_path)
    assert report["written"] == ["old"] and [name for name, _ in report["skipped"]] == ["tampered"]
    assert "is not the recorded" in report["skipped"][0][1]
    again = records.RunRecord(tmp_path / "runs" / "old").predictions()
    assert all((again[k] == original[k]).all() for k in records.PREDICTION_ARRAYS)
    assert not (tmp_path / "runs" / "tampered" / records.PREDICTIONS).exists()
    assert backfill(tmp_path)["missing"] == ["tampered"]  # a written record is not evaluated again


def test_the_arithmetic_comparison_finds_any_difference_in_weights_or_history(tmp_path):
    # tools/compare_arithmetic.py decides whether a grid under way may move to newer code: bit for bit.
    from pathlib import Path

    import h5py

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from compare_arithmetic import differences

    def run(name, weight, accuracy):
        folder = tmp_path / name
        folder.mkdir()
        with h5py.File(folder / "model.weights.h5", "w") as f:
            f["layers/dense/vars/0"] = np.array([1.0, weight], dtype=np.float32)
            f["layers/dense/vars/1"] = np.zeros(2, dtype=np.float32)
        pd.DataFrame({"epoch": [1], "loss": [2.0], "accuracy": [accuracy], "lr": [0.01]}).to_csv(
            folder / "history.csv", index=False)
        return folder

    same, also_same = run("a", 0.5, 0.25), run("b", 0.5, 0.25)
    assert differences(same, also_same) == []
    [weights] = differences(same, run("c", np.nextafter(np.float32(0.5), np.float32(1)), 0.25))  # one ulp
    assert weights.startswith("weights: 1 of 2 arrays differ") and "layers/dense/vars/0" in weights
    [history] = differences(same, run("d", 0.5, 0.250001))
    assert history.startswith("history: accuracy differs")


def test_a_run_with_pytorchs_initialisation_starts_from_pytorchs_bounds(tmp_path):
    # With a negligible lr the trained weights are the initial ones: within PyTorch's 1/sqrt(fan_in), 1/3 for
    # the 3x3 depthwise kernel, where Keras' Glorot bound is sqrt(6 / (9 x 16 + 9)) = 0.198 at width 16.
    config = RunConfig(**{**TINY, "epochs": 1, "recipe_overrides": {"lr": 1e-8, "initialisation": "pytorch"}})
    train(config, tmp_path / "torch-init")
    model = load_trained_model(tmp_path / "torch-init")
    depthwise = np.abs(model.get_layer("block0_depthwise").kernel.numpy()).max()
    assert 0.8 / 3 < depthwise <= 1 / 3 + 1e-6  # above Keras' whole interval
