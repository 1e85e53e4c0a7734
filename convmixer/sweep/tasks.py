"""What runs inside a Dask worker: one run per task (``sweep.execute_run``), and the probe of a worker's access."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from .. import records
from .execute import NotebookOutputOnly


# Set in the worker before the notebook kernel starts (the kernel inherits the
# environment); a value the user exported wins.
GPU_ENV = {
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",  # JAX: allocate on demand, so processes can share a GPU
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",  # TensorFlow: memory growth instead of grabbing the whole GPU
}
# The sweep's settings its notebook kernels read from the environment, sent to the workers with each task.
FORWARDED_ENV = ("CONVMIXER_DATA", records.ALLOW_DIRTY_ENV)


class RunResult(NamedTuple):
    """What one task reports back (small, picklable); ``status``/``where``/``note`` as ``sweep.Outcome``."""

    status: str  # completed, failed, skipped or elsewhere
    where: Path
    note: str
    run_id: str
    host: str | None = None  # the worker's host name (None: the task never reported back)
    worker: str | None = None  # the worker's address, e.g. tcp://10.0.0.5:40123


# --------------------------------------------------------------------------- inside a worker

def _this_worker():
    """The Dask worker running this task; None outside one (tests calling the task directly)."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def prepare_environment() -> None:
    """Set the worker's environment for the notebook kernels it starts (they inherit it)."""
    from ..training.speed import quiet_tensorflow_logs

    for name, value in GPU_ENV.items():
        os.environ.setdefault(name, value)
    quiet_tensorflow_logs()


@contextmanager
def restored_environment(*names):
    """os.environ's ``names`` as they were before the block, whatever the block set, changed or removed."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def task_environment(env: dict | None):
    """``env`` (the sweep's settings) in os.environ for one task, the worker's own values restored after."""
    env = env or {}
    with restored_environment(*env):
        os.environ.update(env)
        yield


def record_executed_on(run_dir, host: str, worker: str) -> str | None:
    """Add ``executed_on`` to a completed run's metrics.json (atomic rewrite, under the run's lock).

    Everything else in the file is unchanged. Returns None, or a one-line
    reason it was not added (never raises).
    """
    run_dir = Path(run_dir)
    try:
        with records.acquire_lock(run_dir, what="provenance"):
            if records.validate_record(run_dir).state != "completed":
                return f"executed_on not recorded: {run_dir} is no longer a completed run"
            record = records.RunRecord(run_dir)
            record.write_metrics(record.metrics | {"executed_on": {"host": host, "worker": worker}})
    except records.RunLocked:
        return "executed_on not recorded: the run was taken by another process meanwhile"
    except (OSError, ValueError) as exc:
        return f"executed_on not recorded: {' '.join(str(exc).split())}"
    return None


class _ForwardOutput(logging.Handler):
    """Send the notebook's output lines of this task's thread to the sweep (a Dask event topic)."""

    def __init__(self, worker, topic: str):
        super().__init__(logging.INFO)
        self.worker, self.topic, self.thread = worker, topic, threading.get_ident()
        self.addFilter(NotebookOutputOnly())

    def emit(self, record):
        if record.thread != self.thread:
            return
        try:
            self.worker.log_event(self.topic, record.getMessage().rstrip("\n"))
        except Exception:  # output is a courtesy: never let it fail the run
            pass


def _forward_output(worker, topic: str | None):
    """Attach a _ForwardOutput to papermill's logger; returns a function that detaches it (None: nothing to do)."""
    if not topic or worker is None:
        return None
    logger = logging.getLogger("papermill")
    handler = _ForwardOutput(worker, topic)
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return lambda: logger.removeHandler(handler)


def run_task(config, run_dir: str, replace: bool, env: dict | None, output_topic: str | None,
             take_over_after: float | None = None) -> RunResult:
    """One run, in a Dask worker: ``sweep.execute_run`` (which never raises), then provenance.

    ``env``: environment variables for the notebook kernel (the sweep's
    CONVMIXER_DATA, CONVMIXER_ALLOW_DIRTY). ``output_topic``: a Dask event topic
    the notebook's output lines are sent to (None: not sent; the executed
    notebook keeps them either way). ``take_over_after``: as ``execute_run``'s (``--take-over-locks``).
    """
    from .execute import execute_run

    prepare_environment()
    here = _this_worker()
    host, worker = socket.gethostname(), here.address if here is not None else f"pid {os.getpid()}"
    detach = _forward_output(here, output_topic)
    try:
        with task_environment(env):
            outcome = execute_run(config, Path(run_dir), replace=replace, log_output=detach is not None,
                                  take_over_after=take_over_after)
    finally:
        if detach:
            detach()
    note = outcome.note
    if outcome.status == "completed":
        problem = record_executed_on(outcome.where, host, worker)
        if problem:
            note = f"{note}; {problem}" if note else problem
    return RunResult(outcome.status, Path(outcome.where), note, config.run_id, host, worker)


def probe(results_dir: str, marker: str | None, sources: list, env: dict | None) -> dict:
    """What a worker cannot do that the sweep needs; {"problem": one line or None, "commit", "host"}.

    Checks, in order: the training notebook is there, the results directory is
    writable (a temporary file is created and removed in ``runs/``) and is the
    one the sweep sees (``marker``, a file the sweep wrote there, is visible),
    and every local data source is readable. Never raises.
    """
    host = socket.gethostname()
    try:
        prepare_environment()
        with task_environment(env):
            problem = _probe_problem(Path(results_dir), marker, sources)
    except Exception as exc:  # a probe must answer, whatever went wrong
        problem = f"probe failed: {type(exc).__name__}: {exc}"
    return {"problem": " ".join(problem.split()) if problem else None, "host": host,
            "commit": records.git_commit()}


def _probe_problem(results_dir: Path, marker: str | None, sources: list) -> str | None:
    from ..data import describe_source, resolve_source
    from .execute import NOTEBOOK

    if not NOTEBOOK.is_file():
        return f"the training notebook {NOTEBOOK} is missing (the workers need a checkout of the repository)"
    runs = results_dir / "runs"
    try:
        runs.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=runs, prefix=".probe-", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        where = exc.filename or runs
        return f"cannot write the results directory {where}: {exc.strerror or exc}"
    if marker and not (results_dir / marker).exists():
        return (f"does not see {results_dir / marker}, which the sweep wrote: the results directory {results_dir} "
                f"is not the shared one (mount it at the same path on every machine)")
    for data in sources:
        source = resolve_source(data)
        if source == "cifar10" or source.startswith("synthetic"):
            continue  # downloaded by the run (into Keras' cache) / generated
        if not os.access(source, os.R_OK):
            reason = "no such file or directory" if not os.path.exists(source) else "permission denied"
            return f"cannot read the data source {source}: {reason}"
        try:
            describe_source(source)
        except Exception as exc:
            return f"cannot read the data source {source}: {exc}"
    return None


# --------------------------------------------------------------------------- on the machine that starts the sweep
