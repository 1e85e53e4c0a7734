"""Grid files: expand a YAML grid into validated run configurations, before anything runs.

A grid file::

    description: what the grid is for, what it cuts and why
    base: {width: 256, depth: 8, recipe: seed, epochs: 5}   # shared by every run
    axes: {kernel_size: [3, 5, 7, 9], patch_size: [1, 2, 4]}  # cartesian product over base
    runs:                                                      # explicit extra runs, merged onto base
      - {patch_size: 1, kernel_size: 3, epochs: 40}

A grid holds at most ``MAX_GRID_RUNS`` runs (the product of the axes' lengths
plus the explicit runs), counted before anything is expanded.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import yaml

from ..training.config import RunConfig


GRID_KEYS = ("description", "base", "axes", "runs")
# Planning validates every run and reads its folder (about 1-2 ms a run on a busy 2-core machine), so
# 1,000 runs plan in a second or two; the largest grid here has 36, and a paper-scale study a few
# hundred. A bigger product is almost surely a slip (an axis meant as a range), and at 10**8 runs
# planning would never end.
MAX_GRID_RUNS = 1_000
MAX_GRID_BYTES = 2**20  # 1,000 explicit runs of a few hundred characters each


class SweepError(ValueError):
    """A grid file that cannot be expanded (named key and what is allowed)."""


def load_grid(path) -> list[RunConfig]:
    """Expand a grid file into validated configurations (duplicates dropped), before anything runs."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_GRID_BYTES:
            raise SweepError(f"grid {path}: {path.stat().st_size:,} bytes; a grid file may hold at most "
                             f"{MAX_GRID_BYTES // 2**20} MiB (and {MAX_GRID_RUNS:,} runs): split it into several grids")
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

    size = len(extra) + (math.prod(len(values) for values in axes.values()) if axes else 0)
    if size > MAX_GRID_RUNS:
        shape = " x ".join(f"{len(v)} {n}" for n, v in axes.items())
        raise SweepError(f"grid {path}: {size:,} runs ({shape or 'no axes'}{f' + {len(extra)} runs' if extra else ''}); "
                         f"a grid may hold at most {MAX_GRID_RUNS:,}: split it into several grids")

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
