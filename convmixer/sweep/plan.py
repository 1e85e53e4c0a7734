"""Plan a sweep: the state of every run of a grid, and what to tidy or check before running.

A run is done when its record passes ``records.validate_record`` for the same
configuration hash; a run with a checkpoint resumes from it; a run locked by
another live process is "running elsewhere"; a corrupt record is moved to
``RESULTS/corrupt/`` (never deleted) and re-run.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path


from .. import records
from ..training.config import RunConfig
from .grids import SweepError


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
    from ..data import resolve_source

    try:
        used = records.RunRecord(run_dir).metrics["dataset"]["source"]
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
    problem: str | None = None  # why a record is corrupt, or whose lock the run will take over


def _takes_over(run_dir: Path, holder: dict, older_than: float | None) -> bool:
    """Whether ``--take-over-locks`` (``older_than`` seconds) will take over ``holder``'s live lock."""
    return older_than is not None and records.lock_abandoned(records.lock_path(run_dir), holder, older_than)


def plan(configs, results_dir, take_over_after: float | None = None) -> list[PlannedRun]:
    """Each run's state; ``take_over_after``: another host's lock not refreshed for that many seconds will
    be taken over (``--take-over-locks``), so such a run is planned to run, not as "running elsewhere"."""
    runs_dir = Path(results_dir) / "runs"
    planned = []
    for c in configs:
        run_dir = runs_dir / c.run_id
        check = records.validate_record(run_dir, c.config_hash)
        state = _state_of(check)
        problem = check.problem if state == "corrupt" else None
        holder = records.lock_holder(run_dir) if state != "done" else None
        if holder is not None and _takes_over(run_dir, holder, take_over_after):
            problem = "will take over the lock of " + records.describe_owner(holder, records.lock_path(run_dir))
        elif holder is not None and not records.lock_orphaned(holder):  # an orphan is waited for, then run
            state = "elsewhere"
        planned.append(PlannedRun(c, run_dir, state, problem))
    return planned


def check_data_paths(configs):
    """Every data source that is a path exists: the cheap part of ``check_data_sources``, which a dry run
    does too (it loads nothing)."""
    from ..data import resolve_source

    for source in sorted({resolve_source(c.data) for c in configs}):
        if os.path.isabs(source) and not os.path.exists(source):
            raise SweepError(f"data: {source} does not exist (the grid's data field, or CONVMIXER_DATA)")


def check_data_sources(configs):
    """Load each distinct data source once before any run starts.

    A missing file or an offline machine without CONVMIXER_DATA then fails the
    sweep at once with the loader's message, instead of failing every run. The
    load is not wasted: local sources are cached decoded, the canonical archive
    is downloaded into Keras' cache, and each run reads them from there.
    """
    from ..data import DataError, load_cifar10, resolve_source
    from ..training.speed import import_tensorflow_quietly, quiet_tensorflow_logs

    sources = sorted({resolve_source(c.data) for c in configs})
    if "cifar10" in sources and quiet_tensorflow_logs():
        import_tensorflow_quietly()  # the canonical download goes through keras.utils.get_file
    for source in sources:
        try:
            load_cifar10(source)
        except DataError as exc:
            raise SweepError(f"data: {exc}") from None


def print_plan(planned, stream, replace=frozenset()):
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


def _has_leftovers(run_dir: Path) -> bool:
    return ((run_dir / records.CHECKPOINT_DIR).exists() or records.partial_notebook(run_dir).exists()
            or records.previous_record_dir(run_dir).exists()
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
                    if records.previous_record_dir(p.run_dir).exists():  # a forced re-run completed, then was killed
                        shutil.rmtree(records.previous_record_dir(p.run_dir), ignore_errors=True)
                        done.append("removed the replaced record kept in .previous/")
                    if done:
                        print(f"  tidied  {p.config.run_id}: {', '.join(done)}", file=stream)
        except records.RunLocked:
            continue  # another process is at it
        except OSError as exc:
            print(f"  cannot tidy {p.config.run_id}: {exc}", file=stream)


def check_clean_tree(allow_dirty: bool):
    """Published grids run from a clean checkout: refuse uncommitted changes unless ``allow_dirty``.

    The records then name a commit that reproduces them. With ``allow_dirty`` the
    kernels are told (``CONVMIXER_ALLOW_DIRTY``) and each record says so.
    """
    from ..records import ALLOW_DIRTY_ENV

    if allow_dirty:
        os.environ[ALLOW_DIRTY_ENV] = "1"
        return
    if os.environ.get(ALLOW_DIRTY_ENV) == "1":
        return
    commit = records.git_commit()
    if commit == "unknown":
        raise SweepError("the code's commit cannot be read (not a git checkout, or git failed): run grids from a "
                         "clone of the repository, or pass --allow-dirty, which each record then notes")
    if commit.endswith("+dirty"):
        raise SweepError(f"the code's working tree has uncommitted changes ({commit}): run grids from a clean "
                         "checkout of a commit (git worktree add ../grid-SHA SHA), or pass --allow-dirty, "
                         "which each record then notes")
