"""``RunRecord``: one run folder, read and written through one type.

Code outside ``records`` names a run's files only through this type (and the
file-name constants), so the folder's layout and formats live in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from .files import (CHECKPOINT_DIR, ERROR, HISTORY, METRICS, NOTEBOOK, PARAMS, WEIGHTS, atomic_write_csv,
                    atomic_write_json, read_json, temp_path_for, write_error)
from .state import RecordState, partial_notebook, validate_record


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

    def has(self, name: str) -> bool:
        return (self.path / name).exists()

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    @property
    def notebook_path(self) -> Path:
        return self.path / NOTEBOOK

    @property
    def partial_notebook_path(self) -> Path:
        return partial_notebook(self.path)

    @property
    def error_path(self) -> Path:
        return self.path / ERROR

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

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

    def save_weights(self, model):
        """``model.save_weights`` through a temporary name, so the weights file is whole or absent."""
        tmp = temp_path_for(self.weights_path)
        try:
            model.save_weights(tmp)
            os.replace(tmp, self.weights_path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise write_error(self.weights_path, exc) from None
