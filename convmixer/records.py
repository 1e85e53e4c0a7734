"""Run records on disk: atomic writes, per-run locks, record validation, and provenance.

A run folder is complete exactly when ``metrics.json`` exists with status
"completed" and passes :func:`validate_record`; it is written last, by rename,
so an interrupted run never leaves a record that looks complete.

Writes that fail (no space, read-only, permission) raise :class:`WriteError`,
an ``OSError`` whose message is one line naming the path and the reason.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import platform
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PARAMS = "params.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
ERROR = "error.json"
WEIGHTS = "model.weights.h5"
NOTEBOOK = "train.ipynb"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_STATE = "state.npz"  # weights, optimizer slots and progress after the last completed epoch

_UMASK = os.umask(0)
os.umask(_UMASK)


class WriteError(OSError):
    """A write that failed; the message is one line: the path and the reason (e.g. "No space left on device")."""


def write_error(path, exc: OSError) -> WriteError:
    """``exc`` as a WriteError naming ``path`` (an existing WriteError is returned unchanged)."""
    if isinstance(exc, WriteError):
        return exc
    reason = exc.strerror or str(exc) or type(exc).__name__
    return WriteError(f"cannot write {path}: {reason}")


def atomic_write_bytes(path, data: bytes):
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    On failure nothing is left behind (the temporary file is removed) and the
    previous content of ``path``, if any, is unchanged.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; records are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj) -> str:
    """Standard JSON only: NaN and infinities are an error (ValueError), never written as ``NaN``."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"


def atomic_write_json(path, obj):
    atomic_write_text(path, dumps_json(obj))


def atomic_write_csv(path, rows: list[dict]):
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


REPOSITORY = Path(__file__).resolve().parent.parent


def portable_path(source) -> str:
    """How a record names a local file: relative to the repository when inside it, else by file name.

    Records never hold a machine's absolute paths; the data fingerprint, not the
    path, says which data a run used. Named sources ("cifar10", "synthetic:...") pass through.
    """
    text = str(source)
    if not os.path.isabs(text):
        return text
    try:
        return Path(text).resolve().relative_to(REPOSITORY).as_posix()
    except ValueError:
        return Path(text).name


def temp_path_for(path) -> Path:
    """A sibling temporary name for libraries that write files themselves (e.g. Keras weights)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{''.join(path.suffixes)}")


def git_commit(cwd=None) -> str:
    """The commit of the code that produced a run ("+dirty" when the tree has changes)."""
    here = Path(cwd or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict:
    import keras
    import numpy

    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": numpy.__version__}
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    elif backend == "jax":
        import jax

        versions["jax"] = jax.__version__
    elif backend == "torch":
        import torch

        versions["torch"] = torch.__version__
    return versions


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description() -> dict:
    """What trained the run: kind (CPU/GPU/TPU), a name, and the CPU cores Keras could use."""
    import keras

    kind, name = "CPU", cpu_name()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        tpus = tf.config.list_physical_devices("TPU")
        if tpus:
            kind, name = "TPU", tpus[0].name
        elif gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            kind, name = "GPU", details.get("device_name", gpus[0].name)
    elif backend == "jax":
        import jax

        dev = jax.devices()[0]
        if dev.platform != "cpu":
            kind, name = dev.platform.upper(), getattr(dev, "device_kind", str(dev))
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            kind, name = "GPU", torch.cuda.get_device_name(0)
    return {"kind": kind, "name": name, "cpu_count": os.cpu_count(), "backend": backend}


# --------------------------------------------------------------------------- per-run lock
# One process trains a run at a time. The lock is a file beside the run folder,
# RUNS/.<run id>.lock, not inside it: a forced re-run and a corrupt record move
# the whole folder aside by one rename, and the lock must stay where it is.
# It is created with O_CREAT|O_EXCL and holds JSON naming the host and the
# processes that hold it. It is broken only when stale:
#   * same host: none of its processes is alive (a pid reused by a later
#     process does not count: the process start time must match too);
#   * another host (a shared or synced results folder): its processes cannot be
#     checked, so it is live until it has not been refreshed for
#     LOCK_STALE_AFTER seconds (24 hours; the training loop refreshes it after
#     every epoch, so only an epoch longer than that would need it raised).
# A process that dies leaves the lock file; the next sweep or `train` breaks it.

LOCK_STALE_AFTER = 24 * 3600.0
_LOCK_UNREADABLE_GRACE = 60.0  # a lock file is empty between its O_EXCL creation and its first write
_HELD: set[str] = set()  # lock files held by this process (threads of one sweep hold different runs)
_HELD_GUARD = threading.Lock()


class RunLocked(RuntimeError):
    """The run is being trained by another live process ("running elsewhere")."""

    def __init__(self, run_dir, owner: dict | None, path):
        self.run_dir, self.owner, self.path = Path(run_dir), owner or {}, Path(path)
        holders = ", ".join(str(p.get("pid")) for p in self.owner.get("pids", [])) or "?"
        super().__init__(
            f"{run_dir} is running elsewhere: locked by pid {holders} on host {self.owner.get('host', '?')} "
            f"since {self.owner.get('started', '?')} ({path}; taken over automatically once that process has ended)"
        )


def lock_path(run_dir) -> Path:
    run_dir = Path(os.path.abspath(run_dir))
    return run_dir.parent / f".{run_dir.name}.lock"


def _hostname() -> str:
    return socket.gethostname()


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (Linux; None elsewhere or when gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_start(pid: int) -> str | None:
    """The process' start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _alive(entry: dict) -> bool:
    pid = entry.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    except OSError:
        return False
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
        return False
    started = entry.get("start")
    return started is None or fields is None or len(fields) <= 19 or fields[19] == started


def read_lock(path) -> dict | None:
    """The lock's JSON, None when it is missing or not (yet) readable."""
    try:
        owner = read_json(path)
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def lock_is_stale(path, owner: dict | None, *, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    try:
        age = now - os.stat(path).st_mtime
    except FileNotFoundError:
        return True
    if owner is None:  # empty or garbled: live only just after creation
        return age > _LOCK_UNREADABLE_GRACE
    if owner.get("host") != _hostname():
        return age > LOCK_STALE_AFTER
    pids = [p for p in owner.get("pids", []) if isinstance(p, dict)]
    live = []
    for entry in pids:
        if entry.get("pid") == os.getpid() and entry.get("start") == _process_start(os.getpid()):
            with _HELD_GUARD:  # this process: live only while a thread of it holds the lock
                if str(path) in _HELD:
                    live.append(entry)
        elif _alive(entry):
            live.append(entry)
    return not live


def lock_holder(run_dir) -> dict | None:
    """The owner of a live lock on ``run_dir`` (None when unlocked or stale)."""
    path = lock_path(run_dir)
    if not path.exists():
        return None
    owner = read_lock(path)
    return None if lock_is_stale(path, owner) else (owner or {})


def lock_orphaned(owner: dict | None) -> bool:
    """A lock on this host whose taker (its first process) has died while a process that joined it lives.

    That is a notebook kernel whose sweep was killed: ipykernel ends such a
    kernel within seconds, so it is worth waiting for rather than skipping.
    """
    if not owner or owner.get("host") != _hostname():
        return False
    pids = [p for p in owner.get("pids", []) if isinstance(p, dict)]
    return len(pids) > 1 and not _alive(pids[0]) and any(_alive(p) for p in pids[1:])


def _me() -> dict:
    return {"pid": os.getpid(), "start": _process_start(os.getpid())}


def _break_stale(path: Path, seen: dict | None) -> None:
    """Remove a stale lock, unless someone replaced it since it was read (``seen``).

    A second file, ``<lock>.break``, taken with O_EXCL, makes the check and the
    removal one step, so two processes breaking the same stale lock cannot
    remove each other's new one.
    """
    guard = path.with_name(path.name + ".break")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
    except FileExistsError:
        try:  # left by a process killed while breaking: a break takes microseconds
            if time.time() - os.stat(guard).st_mtime > _LOCK_UNREADABLE_GRACE:
                guard.unlink(missing_ok=True)
        except OSError:
            pass
        time.sleep(0.05)
        return
    except OSError as exc:
        raise write_error(guard, exc) from None
    try:
        os.close(fd)
        if read_lock(path) == seen and lock_is_stale(path, seen):
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


class RunLock:
    """A held run lock: ``release()`` (or ``with``) gives it up; ``refresh()`` marks it alive."""

    def __init__(self, path: Path, token: str, joined: bool):
        self.path, self.token, self.joined = path, token, joined

    def refresh(self):
        try:
            os.utime(self.path)
        except OSError:
            pass

    def release(self):
        with _HELD_GUARD:
            _HELD.discard(str(self.path))
        if self.joined:  # the process that took it releases it
            return
        owner = read_lock(self.path)
        if owner is not None and owner.get("token") == self.token:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def acquire_lock(run_dir, *, token: str | None = None, what: str = "training") -> RunLock:
    """Take the lock of ``run_dir`` (its folder need not exist; its parent is created).

    ``token``: the token of a lock taken by the parent process for this child (the
    sweep takes the lock and passes its token to the notebook); the child then
    joins it, adding its own pid, instead of waiting for it. Raises RunLocked
    when another live process holds it, WriteError when the lock cannot be written.
    """
    path = lock_path(run_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path.parent, exc) from None
    for _ in range(20):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
        except FileExistsError:
            owner = read_lock(path)
            if token is not None and owner is not None and owner.get("token") == token:
                owner["pids"] = [p for p in owner.get("pids", []) if isinstance(p, dict)] + [_me()]
                atomic_write_json(path, owner)  # a rename over the file: the lock never disappears
                with _HELD_GUARD:
                    _HELD.add(str(path))
                return RunLock(path, token, joined=True)
            if not lock_is_stale(path, owner):
                raise RunLocked(run_dir, owner, path) from None
            _break_stale(path, owner)
            continue
        except OSError as exc:
            raise write_error(path, exc) from None
        new = secrets.token_hex(8)
        owner = {"host": _hostname(), "pids": [_me()], "token": new, "what": what,
                 "run": Path(run_dir).name, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(owner) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise write_error(path, exc) from None
        with _HELD_GUARD:
            _HELD.add(str(path))
        return RunLock(path, new, joined=False)
    raise RunLocked(run_dir, read_lock(path), path)


# --------------------------------------------------------------------------- record validation
# One definition of a valid record, for the sweep's plan and the report's reader.

REAL_FIELDS = ("test_loss", "best_val_accuracy", "seconds_per_epoch", "images_per_second", "total_train_seconds")
INT_FIELDS = ("trainable_parameters", "selected_epoch", "epochs", "train_images", "val_images", "test_images")
DICT_FIELDS = ("device", "dataset", "versions", "speed")


@dataclass(frozen=True)
class RecordState:
    """What a run folder holds.

    ``state``: "completed" (a valid record), "failed" (the last attempt failed:
    error.json), "incomplete" (not started or interrupted; ``resumable`` when a
    checkpoint exists), "corrupt" (unreadable or invalid files: ``problem``
    names the file and why) or "absent" (no folder).
    """

    state: str
    problem: str | None = None
    resumable: bool = False
    params: dict | None = None
    metrics: dict | None = None


def _read_json_file(path: Path):
    try:
        return read_json(path), None
    except FileNotFoundError:
        return None, "missing"
    except UnicodeDecodeError:
        return None, "unreadable (not UTF-8 text)"
    except json.JSONDecodeError as exc:
        return None, f"unreadable (not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno})"
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({getattr(exc, 'strerror', None) or exc})"


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _metrics_problem(metrics: dict, params: dict) -> str | None:
    if metrics.get("status") != "completed":
        return f"does not record a completed run (status {metrics.get('status')!r})"
    accuracy = metrics.get("test_accuracy")
    if not _is_real(accuracy) or not 0.0 <= accuracy <= 1.0:
        return f"test_accuracy must be a number in [0, 1], got {accuracy!r}"
    for name in REAL_FIELDS:
        if metrics.get(name) is not None and not _is_real(metrics[name]):
            return f"{name} must be a finite number, got {metrics[name]!r}"
    for name in INT_FIELDS:
        value = metrics.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return f"{name} must be an integer, got {value!r}"
    for name in DICT_FIELDS:
        if metrics.get(name) is not None and not isinstance(metrics[name], dict):
            return f"{name} must be a JSON object, got {metrics[name]!r}"
    if "run_id" in metrics and "run_id" in params and metrics["run_id"] != params["run_id"]:
        return f"is for run {metrics['run_id']!r}, params.json for {params['run_id']!r}"
    return None


def validate_record(run_dir, config_hash: str | None = None) -> RecordState:
    """The state of the run folder ``run_dir`` (see RecordState), never an exception.

    ``config_hash``: the configuration the folder is meant to hold; a record of
    another one is corrupt for it.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return RecordState("absent")
    if not run_dir.is_dir():
        return RecordState("corrupt", f"{run_dir} is a file, not a run folder")
    resumable = (run_dir / CHECKPOINT_DIR / CHECKPOINT_STATE).exists()
    params, why = _read_json_file(run_dir / PARAMS)
    has_metrics = (run_dir / METRICS).exists()
    if params is None and (why != "missing" or has_metrics):
        return RecordState("corrupt", f"{run_dir / PARAMS} {why}")
    if params is not None:
        if not isinstance(params, dict):
            return RecordState("corrupt", f"{run_dir / PARAMS} is not a JSON object")
        if not isinstance(params.get("config_hash"), str):
            return RecordState("corrupt", f"{run_dir / PARAMS} has no config_hash", params=params)
        if config_hash is not None and params["config_hash"] != config_hash:
            return RecordState("corrupt", f"{run_dir / PARAMS} holds configuration {params['config_hash']} "
                                          f"({params.get('run_id')!r}), not {config_hash}", params=params)
    if not has_metrics:  # a failed attempt may have ended before its notebook wrote params.json
        if (run_dir / ERROR).exists():
            error, _ = _read_json_file(run_dir / ERROR)
            text = error.get("error") if isinstance(error, dict) else None
            return RecordState("failed", str(text or "failed (error.json unreadable)")[:300], resumable, params)
        if params is None:
            return RecordState("incomplete", f"{PARAMS} missing: not started", resumable)
        return RecordState("incomplete", f"no {METRICS}: " + ("interrupted, resumable" if resumable else "not finished"),
                           resumable, params)
    metrics, why = _read_json_file(run_dir / METRICS)
    if metrics is None:
        return RecordState("corrupt", f"{run_dir / METRICS} {why}", resumable, params)
    if not isinstance(metrics, dict):
        return RecordState("corrupt", f"{run_dir / METRICS} is not a JSON object", resumable, params)
    problem = _metrics_problem(metrics, params)
    if problem:
        return RecordState("corrupt", f"{run_dir / METRICS}: {problem}", resumable, params)
    for name in (HISTORY, WEIGHTS):
        if not (run_dir / name).is_file():
            return RecordState("corrupt", f"{run_dir / name} missing beside a completed {METRICS}", resumable, params)
    return RecordState("completed", None, False, params, metrics)


def partial_notebook(run_dir) -> Path:
    """Where the sweep has papermill write the executed notebook until it is renamed to NOTEBOOK."""
    return Path(run_dir) / f".partial.{NOTEBOOK}"


# An absolute path of two or more parts inside text: not part of a URL ("https://..."), of a
# relative path or of arithmetic ("x /255").
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[\w.+@-]+/)+[\w.+@-]+")


def portable_text(text: str, results_dir=None) -> str:
    """``text`` with every absolute path made portable: under the results folder as ``results/...``,
    under the repository relative to it, else by file name (``portable_path``)."""
    results = Path(results_dir).resolve() if results_dir is not None else None

    def one(match):
        path = match.group(0)
        if results is not None:
            try:
                return (Path("results") / Path(path).resolve().relative_to(results)).as_posix()
            except ValueError:
                pass
        return portable_path(path)

    return _ABSOLUTE_PATH.sub(one, text)


def make_record_portable(run_dir) -> list[str]:
    """Rewrite a completed record's files so that they hold no absolute path of this machine.

    ``metrics.json``'s data source and description and the executed notebook
    (papermill's input/output paths, the injected parameters, printed paths)
    name files relative to the results folder or the repository, or by file
    name; the data fingerprint says which data a run used. Idempotent.
    """
    run_dir = Path(run_dir)
    results_dir = run_dir.resolve().parent.parent
    done = []
    for name in (METRICS, NOTEBOOK):
        path = run_dir / name
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        new = portable_text(text, results_dir)
        if new != text:
            json.loads(new)  # still the same JSON document (paths only ever become shorter strings)
            atomic_write_text(path, new)
            done.append(f"made paths in {name} portable")
    return done


def tidy_completed(run_dir) -> list[str]:
    """Remove what a kill can leave beside a completed record; returns what was done.

    The checkpoint of a completed run is dropped; a partial executed notebook
    becomes the run's notebook (it is the attempt that completed the record);
    temporary files of interrupted writes and a stale error.json are removed.
    Call it only with the run's lock held.
    """
    run_dir = Path(run_dir)
    done = []
    if (run_dir / CHECKPOINT_DIR).exists():
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        done.append(f"removed {CHECKPOINT_DIR}/")
    partial = partial_notebook(run_dir)
    if partial.exists():
        try:
            os.replace(partial, run_dir / NOTEBOOK)
            done.append(f"renamed {partial.name} to {NOTEBOOK}")
        except OSError:
            pass
    for leftover in run_dir.glob(".*"):
        if leftover.is_file() and (leftover.name.endswith(".tmp") or ".partial" in leftover.name):
            leftover.unlink(missing_ok=True)
            done.append(f"removed {leftover.name}")
    if (run_dir / ERROR).exists():
        (run_dir / ERROR).unlink(missing_ok=True)
        done.append(f"removed a stale {ERROR}")
    return done + make_record_portable(run_dir)


def move_aside(run_dir, results_dir, reason: str) -> Path:
    """Move a corrupt record to RESULTS/corrupt/<name>-<time>/ (never deleted), with a note saying why."""
    run_dir = Path(run_dir)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = Path(results_dir) / "corrupt" / f"{run_dir.name}-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = target.with_name(f"{run_dir.name}-{stamp}-{n}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(run_dir, target)
    except OSError as exc:
        raise write_error(target, exc) from None
    try:
        if target.is_dir():
            (target / "CORRUPT.txt").write_text(reason + "\n", encoding="utf-8")
    except OSError:
        pass  # the record is aside; the note is a courtesy
    return target
