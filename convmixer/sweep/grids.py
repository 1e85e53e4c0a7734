"""Grid files: expand a YAML grid into validated run configurations, before anything runs.

A grid file::

    description: what the grid is for, what it cuts and why
    base: {width: 256, depth: 8, recipe: seed, epochs: 5}   # shared by every run
    axes: {kernel_size: [3, 5, 7, 9], patch_size: [1, 2, 4]}  # cartesian product over base
    runs:                                                      # explicit extra runs, merged onto base
      - {patch_size: 1, kernel_size: 3, epochs: 40}
"""

from __future__ import annotations

import itertools
from pathlib import Path

import yaml

from ..training.config import RunConfig


GRID_KEYS = ("description", "base", "axes", "runs")
class SweepError(ValueError):
    """A grid file that cannot be expanded (named key and what is allowed)."""


def load_grid(path) -> list[RunConfig]:
    """Expand a grid file into validated configurations (duplicates dropped), before anything runs."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SweepError(f"grid {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SweepError(f"grid {path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                         "save the grid as UTF-8 YAML") from None
    except yaml.YAMLError as exc:
        raise SweepError(f"grid {path}: not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise SweepError(f"grid {path}: must be a mapping with keys {list(GRID_KEYS)}")
    unknown = sorted(set(spec) - set(GRID_KEYS))
    if unknown:
        raise SweepError(f"grid {path}: unknown key(s) {unknown}; allowed keys are {list(GRID_KEYS)}")
    base = spec.get("base") or {}
    axes = spec.get("axes") or {}
    extra = spec.get("runs") or []
    if not isinstance(base, dict) or not isinstance(axes, dict) or not isinstance(extra, list):
        raise SweepError(f"grid {path}: 'base' and 'axes' must be mappings and 'runs' a list")
    for name, values in axes.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"grid {path}: axes.{name} must be a non-empty list, got {values!r}")

    entries = []
    if axes:
        names = list(axes)
        for combo in itertools.product(*(axes[n] for n in names)):
            entries.append(("axes " + ", ".join(f"{n}={v}" for n, v in zip(names, combo)), dict(zip(names, combo))))
    for i, run in enumerate(extra):
        if not isinstance(run, dict):
            raise SweepError(f"grid {path}: runs[{i}] must be a mapping, got {run!r}")
        entries.append((f"runs[{i}]", run))
    if not entries:
        raise SweepError(f"grid {path}: no runs (give 'axes' or 'runs')")

    configs, seen = [], set()
    for where, values in entries:
        try:
            config = RunConfig.from_dict({**base, **values})
        except (ValueError, TypeError) as exc:
            raise SweepError(f"grid {path}: {where}: {exc}") from None
        if config.run_id not in seen:
            seen.add(config.run_id)
            configs.append(config)
    return configs
