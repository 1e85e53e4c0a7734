"""The results store: every run folder under ``RESULTS/runs/`` as one row of a DataFrame.

A folder that is incomplete (still running, interrupted, failed) or corrupt
becomes a row with that ``status`` and a ``problem`` saying why, never an
exception, so the report can list it as skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import records
from .training.config import PARAMETER_NAMES

METRIC_COLUMNS = [
    "test_accuracy", "test_loss", "best_val_accuracy", "selected_epoch", "trainable_parameters",
    "train_images", "val_images", "test_images", "seconds_per_epoch", "images_per_second",
    "total_train_seconds", "git_commit", "started", "finished",
]
COLUMNS = (
    ["run_id", "status", "problem", "path"] + PARAMETER_NAMES + METRIC_COLUMNS
    + ["device_kind", "device_name", "backend_used", "train_loop", "dataset_description", "dataset_fingerprint",
       "lossy_jpeg", "versions"]
)


def _read_json(path: Path):
    try:
        return records.read_json(path), None
    except FileNotFoundError:
        return None, f"{path.name} missing"
    except (OSError, ValueError) as exc:
        return None, f"{path.name} unreadable ({type(exc).__name__}: {exc})"


def read_run(run_dir) -> dict:
    """One run folder as a flat dict (see COLUMNS)."""
    run_dir = Path(run_dir)
    row = dict.fromkeys(COLUMNS)
    row.update(run_id=run_dir.name, path=str(run_dir))
    params, problem = _read_json(run_dir / records.PARAMS)
    if params is None:
        row.update(status="corrupt", problem=problem)
        return row
    if not isinstance(params, dict):
        row.update(status="corrupt", problem="params.json is not a JSON object")
        return row
    row.update({k: params.get(k) for k in PARAMETER_NAMES})
    row["run_id"] = params.get("run_id", run_dir.name)
    row["architecture"] = row["architecture"] or "convmixer"  # records from before the field existed
    for key in ("recipe_overrides", "hyperparameters"):
        row[key] = json.dumps(row[key] or {}, sort_keys=True) if isinstance(row[key], (dict, type(None))) else row[key]

    metrics, problem = _read_json(run_dir / records.METRICS)
    if metrics is None:
        error, _ = _read_json(run_dir / records.ERROR)
        if error is not None:
            row.update(status="failed", problem=str(error.get("error", "failed"))[:300])
        elif problem.endswith("missing"):
            resumable = (run_dir / records.CHECKPOINT_DIR / records.CHECKPOINT_STATE).exists()
            row.update(status="incomplete",
                       problem="no metrics.json: " + ("interrupted, resumable" if resumable else "not finished"))
        else:
            row.update(status="corrupt", problem=problem)
        return row
    if not isinstance(metrics, dict) or metrics.get("status") != "completed":
        row.update(status="corrupt", problem="metrics.json does not record a completed run")
        return row
    if not (run_dir / records.HISTORY).exists():
        row.update(status="corrupt", problem="history.csv missing")
        return row
    try:
        row.update({k: metrics.get(k) for k in METRIC_COLUMNS})
        device, dataset = metrics.get("device", {}), metrics.get("dataset", {})
        row.update(
            status="completed",
            device_kind=device.get("kind"),
            device_name=device.get("name"),
            backend_used=device.get("backend"),
            # runs recorded before this field existed all trained with model.fit
            train_loop=metrics.get("train_loop", "model.fit"),
            dataset_description=dataset.get("description"),
            dataset_fingerprint=dataset.get("fingerprint"),
            lossy_jpeg=dataset.get("lossy_jpeg"),
            versions=json.dumps(metrics.get("versions", {}), sort_keys=True),
        )
        if not isinstance(row["test_accuracy"], (int, float)):
            raise ValueError("test_accuracy is not a number")
    except (AttributeError, ValueError) as exc:
        row = dict.fromkeys(COLUMNS) | {"run_id": run_dir.name, "path": str(run_dir)}
        row.update(status="corrupt", problem=f"metrics.json malformed ({exc})")
    return row


def load_runs(results_dir="results") -> pd.DataFrame:
    """All run folders of ``results_dir/runs`` (one row each, sorted by run id); empty if none."""
    runs_dir = Path(results_dir) / "runs"
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
    frame = pd.DataFrame([read_run(p) for p in folders], columns=COLUMNS)
    return frame.sort_values("run_id", kind="stable").reset_index(drop=True)



REFERENCE_FILE = Path(__file__).resolve().parent / "reference.yaml"


def load_reference() -> dict:
    """Published values (paper, reference report), labelled as such; never measured here.

    Returns {"sources": {...}, "accuracy": DataFrame, "timings": DataFrame, "logged": DataFrame}.
    """
    import yaml

    spec = yaml.safe_load(REFERENCE_FILE.read_text(encoding="utf-8"))
    return {
        "sources": spec["sources"],
        "accuracy": pd.DataFrame(spec["accuracy"]),
        "timings": pd.DataFrame(spec["timings"]),
        "logged": pd.DataFrame(spec.get("logged", [])),
    }
