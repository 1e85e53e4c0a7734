"""Grids of runs: expand a grid file, plan what is missing, execute the training notebook per run.

A grid file (YAML)::

    description: what the grid is for, what it cuts and why
    base: {width: 256, depth: 8, recipe: seed, epochs: 5}   # shared by every run
    axes: {kernel_size: [3, 5, 7, 9], patch_size: [1, 2, 4]}  # cartesian product over base
    runs:                                                      # explicit extra runs, merged onto base
      - {patch_size: 1, kernel_size: 3, epochs: 40}

Each run lives in ``RESULTS/runs/<run id>/``. A run is done when its
``metrics.json`` says "completed" for the same configuration hash; a run with a
checkpoint resumes from it; a failed run leaves ``error.json`` and the executed
notebook showing where it failed, and the sweep goes on with the others.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import logging
import os
import sys
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import records
from .config import RunConfig

GRID_KEYS = ("description", "base", "axes", "runs")
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "train.ipynb"


class SweepError(ValueError):
    """A grid file that cannot be expanded (named key and what is allowed)."""


def load_grid(path) -> list[RunConfig]:
    """Expand a grid file into validated configurations (duplicates dropped), before anything runs."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SweepError(f"grid {path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise SweepError(f"grid {path}: not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise SweepError(f"grid {path}: must be a mapping with keys {list(GRID_KEYS)}")
    unknown = sorted(set(spec) - set(GRID_KEYS))
    if unknown:
        raise SweepError(f"grid {path}: unknown key(s) {unknown}; allowed keys are {list(GRID_KEYS)}")
    base = spec.get("base") or {}
    axes = spec.get("axes") or {}
    extra = spec.get("runs") or []
    if not isinstance(base, dict) or not isinstance(axes, dict) or not isinstance(extra, list):
        raise SweepError(f"grid {path}: 'base' and 'axes' must be mappings and 'runs' a list")
    for name, values in axes.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"grid {path}: axes.{name} must be a non-empty list, got {values!r}")

    entries = []
    if axes:
        names = list(axes)
        for combo in itertools.product(*(axes[n] for n in names)):
            entries.append(("axes " + ", ".join(f"{n}={v}" for n, v in zip(names, combo)), dict(zip(names, combo))))
    for i, run in enumerate(extra):
        if not isinstance(run, dict):
            raise SweepError(f"grid {path}: runs[{i}] must be a mapping, got {run!r}")
        entries.append((f"runs[{i}]", run))
    if not entries:
        raise SweepError(f"grid {path}: no runs (give 'axes' or 'runs')")

    configs, seen = [], set()
    for where, values in entries:
        try:
            config = RunConfig.from_dict({**base, **values})
        except (ValueError, TypeError) as exc:
            raise SweepError(f"grid {path}: {where}: {exc}") from None
        if config.run_id not in seen:
            seen.add(config.run_id)
            configs.append(config)
    return configs


def run_state(config: RunConfig, run_dir: Path) -> str:
    """'done', 'resume' (checkpoint present), 'failed' (last attempt failed) or 'todo'."""
    metrics = run_dir / records.METRICS
    if metrics.exists():
        try:
            m = records.read_json(metrics)
            p = records.read_json(run_dir / records.PARAMS)
            if m.get("status") == "completed" and p.get("config_hash") == config.config_hash:
                return "done"
        except (OSError, ValueError):
            pass
    if (run_dir / records.CHECKPOINT_DIR / records.CHECKPOINT_STATE).exists():
        return "resume"
    if (run_dir / records.ERROR).exists():
        return "failed"
    return "todo"


def data_mismatch(config: RunConfig, run_dir: Path) -> str | None:
    """A note when a completed run was trained on another source than this machine would use.

    The run id hashes the configured ``data`` (usually None: "$CONVMIXER_DATA or
    canonical"), so the same id can mean different data on different machines.
    Such a run is kept, never overwritten, and the plan says so.
    """
    from .data import resolve_source

    try:
        used = records.read_json(run_dir / records.METRICS)["dataset"]["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    wanted = records.portable_path(resolve_source(config.data))
    used = records.portable_path(used)  # records written before paths were made portable
    return None if used == wanted else f"trained on {used}, this machine would use {wanted}"


@dataclass
class PlannedRun:
    config: RunConfig
    run_dir: Path
    state: str


def plan(configs, results_dir) -> list[PlannedRun]:
    runs_dir = Path(results_dir) / "runs"
    return [PlannedRun(c, runs_dir / c.run_id, run_state(c, runs_dir / c.run_id)) for c in configs]


def notebook_parameters(config: RunConfig, run_dir: Path) -> dict:
    return config.to_dict() | {"out_dir": str(run_dir)}


def _record_failure(run_dir: Path, config: RunConfig, error: str, notebook: bool, tb: str = ""):
    records.atomic_write_json(
        run_dir / records.ERROR,
        {"status": "failed", "run_id": config.run_id, "error": error[:4000], "traceback": tb[-8000:],
         "notebook": records.NOTEBOOK if notebook else None},
    )


def execute_run(config: RunConfig, run_dir: Path, *, replace=False, log_output=True) -> tuple[str, Path]:
    """Execute the training notebook for one run; returns ('completed' | 'failed', folder with its record).

    Failures are recorded (error.json and the executed notebook), never raised.
    ``replace`` re-runs a completed run: its record is moved to
    ``RESULTS/.previous/<run id>`` and restored if the new attempt fails (the
    failed attempt then goes to ``RESULTS/failed-attempts/``), so a forced re-run
    never loses a good record. An interrupted forced re-run is resumed by the
    next sweep, and the kept record is restored if that attempt fails.
    """
    import papermill as pm

    results_dir = run_dir.parent.parent
    previous = results_dir / ".previous" / run_dir.name
    if replace and run_dir.exists():
        if previous.exists():  # an earlier forced attempt was interrupted: drop it, keep the good record
            shutil.rmtree(run_dir)
        else:
            previous.parent.mkdir(parents=True, exist_ok=True)
            os.replace(run_dir, previous)
    run_dir.mkdir(parents=True, exist_ok=True)
    partial = run_dir / f".partial.{records.NOTEBOOK}"
    partial.unlink(missing_ok=True)
    try:
        # No cwd: the kernel starts in the sweep's working directory, so relative
        # paths (results, data) mean the same in the sweep and in the notebook.
        pm.execute_notebook(
            str(NOTEBOOK), str(partial), parameters=notebook_parameters(config, run_dir),
            kernel_name="python3", progress_bar=False, log_output=log_output,
        )
        status = "completed"
    except Exception as exc:  # the run failed: record it and let the sweep continue
        status = "failed"
        # A notebook failure carries the cell's exception name and message; say those, not papermill's banner.
        error = f"{exc.ename}: {exc.evalue}" if hasattr(exc, "ename") else f"{type(exc).__name__}: {exc}"
        _record_failure(run_dir, config, error, partial.exists(), traceback.format_exc())
    if partial.exists():
        os.replace(partial, run_dir / records.NOTEBOOK)
    if status == "completed" and run_state(config, run_dir) != "done":
        status = "failed"
        _record_failure(run_dir, config, "the notebook finished without a complete record for configuration "
                        f"{config.config_hash}", True)
    where = run_dir
    if previous.exists():
        if status == "completed":
            shutil.rmtree(previous)
        else:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            where = results_dir / "failed-attempts" / f"{run_dir.name}-{stamp}"
            where.parent.mkdir(parents=True, exist_ok=True)
            os.replace(run_dir, where)
            os.replace(previous, run_dir)
    return status, where


def check_data_sources(configs):
    """Load each distinct data source once before any run starts.

    A missing file or an offline machine without CONVMIXER_DATA then fails the
    sweep at once with the loader's message, instead of failing every run. The
    load is not wasted: local sources are cached decoded, the canonical archive
    is downloaded into Keras' cache, and each run reads them from there.
    """
    from .data import DataError, load_cifar10, resolve_source

    for source in sorted({resolve_source(c.data) for c in configs}):
        try:
            load_cifar10(source)
        except DataError as exc:
            raise SweepError(f"data: {exc}") from None


def _print_plan(planned, stream, replace=frozenset()):
    counts = {s: sum(p.state == s for p in planned) for s in ("done", "resume", "failed", "todo")}
    done = counts["done"] - len(replace)
    print(
        f"plan: {len(planned)} runs: {done} done (skipped), {len(replace)} done but forced (re-run), "
        f"{counts['resume']} to resume, {counts['failed']} previously failed (retried), {counts['todo']} to run",
        file=stream,
    )
    for p in planned:
        state = "force" if p.config.run_id in replace else p.state
        note = data_mismatch(p.config, p.run_dir) if p.state == "done" else None
        print(f"  {state:7s} {p.config.run_id}" + (f"  [note: {note}]" if note else ""), file=stream)


class _CellOutput(logging.Filter):
    """Pass the notebook's own output (one line per epoch), drop papermill's bookkeeping."""

    def filter(self, record):
        message = record.getMessage()
        return not message.startswith(("Executing", "Ending Cell", "Input Notebook", "Output Notebook", "Black is not"))


def _show_notebook_output(stream):
    logger = logging.getLogger("papermill")
    if not any(isinstance(f, _CellOutput) for h in logger.handlers for f in h.filters):
        handler = logging.StreamHandler(stream)
        handler.addFilter(_CellOutput())
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main_sweep(grid, *, jobs=1, force=False, dry_run=False, results="results", stream=sys.stdout) -> int:
    """Run a grid; exit status 0 when every run is complete, 1 when any failed."""
    if not isinstance(jobs, int) or jobs < 1:
        raise SweepError(f"--jobs must be an integer >= 1, got {jobs!r}")
    if not NOTEBOOK.exists():
        raise SweepError(f"the training notebook {NOTEBOOK} is missing: run the sweep from a clone of the repository")
    configs = load_grid(grid)
    # Absolute paths: the notebook kernels must find the same folders and data as this process.
    results = Path(results).resolve()
    if os.environ.get("CONVMIXER_DATA"):
        from .data import resolve_source

        os.environ["CONVMIXER_DATA"] = resolve_source(None)
    planned = plan(configs, results)
    replace = {p.config.run_id for p in planned if force and p.state == "done"}
    _print_plan(planned, stream, replace)
    if dry_run:
        return 0
    todo = [p for p in planned if p.state != "done" or p.config.run_id in replace]
    check_data_sources([p.config for p in todo])
    _show_notebook_output(stream)
    # Kernels inherit the environment: keep TensorFlow's C++ start-up chatter out of the log.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    summary = {"completed": 0, "skipped": len(planned) - len(todo), "failed": 0}
    failed = []

    from tqdm.auto import tqdm

    # Threads in one process: jupyter_client's port cache hands every kernel its
    # own ports, so parallel jobs never clash (separate processes could).
    with tqdm(total=len(todo), desc="runs", unit="run", file=sys.stderr, disable=not todo) as bar:
        with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(execute_run, p.config, p.run_dir, replace=p.config.run_id in replace): p
                       for p in todo}
            for fut in cf.as_completed(futures):  # results are counted here, in the main thread
                p = futures[fut]
                status, where = fut.result()
                summary[status] += 1
                if status == "failed":
                    failed.append((p, where))
                bar.update(1)
                bar.write(f"{status:9s} {p.config.run_id}", file=stream)
    print(
        f"summary: {summary['completed']} completed, {summary['skipped']} skipped, {summary['failed']} failed",
        file=stream,
    )
    for p, where in failed:
        kept = " (the previous complete record was kept)" if where != p.run_dir else ""
        print(f"  failed: {p.config.run_id}: see {where / records.ERROR}{kept}", file=stream)
    return 1 if failed else 0
