"""The per-run lock: one process trains a run at a time, across processes, sweeps and machines."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import threading
import time
from pathlib import Path

from .files import _UMASK, atomic_write_json, read_json, write_error

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
# Where the user knows that the other host is gone (a Colab runtime after a
# disconnect), `--take-over-locks AGE` breaks another host's lock not refreshed
# for AGE (take_over_stale_lock); a lock of this host is never broken that way.

LOCK_STALE_AFTER = 24 * 3600.0
_LOCK_UNREADABLE_GRACE = 60.0  # a lock file is empty between its O_EXCL creation and its first write
_HELD: set[str] = set()  # lock files held by this process (threads of one sweep hold different runs)
_HELD_GUARD = threading.Lock()


def format_age(seconds: float) -> str:
    """A duration as people say it: "40 s", "12 min", "3 h 05 min", "2 d 04 h"."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60:02d} min"
    return f"{hours // 24} d {hours % 24:02d} h"


def lock_age(path) -> float | None:
    """Seconds since the lock at ``path`` was written or last refreshed (None when there is none)."""
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return None


def describe_owner(owner: dict | None, path) -> str:
    """Whose lock it is and how old: "pid 12, 13 on host h since 2024-...; last refreshed 3 h 05 min ago"."""
    owner = owner or {}
    holders = ", ".join(str(p.get("pid")) for p in owner.get("pids", []) if isinstance(p, dict)) or "?"
    age = lock_age(path)
    refreshed = f"; last refreshed {format_age(age)} ago" if age is not None else ""
    return f"pid {holders} on host {owner.get('host', '?')} since {owner.get('started', '?')}{refreshed}"


class RunLocked(RuntimeError):
    """The run is being trained by another live process ("running elsewhere")."""

    def __init__(self, run_dir, owner: dict | None, path):
        self.run_dir, self.owner, self.path = Path(run_dir), owner or {}, Path(path)
        if self.owner.get("host", hostname()) == hostname():
            when = "taken over automatically once that process has ended"
        else:
            when = (f"another host's lock counts as live until it has not been refreshed for "
                    f"{format_age(LOCK_STALE_AFTER)}; if that machine is gone, take it over with --take-over-locks AGE")
        super().__init__(f"{run_dir} is running elsewhere: locked by {describe_owner(self.owner, path)} ({path}; {when})")


class LockLost(RunLocked):
    """The lock a parent took for this child is gone: its sweep died and the lock was broken, or taken over."""

    def __init__(self, run_dir, path):
        RuntimeError.__init__(self, f"{run_dir}: the lock its sweep took for it ({path}) is gone (the sweep "
                                    "ended and the lock was broken, or it was taken over); not training it here")
        self.run_dir, self.owner, self.path = Path(run_dir), {}, Path(path)


def lock_path(run_dir) -> Path:
    run_dir = Path(os.path.abspath(run_dir))
    return run_dir.parent / f".{run_dir.name}.lock"


def hostname() -> str:
    """This machine's name, as a lock records its holder."""
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


def lock_is_stale(path, owner: dict | None) -> bool:
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return True
    if owner is None:  # empty or garbled: live only just after creation
        return age > _LOCK_UNREADABLE_GRACE
    if owner.get("host") != hostname():
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
    if not path.exists():  # also where a parent is not a folder: nothing is locked there
        return None
    owner = read_lock(path)
    return None if lock_is_stale(path, owner) else (owner or {})


def lock_orphaned(owner: dict | None) -> bool:
    """A lock on this host whose taker (its first process) has died while a process that joined it lives.

    That is a notebook kernel whose sweep was killed: ipykernel ends such a
    kernel within seconds, and ``end_orphans`` ends it if it does not, so it is
    worth waiting for rather than skipping.
    """
    if not owner or owner.get("host") != hostname():
        return False
    pids = [p for p in owner.get("pids", []) if isinstance(p, dict)]
    return len(pids) > 1 and not _alive(pids[0]) and any(_alive(p) for p in pids[1:])


def end_orphans(owner: dict | None) -> list[int]:
    """SIGKILL the live joiners of an orphaned lock (see ``lock_orphaned``); returns their pids.

    ipykernel ends a kernel whose parent died from a polling thread, which needs
    the GIL and a time slice: on a saturated machine that has taken over a
    minute. Nobody reads an orphaned kernel's output, and a run is resumable
    after SIGKILL at any point (its checkpoint is written atomically), so ending
    it explicitly loses at most the epoch in progress. A joiner is only killed
    when its pid and start time both match, so a reused pid is never hit.
    """
    if not lock_orphaned(owner):
        return []
    killed = []
    for entry in [p for p in owner.get("pids", []) if isinstance(p, dict)][1:]:
        if _alive(entry) and entry.get("start") is not None and entry.get("pid") != os.getpid():
            try:
                os.kill(entry["pid"], signal.SIGKILL)
                killed.append(entry["pid"])
            except OSError:  # gone meanwhile, or not ours to end
                pass
    return killed


def _me() -> dict:
    return {"pid": os.getpid(), "start": _process_start(os.getpid())}


def _take_guard(path: Path) -> Path | None:
    """Take ``<lock>.break``, the guard under which a lock file is read and then removed or replaced
    (O_EXCL: one holder at a time); None when another process holds it (after a short wait)."""
    guard = path.with_name(path.name + ".break")
    try:
        os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK))
        return guard
    except FileExistsError:
        try:  # left by a process killed while holding it: it is held for microseconds
            if time.time() - os.stat(guard).st_mtime > _LOCK_UNREADABLE_GRACE:
                guard.unlink(missing_ok=True)
        except OSError:
            pass
        time.sleep(0.05)
        return None
    except OSError as exc:
        raise write_error(guard, exc) from None


def _break_stale(path: Path, seen: dict | None, stale=None) -> bool:
    """Remove a stale lock, unless someone replaced it since it was read (``seen``); True when removed.

    Under the guard the check and the removal are one step, so two processes breaking the same stale
    lock cannot remove each other's new one, nor a lock that a child is joining (``acquire_lock``).
    ``stale(path, owner)`` decides (default: ``lock_is_stale``).
    """
    guard = _take_guard(path)
    if guard is None:
        return False
    try:
        if read_lock(path) == seen and (stale or lock_is_stale)(path, seen):
            path.unlink(missing_ok=True)
            return True
        return False
    finally:
        guard.unlink(missing_ok=True)


def take_over_stale_lock(run_dir, older_than: float) -> str | None:
    """Break the lock of ``run_dir`` when another host holds it and has not refreshed it for more than
    ``older_than`` seconds; returns one line saying whose lock it was and how old (None: nothing taken over).

    For a machine the user knows is gone (``--take-over-locks AGE``): another host's processes cannot be
    checked, so by default its lock is live for LOCK_STALE_AFTER. A lock of this host is never broken
    here: whether its processes live decides, as always. The age is checked again under the break
    guard, so a lock its host refreshed meanwhile stays. A live run refreshes its lock after every
    epoch: ``older_than`` must exceed the longest epoch, or a run could be trained twice at once.
    """
    if older_than < 0:
        raise ValueError(f"older_than must be a number of seconds >= 0, got {older_than!r}")
    path = lock_path(run_dir)

    def abandoned(p, owner) -> bool:
        return lock_abandoned(p, owner, older_than)

    for _ in range(20):
        owner = read_lock(path)
        if not abandoned(path, owner):
            return None
        line = f"took over the lock of {Path(run_dir).name}: {describe_owner(owner, path)}"
        if _break_stale(path, owner, stale=abandoned):
            return line
    return None


def lock_abandoned(path, owner: dict | None, older_than: float) -> bool:
    """Whether ``--take-over-locks`` (``older_than`` seconds) takes over the lock at ``path``: another
    host's, not refreshed for longer than that."""
    age = lock_age(path)
    return owner is not None and owner.get("host") != hostname() and age is not None and age > older_than


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
    joins it, adding its own pid, and never takes a lock of its own (``_join``: LockLost,
    a RunLocked, when that lock is gone). Raises RunLocked when another live process
    holds it, WriteError when the lock cannot be written.
    """
    path = lock_path(run_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path.parent, exc) from None
    if token is not None:
        return _join(run_dir, path, token)
    for _ in range(20):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
        except FileExistsError:
            owner = read_lock(path)
            if not lock_is_stale(path, owner):
                raise RunLocked(run_dir, owner, path) from None
            _break_stale(path, owner)
            continue
        except OSError as exc:
            raise write_error(path, exc) from None
        new = secrets.token_hex(8)
        owner = {"host": hostname(), "pids": [_me()], "token": new, "what": what,
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


JOIN_WAIT = _LOCK_UNREADABLE_GRACE + 5.0  # a guard left by a killed process is cleared after the grace


def _join(run_dir, path: Path, token: str) -> RunLock:
    """Join the lock the parent took for this child (its ``token``), adding this process; never takes one.

    Under the guard: a sweep killed before its child joins leaves a stale lock, and a process breaking it
    must not remove the file this rename puts in place. A lock that is gone or not the parent's any more
    (broken as stale, taken over) is refused: the child of a dead or displaced sweep must not train.
    """
    deadline = time.monotonic() + JOIN_WAIT
    while (guard := _take_guard(path)) is None:
        if time.monotonic() > deadline:
            raise RunLocked(run_dir, read_lock(path), path)
    try:
        owner = read_lock(path)
        if owner is None:
            raise LockLost(run_dir, path)
        if owner.get("token") != token:
            raise RunLocked(run_dir, owner, path)
        owner["pids"] = [p for p in owner.get("pids", []) if isinstance(p, dict)] + [_me()]
        atomic_write_json(path, owner)  # a rename over the file: the lock never disappears
    finally:
        guard.unlink(missing_ok=True)
    with _HELD_GUARD:
        _HELD.add(str(path))
    return RunLock(path, token, joined=True)

