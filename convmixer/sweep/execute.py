"""Execute one run: the training notebook through papermill, under the run's lock, never raising.

A failed run leaves ``error.json`` and the executed notebook showing where it
failed; a forced re-run keeps the previous complete record until the new one
completes, and restores it otherwise (even when the disk is full).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import NamedTuple


from .. import records
from ..training.config import RunConfig


NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "train.ipynb"


# The kernel's own log (to the sweep's terminal) says nothing a run needs: a cell's error reaches the
# sweep through papermill, and a kernel that dies is reported by nbclient. Its two usual lines are
# "Kernel is running over TCP without encryption" (it listens on 127.0.0.1, its messages signed) and
# "KeyboardInterrupt caught in kernel" (jupyter_client interrupts every kernel it shuts down).
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]

ORPHAN_WAIT = 60.0  # seconds to wait for a killed sweep's leftover kernel to end (see records.lock_orphaned)
ORPHAN_GRACE = 5.0  # seconds it gets to end itself (ipykernel polls its parent each second) before it is killed
# A notebook kernel that could not start (e.g. two sweeps or Dask workers picked the same free port for their
# kernels: jupyter_client avoids that between threads of one process, not between processes) is retried.
KERNEL_START_FAILURES = ("Kernel died before replying to kernel_info", "Address already in use",
                         "Kernel didn't respond")
KERNEL_START_ATTEMPTS = 3


def notebook_parameters(config: RunConfig, run_dir: Path, lock_token: str | None = None) -> dict:
    return config.to_dict() | {"out_dir": str(run_dir), "run_lock": lock_token}


def _record_failure(run_dir: Path, config: RunConfig, error: str, notebook: bool, tb: str = "") -> str | None:
    """Write error.json; returns None, or the one-line reason it could not be written (never raises).

    A run refused before its notebook wrote params.json gets that too, so the
    failed folder still says which configuration failed.
    """
    record = records.RunRecord(run_dir)
    try:
        record.write_error({"status": "failed", "run_id": config.run_id, "error": error[:4000],
                            "traceback": tb[-8000:], "notebook": records.NOTEBOOK if notebook else None})
        if not record.has(records.PARAMS):
            record.write_params(config.to_params())
    except (OSError, ValueError) as exc:
        return str(exc)
    return None


class Outcome(NamedTuple):
    """One run's result: status ('completed', 'failed', 'skipped' or 'elsewhere'), the folder
    holding the attempt's record, and a one-line note (the error, or what was tidied or moved)."""

    status: str
    where: Path
    note: str = ""


def outcome_line(status: str, run_id: str, note: str, on: str = "") -> str:
    """The sweep's line for one finished run (here or from a Dask worker, ``on``); a failed run's note is cut
    to its first clause, since the summary repeats it whole."""
    label = "running elsewhere" if status == "elsewhere" else status
    note = note.split(";")[0] if status == "failed" else note
    return f"{label:9s} {run_id}{on}" + (f"  [{note}]" if note else "")


def one_line(exc: BaseException) -> str:
    """``exc`` as "Name: message" on one line; a notebook cell's error names the cell's exception."""
    text = f"{exc.ename}: {exc.evalue}" if hasattr(exc, "ename") else f"{type(exc).__name__}: {exc}"
    return " ".join(str(text).split())


def _keep_failed_attempt(run_dir: Path, results_dir: Path) -> Path | None:
    """Move a failed forced attempt out of the way of the record it replaced; None if it had to go."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for target in (results_dir / "failed-attempts" / f"{run_dir.name}-{stamp}",
                   records.previous_record_dir(run_dir).with_name(f"{run_dir.name}.failed-{stamp}")):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(run_dir, target)
            return target
        except OSError:
            continue
    # Nowhere to keep it (e.g. the disk is full): the good record matters more than a failed attempt.
    shutil.rmtree(run_dir, ignore_errors=True)
    return None


def execute_run(config: RunConfig, run_dir: Path, *, replace=False, log_output=True,
                take_over_after: float | None = None) -> Outcome:
    """Execute the training notebook for one run under its lock; returns an Outcome.

    Failures are recorded (error.json and the executed notebook), never raised.
    ``replace`` re-runs a completed run: its record is moved to
    ``RESULTS/.previous/<run id>`` and restored if the new attempt fails (the
    failed attempt then goes to ``RESULTS/failed-attempts/``), so a forced re-run
    never loses a good record, even when the disk is full. An interrupted forced
    re-run is resumed by the next sweep, and the kept record is restored if that
    attempt fails. A run another live process holds is not touched ('elsewhere');
    one completed meanwhile (by another sweep) is 'skipped'. ``take_over_after``
    (``--take-over-locks``): first take over another host's lock not refreshed for
    that many seconds (``records.take_over_stale_lock``), saying whose it was.
    """
    if take_over_after is not None:
        try:
            taken = records.take_over_stale_lock(run_dir, take_over_after)
        except OSError as exc:
            return Outcome("failed", run_dir, str(records.write_error(records.lock_path(run_dir), exc)))
        if taken:
            # papermill's logger: the sweep shows its lines (locally, and forwarded from a Dask worker)
            logging.getLogger("papermill").info(taken)
    started = time.monotonic()
    while True:
        try:
            lock = records.acquire_lock(run_dir, what="sweep")
            break
        except records.RunLocked as exc:
            # A kernel left by a killed sweep still holds it: ipykernel usually ends it within
            # seconds; past the grace it is ended here (records.end_orphans says why that is safe).
            waited = time.monotonic() - started
            if records.lock_orphaned(exc.owner) and waited < ORPHAN_WAIT:
                if waited > ORPHAN_GRACE:
                    records.end_orphans(exc.owner)
                time.sleep(0.5)
                continue
            return Outcome("elsewhere", run_dir, str(exc))
        except OSError as exc:
            return Outcome("failed", run_dir, str(records.write_error(records.lock_path(run_dir), exc)))
    try:
        return _execute_locked(config, run_dir, lock, replace, log_output)
    except Exception as exc:  # a bug or an unexpected I/O error must not stop the other runs
        return Outcome("failed", run_dir, one_line(exc))
    finally:
        lock.release()


def _execute_locked(config, run_dir, lock, replace, log_output) -> Outcome:
    results_dir = run_dir.parent.parent
    previous = records.previous_record_dir(run_dir)
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
        status, failure = "failed", one_line(exc)
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
    for _ in range(KERNEL_START_ATTEMPTS):
        failure, started = None, True
        try:
            # No cwd: the kernel starts in the sweep's working directory, so relative
            # paths (results, data) mean the same in the sweep and in the notebook.
            pm.execute_notebook(
                str(NOTEBOOK), str(partial), parameters=notebook_parameters(config, run_dir, lock.token),
                kernel_name="python3", progress_bar=False, extra_arguments=KERNEL_ARGUMENTS,
                # What the cells print (one line per epoch) goes to the sweep; their displayed values (the
                # metrics table, "<Figure size ...>") stay in the executed notebook: papermill's log_output
                # would echo those too, while its stdout_file and stderr_file take printed text only.
                stdout_file=_NotebookStream(logging.INFO) if log_output else None,
                stderr_file=_NotebookStream(logging.WARNING) if log_output else None,
            )
        except Exception as exc:  # the run failed: record it and let the sweep continue
            # A notebook failure carries the cell's exception name and message, not papermill's banner.
            # An OSError is papermill's own, writing the executed notebook (a full disk says only "[Errno 28]").
            failure = one_line(records.write_error(exc.filename or partial, exc) if isinstance(exc, OSError)
                               else exc)
            tb = traceback.format_exc()
            started = hasattr(exc, "ename")  # a cell's error: the kernel ran, and its cells must not run again
        if started or not any(s in failure for s in KERNEL_START_FAILURES):
            break
    if failure:
        unwritten = _record_failure(run_dir, config, failure, partial.exists(), tb)
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


class _NotebookStream:
    """A file-like papermill writes a stream of the notebook's output to: each write becomes one record of
    papermill's logger, which the sweep shows (``show_notebook_output``; from a Dask worker,
    ``tasks._ForwardOutput``)."""

    def __init__(self, level):
        self.level = level

    def write(self, text):
        text = text.rstrip("\n")
        if text:
            logging.getLogger("papermill").log(self.level, text)

    def flush(self):
        pass


class NotebookOutputOnly(logging.Filter):
    """Pass the notebook's own output (one line per epoch), drop papermill's bookkeeping (the one list of
    what is bookkeeping, for the sweep's own stream and for a Dask worker's ``tasks._ForwardOutput``)."""

    BOOKKEEPING = ("Executing", "Ending Cell", "Input Notebook", "Output Notebook", "Black is not")

    def filter(self, record):
        return not record.getMessage().startswith(self.BOOKKEEPING)


def show_notebook_output(stream):
    logger = logging.getLogger("papermill")
    shown = [h for h in logger.handlers if any(isinstance(f, NotebookOutputOnly) for f in h.filters)]
    if shown:  # set up by an earlier sweep in this process: its lines now go to this sweep's stream
        shown[0].setStream(stream)
    else:
        handler = logging.StreamHandler(stream)
        handler.addFilter(NotebookOutputOnly())
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
