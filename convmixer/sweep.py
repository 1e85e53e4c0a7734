"""Grids of runs: expand a grid file, plan what is missing, execute the training notebook per run.

A grid file (YAML)::

    description: what the grid is for, what it cuts and why
    base: {width: 256, depth: 8, recipe: seed, epochs: 5}   # shared by every run
    axes: {kernel_size: [3, 5, 7, 9], patch_size: [1, 2, 4]}  # cartesian product over base
    runs:                                                      # explicit extra runs, merged onto base
      - {patch_size: 1, kernel_size: 3, epochs: 40}

Each run lives in ``RESULTS/runs/<run id>/``. A run is done when its record
passes ``records.validate_record`` for the same configuration hash; a run with a
checkpoint resumes from it; a failed run leaves ``error.json`` and the executed
notebook showing where it failed, and the sweep goes on with the others.

Every run is trained under its lock (``records.acquire_lock``), so sweeps
started at the same time on one results folder train each run once: a run
locked by another live process is reported as "running elsewhere" and skipped.
A corrupt record is moved to ``RESULTS/corrupt/`` (never deleted) and re-run.
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
from typing import NamedTuple

import yaml

from . import records
from .training.config import RunConfig

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


ORPHAN_WAIT = 60.0  # seconds to wait for a killed sweep's leftover kernel to end (see records.lock_orphaned)
STATES = ("done", "resume", "failed", "corrupt", "elsewhere", "todo")


def _state_of(check: records.RecordState) -> str:
    if check.state == "completed":
        return "done"
    if check.state == "corrupt":
        return "corrupt"
    if check.resumable:
        return "resume"
    return "failed" if check.state == "failed" else "todo"


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
    problem: str | None = None  # why a record is corrupt


def plan(configs, results_dir) -> list[PlannedRun]:
    runs_dir = Path(results_dir) / "runs"
    planned = []
    for c in configs:
        run_dir = runs_dir / c.run_id
        check = records.validate_record(run_dir, c.config_hash)
        state = _state_of(check)
        holder = records.lock_holder(run_dir) if state != "done" else None
        if holder is not None and not records.lock_orphaned(holder):  # an orphan is waited for, then run
            state = "elsewhere"
        planned.append(PlannedRun(c, run_dir, state, check.problem if state == "corrupt" else None))
    return planned


def notebook_parameters(config: RunConfig, run_dir: Path, lock_token: str | None = None) -> dict:
    return config.to_dict() | {"out_dir": str(run_dir), "run_lock": lock_token}


def _record_failure(run_dir: Path, config: RunConfig, error: str, notebook: bool, tb: str = "") -> str | None:
    """Write error.json; returns None, or the one-line reason it could not be written (never raises).

    A run refused before its notebook wrote params.json gets that too, so the
    failed folder still says which configuration failed.
    """
    try:
        records.atomic_write_json(
            run_dir / records.ERROR,
            {"status": "failed", "run_id": config.run_id, "error": error[:4000], "traceback": tb[-8000:],
             "notebook": records.NOTEBOOK if notebook else None},
        )
        if not (run_dir / records.PARAMS).exists():
            records.atomic_write_json(run_dir / records.PARAMS,
                                      config.to_dict() | {"run_id": config.run_id, "config_hash": config.config_hash})
    except (OSError, ValueError) as exc:
        return str(exc)
    return None


class Outcome(NamedTuple):
    """One run's result: status ('completed', 'failed', 'skipped' or 'elsewhere'), the folder
    holding the attempt's record, and a one-line note (the error, or what was tidied or moved)."""

    status: str
    where: Path
    note: str = ""


def _one_line(exc: BaseException) -> str:
    text = f"{exc.ename}: {exc.evalue}" if hasattr(exc, "ename") else f"{type(exc).__name__}: {exc}"
    return " ".join(str(text).split())


def _keep_failed_attempt(run_dir: Path, results_dir: Path) -> Path | None:
    """Move a failed forced attempt out of the way of the record it replaced; None if it had to go."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for target in (results_dir / "failed-attempts" / f"{run_dir.name}-{stamp}",
                   results_dir / ".previous" / f"{run_dir.name}.failed-{stamp}"):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(run_dir, target)
            return target
        except OSError:
            continue
    # Nowhere to keep it (e.g. the disk is full): the good record matters more than a failed attempt.
    shutil.rmtree(run_dir, ignore_errors=True)
    return None


def execute_run(config: RunConfig, run_dir: Path, *, replace=False, log_output=True) -> Outcome:
    """Execute the training notebook for one run under its lock; returns an Outcome.

    Failures are recorded (error.json and the executed notebook), never raised.
    ``replace`` re-runs a completed run: its record is moved to
    ``RESULTS/.previous/<run id>`` and restored if the new attempt fails (the
    failed attempt then goes to ``RESULTS/failed-attempts/``), so a forced re-run
    never loses a good record, even when the disk is full. An interrupted forced
    re-run is resumed by the next sweep, and the kept record is restored if that
    attempt fails. A run another live process holds is not touched ('elsewhere');
    one completed meanwhile (by another sweep) is 'skipped'.
    """
    deadline = time.monotonic() + ORPHAN_WAIT
    while True:
        try:
            lock = records.acquire_lock(run_dir, what="sweep")
            break
        except records.RunLocked as exc:
            # A kernel left by a killed sweep still holds it: ipykernel ends it within seconds.
            if records.lock_orphaned(exc.owner) and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            return Outcome("elsewhere", run_dir, str(exc))
        except OSError as exc:
            return Outcome("failed", run_dir, str(records.write_error(records.lock_path(run_dir), exc)))
    try:
        return _execute_locked(config, run_dir, lock, replace, log_output)
    except Exception as exc:  # a bug or an unexpected I/O error must not stop the other runs
        return Outcome("failed", run_dir, _one_line(exc))
    finally:
        lock.release()


def _execute_locked(config, run_dir, lock, replace, log_output) -> Outcome:
    results_dir = run_dir.parent.parent
    previous = _previous(run_dir)
    notes = []
    check = records.validate_record(run_dir, config.config_hash)
    if check.state == "completed" and previous.exists():
        shutil.rmtree(previous)  # killed just after a forced re-run completed: the new record won
    if check.state == "completed" and not replace:
        tidied = records.tidy_completed(run_dir)
        return Outcome("skipped", run_dir, "completed meanwhile" + (f"; tidied: {', '.join(tidied)}" if tidied else ""))
    status, failure = "failed", None
    try:
        if check.state == "corrupt":
            aside = records.move_aside(run_dir, results_dir, check.problem)
            notes.append(f"corrupt record ({check.problem}) moved to {aside}")
        if replace and run_dir.exists():
            if previous.exists():  # an earlier forced attempt was interrupted: drop it, keep the good record
                shutil.rmtree(run_dir)
            else:
                previous.parent.mkdir(parents=True, exist_ok=True)
                os.replace(run_dir, previous)
        status, failure = _attempt(config, run_dir, lock, log_output, notes)
    except Exception as exc:  # whatever happened, the restore below still runs
        status, failure = "failed", _one_line(exc)
    where = run_dir
    if previous.exists():
        if status == "completed":
            shutil.rmtree(previous, ignore_errors=True)
        else:
            where = _keep_failed_attempt(run_dir, results_dir) or run_dir
            try:
                os.replace(previous, run_dir)
                notes.append("the previous complete record was kept")
            except OSError as exc:
                notes.append(f"the previous complete record is in {previous} "
                             f"(cannot move it back: {exc.strerror or exc})")
    if failure:
        notes.insert(0, failure)
    return Outcome(status, where, "; ".join(notes))


def _attempt(config, run_dir, lock, log_output, notes) -> tuple[str, str | None]:
    """Run the notebook into ``run_dir``; ('completed', None) or ('failed', one-line reason). Never raises OSError."""
    import papermill as pm

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        partial = records.partial_notebook(run_dir)
        partial.unlink(missing_ok=True)
    except OSError as exc:
        return "failed", str(records.write_error(run_dir, exc))
    failure = None
    try:
        # No cwd: the kernel starts in the sweep's working directory, so relative
        # paths (results, data) mean the same in the sweep and in the notebook.
        pm.execute_notebook(
            str(NOTEBOOK), str(partial), parameters=notebook_parameters(config, run_dir, lock.token),
            kernel_name="python3", progress_bar=False, log_output=log_output,
        )
    except Exception as exc:  # the run failed: record it and let the sweep continue
        # A notebook failure carries the cell's exception name and message; say those, not papermill's banner.
        failure = _one_line(exc)
        unwritten = _record_failure(run_dir, config, failure, partial.exists(), traceback.format_exc())
        if unwritten:
            notes.append(unwritten)
    try:
        if partial.exists():
            os.replace(partial, run_dir / records.NOTEBOOK)
    except OSError:
        pass
    if failure:
        return "failed", failure
    check = records.validate_record(run_dir, config.config_hash)
    if check.state != "completed":
        failure = f"the notebook finished without a complete record for configuration {config.config_hash}: " \
                  f"{check.problem}"
        unwritten = _record_failure(run_dir, config, failure, True)
        if unwritten:
            notes.append(unwritten)
        return "failed", failure
    try:  # the kernel was given absolute paths; the record keeps none of this machine's
        records.make_record_portable(run_dir)
    except (OSError, ValueError) as exc:
        notes.append(f"paths left as they are ({exc})")
    return "completed", None


def check_data_sources(configs):
    """Load each distinct data source once before any run starts.

    A missing file or an offline machine without CONVMIXER_DATA then fails the
    sweep at once with the loader's message, instead of failing every run. The
    load is not wasted: local sources are cached decoded, the canonical archive
    is downloaded into Keras' cache, and each run reads them from there.
    """
    from .data import DataError, load_cifar10, resolve_source
    from .training.speed import import_tensorflow_quietly, quiet_tensorflow_logs

    sources = sorted({resolve_source(c.data) for c in configs})
    if "cifar10" in sources and quiet_tensorflow_logs():
        import_tensorflow_quietly()  # the canonical download goes through keras.utils.get_file
    for source in sources:
        try:
            load_cifar10(source)
        except DataError as exc:
            raise SweepError(f"data: {exc}") from None


def _print_plan(planned, stream, replace=frozenset()):
    counts = {s: sum(p.state == s for p in planned) for s in STATES}
    done = counts["done"] - len(replace)
    print(
        f"plan: {len(planned)} runs: {done} done (skipped), {len(replace)} done but forced (re-run), "
        f"{counts['resume']} to resume, {counts['failed']} previously failed (retried), {counts['todo']} to run, "
        f"{counts['corrupt']} corrupt (moved aside, re-run), {counts['elsewhere']} running elsewhere (skipped)",
        file=stream,
    )
    for p in planned:
        state = "force" if p.config.run_id in replace else p.state
        note = data_mismatch(p.config, p.run_dir) if p.state == "done" else p.problem
        print(f"  {state:9s} {p.config.run_id}" + (f"  [note: {note}]" if note else ""), file=stream)


def _previous(run_dir: Path) -> Path:
    """Where a forced re-run keeps the completed record it replaces until it completes."""
    return run_dir.parent.parent / ".previous" / run_dir.name


def _has_leftovers(run_dir: Path) -> bool:
    return ((run_dir / records.CHECKPOINT_DIR).exists() or records.partial_notebook(run_dir).exists()
            or _previous(run_dir).exists()
            or (run_dir / records.ERROR).exists() or records.lock_path(run_dir).exists()
            or any(p.name.endswith(".tmp") or ".partial" in p.name for p in run_dir.glob(".*")))


def tidy_done_runs(planned, stream):
    """Remove what kills left beside completed records (checkpoints, partial notebooks, stale locks)."""
    for p in planned:
        if p.state != "done" or not _has_leftovers(p.run_dir):
            continue
        try:
            with records.acquire_lock(p.run_dir, what="tidy"):
                if records.validate_record(p.run_dir, p.config.config_hash).state == "completed":
                    done = records.tidy_completed(p.run_dir)
                    if _previous(p.run_dir).exists():  # a forced re-run completed, then was killed
                        shutil.rmtree(_previous(p.run_dir), ignore_errors=True)
                        done.append("removed the replaced record kept in .previous/")
                    if done:
                        print(f"  tidied  {p.config.run_id}: {', '.join(done)}", file=stream)
        except records.RunLocked:
            continue  # another process is at it
        except OSError as exc:
            print(f"  cannot tidy {p.config.run_id}: {exc}", file=stream)


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


def check_clean_tree(allow_dirty: bool):
    """Published grids run from a clean checkout: refuse uncommitted changes unless ``allow_dirty``.

    The records then name a commit that reproduces them. With ``allow_dirty`` the
    kernels are told (``CONVMIXER_ALLOW_DIRTY``) and each record says so.
    """
    from .training.train import ALLOW_DIRTY_ENV

    if allow_dirty:
        os.environ[ALLOW_DIRTY_ENV] = "1"
        return
    if os.environ.get(ALLOW_DIRTY_ENV) == "1":
        return
    commit = records.git_commit()
    if commit.endswith("+dirty"):
        raise SweepError(f"the code's working tree has uncommitted changes ({commit}): run grids from a clean "
                         "checkout of a commit (git worktree add ../grid-SHA SHA), or pass --allow-dirty, "
                         "which each record then notes")


def main_sweep(grid, *, jobs=1, force=False, dry_run=False, results="results", stream=sys.stdout,
               allow_dirty=False) -> int:
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
    check_clean_tree(allow_dirty)
    tidy_done_runs([p for p in planned if p.config.run_id not in replace], stream)
    # A run another process holds now may be free by the time its turn comes: execute_run decides.
    todo = [p for p in planned if p.state != "done" or p.config.run_id in replace]
    check_data_sources([p.config for p in todo])
    _show_notebook_output(stream)
    # Kernels inherit the environment: keep TensorFlow's C++ start-up chatter out of the log.
    from .training.speed import quiet_tensorflow_logs

    quiet_tensorflow_logs()
    summary = {"completed": 0, "skipped": len(planned) - len(todo), "failed": 0, "elsewhere": 0}
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
                outcome = fut.result()
                summary[outcome.status] += 1
                if outcome.status == "failed":
                    failed.append((p, outcome))
                bar.update(1)
                label = "running elsewhere" if outcome.status == "elsewhere" else outcome.status
                note = outcome.note if outcome.status != "failed" else ""
                bar.write(f"{label:9s} {p.config.run_id}" + (f"  [{note}]" if note else ""), file=stream)
    print(
        f"summary: {summary['completed']} completed, {summary['skipped']} skipped, {summary['failed']} failed, "
        f"{summary['elsewhere']} running elsewhere",
        file=stream,
    )
    for p, outcome in failed:
        error = outcome.where / records.ERROR
        see = f"; see {error}" if error.exists() else ""
        print(f"  failed: {p.config.run_id}: {outcome.note or 'failed'}{see}", file=stream)
    return 1 if failed else 0
