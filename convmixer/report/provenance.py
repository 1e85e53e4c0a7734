"""What produced the numbers: data sources, library versions, devices, commits, recipes, and the shipped grids."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from ..training.recipes import RECIPES
from .names import recipe_name
from .runs import prepare


# The grid files shipped with the repository (grids/ beside the package).
GRIDS_DIR = Path(__file__).resolve().parents[2] / "grids"

def _count_by(done: pd.DataFrame, columns: list[str], names: list[str]) -> pd.DataFrame:
    if done.empty:
        return pd.DataFrame(columns=names + ["runs"])
    keyed = done[columns].astype(object).where(done[columns].notna(), "—").astype(str)
    table = keyed.groupby(columns, sort=True).size().reset_index(name="runs")
    return table.set_axis(names + ["runs"], axis=1)


def provenance(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Tables: data sources (with fingerprints and a lossy-JPEG flag), library versions, devices, commits; over
    every architecture's completed runs, the claim-1 baselines' too."""
    done = prepare(runs, architecture=None)
    if not done.empty:
        done["jpeg"] = done["lossy_jpeg"].map(lambda v: "yes (lossy)" if v is True else ("no" if v is False else "?"))
    data = _count_by(done, ["data", "dataset_description", "dataset_fingerprint", "jpeg"] if not done.empty
                     else [], ["data setting", "source", "fingerprint", "JPEG copy"])
    devices = _count_by(done, ["device_kind", "device_name", "backend_used", "train_loop"] if not done.empty else [],
                        ["kind", "name", "backend", "training loop"])
    commits = _count_by(done, ["git_commit"] if not done.empty else [], ["git commit"])
    versions_rows = []
    for text, sub in (done.groupby("versions", sort=True) if not done.empty else []):
        try:
            versions = json.loads(text) if isinstance(text, str) else {}
        except ValueError:
            versions = {"unparsed": text}
        versions_rows.append({**versions, "runs": len(sub)})
    versions = pd.DataFrame(versions_rows)
    if not versions.empty:
        versions = versions[[c for c in versions.columns if c != "runs"] + ["runs"]].fillna("—")
    return {"data": data, "versions": versions, "devices": devices, "commits": commits}


def recipes_table() -> pd.DataFrame:
    """The named recipes side by side (one column per recipe), including the Keras weight decay used."""
    # Columns by the report's names; the "name" row is the code's, as grids and records spell it.
    # The official augmentation's strengths mean nothing to a recipe that only flips.
    unused = {"crop_scale", "randaugment_n", "randaugment_m", "jitter", "erasing_p"}
    table = {recipe_name(name): {**{k: ("— (flip only)" if r.augmentation == "flip" and k in unused else v)
                                    for k, v in dataclasses.asdict(r).items()},
                                 "keras AdamW weight_decay": r.keras_weight_decay}
             for name, r in RECIPES.items()}
    frame = pd.DataFrame(table).rename(index={"name": "name in grids and records"})
    return frame.rename_axis("field").reset_index().astype(str)


def grid_coverage(runs: pd.DataFrame, grids_dir) -> pd.DataFrame:
    """Per shipped grid file: its description, planned runs and how many have a completed record here."""
    from ..sweep import SweepError, load_grid

    import yaml

    columns = ["grid", "description", "planned runs", "completed here"]
    grids_dir = Path(grids_dir)
    files = sorted(grids_dir.glob("*.yaml")) + sorted(grids_dir.glob("*.yml")) if grids_dir.is_dir() else []
    done_ids = set(prepare(runs, architecture=None)["run_id"]) if not runs.empty else set()
    rows = []
    for path in files:
        try:
            configs = load_grid(path)
            description = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("description", "")
        except (SweepError, OSError, yaml.YAMLError) as exc:
            rows.append({"grid": path.name, "description": f"unreadable: {exc}", "planned runs": None,
                         "completed here": None})
            continue
        rows.append({"grid": path.name, "description": " ".join(str(description).split()),
                     "planned runs": len(configs),
                     "completed here": sum(c.run_id in done_ids for c in configs)})
    table = pd.DataFrame(rows, columns=columns)
    for col in ("planned runs", "completed here"):
        table[col] = table[col].astype("Int64")
    return table


