"""Train one configuration and write its complete, resumable run record.

The loop trains one epoch at a time (``steps.make_epoch_trainer``) so that each
epoch's inputs come from ``pipeline`` (seeded by (seed, epoch)) and the state after each epoch
(weights, optimizer slots, history, best epoch) is checkpointed atomically. A
run killed at any moment restarts from its last completed epoch and ends with
the same record an uninterrupted run writes.

Every input is checked, and the data loaded and checked against the subsets,
before the run folder is created, so a refused run leaves nothing behind. The
run trains under its lock (``records.acquire_lock``); a loss that becomes
non-finite stops it, recorded as failed (``error.json``) with that reason.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from .. import records
from .config import RunConfig
from .speed import import_tensorflow_quietly, onednn_enabled, settings_for_device
from .steps import make_epoch_trainer


ALLOW_DIRTY_ENV = "CONVMIXER_ALLOW_DIRTY"  # set by ``sweep --allow-dirty`` for its notebook kernels


class RunConflict(RuntimeError):
    """The output folder holds a different configuration's record, or a corrupt one."""


class RunRefused(ValueError):
    """The run cannot train here (backend missing, model too large, output path unusable); nothing was written."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite: the run stops and is recorded as failed."""


BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def check_backend_installed(backend: str):
    module = BACKEND_MODULES.get(backend, backend)
    if importlib.util.find_spec(module) is None:
        raise RunRefused(f"backend {backend!r} needs the {module} package, which is not installed "
                         f"(pip install {module}, or choose another --backend)")


def training_memory_estimate(config: RunConfig, num_classes: int = 10) -> int:
    """A lower bound of the memory (bytes) one training step of ``config`` needs, in float32.

    Weights, gradients and AdamW's two slots (4 copies of the parameters), and for
    a ConvMixer the activations backpropagation keeps: the stem's two and at least
    four per block (the depthwise and pointwise convolutions' outputs and their
    normalisations), each batch x tokens x width. The real need is higher; a run
    whose lower bound exceeds the machine's memory cannot train, so it is refused
    before any work.
    """
    architecture = getattr(config, "architecture", "convmixer")
    if architecture != "convmixer":  # the baselines: their parameters alone
        from ..models.baselines import count_model_parameters

        return 4 * 4 * count_model_parameters(architecture, config.model_hyperparameters, num_classes)
    from ..models.convmixer import count_parameters

    params = count_parameters(config.width, config.depth, config.patch_size, config.kernel_size, num_classes)
    tokens = (32 // config.patch_size) ** 2
    activations = config.batch_size * tokens * config.width * (2 + 4 * config.depth)
    return 4 * (4 * params + activations)


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(config: RunConfig, available: int | None = None):
    need = training_memory_estimate(config)
    available = physical_memory() if available is None else available
    if available and need > available:
        raise RunRefused(
            f"{config.run_id} (batch {config.batch_size}) needs at least {need / 2**30:,.1f} GiB to train "
            f"(parameters, optimizer state, activations), more than this machine's {available / 2**30:,.1f} GiB "
            "of memory"
        )


def _now():
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not available on every platform
        return None


def select_backend(backend: str):
    """Make Keras use ``backend``; an error if Keras is already running another one."""
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise RuntimeError(
                f"backend {backend!r} requested but Keras was already imported with "
                f"{keras.backend.backend()!r}; set KERAS_BACKEND={backend} before importing keras"
            )
    else:
        os.environ["KERAS_BACKEND"] = backend


def make_schedule(recipe, epochs: int, steps_per_epoch: int):
    """The recipe's learning rate as a Keras schedule of the optimizer's step counter."""
    import keras
    from keras import ops

    if recipe.schedule == "constant":
        return recipe.lr

    class Triangular(keras.optimizers.schedules.LearningRateSchedule):
        # learning_rate_at(recipe, epoch + (step + 1) / steps, epochs), in graph ops.
        def __call__(self, step):
            t = (ops.cast(step, "float32") + 1.0) / steps_per_epoch
            knots = [0.0, float(epochs * 2 // 5), float(epochs * 4 // 5), float(epochs)]
            values = [0.0, recipe.lr, recipe.lr / 20.0, 0.0]
            lr = ops.zeros_like(t)
            for (x0, x1), (v0, v1) in zip(zip(knots, knots[1:]), zip(values, values[1:])):
                if x1 <= x0:
                    continue
                inside = ops.logical_and(t >= x0, t <= x1)
                lr = ops.where(inside, v0 + (v1 - v0) * (t - x0) / (x1 - x0), lr)
            return lr

        def get_config(self):
            return {}

    return Triangular()


def make_optimizer(recipe, schedule):
    import keras

    return keras.optimizers.AdamW(
        # global_clipnorm, like torch.nn.utils.clip_grad_norm_ (clipnorm would clip each tensor separately)
        learning_rate=schedule, weight_decay=recipe.keras_weight_decay, global_clipnorm=recipe.clipnorm
    )


def last_step_lr(schedule, optimizer) -> float:
    """The learning rate the optimizer used for its latest step (not the next one)."""
    if not callable(schedule):
        return float(schedule)
    return float(np.asarray(schedule(int(np.asarray(optimizer.iterations)) - 1)))


class Checkpoint:
    """Weights, optimizer slots and progress after the last completed epoch, in one file.

    ``state.npz`` holds the arrays *and* the progress (epoch, history, best epoch)
    as one atomic write, so a kill at any moment leaves either the previous
    epoch's state or this one's, never a mix. ``best.npz`` (the best epoch's
    weights) is written before it, so the state never points at a best epoch
    whose weights are missing.
    """

    def __init__(self, run_dir: Path):
        self.dir = run_dir / records.CHECKPOINT_DIR
        self.state = self.dir / records.CHECKPOINT_STATE
        self.best = self.dir / "best.npz"

    @staticmethod
    def _write(path, arrays):
        tmp = records.temp_path_for(path)
        try:
            tmp.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise records.write_error(path, exc) from None

    @staticmethod
    def _weights(model):
        return {f"w{i}": w for i, w in enumerate(model.get_weights())}

    def save(self, model, optimizer, epoch, progress, improved):
        if improved:
            self._write(self.best, self._weights(model) | {"epoch": np.asarray(epoch)})
        arrays = self._weights(model) | {f"o{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)}
        arrays["progress"] = np.asarray(json.dumps(progress))
        self._write(self.state, arrays)

    @staticmethod
    def _read(path) -> dict:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    @staticmethod
    def _take(arrays, prefix, targets, what):
        """Arrays ``prefix0..prefixN``, checked against ``targets``' count and shapes."""
        values = [arrays[f"{prefix}{i}"] for i in range(len(targets)) if f"{prefix}{i}" in arrays]
        if f"{prefix}{len(targets)}" in arrays or len(values) != len(targets) or any(
            tuple(v.shape) != tuple(t.shape) for v, t in zip(values, targets)
        ):
            raise ValueError(f"its {what} do not match this model and optimizer")
        return values

    def load(self, model, optimizer):
        """Restore and return the progress dict, or None (nothing changed) when there is nothing usable.

        Everything is read and checked first; weights and optimizer slots are
        assigned only when all of it matches, so a checkpoint from another Keras
        version or configuration can never leave a half-restored model.
        """
        if not self.state.exists():
            return None
        optimizer.build(model.trainable_variables)
        try:
            arrays = self._read(self.state)
            weights = self._take(arrays, "w", model.get_weights(), "weights")
            slots = self._take(arrays, "o", optimizer.variables, "optimizer slots")
            progress = json.loads(str(arrays["progress"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            print(f"checkpoint {self.state} unusable ({exc}); starting from scratch", file=sys.stderr)
            return None
        model.set_weights(weights)
        for variable, value in zip(optimizer.variables, slots):
            variable.assign(value)
        return progress

    def load_best(self, model):
        arrays = self._read(self.best)
        model.set_weights(self._take(arrays, "w", model.get_weights(), "weights"))
        return int(arrays["epoch"])

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def prepare_data(config: RunConfig, recipe):
    """Load the configured source and return the splits the recipe trains, selects and tests on."""
    from ..data import load_cifar10, take_subset, validation_split

    ds = load_cifar10(config.data)
    x_train, y_train = ds.x_train, ds.y_train
    if recipe.val_fraction > 0:
        x_train, y_train, x_val, y_val = validation_split(x_train, y_train, recipe.val_fraction, seed=config.seed)
    else:
        x_val = y_val = None
    x_train, y_train = take_subset(x_train, y_train, config.train_subset, seed=config.seed, name="train_subset")
    # The test subset does not depend on the run's seed: every seed is tested on the same images.
    x_test, y_test = take_subset(ds.x_test, ds.y_test, config.test_subset, seed=0, name="test_subset")
    return ds, (x_train, y_train), (x_val, y_val), (x_test, y_test)


def epoch_inputs(recipe, x, y, config, epoch):
    from . import pipeline

    if recipe.augmentation == "flip":
        return pipeline.flip_epoch(x, y, config.seed, epoch)
    return pipeline.official_epoch(x, y, recipe, config.seed, epoch, config.batch_size), None


def _in_notebook_with_widgets() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return False
    return (shell is not None and "IPKernelApp" in getattr(shell, "config", {})
            and importlib.util.find_spec("ipywidgets") is not None)


def progress_wanted(progress) -> bool:
    """Show the within-epoch bar? ``None``: in a terminal, or in a notebook that can show a widget.

    Not in logs, pipes or notebooks without ipywidgets: a text bar there would
    append a line per update (papermill logs every output of the kernel).
    """
    if progress is not None:
        return bool(progress)
    if os.environ.get("CONVMIXER_PROGRESS") in ("0", "1"):
        return os.environ["CONVMIXER_PROGRESS"] == "1"
    return sys.stderr.isatty() or _in_notebook_with_widgets()


def batches_with_progress(xe, ye, batch_size, *, epoch, epochs, n_images, stream=None):
    """The epoch's batches (the same slices the step takes) behind a tqdm bar: batches, images/s, time left.

    Updated at most twice a second; the bar is removed at the end of the epoch,
    whose one summary line stays.
    """
    from tqdm.auto import tqdm

    steps = math.ceil(n_images / batch_size)
    if ye is None:
        batches = xe  # already (images, labels) batches
    else:
        images, labels = xe, ye
        batches = ((images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(labels), batch_size))
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False, mininterval=0.5,
               file=stream or sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def generate():
        start = shown = time.perf_counter()
        try:
            for done, batch in enumerate(batches, start=1):
                yield batch
                now = time.perf_counter()
                if now - shown >= 0.5:  # the images/s text only when the bar is about to redraw
                    bar.set_postfix_str(f"{done * batch_size / (now - start):,.0f} img/s", refresh=False)
                    shown = now
                bar.update(1)
        finally:
            bar.close()

    return generate()


def _log(line, stream):
    print(line, file=stream, flush=True)


def _check_out_dir(out: Path, config: RunConfig) -> records.RecordState:
    """What ``out`` holds; refuses a file, a corrupt record and another configuration's record."""
    if out.exists() and not out.is_dir():
        raise RunRefused(f"--out {out} is a file, not a folder: choose a folder for the run record")
    check = records.validate_record(out)
    if check.params is not None and check.params.get("config_hash") != config.config_hash:
        raise RunConflict(f"{out} holds run {check.params.get('run_id')!r}, not {config.run_id!r}; "
                          "choose another folder")
    if check.state == "corrupt":
        raise RunConflict(f"{out} holds a corrupt record ({check.problem}); move it away or choose another folder")
    return check


def _finish_completed(out: Path, config: RunConfig, check, log, lock_token=None) -> dict:
    """A completed record is returned as is, after removing what a kill may have left beside it."""
    try:
        with records.acquire_lock(out, token=lock_token, what="tidy"):
            records.tidy_completed(out)
    except (records.RunLocked, OSError):
        pass  # someone else holds it, or the disk refuses: the record itself is complete either way
    _log(f"[{config.run_id}] already complete, nothing to do", log)
    return check.metrics


def _record_error(out: Path, config: RunConfig, exc: BaseException):
    """error.json for a run that failed in this process (best effort: the disk may be the problem)."""
    try:
        records.atomic_write_json(out / records.ERROR, {
            "status": "failed", "run_id": config.run_id,
            "error": " ".join(f"{type(exc).__name__}: {exc}".split())[:4000], "traceback": "", "notebook": None})
    except (OSError, ValueError):
        pass


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
    log = log or sys.stdout  # looked up per call: the stream in effect now, not at import
    out = Path(out_dir)
    check = _check_out_dir(out, config)
    if check.state == "completed":
        return _finish_completed(out, config, check, log, lock_token)
    check_backend_installed(config.backend)
    check_memory(config)
    recipe = config.recipe_obj
    from ..data import describe_source

    describe_source(config.data)  # a missing or unreadable data file fails here, before the data is decoded
    select_backend(config.backend)
    if config.backend == "tensorflow":
        import_tensorflow_quietly()  # only where the CLI or notebook asked for quiet logs
    # Loaded and split before the folder exists: a subset larger than the data, bad images or
    # labels fail here and leave nothing behind.
    ds, (x_train, y_train), (x_val, y_val), (x_test, y_test) = prepare_data(config, recipe)

    lock = records.acquire_lock(out, token=lock_token)
    try:
        check = _check_out_dir(out, config)  # another process may have finished it meanwhile
        if check.state == "completed":
            lock.release()
            return _finish_completed(out, config, check, log, lock_token)
        params = config.to_dict() | {"run_id": config.run_id, "config_hash": config.config_hash}
        created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
            records.atomic_write_json(out / records.PARAMS, params)
        except OSError as exc:
            if created:  # a run that could not even start leaves no folder behind
                shutil.rmtree(out, ignore_errors=True)
            raise records.write_error(out / records.PARAMS, exc) from None
        try:
            return _train_locked(config, out, recipe, ds, (x_train, y_train), (x_val, y_val), (x_test, y_test),
                                 lock=lock, log=log, show_progress=progress)
        except Exception as exc:
            _record_error(out, config, exc)
            raise
    finally:
        lock.release()


def _train_locked(config, out, recipe, ds, train_split, val_split, test_split, *, lock, log, show_progress) -> dict:
    import keras

    from ..models.baselines import build_model
    from ..models.convmixer import trainable_parameters

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = train_split, val_split, test_split
    started = _now()
    load_at_start = _load_average()
    steps_per_epoch = int(np.ceil(len(x_train) / config.batch_size))

    device = records.device_description()
    speed = settings_for_device(device["kind"], config.precision, config.jit_compile)
    # Global in Keras: layers built from here on compute in this precision (the logits stay float32).
    keras.config.set_dtype_policy(speed["precision"])
    keras.utils.set_random_seed(config.seed)
    model = build_model(config.architecture, config.model_hyperparameters, num_classes=len(ds.class_names),
                        normalization=recipe.normalization)
    schedule = make_schedule(recipe, config.epochs, steps_per_epoch)
    optimizer = make_optimizer(recipe, schedule)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    jit = speed["jit_compile"]
    # compile() wraps the optimizer for loss scaling under mixed_float16; the custom step uses model.optimizer.
    model.compile(optimizer=optimizer, loss=loss_fn, metrics=["accuracy"], jit_compile=jit)  # for evaluate()
    optimizer = model.optimizer
    train_epoch = make_epoch_trainer(model, optimizer, loss_fn, jit_compile=jit)

    ckpt = Checkpoint(out)
    progress = ckpt.load(model, optimizer)
    if progress is None:
        progress = {"epoch": 0, "history": [], "best_epoch": None, "best_val_accuracy": None, "started": started,
                    "git_commit": records.git_commit()}  # the code that starts the run is the code that runs it
    else:
        _log(f"[{config.run_id}] resuming after epoch {progress['epoch']} of {config.epochs}", log)
    history = progress["history"]
    monitor = "val_accuracy" if x_val is not None else "test_accuracy"
    eval_x, eval_y = (x_val, y_val) if x_val is not None else (x_test, y_test)
    n_train = len(x_train)

    first_epoch_here = progress["epoch"] + 1  # this process traces the graph during it
    # The bar wraps the batches the compiled step takes (model.fit takes whole arrays: no bar there).
    show_bar = progress_wanted(show_progress) and train_epoch.kind.startswith("compiled custom step")
    for epoch in range(progress["epoch"], config.epochs):
        xe, ye = epoch_inputs(recipe, x_train, y_train, config, epoch)
        if show_bar:
            xe, ye = batches_with_progress(xe, ye, config.batch_size, epoch=epoch + 1, epochs=config.epochs,
                                           n_images=n_train), None
        t0 = time.perf_counter()
        train_loss, train_accuracy = train_epoch(xe, ye, config.batch_size)
        train_seconds = time.perf_counter() - t0
        ev = model.evaluate(eval_x, eval_y, batch_size=512, verbose=0, return_dict=True)
        bad = {name: value for name, value in (("training loss", train_loss),
                                                (monitor.replace("accuracy", "loss"), float(ev["loss"])))
               if not math.isfinite(value)}
        if bad:
            raise NonFiniteLoss(
                f"{' and '.join(f'{k} {v}' for k, v in bad.items())} in epoch {epoch + 1}: the loss became "
                f"non-finite, so the run stopped (try a lower lr or a clipnorm in --recipe-overrides)"
            )
        row = {
            "epoch": epoch + 1,
            "loss": train_loss,
            "accuracy": train_accuracy,
            monitor.replace("accuracy", "loss"): float(ev["loss"]),
            monitor: float(ev["accuracy"]),
            "lr": last_step_lr(schedule, optimizer),
            "seconds": round(train_seconds, 3),
            "images_per_second": round(n_train / train_seconds, 2),
            "includes_tracing": epoch + 1 == first_epoch_here,
        }
        history.append(row)
        improved = progress["best_val_accuracy"] is None or row[monitor] > progress["best_val_accuracy"]
        if improved:
            progress["best_epoch"], progress["best_val_accuracy"] = epoch + 1, row[monitor]
        progress["epoch"] = epoch + 1
        ckpt.save(model, optimizer, epoch + 1, progress, improved and recipe.selection == "best_val")
        records.atomic_write_csv(out / records.HISTORY, history)
        lock.refresh()  # tells other hosts sharing the folder that this run is alive
        _log(
            f"[{config.run_id}] epoch {epoch + 1:3d}/{config.epochs} loss {row['loss']:.4f} "
            f"acc {row['accuracy']:.4f} {monitor} {row[monitor]:.4f} lr {row['lr']:.2e} "
            f"{train_seconds:7.1f}s {row['images_per_second']:7.1f} img/s",
            log,
        )

    if recipe.selection == "best_val":
        selected_epoch = ckpt.load_best(model)
    else:
        selected_epoch = config.epochs
    test = model.evaluate(x_test, y_test, batch_size=512, verbose=0, return_dict=True)
    weights_tmp = records.temp_path_for(out / records.WEIGHTS)
    try:
        model.save_weights(weights_tmp)
        os.replace(weights_tmp, out / records.WEIGHTS)
    except OSError as exc:
        weights_tmp.unlink(missing_ok=True)
        raise records.write_error(out / records.WEIGHTS, exc) from None

    # Steady-state speed excludes epochs that include graph tracing (the first one,
    # and the first after each resume).
    steady = [r for r in history if not r.get("includes_tracing", r["epoch"] == 1)] or history
    metrics = {
        "status": "completed",
        "run_id": config.run_id,
        "test_accuracy": float(test["accuracy"]),
        "test_loss": float(test["loss"]),
        "selected_epoch": selected_epoch,
        "selection": recipe.selection,
        "best_val_accuracy": progress["best_val_accuracy"] if x_val is not None else None,
        "trainable_parameters": trainable_parameters(model),
        "epochs": config.epochs,
        "train_images": n_train,
        "val_images": 0 if x_val is None else len(x_val),
        "test_images": len(x_test),
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in steady])),
        "images_per_second": float(np.mean([r["images_per_second"] for r in steady])),
        "total_train_seconds": float(sum(r["seconds"] for r in history)),
        "device": device,
        "versions": records.library_versions(),
        "git_commit": progress.get("git_commit") or records.git_commit(),
        # A sweep refuses a tree with uncommitted changes unless told otherwise; say when it was.
        "allow_dirty": os.environ.get(ALLOW_DIRTY_ENV) == "1",
        "dataset": {
            "source": records.portable_path(ds.source),
            "description": ds.description,
            "fingerprint": ds.fingerprint,
            "lossy_jpeg": ds.lossy_jpeg,
            "class_names": list(ds.class_names),
        },
        "keras_weight_decay": recipe.keras_weight_decay,
        "train_loop": train_epoch.kind,
        # The speed settings this run trained with (speed.py chooses them per device).
        "speed": speed | {"onednn": onednn_enabled(keras.backend.backend())},
        # 1-minute load average when training started and ended: timings taken on a
        # busy machine (load above its core count) are slower than the hardware allows.
        "load_average": [load_at_start, _load_average()],
        "started": progress.get("started", started),
        "finished": _now(),
    }
    records.atomic_write_csv(out / records.HISTORY, history)
    records.atomic_write_json(out / records.METRICS, metrics)  # last: marks the record complete
    ckpt.remove()
    (out / records.ERROR).unlink(missing_ok=True)
    _log(
        f"[{config.run_id}] done: test accuracy {metrics['test_accuracy']:.4f} (epoch {selected_epoch}), "
        f"{metrics['seconds_per_epoch']:.1f} s/epoch, {metrics['images_per_second']:.1f} img/s on {device['kind']}",
        log,
    )
    return metrics


def load_trained_model(run_dir):
    """Rebuild a finished run's model from its params.json and load its weights."""
    from ..models.baselines import build_model
    from .config import PARAMETER_NAMES

    run_dir = Path(run_dir)
    params = records.read_json(run_dir / records.PARAMS)
    dataset = records.read_json(run_dir / records.METRICS).get("dataset", {})
    config = RunConfig.from_dict({k: v for k, v in params.items() if k in PARAMETER_NAMES})
    model = build_model(config.architecture, config.model_hyperparameters,
                        num_classes=len(dataset.get("class_names", range(10))),
                        normalization=config.recipe_obj.normalization)
    model.load_weights(run_dir / records.WEIGHTS)
    return model
