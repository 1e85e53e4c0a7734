"""What one training run is made of: its data splits, its model and optimizer, one epoch, its metrics.

``train.train`` strings these together; each piece is here so that the loop
there reads top to bottom.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from .. import records
from .config import RunConfig
from .guards import NonFiniteLoss
from .optim import last_step_lr, make_optimizer, make_schedule
from .speed import import_tensorflow_quietly, onednn_enabled, settings_for_device
from .steps import make_epoch_trainer



def now():
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not available on every platform
        return None


@dataclass
class Data:
    """The dataset and the splits a recipe trains on, selects with (val; None without a split) and tests on."""

    dataset: object
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def monitor(self) -> str:
        """The held-out accuracy each epoch is judged by: validation when there is a split, else test."""
        return "val_accuracy" if self.x_val is not None else "test_accuracy"

    @property
    def held_out(self):
        return (self.x_val, self.y_val) if self.x_val is not None else (self.x_test, self.y_test)


def prepare_data(config: RunConfig, recipe) -> Data:
    """Load the configured source and split it as the recipe says."""
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
    _check_every_class_trains(ds, y_train, config, recipe)
    return Data(ds, x_train, y_train, x_val, y_val, x_test, y_test)


def _check_every_class_trains(ds, y_train, config, recipe):
    """DataError unless the training images show every class at least once: a class the model never
    sees cannot be learnt, and its test images would only measure that."""
    from ..data import DataError

    missing = sorted(set(range(len(ds.class_names))) - set(np.unique(y_train).tolist()))
    if missing:
        names = ", ".join(ds.class_names[i] for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        cut = [f"a validation split of {recipe.val_fraction:g}"] if recipe.val_fraction > 0 else []
        cut += [f"train_subset {config.train_subset}"] if config.train_subset is not None else []
        raise DataError(f"{ds.description}: the training set ({len(y_train)} images"
                        + (f" after {' and '.join(cut)}" if cut else "") + f") has no image of {len(missing)} of its "
                        f"{len(ds.class_names)} classes ({names}); every class needs at least one: give more images")


def epoch_inputs(recipe, x, y, config, epoch):
    """Epoch ``epoch``'s inputs: arrays (flip recipe) or a generator of augmented batches (official)."""
    from . import pipeline

    if recipe.augmentation == "flip":
        return pipeline.flip_epoch(x, y, config.seed, epoch)
    return pipeline.official_epoch(x, y, recipe, config.seed, epoch, config.batch_size), None


@dataclass
class Session:
    """A built model with its optimizer, schedule, loss, compiled epoch and the device settings."""

    model: object
    optimizer: object
    schedule: object
    train_epoch: object
    device: dict
    speed: dict


def build_session(config: RunConfig, recipe, data: Data) -> Session:
    import keras

    from ..models.baselines import build_model

    device = records.device_description()
    speed = settings_for_device(device["kind"], config.precision, config.jit_compile)
    # Global in Keras: layers built from here on compute in this precision (the logits stay float32).
    keras.config.set_dtype_policy(speed["precision"])
    # set_random_seed imports TensorFlow wherever it is installed, whatever the backend (to seed it
    # too): import it first with its C++ start-up lines kept off stderr (when logs are quiet).
    import_tensorflow_quietly()
    keras.utils.set_random_seed(config.seed)
    model = build_model(config.architecture, config.model_hyperparameters,
                        num_classes=len(data.dataset.class_names), normalization=recipe.normalization)
    if recipe.initialisation == "pytorch":
        from ..models.convmixer import pytorch_default_init

        pytorch_default_init(model, config.seed)
    schedule = make_schedule(recipe, config.epochs, int(np.ceil(len(data.x_train) / config.batch_size)))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # compile() wraps the optimizer for loss scaling under mixed_float16; the custom step uses model.optimizer.
    model.compile(optimizer=make_optimizer(recipe, schedule), loss=loss_fn, metrics=["accuracy"],
                  jit_compile=speed["jit_compile"])  # for evaluate()
    train_epoch = make_epoch_trainer(model, model.optimizer, loss_fn, jit_compile=speed["jit_compile"])
    return Session(model, model.optimizer, schedule, train_epoch, device, speed)


def new_progress(started: str) -> dict:
    """The checkpointed progress of a run that starts now (the code that starts it is the code that runs it)."""
    return {"epoch": 0, "history": [], "best_epoch": None, "best_val_accuracy": None, "started": started,
            "git_commit": records.git_commit()}


def note_resumed_code(progress: dict):
    """A run resumed by other code than started it says so: the commit of each such resume is kept."""
    current, others = records.git_commit(), progress.setdefault("resumed_with", [])
    if current != progress.get("git_commit") and current not in others:
        others.append(current)


def run_epoch(session: Session, data: Data, inputs, config: RunConfig, epoch: int, *, traced: bool) -> dict:
    """Train one epoch on ``inputs``, evaluate on the held-out split, and return its history row.

    Raises NonFiniteLoss (before anything is checkpointed) when a loss is NaN or infinite.
    """
    xe, ye = inputs
    t0 = time.perf_counter()
    train_loss, train_accuracy = session.train_epoch(xe, ye, config.batch_size)
    seconds = time.perf_counter() - t0
    x_eval, y_eval = data.held_out
    ev = session.model.evaluate(x_eval, y_eval, batch_size=512, verbose=0, return_dict=True)
    monitor, loss_name = data.monitor, data.monitor.replace("accuracy", "loss")
    bad = {name: value for name, value in (("training loss", train_loss), (loss_name, float(ev["loss"])))
           if not math.isfinite(value)}
    if bad:
        raise NonFiniteLoss(
            f"{' and '.join(f'{k} {v}' for k, v in bad.items())} in epoch {epoch + 1}: the loss became "
            f"non-finite, so the run stopped (try a lower lr or a clipnorm in --recipe-overrides)"
        )
    return {
        "epoch": epoch + 1, "loss": train_loss, "accuracy": train_accuracy,
        loss_name: float(ev["loss"]), monitor: float(ev["accuracy"]),
        "lr": last_step_lr(session.schedule, session.optimizer),
        "seconds": round(seconds, 3), "images_per_second": round(len(data.x_train) / seconds, 2),
        "includes_tracing": traced,
    }


def note_epoch(progress: dict, row: dict, monitor: str) -> bool:
    """Add ``row`` to the progress; True when it is the best held-out epoch so far."""
    progress["history"].append(row)
    improved = progress["best_val_accuracy"] is None or row[monitor] > progress["best_val_accuracy"]
    if improved:
        progress["best_epoch"], progress["best_val_accuracy"] = row["epoch"], row[monitor]
    progress["epoch"] = row["epoch"]
    return improved


def epoch_line(config: RunConfig, row: dict, monitor: str) -> str:
    return (f"[{config.run_id}] epoch {row['epoch']:3d}/{config.epochs} loss {row['loss']:.4f} "
            f"acc {row['accuracy']:.4f} {monitor} {row[monitor]:.4f} lr {row['lr']:.2e} "
            f"{row['seconds']:7.1f}s {row['images_per_second']:7.1f} img/s")


def run_metrics(config: RunConfig, recipe, session: Session, data: Data, progress: dict, test: dict,
                selected_epoch: int, load_at_start) -> dict:
    """metrics.json: the result, the budget, the speed, and everything that produced it."""
    import keras

    from ..models.convmixer import trainable_parameters
    from ..models.layers import fast_paths_in

    history = progress["history"]
    # Steady-state speed excludes epochs that include graph tracing (the first one,
    # and the first after each resume).
    steady = [r for r in history if not r.get("includes_tracing", r["epoch"] == 1)] or history
    ds = data.dataset
    return records.check_metrics_fields({
        "status": "completed",
        "run_id": config.run_id,
        "test_accuracy": float(test["accuracy"]),
        "test_loss": float(test["loss"]),
        "selected_epoch": selected_epoch,
        "selection": recipe.selection,
        "best_val_accuracy": progress["best_val_accuracy"] if data.x_val is not None else None,
        "trainable_parameters": trainable_parameters(session.model),
        "epochs": config.epochs,
        "train_images": len(data.x_train),
        "val_images": 0 if data.x_val is None else len(data.x_val),
        "test_images": len(data.x_test),
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in steady])),
        "images_per_second": float(np.mean([r["images_per_second"] for r in steady])),
        "total_train_seconds": float(sum(r["seconds"] for r in history)),
        "device": session.device,
        "versions": records.library_versions(),
        "git_commit": progress.get("git_commit") or records.git_commit(),
        # Commits of other code that resumed the run after an interruption (none: one code version).
        "resumed_with": progress.get("resumed_with", []),
        # A sweep refuses a tree with uncommitted changes unless told otherwise; say when it was.
        "allow_dirty": os.environ.get(records.ALLOW_DIRTY_ENV) == "1",
        "dataset": {
            "source": records.portable_path(ds.source),
            "description": ds.description,
            "fingerprint": ds.fingerprint,
            "lossy_jpeg": ds.lossy_jpeg,
            "class_names": list(ds.class_names),
        },
        "keras_weight_decay": recipe.keras_weight_decay,
        "train_loop": session.train_epoch.kind,
        # The speed settings this run trained with (speed.py chooses them per device).
        "speed": session.speed | {"onednn": onednn_enabled(keras.backend.backend()),
                                  "cpu_layers": fast_paths_in(session.model)},
        # 1-minute load average when training started and ended: timings taken on a
        # busy machine (load above its core count) are slower than the hardware allows.
        "load_average": [load_at_start, load_average()],
        "started": progress.get("started"),
        "finished": now(),
    })
