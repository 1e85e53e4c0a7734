"""``RunRecord``: one run folder, read and written through one type.

Code outside ``records`` names a run's files only through this type (and the
file-name constants), so the folder's layout and formats live in one place.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from .files import (ERROR, HISTORY, METRICS, NOTEBOOK, PARAMS, PREDICTIONS, WEIGHTS,
                    atomic_write_bytes, atomic_write_csv, atomic_write_json, read_json, temp_path_for, write_error)
from .state import RecordState, read_predictions, validate_record


class RunRecord:
    """The record in ``path`` (``RESULTS/runs/<run id>/``)."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"RunRecord({str(self.path)!r})"

    # ------------------------------------------------------------------ reading
    def state(self, config_hash: str | None = None) -> RecordState:
        """What the folder holds ("completed", "failed", "incomplete", "corrupt", "absent"), checked once."""
        return validate_record(self.path, config_hash)

    @property
    def params(self) -> dict:
        return read_json(self.path / PARAMS)

    @property
    def metrics(self) -> dict:
        return read_json(self.path / METRICS)

    @property
    def error(self) -> dict:
        return read_json(self.path / ERROR)

    def history(self):
        """Per-epoch history as a DataFrame (pandas is imported only here)."""
        import pandas as pd

        return pd.read_csv(self.path / HISTORY)

    def predictions(self) -> dict:
        """The per-image test predictions (``write_predictions``): arrays ``label``, ``predicted``,
        ``true_probability``. FileNotFoundError where the run has none (records made before they were kept);
        ValueError where the file is not what ``write_predictions`` writes."""
        return read_predictions(self.path / PREDICTIONS)

    def has(self, name: str) -> bool:
        return (self.path / name).exists()

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    @property
    def notebook_path(self) -> Path:
        return self.path / NOTEBOOK

    # ------------------------------------------------------------------ writing (each one atomic)
    def write_params(self, params: dict):
        atomic_write_json(self.path / PARAMS, params)

    def write_history(self, rows: list[dict]):
        atomic_write_csv(self.path / HISTORY, rows)

    def write_metrics(self, metrics: dict):
        """Written last: a folder is a completed record once this file exists and validates."""
        atomic_write_json(self.path / METRICS, metrics)

    def write_error(self, payload: dict):
        atomic_write_json(self.path / ERROR, payload)

    def remove_error(self):
        (self.path / ERROR).unlink(missing_ok=True)

    def write_predictions(self, label, predicted, true_probability):
        """Per-image test predictions, about 20-40 KB for 10,000 images: labels and classes as uint8, the
        probability of the true class as float16 (enough for paired comparisons; accuracy needs only the classes)."""
        import numpy as np

        arrays = {"label": np.asarray(label, dtype=np.uint8), "predicted": np.asarray(predicted, dtype=np.uint8),
                  "true_probability": np.asarray(true_probability, dtype=np.float16)}
        if len({a.shape for a in arrays.values()}) != 1 or arrays["label"].ndim != 1:
            raise ValueError("write_predictions: label, predicted and true_probability must be 1-D and equally long")
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(self.path / PREDICTIONS, buffer.getvalue())

    def save_weights(self, model):
        """``model.save_weights`` through a temporary name, so the weights file is whole or absent."""
        tmp = temp_path_for(self.weights_path)
        try:
            model.save_weights(tmp)
            os.replace(tmp, self.weights_path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise write_error(self.weights_path, exc) from None
