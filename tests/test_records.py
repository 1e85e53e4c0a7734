"""Run records: the per-run lock, standard JSON, one-line write errors, one validation of a record."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convmixer import records
from convmixer.training.config import RunConfig
from fakes import write_weights

# The configuration the fake records below hold (params.json must be the configuration its hash names).
CONFIG = RunConfig(width=8, depth=1, patch_size=4, kernel_size=3, epochs=1, data="synthetic:200:50")
HASH = CONFIG.config_hash

ROOT = Path(__file__).resolve().parents[1]


def _in_child(code):
    """Run ``code`` in a fresh Python (another process, as a second sweep would be); returns its stdout."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=env).stdout.strip()


def _try_lock(run, token=None):
    return (f"from convmixer import records\n"
            f"try:\n    lock = records.acquire_lock({str(run)!r}, token={token!r})\n    print('joined' if lock.joined else 'got')\n"
            f"except records.RunLocked as exc:\n    print('locked')\n")


# --- the lock ----------------------------------------------------------------------------------

def test_lock_is_exclusive_across_processes_and_released(tmp_path):
    run = tmp_path / "runs" / "r"
    lock = records.acquire_lock(run)
    owner = json.loads(records.lock_path(run).read_text())
    assert owner["host"] and owner["pids"][0]["pid"] == os.getpid()  # who holds it, on which machine
    assert records.lock_path(run).parent == run.parent and not run.exists()  # beside the folder, not in it
    assert _in_child(_try_lock(run)) == "locked"
    with pytest.raises(records.RunLocked, match="running elsewhere"):
        records.acquire_lock(run)  # another thread of this process
    lock.release()
    assert not records.lock_path(run).exists()
    assert _in_child(_try_lock(run)) == "got"  # the child exited without releasing: now stale
    again = records.acquire_lock(run)  # ... so it is broken
    again.release()


def test_a_child_joins_the_lock_its_parent_holds_for_it(tmp_path):
    run = tmp_path / "r"
    with records.acquire_lock(run) as lock:
        assert _in_child(_try_lock(run, token=lock.token)) == "joined"
        assert _in_child(_try_lock(run, token="not-the-token")) == "locked"
        assert len(json.loads(records.lock_path(run).read_text())["pids"]) == 2  # this process and the one that joined
    assert not records.lock_path(run).exists()


def test_a_child_joins_only_under_the_guard_that_breaking_a_lock_takes(tmp_path):
    # A sweep killed before its kernel joins leaves a stale lock; a process breaking it holds <lock>.break
    # while it reads and removes the file, so the kernel's join (a rename over that file) must wait for it.
    run = tmp_path / "r"
    with records.acquire_lock(run) as lock:
        guard = records.lock_path(run).with_name(records.lock_path(run).name + ".break")
        guard.touch()
        impatient = _try_lock(run, token=lock.token).replace(
            "try:", "import convmixer.records.locks as locks\nlocks.JOIN_WAIT = 0.5\ntry:", 1)
        assert _in_child(impatient) == "locked"  # gave up waiting, joined nothing
        assert len(json.loads(records.lock_path(run).read_text())["pids"]) == 1
        guard.unlink()
        assert _in_child(_try_lock(run, token=lock.token)) == "joined"


def test_a_child_whose_sweeps_lock_is_gone_refuses_and_takes_none(tmp_path):
    # Its sweep was killed and the stale lock broken before the kernel joined: the kernel must not train.
    run = tmp_path / "r"
    with records.acquire_lock(run) as lock:
        token = lock.token
    assert _in_child(_try_lock(run, token=token)) == "locked"
    assert not records.lock_path(run).exists()


def _write_lock(run, **owner):
    path = records.lock_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(owner))
    return path


def test_stale_locks_are_broken_live_ones_are_not(tmp_path):
    run = tmp_path / "r"
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = records.hostname()
    _write_lock(run, host=host, pids=[{"pid": dead.pid, "start": None}])
    records.acquire_lock(run).release()  # its process is gone
    # a live pid whose start time differs: the pid was reused by another process
    _write_lock(run, host=host, pids=[{"pid": os.getppid(), "start": "1"}])
    records.acquire_lock(run).release()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        _write_lock(run, host=host, pids=[{"pid": sleeper.pid, "start": records._process_start(sleeper.pid)}])
        with pytest.raises(records.RunLocked, match=f"pid {sleeper.pid}"):
            records.acquire_lock(run)
        assert records.lock_holder(run)["pids"][0]["pid"] == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_from_another_host_is_live_until_it_times_out(tmp_path):
    run = tmp_path / "r"
    path = _write_lock(run, host="some-other-machine", pids=[{"pid": 1, "start": None}])
    with pytest.raises(records.RunLocked, match="some-other-machine"):
        records.acquire_lock(run)
    old = time.time() - records.LOCK_STALE_AFTER - 60
    os.utime(path, (old, old))  # not refreshed for longer than the timeout
    records.acquire_lock(run).release()


def test_another_hosts_lock_is_taken_over_on_request_once_older_than_asked_and_never_this_hosts(tmp_path):
    run = tmp_path / "r"
    path = _write_lock(run, host="colab-vm-gone", pids=[{"pid": 4242, "start": "9"}], started="2024-05-01T10:00:00")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(path, (two_hours_ago, two_hours_ago))
    with pytest.raises(records.RunLocked, match="last refreshed 2 h 00 min ago.*--take-over-locks"):
        records.acquire_lock(run)  # without the flag: live for 24 h, and the message says what to do
    assert records.take_over_stale_lock(run, 3 * 3600) is None and path.exists()  # refreshed since: kept
    line = records.take_over_stale_lock(run, 3600)
    assert line == ("took over the lock of r: pid 4242 on host colab-vm-gone since 2024-05-01T10:00:00; "
                    "last refreshed 2 h 00 min ago")
    assert not path.exists()
    records.acquire_lock(run).release()
    # A lock of this host is decided by its processes, whatever its age: a live one is never taken over.
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        path = _write_lock(run, host=records.hostname(),
                           pids=[{"pid": sleeper.pid, "start": records._process_start(sleeper.pid)}])
        os.utime(path, (two_hours_ago, two_hours_ago))
        assert records.take_over_stale_lock(run, 0) is None
        with pytest.raises(records.RunLocked, match="taken over automatically once that process has ended"):
            records.acquire_lock(run)
    finally:
        sleeper.kill()
        sleeper.wait()
    # a lock another host refreshes while it is being taken over stays: the age is checked again under the guard
    path = _write_lock(run, host="busy-gpu-node", pids=[{"pid": 7, "start": "1"}])
    os.utime(path, (two_hours_ago, two_hours_ago))
    real_break = records.locks._break_stale

    def refreshed_meanwhile(p, seen, stale=None):
        os.utime(p)
        return real_break(p, seen, stale)

    records.locks._break_stale = refreshed_meanwhile
    try:
        assert records.take_over_stale_lock(run, 3600) is None and path.exists()
    finally:
        records.locks._break_stale = real_break


def test_an_empty_lock_file_is_live_only_briefly(tmp_path):
    run = tmp_path / "r"
    path = _write_lock(run)
    path.write_text("")  # between another process' O_EXCL create and its write
    with pytest.raises(records.RunLocked):
        records.acquire_lock(run)
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    records.acquire_lock(run).release()


# --- writes ------------------------------------------------------------------------------------

def test_json_is_standard_nan_and_infinity_are_refused(tmp_path):
    path = tmp_path / "m.json"
    records.atomic_write_json(path, {"loss": 1.0})
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            records.atomic_write_json(path, {"loss": bad})
    assert json.loads(path.read_text()) == {"loss": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_a_full_disk_is_one_line_naming_the_path_and_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    records.atomic_write_json(path, {"old": True})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(records.WriteError) as info:
        records.atomic_write_json(path, {"new": True})
    assert str(info.value) == f"cannot write {path}: No space left on device"
    assert isinstance(info.value, OSError)
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left
    monkeypatch.undo()
    (tmp_path / "file").write_text("")
    with pytest.raises(records.WriteError, match=r"cannot write .*file/x\.json: "):
        records.atomic_write_json(tmp_path / "file" / "x.json", {})


# --- one validation of a record ----------------------------------------------------------------

def _hdf5_without_layers(path):
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=[1, 2, 3])


def test_a_real_keras_weights_file_and_history_make_a_complete_record_predictions_optional(tmp_path):
    import keras

    from convmixer.models.baselines import build_model

    run_dir = tmp_path / "r"
    _record(run_dir, epochs=2)
    records.atomic_write_csv(run_dir / records.HISTORY, [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5}])
    model = build_model("convmixer", {"width": 8, "depth": 1, "patch_size": 4, "kernel_size": 3})
    model.compile(optimizer=keras.optimizers.AdamW(), loss="sparse_categorical_crossentropy")
    model.save_weights(run_dir / records.WEIGHTS)
    assert not (run_dir / records.PREDICTIONS).exists()  # older records have none: still complete
    assert records.validate_record(run_dir, HASH).state == "completed"


def _record(run_dir, **metrics):
    records.atomic_write_json(run_dir / records.PARAMS, CONFIG.to_params())
    records.atomic_write_csv(run_dir / records.HISTORY, [{"epoch": 1}])
    write_weights(run_dir / records.WEIGHTS)
    records.atomic_write_json(run_dir / records.METRICS, {"status": "completed", "test_accuracy": 0.5} | metrics)


def _edit_params(run_dir, **fields):
    params = json.loads((run_dir / records.PARAMS).read_text()) | fields
    records.atomic_write_json(run_dir / records.PARAMS, params)


def _write_predictions(run_dir, n, cut=None, flip=False, **metrics):
    import numpy as np

    records.RunRecord(run_dir).write_predictions(np.arange(n) % 10, np.zeros(n, int), np.linspace(0, 1, n))
    path = run_dir / records.PREDICTIONS
    if cut:
        path.write_bytes(path.read_bytes()[:cut])
    if flip:  # damage the compressed data of the first array, leaving the archive's structure intact
        data = bytearray(path.read_bytes())
        start = data.index(b"label.npy") + len(b"label.npy") + 20
        data[start:start + 8] = bytes(b ^ 0xFF for b in data[start:start + 8])
        path.write_bytes(bytes(data))
    if metrics:
        _record(run_dir, **metrics)


def _write_npy(path):
    import numpy as np

    with open(path, "wb") as f:
        np.save(f, np.zeros(50))


def test_a_record_written_before_a_rule_changed_stays_complete(tmp_path):
    from convmixer.training.config import configuration_hash

    _record(tmp_path)
    # a training subset of 5 images: refused by today's RunConfig, but the run trained and stored it so
    params = CONFIG.to_params() | {"train_subset": 5}
    params["config_hash"] = configuration_hash({k: v for k, v in params.items() if k not in ("config_hash", "run_id")})
    records.atomic_write_json(tmp_path / records.PARAMS, params)
    with pytest.raises(ValueError):
        RunConfig.from_dict({k: v for k, v in params.items() if k not in ("config_hash", "run_id")})
    assert records.validate_record(tmp_path).state == "completed"


def test_predictions_of_the_recorded_test_set_keep_a_record_complete(tmp_path):
    _record(tmp_path, test_images=50)
    _write_predictions(tmp_path, 50)
    assert records.validate_record(tmp_path, HASH).state == "completed"
    assert len(records.RunRecord(tmp_path).predictions()["label"]) == 50


@pytest.mark.parametrize(
    "damage,problem",
    [
        (lambda d: (d / records.METRICS).write_text("[1, 2, 3]"), "metrics.json is not a JSON object"),
        (lambda d: (d / records.METRICS).write_text('{"status": "compl'), "metrics.json unreadable (not valid JSON"),
        (lambda d: (d / records.PARAMS).write_text("\x00garbage"), "params.json unreadable"),
        (lambda d: _record(d, test_accuracy="high"), "test_accuracy must be a number in [0, 1], got 'high'"),
        (lambda d: (d / records.METRICS).write_text('{"status": "completed", "test_accuracy": NaN}'),
         "test_accuracy must be a number"),
        (lambda d: _record(d, status="running"), "does not record a completed run"),
        (lambda d: _record(d, device="cpu"), "device must be a JSON object"),
        (lambda d: (d / records.HISTORY).unlink(), "history.csv missing"),
        (lambda d: (d / records.WEIGHTS).unlink(), "model.weights.h5 missing"),
        (lambda d: (d / records.WEIGHTS).write_bytes(os.urandom(4096)), "model.weights.h5 is not an HDF5 file"),
        (lambda d: (d / records.WEIGHTS).write_bytes((d / records.WEIGHTS).read_bytes()[:600]),
         "model.weights.h5 unreadable as HDF5"),  # truncated: the signature is there, the file is not
        (lambda d: _hdf5_without_layers(d / records.WEIGHTS), "holds no 'layers' group"),
        (lambda d: (d / records.HISTORY).write_bytes(b"\xff\xfe\x00garbage"), "history.csv is not UTF-8 text"),
        (lambda d: (d / records.HISTORY).write_text("lorem,ipsum\n1,2\n"), "no header naming an 'epoch' column"),
        (lambda d: (d / records.HISTORY).write_text("epoch,loss\n1,0.5,7\n"), "rows whose length differs"),
        (lambda d: (d / records.HISTORY).write_text("epoch,loss\n"), "does not number its epochs"),
        (lambda d: (d / records.HISTORY).write_text("epoch,loss\n1,2\n3,1\n"), "does not number its epochs"),
        (lambda d: _record(d, epochs=3), "history.csv has 1 epochs, metrics.json 3"),
        # params.json edited after the run: its fields no longer make the configuration its hash names
        (lambda d: _edit_params(d, kernel_size="nine"), "params.json does not hash to its config_hash"),
        (lambda d: _edit_params(d, seed="0"), "params.json does not hash to its config_hash"),
        (lambda d: _edit_params(d, kernel_size=5), "a field was changed after the run"),
        (lambda d: _edit_params(d, recipe_overrides=[1]), "params.json does not hash to its config_hash"),
        # the per-image predictions the paired tests read: a copy cut short, garbage, or another test set's
        (lambda d: _write_predictions(d, 50, cut=100), "test_predictions.npz unreadable"),
        (lambda d: (d / records.PREDICTIONS).write_bytes(os.urandom(500)), "test_predictions.npz unreadable"),
        (lambda d: _write_predictions(d, 50, flip=True), "test_predictions.npz unreadable"),  # zlib.error inside
        (lambda d: _write_npy(d / records.PREDICTIONS), "test_predictions.npz unreadable"),  # an .npy, not an .npz
        (lambda d: _write_predictions(d, 49, test_images=50), "holds 49 images, metrics.json's test_images 50"),
        # what the report reads inside metrics.json's objects
        (lambda d: _record(d, device={"kind": 5}), "device.kind must be a string, got 5"),
        (lambda d: _record(d, device={"kind": "CPU", "cpu_count": "x"}), "device.cpu_count must be an integer"),
        (lambda d: _record(d, dataset={"lossy_jpeg": "yes"}), "dataset.lossy_jpeg must be true or false"),
    ],
)
def test_corrupt_records_are_named_with_path_and_reason(tmp_path, damage, problem):
    run_dir = tmp_path / "r"
    _record(run_dir)
    assert records.validate_record(run_dir, HASH).state == "completed"
    damage(run_dir)
    check = records.validate_record(run_dir, HASH)
    assert check.state == "corrupt" and problem in check.problem and str(run_dir) in check.problem


def test_record_states(tmp_path):
    run_dir = tmp_path / "r"
    assert records.validate_record(run_dir).state == "absent"
    run_dir.mkdir()
    assert records.validate_record(run_dir).state == "incomplete"  # made, never started
    records.atomic_write_json(run_dir / records.PARAMS, CONFIG.to_params())
    assert records.validate_record(run_dir, "other").state == "corrupt"  # another configuration's record
    records.atomic_write_bytes(run_dir / records.CHECKPOINT_DIR / records.CHECKPOINT_STATE, b"x")
    assert records.validate_record(run_dir).resumable
    records.atomic_write_json(run_dir / records.ERROR, {"error": "ValueError: boom"})
    check = records.validate_record(run_dir)
    assert check.state == "failed" and check.problem == "ValueError: boom"
    (tmp_path / "file").write_text("")
    assert records.validate_record(tmp_path / "file").state == "corrupt"


def test_tidy_finishes_what_a_kill_left_beside_a_completed_record(tmp_path):
    run_dir = tmp_path / "r"
    _record(run_dir)
    records.atomic_write_bytes(run_dir / records.CHECKPOINT_DIR / records.CHECKPOINT_STATE, b"x")
    records.partial_notebook(run_dir).write_text("{}")
    (run_dir / ".metrics.json.abc.tmp").write_text("")
    done = records.tidy_completed(run_dir)
    assert len(done) == 3
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        [records.PARAMS, records.HISTORY, records.WEIGHTS, records.METRICS, records.NOTEBOOK])


def test_move_aside_keeps_everything_and_says_why(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    _record(run_dir)
    (run_dir / records.METRICS).write_text("[1]")
    target = records.move_aside(run_dir, tmp_path, "metrics.json is not a JSON object")
    assert not run_dir.exists() and target.parent == tmp_path / "corrupt"
    assert (target / records.METRICS).read_text() == "[1]"
    assert "not a JSON object" in (target / "CORRUPT.txt").read_text()


def test_an_exited_unreaped_process_and_an_orphaned_kernel_do_not_hold_a_lock_forever(tmp_path):
    run = tmp_path / "r"
    zombie = subprocess.Popen(["true"])  # exits at once; not reaped until wait(): a zombie meanwhile
    time.sleep(0.5)
    try:
        _write_lock(run, host=records.hostname(),
                    pids=[{"pid": zombie.pid, "start": records._process_start(zombie.pid)}])
        records.acquire_lock(run).release()
    finally:
        zombie.wait()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:  # the sweep that took it is gone, the kernel that joined it still runs
        owner = {"host": records.hostname(), "pids": [{"pid": zombie.pid, "start": None},
                                                      {"pid": sleeper.pid, "start": None}]}
        assert records.lock_orphaned(owner)
        assert not records.lock_orphaned(owner | {"pids": owner["pids"][1:]})
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not records.lock_orphaned(owner)


def test_an_orphaned_kernel_is_ended_but_a_live_sweeps_kernel_or_a_reused_pid_is_not():
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = records.hostname()

    def entry(proc, start=None):
        return {"pid": proc.pid, "start": start or records._process_start(proc.pid)}

    taker, kernel = subprocess.Popen(["sleep", "60"]), subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.2)
        # the sweep that took the lock is alive: its kernel is not an orphan
        assert records.end_orphans({"host": host, "pids": [entry(taker), entry(kernel)]}) == []
        # a pid now used by another process (the start time differs) is never hit
        assert records.end_orphans({"host": host, "pids": [{"pid": gone.pid, "start": "1"},
                                                           entry(kernel, start="1")]}) == []
        # another host's lock is never touched
        assert records.end_orphans({"host": host + "-other", "pids": [{"pid": gone.pid, "start": "1"},
                                                                       entry(kernel)]}) == []
        assert kernel.poll() is None and taker.poll() is None
        # the taker died: its kernel is ended
        orphan = {"host": host, "pids": [{"pid": gone.pid, "start": "1"}, entry(kernel)]}
        assert records.end_orphans(orphan) == [kernel.pid]
        assert kernel.wait(timeout=10) == -9
        assert not records.lock_orphaned(orphan)
    finally:
        for proc in (taker, kernel):
            proc.kill()
            proc.wait()


def test_records_are_made_portable_without_touching_urls_or_arithmetic(tmp_path):
    import json as _json

    from convmixer import records as r

    results = tmp_path / "results"
    run = results / "runs" / "a-run"
    run.mkdir(parents=True)
    data = str(tmp_path / "elsewhere" / "cifar10-jpeg.zip")
    (run / r.METRICS).write_text(_json.dumps({"status": "completed", "dataset": {
        "source": data, "description": f"image-folder zip {data} (lossy)"}}), encoding="utf-8")
    (run / r.NOTEBOOK).write_text(_json.dumps({"cells": [{"source": f'out_dir = "{run}"\nx = y /255\n'
                                                          "url = 'https://github.com/a/b'"}]}), encoding="utf-8")
    assert r.make_record_portable(run)
    metrics = _json.loads((run / r.METRICS).read_text())
    assert metrics["dataset"] == {"source": "cifar10-jpeg.zip", "description": "image-folder zip cifar10-jpeg.zip (lossy)"}
    source = _json.loads((run / r.NOTEBOOK).read_text())["cells"][0]["source"]
    assert source == 'out_dir = "results/runs/a-run"\nx = y /255\nurl = \'https://github.com/a/b\''
    assert r.make_record_portable(run) == []  # idempotent
    assert str(tmp_path) not in (run / r.METRICS).read_text() + (run / r.NOTEBOOK).read_text()


def test_only_code_changes_make_a_commit_dirty(tmp_path):
    from convmixer import records as r

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "convmixer").mkdir()
    (tmp_path / "convmixer" / "x.py").write_text("a = 1\n")
    (tmp_path / "README.md").write_text("readme\n")
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    clean = r.git_commit(cwd=tmp_path / "convmixer")
    assert len(clean) == 40
    (tmp_path / "README.md").write_text("rebuilt by the report\n")  # not code: still clean
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "new-run.json").write_text("{}")
    assert r.git_commit(cwd=tmp_path / "convmixer") == clean
    (tmp_path / "convmixer" / "x.py").write_text("a = 2\n")
    assert r.git_commit(cwd=tmp_path / "convmixer") == clean + "+dirty"


def test_making_a_notebook_portable_never_touches_an_embedded_image(tmp_path):
    import base64 as _b64
    import json as _json

    from convmixer import records as r

    run = tmp_path / "results" / "runs" / "a-run"
    run.mkdir(parents=True)
    png = _b64.b64encode(bytes(range(256)) * 40).decode()  # base64 full of "+/" runs
    assert "+/" in png
    nb = {"cells": [{"outputs": [{"data": {"image/png": png, "text/plain": [f"saved in {run}"]}}],
                     "source": "x = a /b/c\n"}], "metadata": {"papermill": {"output_path": str(run / "train.ipynb")}}}
    (run / r.NOTEBOOK).write_text(_json.dumps(nb), encoding="utf-8")
    r.make_record_portable(run)
    out = _json.loads((run / r.NOTEBOOK).read_text())
    assert out["cells"][0]["outputs"][0]["data"]["image/png"] == png
    assert out["cells"][0]["outputs"][0]["data"]["text/plain"] == ["saved in results/runs/a-run"]
    assert out["cells"][0]["source"] == "x = a /b/c\n"  # "/b" is no directory here: code is left alone
    assert out["metadata"]["papermill"]["output_path"] == "results/runs/a-run/train.ipynb"


def test_cpu_vector_extension_is_the_widest_one_the_cpu_lists(tmp_path):
    from convmixer.records.provenance import cpu_vector_extension

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse avx fma avx2 avx512f avx512bw\n")
    assert cpu_vector_extension(cpuinfo) == "avx512f"
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse avx fma\n")
    assert cpu_vector_extension(cpuinfo) == "avx"
    cpuinfo.write_text("model name\t: ARM\nFeatures\t: neon\n")
    assert cpu_vector_extension(cpuinfo) is None
    assert cpu_vector_extension(tmp_path / "missing") is None


def test_predictions_round_trip_compactly_and_refuse_what_they_are_not(tmp_path):
    import numpy as np

    record = records.RunRecord(tmp_path)
    rng = np.random.default_rng(0)
    label, predicted = rng.integers(0, 10, 10_000), rng.integers(0, 10, 10_000)
    record.write_predictions(label, predicted, rng.random(10_000))
    saved = record.predictions()
    assert (saved["label"] == label).all() and (saved["predicted"] == predicted).all()
    assert saved["true_probability"].dtype == np.float16
    assert (tmp_path / records.PREDICTIONS).stat().st_size < 50_000  # about the 10-50 KB
    with pytest.raises(ValueError, match="1-D and equally long"):
        record.write_predictions(label, predicted[:5], rng.random(10_000))
    np.savez(tmp_path / records.PREDICTIONS, label=label, predicted=predicted)  # no probabilities
    with pytest.raises(ValueError, match="needs equal-length 1-D arrays"):
        record.predictions()
    objects = np.empty(10_000, dtype=object)  # as long as the others: only the unpickling can refuse it
    objects[:] = [{"x": 1}] * 10_000
    np.savez(tmp_path / records.PREDICTIONS, label=objects, predicted=predicted, true_probability=predicted)
    with pytest.raises(ValueError, match="Object arrays cannot be loaded"):  # would need unpickling: refused
        record.predictions()


# --- params.json: built once (RunConfig.to_params), the same bytes from the training loop and the sweep -------

PARAMS_BYTES = """{
  "activation": "gelu",
  "architecture": "vit",
  "backend": "tensorflow",
  "batch_size": 512,
  "config_hash": "7e056328",
  "data": null,
  "depth": null,
  "epochs": 8,
  "hyperparameters": {
    "depth": 4,
    "dim": 32,
    "heads": 4,
    "mlp_ratio": 2
  },
  "jit_compile": "auto",
  "kernel_size": null,
  "patch_size": 4,
  "precision": "auto",
  "recipe": "official",
  "recipe_overrides": {
    "lr": 0.005
  },
  "run_id": "vit_depth4_dim32_heads4_mlp_ratio2_p4_official-recipe_e8_s1_n1000-7e056328",
  "seed": 1,
  "test_subset": null,
  "train_subset": 1000,
  "width": null
}
""".encode()


def _params_config():
    from convmixer.training.config import RunConfig

    return RunConfig(architecture="vit", patch_size=4, hyperparameters={"dim": 32, "depth": 4, "heads": 4,
                                                                         "mlp_ratio": 2.0},
                     recipe="official", epochs=8, seed=1, train_subset=1000, recipe_overrides={"lr": 0.005})


def test_the_training_loop_and_the_sweep_write_the_same_params_json_as_ever(tmp_path):
    import io

    from convmixer.sweep.execute import _record_failure
    from convmixer.training.train import _open

    config = _params_config()
    lock, done = _open(records.RunRecord(tmp_path / "trained"), config, io.StringIO(), None)
    lock.release()
    assert done is None and (tmp_path / "trained" / records.PARAMS).read_bytes() == PARAMS_BYTES
    assert _record_failure(tmp_path / "refused", config, "refused", notebook=False) is None
    assert (tmp_path / "refused" / records.PARAMS).read_bytes() == PARAMS_BYTES


# --- metrics.json's fields: one declaration (records/metrics.py) for the writer, the validation and the report ---

BAD_VALUE = {"real": ("fast", "must be a finite number"), "int": (2.5, "must be an integer"),
             "object": ([1], "must be a JSON object"), "reals": ("high", "must be a list of numbers")}


@pytest.mark.parametrize("field", [f for f in records.METRIC_FIELDS if f.kind], ids=lambda f: f.name)
def test_validation_checks_each_declared_fields_kind(tmp_path, field):
    value, problem = BAD_VALUE[field.kind]
    _record(tmp_path, **{field.name: value})
    check = records.validate_record(tmp_path, HASH)
    assert check.state == "corrupt" and f"{field.name} {problem}" in check.problem


@pytest.mark.parametrize("field", [f for f in records.METRIC_FIELDS if f.kind is None
                                   and f.name not in ("status", "test_accuracy", "run_id")], ids=lambda f: f.name)
def test_validation_leaves_fields_declared_unchecked_alone_and_requires_none(tmp_path, field):
    _record(tmp_path, **{field.name: [1, "x"]})
    assert records.validate_record(tmp_path, HASH).state == "completed"


def test_the_writer_holds_to_the_declared_fields():
    metrics = dict.fromkeys(records.METRIC_NAMES, 1)
    assert records.check_metrics_fields(metrics) is metrics
    with pytest.raises(ValueError, match=r"missing \['speed'\], undeclared \[\]"):
        records.check_metrics_fields({k: v for k, v in metrics.items() if k != "speed"})
    with pytest.raises(ValueError, match=r"missing \[\], undeclared \['accuracy'\]"):
        records.check_metrics_fields(metrics | {"accuracy": 1})


def test_the_reports_run_table_reads_every_declared_column(tmp_path):
    from convmixer.report.runs import COLUMNS, read_run

    values = {f.name: f"value of {f.name}" for f in records.METRIC_FIELDS if f.column and f.kind is None}
    values |= {f.name: 7 for f in records.METRIC_FIELDS if f.column and f.kind == "int"}
    values |= {f.name: 0.25 for f in records.METRIC_FIELDS if f.column and f.kind == "real"}
    values["test_accuracy"] = 0.5
    values["epochs"] = 1
    _record(tmp_path, **values)
    row = read_run(tmp_path)
    assert row["status"] == "completed"
    for f in records.METRIC_FIELDS:
        if f.column:
            assert f.name in COLUMNS and row[f.name] == values[f.name]
