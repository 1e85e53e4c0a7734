"""The papermill sweep end to end on the smoke grid, and the results store."""

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from convmixer import records
from convmixer.training.config import PARAMETER_NAMES, RunConfig
from convmixer.report.runs import load_runs, prepare
from convmixer.sweep import SweepError, execute_run, load_grid, main_sweep, plan
from fakes import write_weights

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "grids" / "smoke.yaml"
# A params.json as training writes it (a record's params must be the configuration its hash names).
PARAMS = RunConfig(width=8, depth=1, patch_size=2, kernel_size=5, epochs=1, data="synthetic:200:50").to_params()


def sweep_cli(*args, timeout=600, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "convmixer", "sweep", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def write_grid(path, spec):
    path.write_text(yaml.safe_dump(spec))
    return path


# --- grid files and the notebook's parameters (fast) -------------------------------------------

def test_every_shipped_grid_expands_and_validates():
    sizes = {p.stem: len(load_grid(p)) for p in (ROOT / "grids").glob("*.yaml")}
    assert sizes["seed"] == 5 and sizes["paper"] == 5 and sizes["kernel-patch"] == 36
    assert sizes["smoke"] == 3
    assert "cpu-trends" in sizes and "cpu-timing" not in sizes  # superseded grids are not shipped
    assert sizes["cpu-full"] == 12 and sizes["cpu-reference-row"] == 3
    assert sizes["cpu-one-cycle"] == 18 and sizes["cpu-architectures"] == 9
    assert sizes["cpu-paper-scale"] == 12 and sizes["cpu-gap-diagnostics"] == 6


def test_each_gap_diagnostic_differs_from_the_official_log_in_one_recipe_field_alone():
    import dataclasses

    official = {c.seed: c for c in load_grid(ROOT / "grids" / "cpu-paper-scale.yaml")
                if c.recipe == "official-logged"}
    changed = []
    for c in load_grid(ROOT / "grids" / "cpu-gap-diagnostics.yaml"):
        assert c.to_dict() == official[c.seed].to_dict() | {"recipe_overrides": c.recipe_overrides}
        ours, theirs = dataclasses.asdict(c.recipe_obj), dataclasses.asdict(official[c.seed].recipe_obj)
        [field] = [k for k in ours if ours[k] != theirs[k]]
        changed.append((field, ours[field], c.seed))
    # Each difference for seeds 0, 1 and 2; seed 0 of both before the other seeds.
    assert sorted(changed) == sorted((f, "pytorch", s) for f in ("initialisation", "adam_epsilon") for s in range(3))
    assert {seed for _, _, seed in changed[:2]} == {0}


def test_paper_scale_grid_runs_each_published_anchor_like_for_like_in_order_of_value():
    from convmixer.report import load_reference

    configs = load_grid(ROOT / "grids" / "cpu-paper-scale.yaml")
    reference = load_reference()
    anchors = {}
    for _, row in reference["logged"].iterrows():
        anchors[(row["recipe"], yaml.safe_dump(row["recipe_overrides"]), row["epochs"], row["patch_size"],
                 row["kernel_size"])] = row["source"]
    five_epoch = reference["accuracy"].query("reference_epochs == 5 and patch_size == 1")
    for _, row in five_epoch.iterrows():
        patch, kernel = int(row["patch_size"]), int(row["kernel_size"])
        anchors[("seed", yaml.safe_dump({}), 5, patch, kernel)] = f"p{patch} k{kernel}"

    def anchor(c):
        assert (c.width, c.depth) == (256, 8) and c.train_subset is None and c.test_subset is None
        return anchors[(c.recipe, yaml.safe_dump(c.recipe_overrides), c.epochs, c.patch_size, c.kernel_size)]

    order = [(anchor(c), c.seed) for c in configs]
    assert order[:4] == [("keras_io", 0), ("official_logged", 0), ("p1 k5", 0), ("p1 k9", 0)]
    assert order[4:6] == [("official_logged", 1), ("official_logged", 2)]
    assert sorted(order) == sorted((a, s) for a in set(anchors.values()) for s in (0, 1, 2))
    assert all(c.batch_size == (512 if c.recipe == "official-logged" else 128) for c in configs)


def test_seed_grid_is_the_reference_reports_table():
    rows = {(c.patch_size, c.kernel_size): c.epochs for c in load_grid(ROOT / "grids" / "seed.yaml")}
    assert rows == {(1, 3): 40, (2, 9): 40, (1, 5): 5, (1, 9): 5, (4, 9): 5}
    assert all(c.width == 256 and c.depth == 8 and c.recipe == "seed"
               for c in load_grid(ROOT / "grids" / "seed.yaml"))


@pytest.mark.parametrize(
    "spec,match",
    [
        ({"base": {"width": 8}, "axis": {"seed": [0]}}, r"unknown key\(s\) \['axis'\]"),
        ({"base": {"kernel_size": 4}, "runs": [{}]}, r"runs\[0\]: kernel_size must be an odd integer"),
        ({"axes": {"kernel_size": [3, 4]}}, "axes kernel_size=4: kernel_size must be an odd integer"),
        ({"axes": {"colour": ["red"]}}, r"unknown configuration key\(s\) \['colour'\]"),
        ({"axes": {"seed": []}}, "axes.seed must be a non-empty list"),
        ({"description": "nothing"}, "no runs"),
        ({"axes": {"seed": [0, 2**32]}}, r"seed=4294967296: seed must be an integer from 0 to 4294967295"),
        ({"base": {"data": "synthetic:1000000:10"}, "axes": {"seed": [0]}},
         r"data: bad synthetic source 'synthetic:1000000:10': .* 1 <= N_TRAIN <= 50,000"),
    ],
)
def test_bad_grids_fail_before_anything_runs(tmp_path, spec, match):
    with pytest.raises(SweepError, match=match):
        main_sweep(write_grid(tmp_path / "g.yaml", spec), results=tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_a_grid_that_is_not_utf8_is_one_line(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_bytes(b"description: caf\xe9 au lait\naxes: {seed: [0]}\n")  # latin-1, as an old editor saves it
    with pytest.raises(SweepError) as info:
        main_sweep(grid, results=tmp_path / "results")
    assert str(info.value) == f"grid {grid}: not UTF-8 text (byte 0xe9 at offset 16); save the grid as UTF-8 YAML"
    assert not (tmp_path / "results").exists()


def test_a_malformed_scheduler_address_is_one_line_at_once(tmp_path):
    start = time.monotonic()
    proc = sweep_cli(SMOKE, "--scheduler", "garbage", "--results", tmp_path / "results", timeout=60)
    assert time.monotonic() - start < 15  # distributed's Client.__del__ used to wait 20 s, then print a traceback
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "python -m convmixer sweep: error: --scheduler 'garbage' is not a Dask scheduler address: expected "
        "SCHEME://HOST:PORT (scheme tcp, tls, ws, wss or ucx; port 1-65535), e.g. tcp://10.0.0.5:8786"]
    assert not (tmp_path / "results").exists()


def test_cli_reports_bad_grid_in_one_line(tmp_path):
    proc = sweep_cli(write_grid(tmp_path / "g.yaml", {"axes": {"patch_size": [3]}}), "--results", tmp_path)
    assert proc.returncode != 0
    assert "patch_size must divide" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_data_file_is_refused_in_one_line_even_in_a_dry_run(tmp_path):
    missing = tmp_path / "nope" / "x.zip"
    grid = write_grid(tmp_path / "g.yaml", {"base": {"data": str(missing), "width": 16, "depth": 1, "epochs": 1},
                                            "runs": [{"seed": 0}]})
    for extra in (["--dry-run"], []):
        proc = sweep_cli(grid, "--results", tmp_path / "r", "--allow-dirty", *extra)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"python -m convmixer sweep: error: data: {missing} does not exist (the grid's data field, or "
            "CONVMIXER_DATA)"]
        assert "plan:" not in proc.stdout and not (tmp_path / "r").exists()


def test_a_grid_above_the_limit_is_refused_in_one_line_before_planning(tmp_path):
    from convmixer.sweep.grids import MAX_GRID_RUNS

    # 10**8 runs from three short axes: expanding it would never end; counting it is instant.
    huge = write_grid(tmp_path / "g.yaml", {"base": {"data": "synthetic"},
                                            "axes": {"seed": list(range(1000)), "epochs": list(range(1, 1001)),
                                                     "batch_size": list(range(1, 101))}})
    started = time.monotonic()
    proc = sweep_cli(huge, "--results", tmp_path / "r", "--dry-run")
    assert proc.returncode == 2 and time.monotonic() - started < 60
    assert proc.stderr.count("\n") == 1 and "100,000,000 runs" in proc.stderr
    assert f"at most {MAX_GRID_RUNS:,}" in proc.stderr and not (tmp_path / "r").exists()
    at_limit = {"base": {"data": "synthetic"}, "axes": {"seed": list(range(MAX_GRID_RUNS - 1))}, "runs": [{"seed": 0}]}
    assert len(load_grid(write_grid(tmp_path / "ok.yaml", at_limit))) == MAX_GRID_RUNS - 1  # the limit counts runs
    over = {**at_limit, "runs": [{"seed": 0}, {"seed": 1}]}
    with pytest.raises(SweepError, match=f"{MAX_GRID_RUNS + 1:,} runs"):
        load_grid(write_grid(tmp_path / "over.yaml", over))


def test_a_grid_file_too_large_to_hold_a_grid_is_refused_before_it_is_parsed(tmp_path):
    from convmixer.sweep.grids import MAX_GRID_BYTES

    path = tmp_path / "big.yaml"
    path.write_text("description: " + "x" * MAX_GRID_BYTES + "\nruns: [{}]\n")
    with pytest.raises(SweepError, match="a grid file may hold at most 1 MiB"):
        load_grid(path)


def test_notebook_parameters_cell_matches_the_config():
    nb = nbformat.read(ROOT / "notebooks" / "train.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = []
    for line in tagged[0].source.splitlines():
        code = line.split("#")[0].strip()
        if code:
            name, value = code.split("=", 1)
            names.append(name.strip())
            compile(value.strip(), "<parameter>", "eval")  # a plain literal
    assert names == PARAMETER_NAMES + ["out_dir", "run_lock"]
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed without outputs


# --- end to end through papermill (slow) -------------------------------------------------------

@pytest.mark.slow
def test_smoke_grid_runs_then_skips_then_force_reruns(tmp_path):
    # A relative --results from another working directory, two jobs at once: every run must land there.
    results = tmp_path / "results"
    first = sweep_cli(SMOKE, "--results", "results", "--jobs", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "summary: 3 completed, 0 skipped, 0 failed" in first.stdout
    assert " epoch   2/2 " in first.stdout  # the per-epoch line of each run is shown
    runs = load_runs(results)
    assert len(runs) == 3 and set(runs["status"]) == {"completed"}
    for run_dir in map(Path, runs["path"]):
        nb = nbformat.read(run_dir / records.NOTEBOOK, as_version=4)  # the executed notebook is kept
        assert any(o.get("name") == "stdout" and "done: test accuracy" in o.get("text", "")
                   for c in nb.cells for o in c.get("outputs", []))
        assert not list(run_dir.glob(".partial*"))
        # the record names no absolute path of this machine (the kernel was given absolute ones)
        assert str(tmp_path) not in (run_dir / records.NOTEBOOK).read_text() + (run_dir / records.METRICS).read_text()

    stamp = {p: (p / records.METRICS).stat().st_mtime_ns for p in map(Path, runs["path"])}
    second = sweep_cli(SMOKE, "--results", results)
    assert second.returncode == 0
    assert "summary: 0 completed, 3 skipped, 0 failed" in second.stdout
    assert {p: (p / records.METRICS).stat().st_mtime_ns for p in stamp} == stamp

    one = write_grid(tmp_path / "one.yaml", yaml.safe_load(SMOKE.read_text()) | {"runs": []} |
                     {"axes": {"kernel_size": [3], "patch_size": [4]}})
    forced = sweep_cli(one, "--results", results, "--force")
    assert "summary: 1 completed, 0 skipped, 0 failed" in forced.stdout
    [rerun] = [p for p in stamp if "_k3_p4_" in p.name]
    assert (rerun / records.METRICS).stat().st_mtime_ns > stamp[rerun]
    assert len(load_runs(results)) == 3


@pytest.mark.slow
def test_a_sweeps_terminal_shows_each_runs_lines_and_no_kernel_table_or_figure_noise(tmp_path):
    spec = yaml.safe_load(SMOKE.read_text()) | {"runs": [], "axes": {"kernel_size": [3], "patch_size": [4]}}
    grid = write_grid(tmp_path / "g.yaml", spec)
    proc = sweep_cli(grid, "--results", tmp_path / "results", "--allow-dirty")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "results" / "runs").iterdir()
    assert proc.stdout.count(" epoch   ") == 2 and "] done: test accuracy" in proc.stdout  # the run's own lines
    for noise in ("[IPKernelApp]", "without encryption", "KeyboardInterrupt", "<Figure size", "test_accuracy "):
        assert noise not in proc.stdout + proc.stderr, noise
    # the executed notebook keeps the metrics table and the figure the terminal no longer shows
    nb = nbformat.read(run_dir / records.NOTEBOOK, as_version=4)
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type != "stream"]
    assert any("image/png" in o.get("data", {}) for o in shown) and any("text/html" in o.get("data", {}) for o in shown)


@pytest.mark.slow
def test_failing_run_is_recorded_and_the_others_finish(tmp_path):
    spec = yaml.safe_load(SMOKE.read_text())
    # train_subset larger than the synthetic training split: fails inside the notebook, at run time
    spec["runs"] = [{"kernel_size": 3, "patch_size": 2, "train_subset": 10_000}]
    spec["axes"] = {"kernel_size": [3], "patch_size": [4]}
    results = tmp_path / "results"
    proc = sweep_cli(write_grid(tmp_path / "g.yaml", spec), "--results", results)
    assert proc.returncode == 1
    assert "summary: 1 completed, 0 skipped, 1 failed" in proc.stdout
    runs = load_runs(results).set_index("train_subset", drop=False)
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert "train_subset" in failed["problem"]
    failed_dir = Path(failed["path"])
    assert not (failed_dir / records.METRICS).exists()
    error = json.loads((failed_dir / records.ERROR).read_text())
    assert "train_subset" in error["error"]
    nb = nbformat.read(failed_dir / records.NOTEBOOK, as_version=4)  # shows where it failed
    assert any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    assert (runs["status"] == "completed").sum() == 1


@pytest.mark.slow
def test_killed_sweep_is_finished_by_a_second_call(tmp_path):
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "convmixer", "sweep", str(SMOKE), "--results", str(results)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # Kill the whole sweep (kernels too) with SIGKILL once the first run is complete and the next has begun.
    deadline = time.time() + 300
    while time.time() < deadline:
        done = list(results.glob("runs/*/metrics.json"))
        started = list(results.glob("runs/*/params.json"))
        if done and len(started) > len(done):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = load_runs(results)
    assert (before["status"] == "completed").sum() >= 1
    assert (before["status"] != "completed").sum() >= 1  # the interrupted run does not look complete

    again = sweep_cli(SMOKE, "--results", results)
    assert again.returncode == 0, again.stdout[-3000:]
    after = load_runs(results)
    assert len(after) == 3 and set(after["status"]) == {"completed"}, again.stdout[-3000:]
    assert set(before["run_id"]) <= set(after["run_id"])  # nothing lost or duplicated
    assert f"{(before['status'] == 'completed').sum()} skipped" in again.stdout


def test_load_runs_reports_incomplete_and_corrupt_folders(tmp_path):
    runs = tmp_path / "runs"
    (runs / "corrupt").mkdir(parents=True)
    (runs / "corrupt" / records.PARAMS).write_text("{not json")
    (runs / "empty").mkdir()
    (runs / "half").mkdir()
    (runs / "half" / records.PARAMS).write_text(json.dumps(PARAMS | {"run_id": "half"}))
    (runs / "bad-metrics").mkdir()
    (runs / "bad-metrics" / records.PARAMS).write_text(json.dumps(PARAMS | {"run_id": "bad-metrics"}))
    (runs / "bad-metrics" / records.METRICS).write_text(json.dumps({"status": "running"}))
    (runs / "high").mkdir()  # "completed" but not a number: corrupt for the report and the sweep alike
    (runs / "high" / records.PARAMS).write_text(json.dumps(PARAMS | {"run_id": "high"}))
    (runs / "high" / records.METRICS).write_text(json.dumps({"status": "completed", "test_accuracy": "high"}))
    frame = load_runs(tmp_path).set_index("run_id")
    assert frame.loc["corrupt", "status"] == "corrupt" and "params.json unreadable" in frame.loc["corrupt", "problem"]
    assert frame.loc["empty", "status"] == "incomplete" and "params.json missing" in frame.loc["empty", "problem"]
    assert frame.loc["half", "status"] == "incomplete" and frame.loc["half", "kernel_size"] == 5
    assert frame.loc["bad-metrics", "status"] == "corrupt"
    assert frame.loc["high", "status"] == "corrupt" == records.validate_record(runs / "high").state
    assert load_runs(tmp_path / "nowhere").empty


def _completed_run(results, kernel, seed, accuracy):
    """A completed record as training leaves it, in small (no weights worth loading)."""
    from convmixer.training.config import RunConfig

    config = RunConfig(width=16, depth=1, patch_size=2, kernel_size=kernel, epochs=2, batch_size=64, seed=seed,
                       data="synthetic:200:100")
    run_dir = results / "runs" / config.run_id
    records.atomic_write_json(run_dir / records.PARAMS, config.to_dict() | {"run_id": config.run_id,
                                                                            "config_hash": config.config_hash})
    records.atomic_write_csv(run_dir / records.HISTORY, [{"epoch": 1, "accuracy": accuracy}])
    write_weights(run_dir / records.WEIGHTS)
    records.atomic_write_json(run_dir / records.METRICS, {
        "status": "completed", "run_id": config.run_id, "test_accuracy": accuracy, "train_images": 180,
        "test_images": 100, "device": {"kind": "CPU"}, "dataset": {"fingerprint": "sha256:x", "lossy_jpeg": False}})
    return run_dir


def test_a_copied_run_folder_counts_once_in_the_report_and_claims(tmp_path):
    from convmixer.report.runs import duplicate_lines
    from convmixer.report.verdicts import claims_json

    results = tmp_path / "results"
    for kernel, accuracies in {3: [0.50, 0.53], 9: [0.60, 0.62]}.items():
        folders = [_completed_run(results, kernel, seed, a) for seed, a in enumerate(accuracies)]
    honest = claims_json(load_runs(results))
    original = folders[0]
    shutil.copytree(original, original.with_name(original.name + ".bak"))  # cp -r X X.bak
    shutil.copytree(original, results / "runs" / "a-copy")  # sorts before the original: still not the one kept
    renamed = results / "runs" / "renamed"  # same configuration under another run id
    shutil.copytree(original, renamed)
    params = json.loads((renamed / records.PARAMS).read_text())
    records.atomic_write_json(renamed / records.PARAMS, params | {"run_id": "renamed"})
    records.atomic_write_json(renamed / records.METRICS, json.loads((renamed / records.METRICS).read_text())
                              | {"run_id": "renamed", "test_accuracy": 0.99})

    runs = load_runs(results)
    assert claims_json(runs) == honest  # same n_runs, effects, intervals and p-values as without the copies
    assert sorted(runs.loc[runs["status"] == "completed", "path"].map(lambda p: Path(p).name)) == \
        sorted(p.name for p in (results / "runs").iterdir() if p.name.startswith("convmixer") and "." not in p.name)
    copies = runs[runs["status"] == "duplicate"].set_index(runs[runs["status"] == "duplicate"]["path"].map(
        lambda p: Path(p).name))
    assert sorted(copies.index) == sorted(["a-copy", original.name + ".bak", "renamed"])
    assert f"same run id {original.name} as runs/{original.name}" in copies.loc["a-copy", "problem"]
    assert f"same configuration {params['config_hash']} as runs/{original.name}" in copies.loc["renamed", "problem"]
    lines = duplicate_lines(runs)
    assert len(lines) == 3 and all("\n" not in line and "not counted" in line for line in lines)


def test_the_record_an_interrupted_forced_rerun_keeps_aside_still_counts(tmp_path):
    from convmixer.report.runs import duplicate_lines
    from convmixer.report.verdicts import claims_json

    results = tmp_path / "results"
    folders = [_completed_run(results, kernel, seed, a)
               for kernel, accuracies in {3: [0.50, 0.53], 9: [0.60, 0.62]}.items() for seed, a in enumerate(accuracies)]
    honest = claims_json(load_runs(results))
    # sweep --force moved the record aside, started the new attempt, and was killed: params.json only
    forced = folders[0]
    records.previous_record_dir(forced).parent.mkdir()
    os.replace(forced, records.previous_record_dir(forced))
    records.atomic_write_json(forced / records.PARAMS, json.loads(
        (records.previous_record_dir(forced) / records.PARAMS).read_text()))
    runs = load_runs(results)
    assert claims_json(runs) == honest  # the seed is not lost while the re-run is unfinished
    assert sorted(runs["status"]) == ["completed"] * 4 + ["incomplete"]
    [line] = [line for line in duplicate_lines(runs) if line.startswith("note:")]
    assert ".previous" in line and forced.name in line and "forced re-run" in line


def test_the_same_run_id_on_other_data_is_another_measurement_not_a_copy(tmp_path):
    results = tmp_path / "results"
    original = _completed_run(results, 3, 0, 0.50)
    elsewhere = results / "runs" / (original.name + "-machine-b")  # data: null resolved to another source there
    shutil.copytree(original, elsewhere)
    metrics = json.loads((elsewhere / records.METRICS).read_text())
    records.atomic_write_json(elsewhere / records.METRICS, metrics | {
        "test_accuracy": 0.61, "dataset": {"fingerprint": "sha256:other", "lossy_jpeg": False}})
    runs = load_runs(results)
    assert list(runs["status"]) == ["completed", "completed"]  # both measured: neither is left out as a copy
    assert prepare(runs)["setup"].nunique() == 2  # each in the setup of its own data
    shutil.copytree(elsewhere, results / "runs" / "copy-of-b")  # a true copy is still one measurement
    assert sorted(load_runs(results)["status"]) == ["completed", "completed", "duplicate"]


def test_plan_marks_done_resume_and_todo(tmp_path):
    configs = load_grid(SMOKE)
    a, b, c = configs
    _fake_record(tmp_path / "runs" / a.run_id, a, "old")
    records.atomic_write_bytes(tmp_path / "runs" / b.run_id / records.CHECKPOINT_DIR / records.CHECKPOINT_STATE, b"x")
    records.atomic_write_json(tmp_path / "runs" / c.run_id / records.ERROR, {"status": "failed"})
    assert [p.state for p in plan(configs, tmp_path)] == ["done", "resume", "failed"]
    shutil.rmtree(tmp_path / "runs" / b.run_id)
    assert [p.state for p in plan(configs, tmp_path)] == ["done", "todo", "failed"]
    # a completed record of another configuration in the folder is corrupt for this one: moved aside, re-run
    records.atomic_write_json(tmp_path / "runs" / a.run_id / records.PARAMS, {"config_hash": "other"})
    assert plan(configs, tmp_path)[0].state == "corrupt"


def test_unreadable_data_source_stops_the_sweep_before_any_run(tmp_path):
    grid = write_grid(tmp_path / "g.yaml", {"base": {"width": 8, "depth": 1, "epochs": 1,
                                                      "data": str(tmp_path / "missing.zip")},
                                             "axes": {"kernel_size": [3, 5]}})
    with pytest.raises(SweepError, match="data: .*missing.zip"):
        main_sweep(grid, results=tmp_path / "results")
    assert not (tmp_path / "results" / "runs").exists()


def _fake_record(run_dir, config, marker):
    """A record that passes records.validate_record (what a finished run writes, in small)."""
    records.atomic_write_json(run_dir / records.PARAMS, config.to_params())
    records.atomic_write_csv(run_dir / records.HISTORY, [{"epoch": 1, "loss": 1.0}])
    write_weights(run_dir / records.WEIGHTS)
    records.atomic_write_json(run_dir / records.METRICS, {"status": "completed", "marker": marker,
                                                          "run_id": config.run_id, "test_accuracy": 0.5})


@pytest.mark.parametrize("outcome", ["fails", "succeeds"])
def test_forced_rerun_keeps_the_previous_record_unless_it_succeeds(tmp_path, monkeypatch, outcome):
    import papermill

    config = load_grid(SMOKE)[0]
    run_dir = tmp_path / "runs" / config.run_id
    _fake_record(run_dir, config, "old")

    def fake_execute(input_path, output_path, parameters, **kwargs):
        assert not (run_dir / records.METRICS).exists()  # the new attempt starts clean
        Path(output_path).write_text("{}")
        if outcome == "fails":
            raise RuntimeError("boom")
        _fake_record(Path(parameters["out_dir"]), config, "new")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    status, where, _ = execute_run(config, run_dir, replace=True)
    marker = json.loads((run_dir / records.METRICS).read_text())["marker"]
    assert not (tmp_path / ".previous" / config.run_id).exists()
    if outcome == "fails":
        assert status == "failed" and marker == "old"
        assert where.parent == tmp_path / "failed-attempts"
        assert "boom" in json.loads((where / records.ERROR).read_text())["error"]
    else:
        assert status == "completed" and marker == "new" and where == run_dir


def test_interrupted_forced_rerun_restores_the_kept_record_if_it_then_fails(tmp_path, monkeypatch):
    import papermill

    config = load_grid(SMOKE)[0]
    run_dir = tmp_path / "runs" / config.run_id
    _fake_record(tmp_path / ".previous" / config.run_id, config, "old")  # left by a killed forced sweep
    records.atomic_write_json(run_dir / records.PARAMS, config.to_params())

    def fail(*args, **kwargs):
        raise RuntimeError("boom again")

    monkeypatch.setattr(papermill, "execute_notebook", fail)
    status, _, _ = execute_run(config, run_dir)
    assert status == "failed"
    assert json.loads((run_dir / records.METRICS).read_text())["marker"] == "old"


def test_a_kernel_that_never_started_is_retried_but_a_cell_that_failed_is_not(tmp_path, monkeypatch):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from convmixer.sweep.execute import KERNEL_START_ATTEMPTS

    config = load_grid(SMOKE)[0]
    calls = []

    def no_kernel(i, o, **k):
        calls.append(o)
        raise RuntimeError("Kernel didn't respond in 60 seconds")

    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    status, where, note = execute_run(config, tmp_path / "a" / "runs" / config.run_id)
    assert status == "failed" and len(calls) == KERNEL_START_ATTEMPTS and "Kernel didn't respond" in note
    assert "Kernel didn't respond" in json.loads((where / records.ERROR).read_text())["error"]  # recorded once

    def cell_failed(i, o, **k):  # the same words in a cell's own error: its cells ran, so no second run
        calls.append(o)
        raise PapermillExecutionError(1, 1, "OSError: [Errno 98] Address already in use", "OSError",
                                      "[Errno 98] Address already in use", [])

    calls.clear()
    monkeypatch.setattr(papermill, "execute_notebook", cell_failed)
    status, _, note = execute_run(config, tmp_path / "b" / "runs" / config.run_id)
    assert status == "failed" and len(calls) == 1 and "Address already in use" in note


def test_notebook_that_ends_without_a_record_is_recorded_as_failed(tmp_path, monkeypatch):
    import papermill

    config = load_grid(SMOKE)[0]
    run_dir = tmp_path / "runs" / config.run_id
    monkeypatch.setattr(papermill, "execute_notebook", lambda i, o, **k: Path(o).write_text("{}"))
    status, where, _ = execute_run(config, run_dir)
    assert status == "failed" and where == run_dir
    assert "without a complete record" in json.loads((run_dir / records.ERROR).read_text())["error"]


# --- locks, full disks, corrupt records and leftovers (issue 13) --------------------------------

def test_a_run_locked_by_another_live_process_is_skipped_as_running_elsewhere(tmp_path, monkeypatch):
    import papermill

    config = load_grid(SMOKE)[0]
    run_dir = tmp_path / "runs" / config.run_id
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("must not run"))
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        lock = records.lock_path(run_dir)
        lock.parent.mkdir(parents=True)
        lock.write_text(json.dumps({"host": records.hostname(),
                                    "pids": [{"pid": sleeper.pid, "start": records._process_start(sleeper.pid)}]}))
        assert plan([config], tmp_path)[0].state == "elsewhere"
        status, where, note = execute_run(config, run_dir)
        assert status == "elsewhere" and f"pid {sleeper.pid}" in note
        assert not run_dir.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert plan([config], tmp_path)[0].state == "todo"  # its holder is gone: the stale lock does not count


def test_take_over_locks_resumes_a_run_whose_host_is_gone_saying_whose_lock_it_was(tmp_path, monkeypatch):
    """The Colab case: the runtime that held the lock disconnected; its lock, on Drive, is from another host."""
    import papermill

    config = load_grid(SMOKE)[0]
    run_dir = tmp_path / "runs" / config.run_id
    lock = records.lock_path(run_dir)
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "1a2b3c4d5e6f", "pids": [{"pid": 812, "start": "5"}],
                                "started": "2024-05-01T10:00:00+0000"}))
    forty_minutes_ago = time.time() - 40 * 60
    os.utime(lock, (forty_minutes_ago, forty_minutes_ago))
    ran = []

    def fake_execute(input_path, output_path, parameters, **kwargs):
        ran.append(parameters["out_dir"])
        _fake_record(Path(parameters["out_dir"]), config, "resumed")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    grid = write_grid(tmp_path / "g.yaml", {"base": yaml.safe_load(SMOKE.read_text())["base"],
                                            "runs": [{"kernel_size": config.kernel_size,
                                                      "patch_size": config.patch_size}]})
    out = io.StringIO()
    assert main_sweep(grid, results=tmp_path, stream=out, allow_dirty=True) == 0  # without the flag: skipped
    assert ran == [] and "1 running elsewhere" in out.getvalue() and "--take-over-locks" in out.getvalue()
    assert main_sweep(grid, results=tmp_path, stream=out, allow_dirty=True, take_over_after=3600) == 0
    assert ran == []  # refreshed 40 minutes ago: younger than asked, still live
    out = io.StringIO()
    assert main_sweep(grid, results=tmp_path, stream=out, allow_dirty=True, take_over_after=30 * 60) == 0
    assert ran == [str(run_dir)] and "1 completed" in out.getvalue()
    assert "will take over the lock of pid 812 on host 1a2b3c4d5e6f" in out.getvalue()  # the plan says so
    took = [line for line in out.getvalue().splitlines() if line.startswith("took over")]
    assert took == [f"took over the lock of {config.run_id}: pid 812 on host 1a2b3c4d5e6f since "
                    "2024-05-01T10:00:00+0000; last refreshed 40 min ago"]
    assert not lock.exists()


def test_take_over_locks_takes_a_duration_with_a_unit(tmp_path):
    from convmixer.__main__ import _duration

    assert [_duration(t) for t in ("90s", "30m", "2h", "1d", "0", "1.5h")] == [90, 1800, 7200, 86400, 0, 5400]
    for bad in ("30", "-1h", "inf", "2 weeks", "nan"):
        proc = subprocess.run([sys.executable, "-m", "convmixer", "train", "--data", "synthetic",
                               f"--take-over-locks={bad}", "--out", str(tmp_path / "r")],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "--take-over-locks" in proc.stderr and "duration" in proc.stderr
    assert not (tmp_path / "r").exists()
    # train takes it over too, and says so before anything else (here the folder then holds another run)
    out = tmp_path / "other"
    records.atomic_write_json(out / records.PARAMS, {"config_hash": "0ther000", "run_id": "other"})
    lock = records.lock_path(out)
    lock.write_text(json.dumps({"host": "gone-host", "pids": [{"pid": 9, "start": "1"}], "started": "then"}))
    os.utime(lock, (time.time() - 7200, time.time() - 7200))
    proc = subprocess.run([sys.executable, "-m", "convmixer", "train", "--data", "synthetic", "--take-over-locks", "1h",
                           "--out", str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.stdout == "took over the lock of other: pid 9 on host gone-host since then; last refreshed 2 h 00 min ago\n"
    assert proc.returncode == 2 and "holds run 'other'" in proc.stderr and not lock.exists()


def test_a_kernel_left_by_a_killed_sweep_that_does_not_end_is_ended_and_the_run_resumed(tmp_path, monkeypatch):
    import papermill

    from convmixer.sweep import execute

    config = load_grid(SMOKE)[0]
    run_dir = tmp_path / "runs" / config.run_id
    monkeypatch.setattr(execute, "ORPHAN_GRACE", 0.5)
    monkeypatch.setattr(papermill, "execute_notebook", lambda i, o, **k: Path(o).write_text("{}"))
    gone = subprocess.Popen(["true"])
    gone.wait()
    # a "kernel" that, unlike ipykernel, never notices that its parent died
    kernel = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                               "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
    try:
        time.sleep(0.3)
        lock = records.lock_path(run_dir)
        lock.parent.mkdir(parents=True)
        lock.write_text(json.dumps({"host": records.hostname(),
                                    "pids": [{"pid": gone.pid, "start": "1"},
                                             {"pid": kernel.pid, "start": records._process_start(kernel.pid)}]}))
        assert plan([config], tmp_path)[0].state == "todo"  # an orphan is waited for, then run
        began = time.monotonic()
        status, _, _ = execute_run(config, run_dir)
        assert kernel.wait(timeout=10) == -9
        assert status == "failed"  # the fake notebook writes no record: what matters is that it ran
        assert time.monotonic() - began < 30
    finally:
        kernel.kill()
        kernel.wait()


def test_a_run_completed_meanwhile_by_another_sweep_is_not_trained_again(tmp_path, monkeypatch):
    import papermill

    config = load_grid(SMOKE)[0]
    run_dir = tmp_path / "runs" / config.run_id
    _fake_record(run_dir, config, "theirs")  # finished after this sweep planned it as "todo"
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("must not run"))
    status, _, _ = execute_run(config, run_dir)
    assert status == "skipped"
    assert json.loads((run_dir / records.METRICS).read_text())["marker"] == "theirs"


def test_full_disk_during_a_forced_rerun_restores_the_previous_record(tmp_path, monkeypatch):
    import papermill

    config = load_grid(SMOKE)[0]
    run_dir = tmp_path / "runs" / config.run_id
    _fake_record(run_dir, config, "old")
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fail_on_a_full_disk(input_path, output_path, parameters, **kwargs):
        Path(output_path).write_text("{}")
        raise full

    def no_space(path, data):
        raise records.write_error(path, full)

    monkeypatch.setattr(papermill, "execute_notebook", fail_on_a_full_disk)
    monkeypatch.setattr(records.files, "atomic_write_bytes", no_space)  # error.json cannot be written either
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if "failed-attempts" in str(self) or ".failed-" in str(self):
            raise full
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)  # nor can the failed attempt be kept
    status, where, note = execute_run(config, run_dir, replace=True)  # never raises
    assert status == "failed"
    assert json.loads((run_dir / records.METRICS).read_text())["marker"] == "old"  # back in place
    assert not (tmp_path / ".previous" / config.run_id).exists()
    assert "No space left on device" in note and "error.json" in note and "\n" not in note
    assert "the previous complete record was kept" in note


def test_a_full_disk_while_papermill_writes_the_notebook_names_the_file(tmp_path, monkeypatch):
    """papermill saves the executed notebook after every cell; a full disk there raised a bare
    'OSError: [Errno 28] No space left on device' (reproduced on a 150 KiB tmpfs)."""
    import papermill

    config = load_grid(SMOKE)[0]
    run_dir = tmp_path / "runs" / config.run_id

    def full_disk(input_path, output_path, parameters, **kwargs):
        with open(output_path, "w") as f:
            f.write("{")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as f.write raises it: no file name

    monkeypatch.setattr(papermill, "execute_notebook", full_disk)
    status, _, note = execute_run(config, run_dir)
    assert status == "failed"
    assert note.startswith(f"WriteError: cannot write {records.partial_notebook(run_dir)}: No space left on device")
    assert "[Errno 28]" not in json.loads((run_dir / records.ERROR).read_text())["error"]


def test_corrupt_records_are_moved_aside_and_rerun_and_leftovers_tidied(tmp_path, monkeypatch):
    import io

    import papermill

    a, b, c = load_grid(SMOKE)
    runs = tmp_path / "runs"
    _fake_record(runs / a.run_id, a, "old")
    (runs / a.run_id / records.METRICS).write_text("[1, 2, 3]")  # stopped the whole plan with AttributeError
    (runs / a.run_id / records.NOTEBOOK).write_text("the good notebook")
    _fake_record(runs / b.run_id, b, "old")
    (runs / b.run_id / records.METRICS).write_text(json.dumps({"status": "completed", "test_accuracy": "high"}))
    # c: completed, but killed before the checkpoint went and before papermill's rename
    _fake_record(runs / c.run_id, c, "kept")
    records.atomic_write_bytes(runs / c.run_id / records.CHECKPOINT_DIR / records.CHECKPOINT_STATE, b"x")
    records.partial_notebook(runs / c.run_id).write_text("executed")
    _fake_record(tmp_path / ".previous" / c.run_id, c, "replaced")  # ... after its forced re-run completed
    executed = []

    def fake_execute(input_path, output_path, parameters, **kwargs):
        Path(output_path).write_text("{}")
        config = next(x for x in (a, b, c) if x.run_id == Path(parameters["out_dir"]).name)
        executed.append(config.run_id)
        _fake_record(Path(parameters["out_dir"]), config, "new")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    log = io.StringIO()
    assert main_sweep(SMOKE, results=tmp_path, stream=log) == 0
    out = log.getvalue()
    assert sorted(executed) == sorted([a.run_id, b.run_id])
    assert "2 corrupt (moved aside, re-run)" in out and "test_accuracy must be a number" in out
    aside = sorted((tmp_path / "corrupt").iterdir())
    assert len(aside) == 2  # never deleted
    [a_aside] = [p for p in aside if p.name.startswith(a.run_id)]
    assert (a_aside / records.NOTEBOOK).read_text() == "the good notebook"
    assert "not a JSON object" in (a_aside / "CORRUPT.txt").read_text()
    for config in (a, b):
        assert records.validate_record(runs / config.run_id, config.config_hash).state == "completed"
    assert not (runs / c.run_id / records.CHECKPOINT_DIR).exists()
    assert (runs / c.run_id / records.NOTEBOOK).read_text() == "executed"
    assert not list(runs.glob(".*.lock")) and not (tmp_path / ".previous" / c.run_id).exists()
    assert "tidied" in out


def _results_lines(stdout):
    return [line.split() for line in stdout.splitlines()
            if line.startswith(("completed ", "skipped ", "failed ", "running elsewhere "))]


@pytest.mark.slow
def test_two_sweeps_at_once_train_each_run_exactly_once(tmp_path):
    spec = yaml.safe_load(SMOKE.read_text()) | {"runs": [], "axes": {"kernel_size": [3, 5], "patch_size": [4]}}
    spec["base"] |= {"epochs": 1, "data": "synthetic:200:50"}
    grid = write_grid(tmp_path / "g.yaml", spec)
    results = tmp_path / "results"
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "convmixer", "sweep", str(grid), "--results", str(results)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outs):
        assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
        assert "Traceback" not in stderr
    completed = [words[1] for stdout, _ in outs for words in _results_lines(stdout) if words[0] == "completed"]
    ids = [c.run_id for c in load_grid(grid)]
    assert sorted(completed) == sorted(ids)  # each run trained once, by one of the two sweeps
    for run_id in ids:
        run_dir = results / "runs" / run_id
        assert records.validate_record(run_dir).state == "completed"
        assert not (run_dir / records.ERROR).exists() and not (run_dir / records.CHECKPOINT_DIR).exists()
        assert (run_dir / records.NOTEBOOK).exists() and not list(run_dir.glob(".partial*"))
        assert (run_dir / records.HISTORY).read_text().count("\n") == 2  # header and one epoch: trained once
    assert not list((results / "runs").glob(".*.lock"))


@pytest.mark.slow
def test_cli_corrupt_record_is_moved_aside_and_rerun(tmp_path):
    spec = yaml.safe_load(SMOKE.read_text()) | {"runs": [], "axes": {"kernel_size": [3], "patch_size": [4]}}
    spec["base"] |= {"epochs": 1, "data": "synthetic:200:50"}
    grid = write_grid(tmp_path / "g.yaml", spec)
    [config] = load_grid(grid)
    run_dir = tmp_path / "results" / "runs" / config.run_id
    run_dir.mkdir(parents=True)
    (run_dir / records.PARAMS).write_text("garbage{")
    (run_dir / records.METRICS).write_text('{"status": "comp')
    (run_dir / records.NOTEBOOK).write_text("the good notebook")
    proc = sweep_cli(grid, "--results", tmp_path / "results")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"{run_dir / records.PARAMS} unreadable (not valid JSON" in proc.stdout
    assert "summary: 1 completed, 0 skipped, 0 failed" in proc.stdout
    [aside] = (tmp_path / "results" / "corrupt").iterdir()
    assert (aside / records.NOTEBOOK).read_text() == "the good notebook"
    assert (aside / records.PARAMS).read_text() == "garbage{"
    assert records.validate_record(run_dir, config.config_hash).state == "completed"


@pytest.mark.slow
def test_cli_full_disk_during_force_is_one_line_and_keeps_the_record(tmp_path):
    import resource

    config = load_grid(SMOKE)[0]
    grid = write_grid(tmp_path / "g.yaml", yaml.safe_load(SMOKE.read_text()) | {"runs": [], "axes": {
        "kernel_size": [config.kernel_size], "patch_size": [config.patch_size]}})
    run_dir = tmp_path / "results" / "runs" / config.run_id
    _fake_record(run_dir, config, "old")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}

    def small_files_only():  # every write past 2 KB fails, as on a full disk (EFBIG instead of ENOSPC)
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    proc = subprocess.run([sys.executable, "-m", "convmixer", "sweep", str(grid), "--results",
                           str(tmp_path / "results"), "--force"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, preexec_fn=small_files_only, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("  failed:")]
    assert "File too large" in line and "the previous complete record was kept" in line
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    assert not (tmp_path / "results" / ".previous" / config.run_id).exists()


def test_a_dirty_tree_is_refused_unless_allowed_and_the_flag_is_recorded(tmp_path, monkeypatch):
    from convmixer import sweep
    from convmixer.records import ALLOW_DIRTY_ENV

    monkeypatch.delenv(ALLOW_DIRTY_ENV, raising=False)
    monkeypatch.setattr(records, "git_commit", lambda cwd=None: "abc123+dirty")
    with pytest.raises(SweepError, match="uncommitted changes .*--allow-dirty"):
        sweep.check_clean_tree(allow_dirty=False)
    sweep.check_clean_tree(allow_dirty=True)  # allowed: the kernels are told, and train records it
    assert os.environ[ALLOW_DIRTY_ENV] == "1"
    monkeypatch.delenv(ALLOW_DIRTY_ENV)
    monkeypatch.setattr(records, "git_commit", lambda cwd=None: "abc123")
    sweep.check_clean_tree(allow_dirty=False)  # clean: nothing to refuse
