"""Train one configuration and write its complete, resumable run record.

The loop trains one epoch at a time (``steps.make_epoch_trainer``) so that each
epoch's inputs come from ``pipeline`` (seeded by (seed, epoch)) and the state
after each epoch (weights, optimizer slots, history, best epoch) is
checkpointed atomically. A run killed at any moment restarts from its last
completed epoch and ends with the same record an uninterrupted run writes.

Every input is checked, and the data loaded and checked against the subsets,
before the run folder is created, so a refused run leaves nothing behind. The
run trains under its lock (``records.acquire_lock``); a loss that becomes
non-finite stops it, recorded as failed (``error.json``) with that reason.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .. import records
from ..records import RunRecord
from .checkpoint import Checkpoint
from .config import RunConfig
from .guards import RunConflict, RunRefused, check_backend_installed, check_memory, select_backend
from .progress import batches_with_progress, progress_wanted
from .session import (build_session, note_resumed_code, epoch_inputs, epoch_line, load_average, new_progress, note_epoch, now,
                      prepare_data, run_epoch, run_metrics)
from .evaluate import EVAL_BATCH_SIZE, test_predictions
from .speed import import_tensorflow_quietly, prefer_onednn


def train(config: RunConfig, out_dir, *, log=None, lock_token=None, progress=None) -> dict:
    """Train ``config`` and write its record into ``out_dir``; returns metrics.

    A completed record with the same configuration is returned as is; a record
    of another configuration, or a corrupt one, in ``out_dir`` is never
    overwritten (RunConflict). Inputs that cannot train here raise RunRefused and
    data problems DataError, before the folder is created. The run's lock is
    held throughout (RunLocked when another live process holds it);
    ``lock_token`` joins a lock the caller's parent process took for this run
    (the sweep's). ``progress``: show a bar within each epoch (None: when
    there is a terminal or a notebook widget to show it in).
    """
    prefer_onednn()  # before TensorFlow is imported (see speed.py); the user's own choice wins
    log = log or sys.stdout  # looked up per call: the stream in effect now, not at import
    record, recipe = RunRecord(out_dir), config.recipe_obj
    done = _completed(record, config, log, lock_token)
    if done is not None:
        return done
    _check_can_train(config)
    data = prepare_data(config, recipe)  # bad images, labels or subsets fail here, before the folder exists
    lock, done = _open(record, config, log, lock_token)
    if done is not None:
        return done
    try:
        # set up, or restore the last completed epoch
        started, load_at_start = now(), load_average()
        session = build_session(config, recipe, data)
        ckpt = Checkpoint(record.path)
        state = ckpt.load(session.model, session.optimizer)
        if state is None:
            state = new_progress(started)
        else:
            _log(f"[{config.run_id}] resuming after epoch {state['epoch']} of {config.epochs}", log)
            note_resumed_code(state)
        first_epoch_here = state["epoch"]  # this process traces the graph during it
        show_bar = progress_wanted(progress) and session.train_epoch.kind.startswith("compiled custom step")
        # loop over epochs, checkpointing each
        for epoch in range(state["epoch"], config.epochs):
            inputs = epoch_inputs(recipe, data.x_train, data.y_train, config, epoch)
            if show_bar:  # the same batches, behind a bar (model.fit takes whole arrays: no bar there)
                inputs = batches_with_progress(*inputs, config.batch_size, epoch=epoch + 1, epochs=config.epochs,
                                               n_images=len(data.x_train)), None
            row = run_epoch(session, data, inputs, config, epoch, traced=epoch == first_epoch_here)
            improved = note_epoch(state, row, data.monitor)
            ckpt.save(session.model, session.optimizer, epoch + 1, state, improved and recipe.selection == "best_val")
            record.write_history(state["history"])
            lock.refresh()  # tells other hosts sharing the folder that this run is alive
            _log(epoch_line(config, row, data.monitor), log)
        # select the epoch whose weights are tested, and test them
        selected = ckpt.load_best(session.model) if recipe.selection == "best_val" else config.epochs
        test = session.model.evaluate(data.x_test, data.y_test, batch_size=EVAL_BATCH_SIZE, verbose=0,
                                      return_dict=True)
        predictions = test_predictions(session.model, data.x_test, data.y_test)
        # write the record: weights, predictions, history, then metrics.json last (it marks the record complete)
        record.save_weights(session.model)
        record.write_predictions(**predictions)
        metrics = run_metrics(config, recipe, session, data, state, test, selected, load_at_start)
        record.write_history(state["history"])
        record.write_metrics(metrics)
        ckpt.remove()
        record.remove_error()
    except Exception as exc:
        _record_error(record, config, exc)
        raise
    finally:
        lock.release()
    _log(f"[{config.run_id}] done: test accuracy {metrics['test_accuracy']:.4f} (epoch {selected}), "
         f"{metrics['seconds_per_epoch']:.1f} s/epoch, {metrics['images_per_second']:.1f} img/s on "
         f"{session.device['kind']}", log)
    return metrics


def _log(line, stream):
    print(line, file=stream, flush=True)


def _check_out_dir(out: Path, config: RunConfig) -> records.RecordState:
    """What ``out`` holds; refuses a file, a corrupt record and another configuration's record."""
    if out.exists() and not out.is_dir():
        raise RunRefused(f"--out {out} is a file, not a folder: choose a folder for the run record")
    check = RunRecord(out).state()
    if check.params is not None and check.params.get("config_hash") != config.config_hash:
        raise RunConflict(f"{out} holds run {check.params.get('run_id')!r}, not {config.run_id!r}; "
                          "choose another folder")
    if check.state == "corrupt":
        raise RunConflict(f"{out} holds a corrupt record ({check.problem}); move it away or choose another folder")
    return check


def _completed(record: RunRecord, config: RunConfig, log, lock_token=None) -> dict | None:
    """The metrics of a completed record of ``config`` (tidied of what a kill may have left), else None."""
    check = _check_out_dir(record.path, config)
    if check.state != "completed":
        return None
    try:
        with records.acquire_lock(record.path, token=lock_token, what="tidy"):
            records.tidy_completed(record.path)
    except (records.RunLocked, OSError):
        pass  # someone else holds it, or the disk refuses: the record itself is complete either way
    _log(f"[{config.run_id}] already complete, nothing to do", log)
    return check.metrics


def _check_can_train(config: RunConfig):
    """Refuse, before the data is decoded, what cannot train here: a missing backend, too little memory,
    an unreadable data source."""
    from ..data import describe_source

    check_backend_installed(config.backend)
    check_memory(config)
    describe_source(config.data)
    select_backend(config.backend)
    if config.backend == "tensorflow":
        import_tensorflow_quietly()  # only where the CLI or notebook asked for quiet logs


def _open(record: RunRecord, config: RunConfig, log, lock_token):
    """Take the run's lock and write params.json: (lock, None), or (None, metrics) when another process
    completed the run meanwhile. A folder that could not even get its params.json is removed."""
    lock = records.acquire_lock(record.path, token=lock_token)
    try:
        if _check_out_dir(record.path, config).state == "completed":  # finished by someone else meanwhile
            lock.release()
            return None, _completed(record, config, log, lock_token)
        created = not record.path.exists()
        try:
            record.path.mkdir(parents=True, exist_ok=True)
            record.write_params(config.to_params())
        except OSError as exc:
            if created:  # a run that could not even start leaves no folder behind
                shutil.rmtree(record.path, ignore_errors=True)
            raise records.write_error(record.path / records.PARAMS, exc) from None
    except BaseException:
        lock.release()
        raise
    return lock, None


def _record_error(record: RunRecord, config: RunConfig, exc: BaseException):
    """error.json for a run that failed in this process (best effort: the disk may be the problem)."""
    try:
        record.write_error({"status": "failed", "run_id": config.run_id,
                            "error": " ".join(f"{type(exc).__name__}: {exc}".split())[:4000], "traceback": "",
                            "notebook": None})
    except (OSError, ValueError):
        pass


def load_trained_model(run_dir):
    """Rebuild a finished run's model from its params.json and load its weights."""
    prefer_onednn()  # the kernels the run trained with, where TensorFlow is not imported yet
    from ..models.baselines import build_model
    from .config import PARAMETER_NAMES

    record = RunRecord(run_dir)
    params, dataset = record.params, record.metrics.get("dataset", {})
    config = RunConfig.from_dict({k: v for k, v in params.items() if k in PARAMETER_NAMES})
    model = build_model(config.architecture, config.model_hyperparameters,
                        num_classes=len(dataset.get("class_names", range(10))),
                        normalization=config.recipe_obj.normalization)
    model.load_weights(record.weights_path)
    return model
