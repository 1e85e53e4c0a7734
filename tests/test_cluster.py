"""The sweep on Dask (convmixer.sweep.cluster): local and command-line clusters, a killed worker, probes."""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from convmixer import records
from convmixer.sweep.cluster import ClusterError, format_runs_per_worker, gpu_resources, run_on_dask, runs_per_worker
from convmixer.sweep.tasks import GPU_ENV, prepare_environment, record_executed_on, task_environment
from convmixer.sweep import load_grid, plan
from convmixer.training.config import RunConfig
from fakes import write_weights

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "grids" / "smoke.yaml"
DASK = Path(sys.executable).with_name("dask")


def write_grid(path, spec):
    path.write_text(yaml.safe_dump(spec))
    return path


def assert_recorded_once(planned, results):
    """Every run completed once: one folder each, all epochs in history.csv, nothing failed or set aside."""
    assert sorted(p.name for p in (results / "runs").iterdir() if p.is_dir()) == \
        sorted(p.config.run_id for p in planned)
    for p in planned:
        assert records.validate_record(p.run_dir, p.config.config_hash).state == "completed"
        rows = (p.run_dir / records.HISTORY).read_text().strip().splitlines()
        assert len(rows) == 1 + p.config.epochs, rows
        assert not (p.run_dir / records.ERROR).exists() and not (p.run_dir / records.CHECKPOINT_DIR).exists()
    assert not (results / "failed-attempts").exists() and not (results / "corrupt").exists()
    assert not list((results / "runs").glob(".*.lock")) and not list(results.glob(".cluster-probe-*"))


def executed_on(run_dir):
    return json.loads((run_dir / records.METRICS).read_text())["executed_on"]


# --- small pieces (fast) -------------------------------------------------------------------------

def test_unreachable_scheduler_is_one_line_and_quick(tmp_path):
    start = time.monotonic()
    with pytest.raises(ClusterError) as info:
        run_on_dask([], scheduler="tcp://127.0.0.1:1", results_dir=tmp_path, connect_timeout=0.5)
    message = str(info.value)
    assert "\n" not in message and "tcp://127.0.0.1:1" in message and message.startswith("cannot reach")
    assert time.monotonic() - start < 20
    assert not (tmp_path / "runs").exists()


def test_scheduler_or_jobs_not_both(tmp_path):
    with pytest.raises(ClusterError, match="either"):
        run_on_dask([], scheduler="tcp://127.0.0.1:1", jobs=2, results_dir=tmp_path)
    with pytest.raises(ClusterError, match="either"):
        run_on_dask([], results_dir=tmp_path)


def test_worker_environment_lets_gpus_be_shared_unless_the_user_chose(monkeypatch):
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")  # the user's choice wins
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    prepare_environment()
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == GPU_ENV["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_the_sweeps_settings_hold_for_one_task_and_the_workers_own_come_back(monkeypatch):
    monkeypatch.setenv("CONVMIXER_DATA", "/worker/own.zip")
    monkeypatch.delenv("CONVMIXER_ALLOW_DIRTY", raising=False)
    with task_environment({"CONVMIXER_DATA": "/shared/cifar.zip", "CONVMIXER_ALLOW_DIRTY": "1"}):
        assert os.environ["CONVMIXER_DATA"] == "/shared/cifar.zip" and os.environ["CONVMIXER_ALLOW_DIRTY"] == "1"
    assert os.environ["CONVMIXER_DATA"] == "/worker/own.zip" and "CONVMIXER_ALLOW_DIRTY" not in os.environ


FAKE_CONFIG = RunConfig(width=8, depth=1, epochs=1, data="synthetic:200:50")


def fake_completed_record(run_dir):
    run_dir.mkdir(parents=True)
    records.atomic_write_json(run_dir / records.PARAMS, FAKE_CONFIG.to_params() | {"run_id": run_dir.name})
    metrics = {"status": "completed", "test_accuracy": 0.5, "run_id": run_dir.name, "device": {"kind": "cpu"}}
    records.atomic_write_json(run_dir / records.METRICS, metrics)
    (run_dir / records.HISTORY).write_text("epoch\n1\n")
    write_weights(run_dir / records.WEIGHTS)
    return metrics


def test_executed_on_is_added_and_nothing_else_changes(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    before = fake_completed_record(run_dir)
    assert record_executed_on(run_dir, "node7", "tcp://10.0.0.7:4000") is None
    after = json.loads((run_dir / records.METRICS).read_text())
    assert after == before | {"executed_on": {"host": "node7", "worker": "tcp://10.0.0.7:4000"}}
    assert records.validate_record(run_dir, FAKE_CONFIG.config_hash).state == "completed"
    assert not list(run_dir.glob(".*.tmp")) and not records.lock_path(run_dir).exists()
    # Not a completed run (any more): nothing is written, the reason is one line.
    (run_dir / records.METRICS).unlink()
    note = record_executed_on(run_dir, "node7", "tcp://10.0.0.7:4000")
    assert "not recorded" in note and "\n" not in note and not (run_dir / records.METRICS).exists()


def test_runs_per_worker_counts_training_attempts():
    from convmixer.sweep.tasks import RunResult

    results = [RunResult("completed", Path("a"), "", "a", "h1", "tcp://1:1"),
               RunResult("failed", Path("b"), "x", "b", "h1", "tcp://1:1"),
               RunResult("completed", Path("c"), "", "c", "h2", "tcp://2:2"),
               RunResult("skipped", Path("d"), "", "d", "h2", "tcp://2:2"),
               RunResult("failed", Path("e"), "KilledWorker", "e")]
    assert runs_per_worker(results) == {"tcp://1:1 (h1)": 2, "tcp://2:2 (h2)": 1}
    assert format_runs_per_worker(results) == "runs per worker: tcp://1:1 (h1) 2, tcp://2:2 (h2) 1"


# --- the local cluster's sockets (seconds) ------------------------------------------------------

def _listening(cluster) -> list[str]:
    """"IP:port" of every TCP socket this process (the scheduler) and the cluster's worker processes listen on."""
    import psutil

    me = psutil.Process()
    listening = []
    for proc in [me] + me.children(recursive=True):
        try:
            listening += [f"{c.laddr.ip}:{c.laddr.port}" for c in proc.net_connections(kind="tcp")
                          if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            pass
    return listening


def _http_status(url) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_local_cluster_listens_on_loopback_only_and_serves_its_pages_only_when_asked():
    from convmixer.sweep.cluster import start_local_cluster

    for dashboard in (False, True):
        cluster = start_local_cluster(1, dashboard=dashboard)
        try:
            sockets = _listening(cluster)
            assert sockets and all(s.startswith("127.0.0.1:") for s in sockets), sockets
            http = f"http://127.0.0.1:{cluster.scheduler.http_server.port}"
            assert _http_status(http + "/health") == 200
            # the info pages: each worker's logs and call stacks
            assert _http_status(http + "/info/main/workers.html") == (200 if dashboard else 404)
        finally:
            cluster.close()


def test_dashboard_is_refused_where_no_local_cluster_is_started(tmp_path):
    grid = write_grid(tmp_path / "g.yaml", {"base": {"data": "synthetic"}, "runs": [{}]})
    for extra in (["--jobs", "1"], ["--scheduler", "tcp://127.0.0.1:1"]):
        proc = subprocess.run([sys.executable, "-m", "convmixer", "sweep", str(grid), "--results", str(tmp_path / "r"),
                               "--dashboard", *extra], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--dashboard" in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


# --- probes, on a one-worker local cluster that advertises a GPU (seconds) -----------------------

@pytest.fixture(scope="module")
def gpu_cluster():
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       resources={"GPU": 1}, memory_limit=0)
    yield cluster
    cluster.close()


def test_gpu_resource_is_requested_only_where_workers_advertise_one(gpu_cluster):
    with distributed.Client(gpu_cluster, set_as_default=False) as client:
        assert gpu_resources(client) == {"GPU": 1}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as plain, \
            distributed.Client(plain, set_as_default=False) as client:
        assert gpu_resources(client) is None


def _smoke_planned(tmp_path, results, **base):
    spec = yaml.safe_load(SMOKE.read_text())
    spec["base"] |= base
    grid = write_grid(tmp_path / "grid.yaml", spec)
    return plan(load_grid(grid), results)


@pytest.mark.parametrize("case", ["missing data file", "results not writable"])
def test_probe_failure_stops_before_any_run_naming_worker_and_path(tmp_path, gpu_cluster, case):
    if case == "missing data file":
        results, bad = tmp_path / "results", tmp_path / "nowhere" / "cifar10.zip"
        planned = _smoke_planned(tmp_path, results, data=str(bad))
    else:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        results = bad = blocker / "results"
        planned = _smoke_planned(tmp_path, results)
    with pytest.raises(ClusterError) as info:
        run_on_dask(planned, scheduler=gpu_cluster.scheduler_address, results_dir=results, progress=False,
                    stream=io.StringIO())
    message = str(info.value)
    [worker] = gpu_cluster.scheduler_info["workers"]
    assert "\n" not in message
    assert f"worker {worker}" in message and str(bad if case == "missing data file" else blocker) in message
    assert not any(p.run_dir.exists() for p in planned)  # nothing ran


# --- two sweeps of one grid into two results folders, on one scheduler (seconds) ----------------

_STARTED: list[str] = []  # the run folders the stand-in task below was started for
_STARTED_LOCK = threading.Lock()


def _stand_in_task(config, run_dir, replace, env, topic, take_over_after=None):
    """``run_task`` without training: waits until six tasks run at once (both sweeps' three), or 20 s,
    so the two sweeps' tasks are on the scheduler together, then writes a completed record in ``run_dir``."""
    from convmixer.sweep.tasks import RunResult

    with _STARTED_LOCK:
        _STARTED.append(run_dir)
    deadline = time.monotonic() + 20
    while len(_STARTED) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    run_dir = Path(run_dir)
    records.atomic_write_json(run_dir / records.PARAMS, config.to_params())
    records.atomic_write_json(run_dir / records.METRICS, {"status": "completed", "test_accuracy": 0.5,
                                                          "run_id": config.run_id})
    (run_dir / records.HISTORY).write_text("epoch\n1\n")
    write_weights(run_dir / records.WEIGHTS)
    return RunResult("completed", run_dir, "", config.run_id, "host", "worker")


def test_two_sweeps_into_two_results_folders_on_one_scheduler_each_get_their_own_records(tmp_path, monkeypatch):
    from convmixer.sweep import cluster

    monkeypatch.setattr(cluster, "run_task", _stand_in_task)
    _STARTED.clear()
    folders = [tmp_path / "first", tmp_path / "second"]
    got = {}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=6, processes=False, dashboard_address=None) as local:
        def sweep(results):
            try:
                got[results] = run_on_dask(plan(load_grid(SMOKE), results), scheduler=local.scheduler_address,
                                           results_dir=results, progress=False, stream=io.StringIO())
            except BaseException as exc:  # reported by the assertions below
                got[results] = exc

        threads = [threading.Thread(target=sweep, args=(results,)) for results in folders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert not [r for r in got.values() if isinstance(r, BaseException)], got
    assert sorted(_STARTED) == sorted(str(p.run_dir) for results in folders for p in plan(load_grid(SMOKE), results))
    for results in folders:
        assert [r.status for r in got[results]] == ["completed"] * 3, got[results]
        assert all(r.where.parent.parent == results for r in got[results])
        assert all(p.state == "done" for p in plan(load_grid(SMOKE), results))


def _keyed_stand_in(config, run_dir, replace, env, topic, take_over_after=None):
    """``run_task`` that writes nothing: notes (run folder, replace), waits (up to 20 s) until six tasks run at
    once, so both sweeps' tasks are on the scheduler together."""
    from convmixer.sweep.tasks import RunResult

    with _STARTED_LOCK:
        _STARTED.append((run_dir, replace))
    deadline = time.monotonic() + 20
    while len(_STARTED) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    return RunResult("completed", Path(run_dir), "", config.run_id, "host", "worker")


def test_a_forced_sweep_is_not_answered_by_a_plain_sweeps_task_of_the_same_run(tmp_path, monkeypatch):
    # Same grid, same results folder, same scheduler: a plain sweep's task must not stand in for a --force
    # re-run (they would share one Dask key, and the re-run would silently not happen).
    from convmixer.sweep import cluster

    monkeypatch.setattr(cluster, "run_task", _keyed_stand_in)
    _STARTED.clear()
    monkeypatch.setattr(cluster, "seen_here", lambda result, p: result)  # no records: not what this tests
    results = tmp_path / "results"
    planned = plan(load_grid(SMOKE), results)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=6, processes=False, dashboard_address=None) as local:
        threads = [threading.Thread(target=run_on_dask, args=(planned,), kwargs=dict(
            scheduler=local.scheduler_address, results_dir=results, replace=replace, progress=False,
            stream=io.StringIO())) for replace in (set(), {p.config.run_id for p in planned})]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert {replace for _, replace in _STARTED} == {False, True} and len(set(_STARTED)) == 6  # all six ran


def test_a_task_reporting_a_record_this_sweep_cannot_see_counts_as_failed(tmp_path):
    from convmixer.sweep.cluster import seen_here
    from convmixer.sweep.tasks import RunResult

    here, there = plan(load_grid(SMOKE), tmp_path / "here")[0], plan(load_grid(SMOKE), tmp_path / "there")[0]
    fake_completed_record(there.run_dir)
    elsewhere = RunResult("completed", there.run_dir, "", there.config.run_id)
    result = seen_here(elsewhere, here)
    assert result.status == "failed" and str(here.run_dir) in result.note and str(there.run_dir) in result.note
    fake_completed_record(here.run_dir)
    records.atomic_write_json(here.run_dir / records.PARAMS, here.config.to_params())
    assert seen_here(RunResult("completed", here.run_dir, "", here.config.run_id), here).status == "completed"


# --- end to end (slow) ---------------------------------------------------------------------------

@pytest.mark.slow
def test_local_cluster_of_two_processes_runs_the_smoke_grid(tmp_path):
    results = tmp_path / "results"
    planned = plan(load_grid(SMOKE), results)
    out = io.StringIO()
    got = run_on_dask(planned, jobs=2, results_dir=results, progress=False, stream=out)
    assert [r.status for r in got] == ["completed"] * 3, out.getvalue()
    assert_recorded_once(planned, results)
    for p, result in zip(planned, got):
        assert result.run_id == p.config.run_id and result.where == p.run_dir
        assert result.worker.startswith("tcp://") and result.host == socket.gethostname()
        assert executed_on(p.run_dir) == {"host": result.host, "worker": result.worker}
    counts = runs_per_worker(got)
    assert sum(counts.values()) == 3 and len(counts) == 2, counts  # both worker processes trained
    assert out.getvalue().count("completed ") == 3 and "2 worker(s) on 1 host(s)" in out.getvalue()
    assert out.getvalue().count(" epoch   2/2 ") == 3  # each notebook's per-epoch line reached the sweep

    # Asked again, nothing is trained twice: the sweep's own skip (execute_run) answers.
    again = run_on_dask(plan(load_grid(SMOKE), results), jobs=1, results_dir=results, progress=False,
                        stream=io.StringIO())
    assert [r.status for r in again] == ["skipped"] * 3 and runs_per_worker(again) == {}


@pytest.fixture
def cli_cluster(tmp_path):
    """`dask scheduler` and two `dask worker` processes (each under its nanny), as a user would start them."""
    scheduler_file = tmp_path / "scheduler.json"
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    started = [subprocess.Popen([str(DASK), "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0",
                                 "--no-dashboard"], cwd=ROOT, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        for _ in range(2):
            started.append(subprocess.Popen(
                [str(DASK), "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1", "--nthreads", "1",
                 "--no-dashboard"], cwd=ROOT, env=env, start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = json.loads(scheduler_file.read_text())["address"]
        with distributed.Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(started):  # the process groups this fixture started, and nothing else
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.mark.slow
def test_worker_killed_mid_run_the_grid_still_completes_each_run_once(tmp_path, cli_cluster):
    results = tmp_path / "results"
    # Epochs of a few seconds, so that the kill lands between the first checkpoint and the end.
    planned = _smoke_planned(tmp_path, results, epochs=3, data="synthetic:12000:100")[:2]
    outcome, out = {}, io.StringIO()

    def sweep():
        try:
            outcome["results"] = run_on_dask(planned, scheduler=cli_cluster, results_dir=results, progress=False,
                                             stream=out)
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=sweep, daemon=True)
    thread.start()
    # Once a run has checkpointed its first epoch and before it completes, SIGKILL the worker process
    # holding the run's lock (its first pid; the notebook kernel joined it): its nanny starts a new one,
    # the scheduler reschedules the task, and the run resumes from the checkpoint.
    victim = None
    deadline = time.time() + 300
    while victim is None and time.time() < deadline and thread.is_alive():
        for p in planned:
            owner = records.read_lock(records.lock_path(p.run_dir))
            if owner and len(owner.get("pids", [])) >= 2 and \
                    (p.run_dir / records.CHECKPOINT_DIR / records.CHECKPOINT_STATE).exists() and \
                    not (p.run_dir / records.METRICS).exists():
                victim = p, owner["pids"][0]["pid"]
                break
        time.sleep(0.05)
    assert victim is not None, "no run was seen training: " + out.getvalue()
    killed_run, pid = victim
    with distributed.Client(cli_cluster, timeout=30, set_as_default=False) as client:
        [killed_worker] = [a for a, worker_pid in client.run(os.getpid).items() if worker_pid == pid]
    os.kill(pid, signal.SIGKILL)

    thread.join(timeout=400)
    assert not thread.is_alive(), out.getvalue()
    assert "error" not in outcome, repr(outcome.get("error"))
    got = outcome["results"]
    assert [r.status for r in got] == ["completed"] * 2, out.getvalue()
    assert_recorded_once(planned, results)
    assert executed_on(killed_run.run_dir)["worker"] != killed_worker  # finished by another worker process
    assert "resuming after epoch" in (killed_run.run_dir / records.NOTEBOOK).read_text()
    for p, result in zip(planned, got):
        assert executed_on(p.run_dir) == {"host": result.host, "worker": result.worker}


def test_notebook_output_reaches_the_sweep_without_papermill_bookkeeping(capsys):
    """One filter decides what is bookkeeping, for the sweep's own stream and for a Dask worker's forwarder."""
    import io
    import logging
    import threading

    from convmixer.sweep.execute import show_notebook_output
    from convmixer.sweep.tasks import _ForwardOutput

    class Worker:
        def __init__(self):
            self.events = []

        def log_event(self, topic, message):
            self.events.append((topic, message))

    logger = logging.getLogger("papermill")
    before = (list(logger.handlers), logger.level, logger.propagate)
    stream, worker = io.StringIO(), Worker()
    forward = _ForwardOutput(worker, "topic")
    try:
        show_notebook_output(stream)
        logger.addHandler(forward)
        for line in ("Executing Cell 3---------", "epoch 1/2: loss 2.1", "Ending Cell 3---------",
                     "Output Notebook: x.ipynb"):
            logger.info(line)
        other = threading.Thread(target=logger.info, args=("a line of another task's thread",))
        other.start()
        other.join()
    finally:
        logger.removeHandler(forward)
        logger.handlers[:], logger.level, logger.propagate = before
    assert worker.events == [("topic", "epoch 1/2: loss 2.1")]
    assert stream.getvalue().splitlines() == ["epoch 1/2: loss 2.1", "a line of another task's thread"]
