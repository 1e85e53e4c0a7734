"""The command line's refusals: one line, the right exit status, nothing written (issue 13)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from convmixer import records
from convmixer.__main__ import main, readme_to_update
from convmixer.training.config import RunConfig
from fakes import write_weights

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--width", "8", "--depth", "1", "--patch-size", "4", "--kernel-size", "3", "--epochs", "1",
        "--batch-size", "50", "--data", "synthetic:200:50"]


def run_main(argv, capsys):
    """``main(argv)`` in this process: (exit status, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr().err


# --- help ---------------------------------------------------------------------------------------

def test_every_option_of_every_command_has_help_in_plain_text():
    from convmixer.__main__ import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"train", "sweep", "report", "bench"}
    for name, command in [("", parser), *commands.items()]:
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        text = command.format_help()
        assert "``" not in text, f"{name or 'top-level'} help shows reStructuredText markup"


def test_every_file_the_code_and_docs_point_to_exists():
    """Help text and docs named convmixer/recipes.py and others after they moved into subpackages."""
    import re

    texts = [ROOT / "README.md", ROOT / "pyproject.toml"] + [
        p for folder in ("convmixer", "notebooks", "grids", "benchmarks", "tools") for p in (ROOT / folder).rglob("*")
        if p.suffix in (".py", ".md", ".yaml", ".ipynb") and p.is_file()]
    named = {(m, p.relative_to(ROOT)) for p in texts
             for m in re.findall(r"\bconvmixer/[\w/]+\.(?:py|yaml)\b", p.read_text(encoding="utf-8", errors="replace"))}
    assert named, "the scan found no path at all"
    missing = sorted(f"{where}: {path}" for path, where in named if not (ROOT / path).is_file())
    assert not missing, missing


# --- report: which README it may touch, and a missing results folder ---------------------------

def test_report_refreshes_the_readme_only_for_the_repositorys_own_results(tmp_path):
    scratch = ROOT / "scratch-results"  # under the repository root, like the folder that blanked README.md
    assert readme_to_update(scratch, False) is None
    assert readme_to_update(tmp_path, False) is None
    assert readme_to_update(ROOT / "results", False) == "auto"
    assert readme_to_update(tmp_path, True) == ROOT / "README.md"


def test_report_cli_passes_that_choice_to_build_report(tmp_path, monkeypatch):
    from convmixer import report

    seen = []
    monkeypatch.setattr(report, "build_report", lambda **kwargs: seen.append(kwargs["readme"]) or Path(kwargs["out"]))
    (tmp_path / "runs" / "a-run").mkdir(parents=True)
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "index.html")]) == 0
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "index.html"),
                 "--update-readme"]) == 0
    assert seen == [None, ROOT / "README.md"]


def test_sweep_and_report_default_to_the_checkouts_results_whatever_the_working_directory(tmp_path, monkeypatch):
    from convmixer import report

    # the committed runs of the reference report's row are found from another folder: nothing to run
    proc = subprocess.run([sys.executable, "-m", "convmixer", "sweep", str(ROOT / "grids" / "cpu-reference-row.yaml"),
                           "--dry-run"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("plan: 3 runs: 3 done (skipped)") and not (tmp_path / "results").exists()
    seen = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "build_report", lambda **kwargs: seen.append(kwargs) or Path(kwargs["out"]))
    assert main(["report", "--out", str(tmp_path / "index.html")]) == 0
    assert Path(seen[0]["results"]) == ROOT / "results" and seen[0]["readme"] == "auto"


def test_a_report_on_other_results_never_overwrites_the_committed_report(tmp_path, monkeypatch, capsys):
    import shutil

    import nbformat
    import papermill

    from convmixer.report import build

    repository = tmp_path / "repo"  # stands in for the checkout, whose report/ is the committed one
    (repository / "report").mkdir(parents=True)
    monkeypatch.setattr(records, "REPOSITORY", repository)
    monkeypatch.chdir(repository)
    stand_in = tmp_path / "report.ipynb"  # the page's content does not matter here, only where it goes
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("a report")]), stand_in)
    monkeypatch.setattr(build, "NOTEBOOK", stand_in)
    monkeypatch.setattr(papermill, "execute_notebook", lambda source, target, **kwargs: shutil.copy(source, target))
    other = tmp_path / "downloaded"
    config = RunConfig(width=8, depth=1, patch_size=4, kernel_size=3, epochs=1, data="synthetic:200:50")
    run = other / "runs" / config.run_id
    records.atomic_write_json(run / records.PARAMS, config.to_dict() | {"run_id": config.run_id,
                                                                        "config_hash": config.config_hash})
    records.atomic_write_csv(run / records.HISTORY, [{"epoch": 1}])
    write_weights(run / records.WEIGHTS)
    records.atomic_write_json(run / records.METRICS, {"status": "completed", "test_accuracy": 0.5,
                                                      "train_images": 200, "test_images": 50})
    copy = run.with_name(run.name + ".bak")
    shutil.copytree(run, copy)

    assert main(["report", "--results", str(other)]) == 0
    assert list((repository / "report").iterdir()) == []
    captured = capsys.readouterr()
    where = other / "report"
    assert captured.out.splitlines() == [f"wrote {where / 'index.html'} and {where / 'claims.json'}"]
    assert (where / "index.html").is_file() and (where / "claims.json").is_file()
    assert captured.err.splitlines() == [f"warning: {copy}: not counted: same run id {run.name} as runs/{run.name}, "
                                         "which is counted instead (a copy of a run is not another seed)"]
    # --out takes a folder (existing or not) or a file
    for out, html in ((tmp_path / "pages", tmp_path / "pages" / "index.html"),
                      (tmp_path / "site" / "cifar.html", tmp_path / "site" / "cifar.html")):
        assert main(["report", "--results", str(other), "--out", str(out)]) == 0
        assert capsys.readouterr().out.splitlines() == [f"wrote {html} and {html.parent / 'claims.json'}"]
        assert html.is_file() and (html.parent / "claims.json").is_file()
    assert list((repository / "report").iterdir()) == []
    # the repository's own results/ writes the committed report, from any working directory
    shutil.copytree(run, repository / "results" / "runs" / run.name)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--results", str(repository / "results")]) == 0
    assert sorted(p.name for p in (repository / "report").iterdir()) == ["claims.json", "index.html"]


def test_report_on_a_missing_folder_is_one_line_and_nonzero(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "convmixer", "report", "--results", "/nonexistent",
                           "--out", str(tmp_path / "index.html")], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "python -m convmixer report: error: --results /nonexistent does not exist: give the results folder "
        "(RESULTS/runs/<run id>/)"]
    assert not (tmp_path / "index.html").exists()


def test_report_on_a_results_folder_without_runs_is_one_line_and_nonzero(tmp_path):
    for results in (tmp_path / "empty", tmp_path / "no-runs-yet"):
        results.mkdir()
        if results.name == "no-runs-yet":
            (results / "runs").mkdir()
        proc = subprocess.run([sys.executable, "-m", "convmixer", "report", "--results", str(results)],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stdout == ""
        assert f"--results {results} holds no runs" in proc.stderr and "nothing to report" in proc.stderr
        assert not (results / "report").exists()


# --- train: refused inputs leave no folder and no traceback -------------------------------------

def test_out_pointing_at_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("mine")
    code, err = run_main(["train", *TINY, "--out", str(target)], capsys)
    assert code == 2 and "is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    assert target.read_text() == "mine"


@pytest.mark.parametrize("command", ["train", "sweep", "report"])
def test_an_output_folder_inside_a_file_is_refused_first_naming_the_option(tmp_path, capsys, command):
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    inside = str(a_file / "x")
    (tmp_path / "results" / "runs" / "r").mkdir(parents=True)  # something to report on
    argv = {"train": ["train", *TINY[:-2], "--data", str(tmp_path / "missing.zip"), "--out", inside],
            "sweep": ["sweep", str(ROOT / "grids" / "smoke.yaml"), "--dry-run", "--results", inside],
            "report": ["report", "--results", str(tmp_path / "results"), "--out", inside + ".html"]}[command]
    code, err = run_main(argv, capsys)
    option = "--results" if command == "sweep" else "--out"
    # one line naming the option and the file in the way, before the (missing) data is even looked at
    assert code == 2 and len(err.strip().splitlines()) == 1 and option in err, err
    assert f"{a_file}" in err and "a file, not a folder" in err and "missing.zip" not in err
    assert a_file.read_text() == "mine"


def test_out_holding_a_corrupt_record_is_one_line_and_untouched(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / records.PARAMS).write_text("{truncated")
    code, err = run_main(["train", *TINY, "--out", str(out)], capsys)
    assert code == 2 and "holds a corrupt record" in err and "params.json unreadable" in err
    assert [p.name for p in out.iterdir()] == [records.PARAMS]


def test_a_model_too_large_for_the_machine_is_refused_with_its_estimate(tmp_path, capsys):
    code, err = run_main(["train", *TINY, "--width", "1000000000", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "needs at least" in err and "GiB" in err and "more than this machine's" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("torch") is not None, reason="torch is installed")
def test_a_missing_backend_is_one_line(tmp_path, capsys):
    code, err = run_main(["train", *TINY, "--backend", "torch", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "needs the torch package, which is not installed" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,needle", [
    (["--train-subset", "10000"], "train_subset"),
    (["--test-subset", "10000"], "test_subset"),
    (["--data", "synthetic:5:10"], "(4 images after a validation split of 0.1) has no image of 6 of its 10 classes"),
    (["--train-subset", "5"], "train_subset must be None or an integer from 10 to 50,000"),
])
def test_data_refusals_create_no_run_folder(tmp_path, capsys, args, needle):
    code, err = run_main(["train", *TINY, *args, "--out", str(tmp_path / "runs" / "r")], capsys)
    assert code == 2 and needle in err
    assert not (tmp_path / "runs" / "r").exists()


@pytest.mark.parametrize("args,line", [
    (["--seed", "4294967296"], "seed must be an integer from 0 to 4294967295 (2**32 - 1), got 4294967296"),
    (["--data", "synthetic:99999999999:1"], "data: bad synthetic source 'synthetic:99999999999:1': expected "
     "'synthetic' or 'synthetic:N_TRAIN:N_TEST' with 1 <= N_TRAIN <= 50,000 and 1 <= N_TEST <= 10,000 (CIFAR-10's sizes)"),
    (["--data", "synthetic:1000000:10"], "data: bad synthetic source 'synthetic:1000000:10': expected "
     "'synthetic' or 'synthetic:N_TRAIN:N_TEST' with 1 <= N_TRAIN <= 50,000 and 1 <= N_TEST <= 10,000 (CIFAR-10's sizes)"),
])
def test_values_that_failed_late_are_refused_before_any_folder_or_allocation(tmp_path, capsys, args, line):
    import tracemalloc

    tracemalloc.start()
    try:
        code, err = run_main(["train", *TINY, *args, "--out", str(tmp_path / "runs" / "r")], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 2 and err.strip().splitlines() == [f"python -m convmixer train: error: {line}"]
    assert not (tmp_path / "runs").exists() and peak < 2**27  # the 1,000,000 images alone were 3 GB


def test_a_synthetic_source_too_large_in_the_environment_is_refused_before_any_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONVMIXER_DATA", "synthetic:1000000:10")
    data = TINY.index("--data")
    code, err = run_main(["train", *TINY[:data], *TINY[data + 2:], "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "1 <= N_TRAIN <= 50,000" in err
    assert not (tmp_path / "r").exists()


def test_a_run_locked_by_another_process_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "r"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        lock = records.lock_path(out)
        lock.write_text(json.dumps({"host": records.hostname(),
                                    "pids": [{"pid": sleeper.pid, "start": records._process_start(sleeper.pid)}]}))
        code, err = run_main(["train", *TINY, "--out", str(out)], capsys)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert code == 2 and "running elsewhere" in err and f"pid {sleeper.pid}" in err
    assert not out.exists()


def test_a_completed_record_is_tidied_by_train(tmp_path, capsys):
    from convmixer.training.config import RunConfig
    from convmixer.training.train import train

    config = RunConfig(width=8, depth=1, patch_size=4, kernel_size=3, epochs=1, batch_size=50,
                       data="synthetic:200:50")
    out = tmp_path / "r"
    records.atomic_write_json(out / records.PARAMS, config.to_params())
    records.atomic_write_csv(out / records.HISTORY, [{"epoch": 1}])
    write_weights(out / records.WEIGHTS)
    records.atomic_write_json(out / records.METRICS, {"status": "completed", "test_accuracy": 0.5})
    records.atomic_write_bytes(out / records.CHECKPOINT_DIR / records.CHECKPOINT_STATE, b"x")  # killed right here
    assert train(config, out)["test_accuracy"] == 0.5
    assert not (out / records.CHECKPOINT_DIR).exists() and not records.lock_path(out).exists()


def test_a_write_that_fails_is_one_line_naming_the_path(tmp_path):
    import resource
    import signal

    def small_files_only():  # the lock (about 200 bytes) fits, params.json does not: as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))

    out = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "convmixer", "train", *TINY, "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, preexec_fn=small_files_only,
                          env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"python -m convmixer train: error: cannot write {out / records.PARAMS}: File too large"]
    assert not out.exists() and not records.lock_path(out).exists()


@pytest.mark.slow
def test_the_jax_backend_prints_no_tensorflow_start_up_lines(tmp_path):
    """Keras' set_random_seed imports TensorFlow wherever it is installed, whatever the backend."""
    pytest.importorskip("jax")
    proc = subprocess.run([sys.executable, "-m", "convmixer", "train", *TINY, "--backend", "jax",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == "", proc.stderr  # e.g. "oneDNN custom operations are on", "Could not find cuda drivers"
    assert json.loads((tmp_path / "r" / records.METRICS).read_text())["versions"].get("jax")
