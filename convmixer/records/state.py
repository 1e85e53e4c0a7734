"""What a run folder holds (one validation for the sweep's plan and the report's reader), and tidying it."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .files import (CHECKPOINT_DIR, CHECKPOINT_STATE, ERROR, HISTORY, METRICS, NOTEBOOK, PARAMS, PREDICTIONS,
                    WEIGHTS, atomic_write_text, dumps_json, read_json, write_error)
from .metrics import OBJECT_FIELDS, fields_of_kind
from .provenance import portable_path

# One definition of a valid record, for the sweep's plan and the report's reader.

REAL_FIELDS, INT_FIELDS, DICT_FIELDS, REALS_FIELDS = (fields_of_kind(kind)
                                                     for kind in ("real", "int", "object", "reals"))


# Keras' save_weights writes HDF5 with no user block, so the format's signature opens the file.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _weights_problem(path: Path) -> str | None:
    """Why ``path`` is not a Keras weights file (None: it is one): the HDF5 signature, a file h5py can
    open (a truncated one it cannot), and Keras' ``layers`` group. Only the structure is read."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if head != HDF5_SIGNATURE:
        return "is not an HDF5 file (Keras' save_weights writes one)"
    try:
        import h5py
    except ImportError:  # Keras needs h5py to write the file; without it the signature is what can be checked
        return None
    try:
        with h5py.File(path, "r", locking=False) as f:
            if "layers" not in f:
                return "holds no 'layers' group: not a Keras weights file"
    except Exception as exc:  # h5py raises OSError for truncated or damaged files, others for odder ones
        return "unreadable as HDF5 (" + " ".join(str(exc).split())[:200] + ")"
    return None


def _history_problem(path: Path, epochs) -> str | None:
    """Why ``path`` is not the per-epoch history of a run of ``epochs`` epochs (None: it is): UTF-8 CSV
    with an ``epoch`` column numbering rows 1, 2, ... and, where metrics.json says how many, that many."""
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    except (OSError, csv.Error) as exc:
        return f"unreadable ({getattr(exc, 'strerror', None) or exc})"
    if not rows or "epoch" not in rows[0]:
        return "has no header naming an 'epoch' column"
    column, body = rows[0].index("epoch"), rows[1:]
    if any(len(row) != len(rows[0]) for row in body):
        return "has rows whose length differs from its header's"
    try:
        numbers = [int(row[column]) for row in body]
    except ValueError:
        return "has an epoch that is not a whole number"
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        return "does not number its epochs 1, 2, ... in order"
    if isinstance(epochs, int) and not isinstance(epochs, bool) and len(numbers) != epochs:
        return f"has {len(numbers)} epochs, metrics.json {epochs}"
    return None


PREDICTION_ARRAYS = ("label", "predicted", "true_probability")


def read_predictions(path: Path) -> dict:
    """The per-image test predictions at ``path``: arrays ``label``, ``predicted``, ``true_probability``.
    FileNotFoundError where there is none (records made before they were kept); ValueError naming the file
    where it is not what the training loop writes (a truncated or damaged zip too)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as saved:  # never unpickles: plain arrays only
            if not isinstance(saved, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            arrays = {k: saved[k] for k in PREDICTION_ARRAYS if k in saved.files}
    except FileNotFoundError:
        raise
    except Exception as exc:  # truncated (BadZipFile, EOFError), damaged inside (zlib.error), not an archive
        raise ValueError(f"{path}: unreadable ({' '.join(str(exc).split())[:200] or type(exc).__name__})") from None
    if (set(arrays) != set(PREDICTION_ARRAYS) or any(a.ndim != 1 for a in arrays.values())
            or len({len(a) for a in arrays.values()}) != 1):
        raise ValueError(f"{path}: needs equal-length 1-D arrays {list(PREDICTION_ARRAYS)}")
    return arrays


def _predictions_problem(path: Path, test_images) -> str | None:
    """Why the predictions file at ``path`` cannot be used (None: it can, or there is none)."""
    try:
        arrays = read_predictions(path)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        return str(exc).removeprefix(f"{path}: ")
    if isinstance(test_images, int) and not isinstance(test_images, bool) and len(arrays["label"]) != test_images:
        return f"holds {len(arrays['label'])} images, metrics.json's test_images {test_images}"
    return None


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


def _params_problem(params: dict) -> str | None:
    """Why params.json is not the configuration its ``config_hash`` names (None: it is).

    The hash covers every field as the run stored it, so a field edited or damaged after the run (a kernel
    size of "nine", a seed of "0") gives another hash. The stored fields are hashed as they are, not rebuilt
    into a RunConfig: a record written before a rule changed stays valid.
    """
    from ..training.config import configuration_hash  # params.json is a RunConfig's to_params()

    values = {key: value for key, value in params.items() if key not in ("config_hash", "run_id")}
    try:
        found = configuration_hash(values)
    except (TypeError, ValueError) as exc:  # a value JSON cannot hold: not what the training loop wrote
        return f"holds a field that is not JSON data ({exc})"
    if found != params["config_hash"]:
        return (f"does not hash to its config_hash {params['config_hash']} (its fields give {found}): "
                "a field was changed after the run")
    return None


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_KIND_WORDS = {"str": "a string", "int": "an integer", "bool": "true or false"}


def _is_kind(value, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {"str": str, "bool": bool}[kind])


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
    for name in REALS_FIELDS:
        value = metrics.get(name)
        if value is not None and (not isinstance(value, list) or not all(v is None or _is_real(v) for v in value)):
            return f"{name} must be a list of numbers, got {value!r}"
    for name in DICT_FIELDS:
        if metrics.get(name) is not None and not isinstance(metrics[name], dict):
            return f"{name} must be a JSON object, got {metrics[name]!r}"
    for name, fields in OBJECT_FIELDS.items():
        for key, kind in fields.items():
            value = (metrics.get(name) or {}).get(key)
            if value is not None and not _is_kind(value, kind):
                return f"{name}.{key} must be {_KIND_WORDS[kind]}, got {value!r}"
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
        problem = _params_problem(params)
        if problem:
            return RecordState("corrupt", f"{run_dir / PARAMS} {problem}", params=params)
    if not has_metrics:  # a failed attempt may have ended before its notebook wrote params.json
        if (run_dir / ERROR).exists():
            error, _ = _read_json_file(run_dir / ERROR)
            text = error.get("error") if isinstance(error, dict) else None
            return RecordState("failed", str(text or "failed (error.json unreadable)")[:300], resumable, params)
        if params is None:
            return RecordState("incomplete", f"{PARAMS} missing: not started", resumable)
        return RecordState("incomplete", f"no {METRICS}: " + ("unfinished (training or interrupted), resumable" if resumable else "not finished"),
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
    # What a record is reused for (curves, the tested model, paired tests): a garbage file must not count as
    # complete. Records made before test_predictions.npz existed lack it, so it is not required here.
    problem = _history_problem(run_dir / HISTORY, metrics.get("epochs"))
    if problem:
        return RecordState("corrupt", f"{run_dir / HISTORY} {problem}", resumable, params)
    problem = _weights_problem(run_dir / WEIGHTS)
    if problem:
        return RecordState("corrupt", f"{run_dir / WEIGHTS} {problem}", resumable, params)
    problem = _predictions_problem(run_dir / PREDICTIONS, metrics.get("test_images"))
    if problem:
        return RecordState("corrupt", f"{run_dir / PREDICTIONS} {problem}", resumable, params)
    return RecordState("completed", None, False, params, metrics)


def previous_record_dir(run_dir) -> Path:
    """Where a forced re-run keeps the completed record it replaces (``RESULTS/.previous/<run id>``) until its
    new attempt completes; the sweep restores it if the attempt fails."""
    run_dir = Path(run_dir)
    return run_dir.parent.parent / ".previous" / run_dir.name


def partial_notebook(run_dir) -> Path:
    """Where the sweep has papermill write the executed notebook until it is renamed to NOTEBOOK."""
    return Path(run_dir) / f".partial.{NOTEBOOK}"


# An absolute path of two or more parts inside a text: not part of a URL ("https://..."), of a
# relative path or of arithmetic ("x /255"). Only paths whose first part exists on this machine
# ("/work/...", "/home/...", "/tmp/...") are rewritten, so code such as "a /b/c" is left alone.
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~+=-])/(?:[\w.+@-]+/)+[\w.+@-]+")


def portable_text(text: str, results_dir=None) -> str:
    """``text`` with every absolute path made portable: under the results folder as ``results/...``,
    under the repository relative to it, else by file name (``portable_path``)."""
    results = Path(results_dir).resolve() if results_dir is not None else None

    def one(match):
        path = match.group(0)
        if not Path("/" + path.split("/")[1]).is_dir():
            return path
        if results is not None:
            try:
                return (Path("results") / Path(path).resolve().relative_to(results)).as_posix()
            except ValueError:
                pass
        return portable_path(path)

    return _ABSOLUTE_PATH.sub(one, text)


def _portable_strings(value, results_dir, key=None):
    """Every string inside a JSON value made portable, except binary payloads (``image/*`` outputs)."""
    if isinstance(value, str):
        return value if (key or "").startswith("image/") else portable_text(value, results_dir)
    if isinstance(value, list):
        return [_portable_strings(v, results_dir, key) for v in value]
    if isinstance(value, dict):
        return {k: _portable_strings(v, results_dir, k) for k, v in value.items()}
    return value


def make_record_portable(run_dir) -> list[str]:
    """Rewrite a completed record's files so that they hold no absolute path of this machine.

    ``metrics.json``'s data source and description and the executed notebook
    (papermill's input/output paths, the injected parameters, printed paths)
    name files relative to the results folder or the repository, or by file
    name; the data fingerprint says which data a run used. The files are parsed
    and only their strings are rewritten, never an embedded image. Idempotent.
    """
    run_dir = Path(run_dir)
    results_dir = run_dir.resolve().parent.parent
    done = []
    for name in (METRICS, NOTEBOOK):
        path = run_dir / name
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        portable = _portable_strings(document, results_dir)
        if portable != document:
            if name == NOTEBOOK:  # as nbformat writes notebooks
                atomic_write_text(path, json.dumps(portable, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
            else:
                atomic_write_text(path, dumps_json(portable))
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
