"""The papermill sweep end to end on the smoke grid, and the results store."""

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
from convmixer.config import PARAMETER_NAMES
from convmixer.results import load_runs
from convmixer.sweep import SweepError, execute_run, load_grid, main_sweep, plan

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "grids" / "smoke.yaml"


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
    assert "cpu-trends" in sizes and sizes["cpu-timing"] == 2
    assert sizes["cpu-full"] == 12 and sizes["cpu-reference-row"] == 1


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
    ],
)
def test_bad_grids_fail_before_anything_runs(tmp_path, spec, match):
    with pytest.raises(SweepError, match=match):
        main_sweep(write_grid(tmp_path / "g.yaml", spec), results=tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_cli_reports_bad_grid_in_one_line(tmp_path):
    proc = sweep_cli(write_grid(tmp_path / "g.yaml", {"axes": {"patch_size": [3]}}), "--results", tmp_path)
    assert proc.returncode != 0
    assert "patch_size must divide" in proc.stderr and "Traceback" not in proc.stderr


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
    assert names == PARAMETER_NAMES + ["out_dir"]
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
    assert len(after) == 3 and set(after["status"]) == {"completed"}
    assert set(before["run_id"]) <= set(after["run_id"])  # nothing lost or duplicated
    assert f"{(before['status'] == 'completed').sum()} skipped" in again.stdout


def test_load_runs_reports_incomplete_and_corrupt_folders(tmp_path):
    runs = tmp_path / "runs"
    (runs / "corrupt").mkdir(parents=True)
    (runs / "corrupt" / records.PARAMS).write_text("{not json")
    (runs / "empty").mkdir()
    (runs / "half").mkdir()
    (runs / "half" / records.PARAMS).write_text(json.dumps({"run_id": "half", "kernel_size": 5}))
    (runs / "bad-metrics").mkdir()
    (runs / "bad-metrics" / records.PARAMS).write_text(json.dumps({"run_id": "bad-metrics"}))
    (runs / "bad-metrics" / records.METRICS).write_text(json.dumps({"status": "running"}))
    frame = load_runs(tmp_path).set_index("run_id")
    assert frame.loc["corrupt", "status"] == "corrupt" and "params.json unreadable" in frame.loc["corrupt", "problem"]
    assert frame.loc["empty", "status"] == "corrupt" and "params.json missing" in frame.loc["empty", "problem"]
    assert frame.loc["half", "status"] == "incomplete" and frame.loc["half", "kernel_size"] == 5
    assert frame.loc["bad-metrics", "status"] == "corrupt"
    assert load_runs(tmp_path / "nowhere").empty


def test_plan_marks_done_resume_and_todo(tmp_path):
    configs = load_grid(SMOKE)
    a, b, c = configs
    (tmp_path / "runs" / a.run_id).mkdir(parents=True)
    records.atomic_write_json(tmp_path / "runs" / a.run_id / records.PARAMS, {"config_hash": a.config_hash})
    records.atomic_write_json(tmp_path / "runs" / a.run_id / records.METRICS, {"status": "completed"})
    records.atomic_write_bytes(tmp_path / "runs" / b.run_id / records.CHECKPOINT_DIR / records.CHECKPOINT_STATE, b"x")
    records.atomic_write_json(tmp_path / "runs" / c.run_id / records.ERROR, {"status": "failed"})
    assert [p.state for p in plan(configs, tmp_path)] == ["done", "resume", "failed"]
    shutil.rmtree(tmp_path / "runs" / b.run_id)
    assert [p.state for p in plan(configs, tmp_path)] == ["done", "todo", "failed"]
    # a completed record of another configuration in the folder is not "done" for this one
    records.atomic_write_json(tmp_path / "runs" / a.run_id / records.PARAMS, {"config_hash": "other"})
    assert plan(configs, tmp_path)[0].state == "todo"


def test_unreadable_data_source_stops_the_sweep_before_any_run(tmp_path):
    grid = write_grid(tmp_path / "g.yaml", {"base": {"width": 8, "depth": 1, "epochs": 1,
                                                      "data": str(tmp_path / "missing.zip")},
                                             "axes": {"kernel_size": [3, 5]}})
    with pytest.raises(SweepError, match="data: .*missing.zip"):
        main_sweep(grid, results=tmp_path / "results")
    assert not (tmp_path / "results" / "runs").exists()


def _fake_record(run_dir, config, marker):
    records.atomic_write_json(run_dir / records.PARAMS, {"config_hash": config.config_hash, "run_id": config.run_id})
    records.atomic_write_json(run_dir / records.METRICS, {"status": "completed", "marker": marker})


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
    status, where = execute_run(config, run_dir, replace=True)
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
    records.atomic_write_json(run_dir / records.PARAMS, {"config_hash": config.config_hash})

    def fail(*args, **kwargs):
        raise RuntimeError("boom again")

    monkeypatch.setattr(papermill, "execute_notebook", fail)
    status, _ = execute_run(config, run_dir)
    assert status == "failed"
    assert json.loads((run_dir / records.METRICS).read_text())["marker"] == "old"


def test_notebook_that_ends_without_a_record_is_recorded_as_failed(tmp_path, monkeypatch):
    import papermill

    config = load_grid(SMOKE)[0]
    run_dir = tmp_path / "runs" / config.run_id
    monkeypatch.setattr(papermill, "execute_notebook", lambda i, o, **k: Path(o).write_text("{}"))
    status, where = execute_run(config, run_dir)
    assert status == "failed" and where == run_dir
    assert "without a complete record" in json.loads((run_dir / records.ERROR).read_text())["error"]
