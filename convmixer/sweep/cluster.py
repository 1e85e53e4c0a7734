"""Run a sweep's planned runs on a Dask cluster: one task per run, one notebook per task.

The sweep plans (``sweep.plan``) on the machine that starts it; this module
only executes: every missing run becomes one task that calls
``sweep.execute_run`` inside a Dask worker, so skip-if-done, resume from the
last checkpoint, failure records, the per-run lock and ``--force`` behave
exactly as in a local sweep. Two ways to get workers:

- ``scheduler="tcp://HOST:8786"``: a running cluster (``dask scheduler`` and
  ``dask worker``, or dask-jobqueue on SLURM/PBS);
- ``jobs=N``: a ``LocalCluster`` of N single-threaded worker processes, started
  for the duration of the sweep and closed after it, listening on 127.0.0.1 only,
  with Dask's dashboard only when asked (``sweep --dashboard``).

What the workers must share with the machine that starts the sweep: the
repository checkout (same path, same commit: the worker imports ``convmixer``
and executes ``notebooks/train.ipynb``), the data, and the results directory
on a shared filesystem mounted at the same path. Before anything is submitted,
one probe per worker checks exactly that and stops the sweep with one line
naming the worker and the path otherwise (``ClusterError``).

A worker killed mid-run loses nothing: the scheduler reschedules its task
(Dask's ``distributed.scheduler.allowed-failures``, 3 by default, bounds how
often), and the new attempt waits for the dead worker's kernel to end (the
run's lock), then resumes from the run's checkpoint in the shared results
directory. ``retries`` covers an exception raised by the task itself.

GPUs: when the cluster's workers advertise a ``GPU`` resource (``dask worker
... --resources GPU=1``), every run requests ``{"GPU": 1}``: each of the three
Keras backends places the model on a visible GPU, so a worker takes one run at
a time per GPU it advertises. Workers let JAX allocate GPU memory on demand and
TensorFlow grow its memory (``XLA_PYTHON_CLIENT_PREALLOCATE=false``,
``TF_FORCE_GPU_ALLOW_GROWTH=true``) unless those variables are already set;
the notebook kernel inherits them.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
from collections import Counter
from pathlib import Path

from .. import records
from .execute import one_line, outcome_line
from .grids import SweepError
from .tasks import FORWARDED_ENV, RunResult, probe, run_task


RETRIES = 2  # re-runs of a task that raised (execute_run records failures instead of raising)
CONNECT_TIMEOUT = 10.0  # seconds to reach a scheduler
WORKER_WAIT = 60.0  # seconds to wait for a scheduler without workers to get one


class ClusterError(SweepError):
    """The cluster cannot run the sweep: one line saying which worker or address, which path, and why.

    A SweepError (a ValueError), so the command line reports it like any other sweep error.
    """


# SCHEME://HOST:PORT, HOST a name, an IPv4 address or a bracketed IPv6 one.
_ADDRESS = re.compile(r"(tcp|tls|ws|wss|ucx)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


def check_scheduler_address(scheduler: str) -> None:
    """ClusterError (one line) unless ``scheduler`` is SCHEME://HOST:PORT, as ``sweep --scheduler`` takes it.

    Checked before a Client is made: distributed's Client, given an address it
    cannot parse, raises, and then its ``__del__`` prints a traceback after
    waiting 20 s for a connection that never started.
    """
    match = _ADDRESS.fullmatch(scheduler) if isinstance(scheduler, str) else None
    if match is None or not 1 <= int(match.group(3)) <= 65535:
        raise ClusterError(f"--scheduler {scheduler!r} is not a Dask scheduler address: expected SCHEME://HOST:PORT "
                           "(scheme tcp, tls, ws, wss or ucx; port 1-65535), e.g. tcp://10.0.0.5:8786")


def connect(scheduler: str, *, timeout: float = CONNECT_TIMEOUT):
    """A ``distributed.Client`` for ``scheduler``, or ClusterError in one line (quickly when unreachable)."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=timeout, set_as_default=False)
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {reason}") from None


# A local cluster listens on the loopback interface only: its scheduler, workers and dashboard (logs,
# call stacks, the machine's identity) answer to no other machine.
LOCAL_HOST = "127.0.0.1"
# A Dask scheduler always runs an HTTP server; unless the dashboard is asked for, it answers only its
# health check (Dask's own routes add the info pages: worker logs, call stacks, the machine's identity).
QUIET_HTTP_ROUTES = ["distributed.http.health"]


def start_local_cluster(jobs: int, *, dashboard: bool = False):
    """A LocalCluster of ``jobs`` single-threaded worker processes (each under a nanny that restarts it),
    on ``LOCAL_HOST``; ``dashboard``: also serve Dask's dashboard there (on a free port), else none."""
    import dask
    from distributed import LocalCluster

    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ClusterError(f"--jobs must be an integer >= 1, got {jobs!r}")
    routes = {} if dashboard else {"distributed.scheduler.http.routes": QUIET_HTTP_ROUTES}
    try:
        with dask.config.set(routes):  # read once, by the scheduler this process starts
            return LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True, host=LOCAL_HOST,
                # port 0, a free one: two sweeps on one machine do not clash
                dashboard_address=f"{LOCAL_HOST}:0",
                scheduler_kwargs={"dashboard": dashboard},
                memory_limit=0,  # the training runs in the notebook kernel, not in the worker
                silence_logs=logging.ERROR,
            )
    except Exception as exc:
        raise ClusterError(f"cannot start a local Dask cluster of {jobs} worker process(es): "
                           f"{' '.join(str(exc).split()) or type(exc).__name__}") from None


def _workers(client) -> dict:
    return client.scheduler_info(n_workers=-1).get("workers", {})


def _dashboard(client) -> str | None:
    """The dashboard's address, None when there is none (the scheduler serves it only with bokeh installed)."""
    import urllib.error
    import urllib.request

    try:
        if "dashboard" not in client.scheduler_info(n_workers=0).get("services", {}):
            return None
        link = client.dashboard_link
    except Exception:
        return None
    try:
        urllib.request.urlopen(link, timeout=2).close()
    except urllib.error.HTTPError:
        return None  # the HTTP server runs (health, metrics) but serves no dashboard page
    except Exception:
        pass  # not reachable from here; it may be from the user's browser
    return link


def gpu_resources(client) -> dict | None:
    """``{"GPU": 1}`` when any worker advertises a GPU resource, else None (then nothing is requested)."""
    advertised = any(w.get("resources", {}).get("GPU", 0) > 0 for w in _workers(client).values())
    return {"GPU": 1} if advertised else None


def probe_workers(client, results_dir: Path, sources: list, env: dict | None, stream=sys.stdout) -> dict:
    """Run ``probe`` once on every worker; ClusterError (one line) on the first problem. Returns {address: host}.

    A worker whose checkout is at another commit than this one is a problem too
    (its records would not be reproducible from the commit the sweep names),
    unless the sweep allows a dirty tree (CONVMIXER_ALLOW_DIRTY=1 in ``env``): then it is a warning.
    """
    if not _workers(client):
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except Exception:
            raise ClusterError(f"the Dask scheduler at {client.scheduler.address} has no workers "
                               f"(waited {WORKER_WAIT:.0f} s)") from None
    marker = None
    try:  # a file only the shared results directory holds: a worker that cannot see it writes elsewhere
        results_dir.mkdir(parents=True, exist_ok=True)
        name = f".cluster-probe-{secrets.token_hex(6)}"
        (results_dir / name).write_text("written by the sweep; workers check they see it\n", encoding="utf-8")
        marker = name
    except OSError:
        pass  # the workers' own write check names the path
    try:
        answers = client.run(probe, str(results_dir), marker, sources, env, on_error="return")
    finally:
        if marker:
            (results_dir / marker).unlink(missing_ok=True)
    problems, commits = [], {}
    for address, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):  # e.g. convmixer is not importable there
            text = " ".join(f"{type(answer).__name__}: {answer}".split())
            problems.append(f"worker {address}: cannot run the probe ({text}); "
                            f"does it have this repository at {records.REPOSITORY}?")
        elif answer["problem"]:
            problems.append(f"worker {address} ({answer['host']}): {answer['problem']}")
        else:
            commits[address] = answer
    here = records.git_commit()
    lenient = (env or {}).get(records.ALLOW_DIRTY_ENV) == "1"
    for address, answer in commits.items():
        if answer["commit"] != here:
            message = (f"worker {address} ({answer['host']}): its checkout {records.REPOSITORY} is at commit "
                       f"{answer['commit']}, the sweep's at {here}")
            if lenient:
                print(f"warning: {message}", file=stream)
            else:
                problems.append(message + " (check out the same commit on every machine)")
    if problems:
        more = f" (and {len(problems) - 1} more worker(s))" if len(problems) > 1 else ""
        raise ClusterError(problems[0] + more)
    return {address: answer["host"] for address, answer in commits.items()}


def run_on_dask(planned, *, scheduler: str | None = None, jobs: int | None = None, replace=frozenset(),
                results_dir, progress: bool = True, log_output: bool = True, stream=sys.stdout,
                connect_timeout: float = CONNECT_TIMEOUT, dashboard: bool = False,
                take_over_after: float | None = None) -> list[RunResult]:
    """Execute ``planned`` (``sweep.PlannedRun`` s) on Dask; one RunResult per run, in the order given.

    ``scheduler``: the address of a running cluster; ``jobs``: start a local
    cluster of that many worker processes instead (exactly one of the two).
    ``replace``: the run ids to re-run though done (``--force``). ``results_dir``: the results
    directory, shared by all workers; it is probed before anything is submitted. The variables of
    FORWARDED_ENV set in this process (the sweep's resolved $CONVMIXER_DATA, which runs configured
    with ``data: null`` then read on every worker; CONVMIXER_ALLOW_DIRTY from ``--allow-dirty``) are
    set around each task, never left behind.

    ``dashboard``: the local cluster (``jobs``) serves Dask's dashboard on
    127.0.0.1 (without it, none); a running cluster's own dashboard is only linked.
    ``take_over_after``: as ``execute_run``'s (``--take-over-locks``), in every task.

    Prints the dashboard link (when there is one), the notebooks' output lines
    (``log_output``: one per epoch) and one line per finished run to
    ``stream``; shows a progress bar on stderr (``progress``). Raises ClusterError (one line)
    when the cluster cannot be reached or a worker fails its probe; a run that
    fails is a RunResult with status "failed", never an exception.
    """
    if (scheduler is None) == (jobs is None):
        raise ClusterError("give either a scheduler address or a number of local worker processes (jobs)")
    planned = list(planned)
    results_dir = Path(os.path.abspath(results_dir))
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    cluster = None
    if scheduler is not None:
        client = connect(scheduler, timeout=connect_timeout)
    else:
        cluster = start_local_cluster(jobs, dashboard=dashboard)
        try:
            from distributed import Client

            client = Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
    try:
        dashboard = _dashboard(client)
        if dashboard:
            print(f"dask dashboard: {dashboard}", file=stream)
        if not planned:
            return []
        sources = sorted({p.config.data for p in planned}, key=lambda d: (d is not None, d or ""))
        hosts = probe_workers(client, results_dir, sources, env, stream)
        print(f"dask: {len(hosts)} worker(s) on {len(set(hosts.values()))} host(s) at "
              f"{client.scheduler.address}", file=stream)
        from tqdm.auto import tqdm

        topic = f"convmixer-output-{secrets.token_hex(6)}" if log_output else None
        with tqdm(total=len(planned), desc="runs", unit="run", file=sys.stderr, disable=not progress) as bar:
            if topic:
                client.subscribe_topic(topic, lambda event: bar.write(str(event[1]), file=stream))
            try:
                return _wait(client, planned, set(replace), env, topic, bar, stream, take_over_after)
            finally:
                if topic:
                    client.unsubscribe_topic(topic)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def task_key(run_id: str, run_dir: str, replace: bool) -> str:
    """The Dask key of a run's task: its run id, its folder and whether it re-runs a completed record.
    Two sweeps of one grid into one results folder share a run's task instead of queueing it twice; into
    two results folders they must not, or the second would be answered with the first's record, written
    in the first's folder; nor may a forced re-run (``--force``) be answered by a plain sweep's task."""
    return f"{run_id}@{run_dir}" + ("#replace" if replace else "")


def seen_here(result: RunResult, p) -> RunResult:
    """``result``, unless it claims a record this sweep cannot see: a run counts as completed (or skipped
    as done) only when ``p.run_dir``, in this sweep's results folder, holds its completed record."""
    if result.status not in ("completed", "skipped"):
        return result
    if records.validate_record(p.run_dir, p.config.config_hash).state == "completed":
        return result
    return result._replace(status="failed", note=f"the task reported {result.status} in {result.where}, but "
                                                 f"{p.run_dir} holds no completed record of this run")


def _wait(client, planned, forced, env, topic, bar, stream, take_over_after) -> list[RunResult]:
    """Submit one task per run and collect their results as they finish, in the order of ``planned``."""
    from distributed import as_completed

    resources = gpu_resources(client)
    futures = {}
    for i, p in enumerate(planned):
        run_dir = str(Path(os.path.abspath(p.run_dir)))
        replace = p.config.run_id in forced
        future = client.submit(run_task, p.config, run_dir, replace, env, topic, take_over_after,
                               key=task_key(p.config.run_id, run_dir, replace), retries=RETRIES, pure=False,
                               resources=resources)
        futures[future] = i
    results: list[RunResult | None] = [None] * len(planned)
    failed = 0
    bar.set_postfix(failed=0)
    for future in as_completed(futures, loop=client.loop):
        p = planned[futures[future]]
        try:
            result = future.result()
        except Exception as exc:  # KilledWorker (its worker died too often), or the task itself raised
            result = RunResult("failed", Path(p.run_dir), one_line(exc), p.config.run_id)
        result = seen_here(result, p)
        results[futures[future]] = result
        failed += result.status == "failed"
        bar.update(1)
        bar.set_postfix(failed=failed)
        on = f"  on {result.worker} ({result.host})" if result.worker else ""
        bar.write(outcome_line(result.status, p.config.run_id, result.note, on), file=stream)
        future.release()
    return results


def runs_per_worker(results) -> dict[str, int]:
    """How many runs each worker trained (completed or failed), by "address (host)"."""
    counts = Counter(f"{r.worker} ({r.host})" for r in results
                     if r is not None and r.worker and r.status in ("completed", "failed"))
    return dict(sorted(counts.items()))


def format_runs_per_worker(results) -> str:
    counts = runs_per_worker(results)
    if not counts:
        return "runs per worker: none"
    return "runs per worker: " + ", ".join(f"{worker} {n}" for worker, n in counts.items())
