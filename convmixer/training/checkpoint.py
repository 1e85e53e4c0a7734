"""The per-epoch checkpoint a killed run resumes from."""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

from .. import records

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
