"""What the runs cost: throughput per configuration and device, projected to the reference report's epoch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..training.config import CIFAR10_TRAIN_IMAGES
from ..training.recipes import RECIPES
from .names import recipe_name
from .runs import PAPER_WIDTH_DEPTH, prepare, run_load


# The reference report's epoch: CIFAR-10's 50,000 training images less the seed
# recipe's validation split. Projections of our throughput use the same size.
FULL_EPOCH_IMAGES = int(round(CIFAR10_TRAIN_IMAGES * (1 - RECIPES["seed"].val_fraction)))


def was_busy(load: dict) -> bool | None:
    """Whether the load exceeded the core count at start or end (None when unknown)."""
    known = [v for v in (load["start"], load["end"]) if isinstance(v, (int, float))]
    if not known or not load["cpu_count"]:
        return None
    return max(known) > load["cpu_count"]


def _mean_load(values) -> str:
    known = [v for v in values if isinstance(v, (int, float))]
    return f"{np.mean(known):.2f}" if known else "?"


def cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Throughput per configuration and device, and a projection to a full reference epoch.

    "projected s per full epoch" is FULL_EPOCH_IMAGES / images-per-second, the
    quantity the reference report's seconds-per-epoch marks measure. Speeds are
    the *fastest* of the configuration's runs: other work on a shared machine can
    only slow a run down, so the fastest run is the closest to what the hardware
    does (the usual rule for repeated timings); "slowest" shows the spread. "load avg
    (start/end)" is the mean over runs of the machine's 1-minute load average when
    training started and ended (see ``text.load_sentence``).
    """
    done = prepare(runs)
    projected = f"projected s per {FULL_EPOCH_IMAGES:,}-image epoch"
    load_column = "load avg (start/end)"
    columns = ["setup", "configuration", "device", "runs", "train images per epoch", "seconds per epoch",
               "images per second", "slowest run images per second", projected, "mean total training seconds",
               load_column]
    rows = []
    if not done.empty:
        done["device"] = done["device_kind"].fillna("?").astype(str) + ": " + done["device_name"].fillna("?").astype(str)
        for (label, p, k, device), sub in done.groupby(["setup", "patch_size", "kernel_size", "device"], sort=True):
            first = sub.iloc[0]
            speeds = pd.to_numeric(sub["images_per_second"], errors="coerce")
            ips = speeds.max()
            loads = [run_load(path) for path in sub["path"]]
            starts, ends = _mean_load(x["start"] for x in loads), _mean_load(x["end"] for x in loads)
            rows.append({
                "setup": label,
                "configuration": f"ConvMixer-{first['width']}/{first['depth']} p{p} k{k}, batch {first['batch_size']}",
                "device": device, "runs": len(sub),
                "train images per epoch": first["train_images"],
                "seconds per epoch": pd.to_numeric(sub["seconds_per_epoch"], errors="coerce").min(),
                "images per second": ips,
                "slowest run images per second": speeds.min(),
                projected: FULL_EPOCH_IMAGES / ips if ips and ips > 0 else float("nan"),
                "mean total training seconds": pd.to_numeric(sub["total_train_seconds"], errors="coerce").mean(),
                load_column: None if starts == ends == "?" else f"{starts} / {ends}",
            })
    return pd.DataFrame(rows, columns=columns)


def reference_marks(reference: dict) -> pd.DataFrame:
    """The reference report's seconds-per-epoch marks with the labels the cost figure draws."""
    t = reference["timings"].copy()
    if t.empty:
        return t.assign(label=pd.Series(dtype=str))
    t["label"] = [f"reference report: {kind} ~{s:,.0f} s/epoch" + (f" ({name.split(' (')[0]})" if kind != "CPU" else "")
                  for kind, name, s in zip(t["device_kind"], t["device_name"], t["seconds_per_epoch"])]
    return t




def _seconds(value: float) -> str:
    return "—" if pd.isna(value) else (f"{value:,.0f}" if value >= 10 else f"{value:.1f}")


def timings_by_setup(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Seconds per epoch of every ConvMixer configuration, compactly: a row per setup (and device), a column
    per patch and kernel size, the fastest run's seconds in each cell; and the devices. The device column is
    left out when every run trained on one device (the caption names it), so no text repeats down a column."""
    done = prepare(runs)
    if done.empty:
        return pd.DataFrame(), []
    done["device"] = done["device_kind"].fillna("?").astype(str) + ": " + done["device_name"].fillna("?").astype(str)
    devices = sorted(done["device"].unique())
    configs = sorted({(int(p), int(k)) for p, k in zip(done["patch_size"], done["kernel_size"])})
    rows = []
    for (label, device), sub in done.groupby(["setup", "device"], sort=True):
        first = sub.iloc[0]
        images = pd.to_numeric(sub["train_images"], errors="coerce").max()
        row = {"setup": label,
               "model and budget": (f"ConvMixer-{first['width']}/{first['depth']}, "
                                    f"{recipe_name(first['recipe'])} recipe, {first['epochs']} epochs, "
                                    f"batch {first['batch_size']}"
                                    + ("" if pd.isna(images) else f", {int(images):,} images per epoch")),
               "device": device, "runs": len(sub)}
        for p, k in configs:
            cell = sub[(sub["patch_size"] == p) & (sub["kernel_size"] == k)]
            row[f"p{p} k{k}"] = _seconds(pd.to_numeric(cell["seconds_per_epoch"], errors="coerce").min()) \
                if len(cell) else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(devices) == 1:
        table = table.drop(columns="device")
    return table, devices


def bench_records(folder) -> list[dict]:
    """The ``bench --record`` measurements in ``folder`` (unreadable files are skipped: a cost is a hint)."""
    out = []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("kind") == "bench":
            out.append(record)
    return out


def training_cost(row: dict, records: list[dict]) -> dict | None:
    """Hours on the measured CPU to train the published setting once, from the latest matching ``bench`` record.

    Training images per epoch times epochs over the measured training images/s
    (the ``project`` case: the real training path); evaluation is not counted.
    """
    best = None
    for record in records:
        spec = record.get("spec") or {}
        if any(spec.get(k) != row[k] for k in ("width", "depth", "patch_size", "kernel_size", "batch_size")):
            continue
        if spec.get("architecture", "convmixer") != "convmixer" or spec.get("recipe") != row["recipe"]:
            continue
        if spec.get("activation", "gelu") != "gelu" or (spec.get("recipe_overrides") or {}) != row["recipe_overrides"]:
            continue  # another model or recipe than the published setting's
        for result in record.get("results") or []:
            if result.get("case") == "project" and result.get("device", {}).get("kind") == "CPU":
                if best is None or record["measured"] > best[0]["measured"]:
                    best = (record, result)
    if best is None:
        return None
    record, result = best
    seconds = row["epochs"] * row["train_images"] / result["images_per_second"]
    return {"hours": seconds / 3600, "images_per_second": result["images_per_second"],
            "isa": result["device"].get("cpu_vector_extension"), "cores": result["device"].get("cpu_count"),
            "measured": record["measured"][:10]}


# The settings a published timing was measured with, from reference.yaml (via anchors.published_runs):
# a bar measured here with the same model and settings gets that setting's colour in the timing figure.
REFERENCE_SETTING, OFFICIAL_SETTING = "reference report", "official log"


def _published_settings(reference: dict) -> dict[str, dict]:
    from .anchors import published_runs

    rows = published_runs(reference)
    out = {}
    timed = [r for r in rows if r["source"] == "reference_report"]
    if timed and not reference["timings"].empty:
        r = timed[0]  # every row of its table trained the same recipe; the timed patch and kernel are not stated
        out[REFERENCE_SETTING] = {"width": r["width"], "depth": r["depth"], "recipe": r["recipe"],
                                  "recipe_overrides": "{}", "batch_size": r["batch_size"],
                                  "train_images": r["train_images"], "patch_size": None, "kernel_size": None}
    logged = reference["logged"]
    for r in rows:
        if r["source"] != "official_logged" or logged.empty or "seconds_per_epoch" not in logged:
            continue
        timed = logged[(logged["source"] == r["source"]) & logged["seconds_per_epoch"].notna()]
        if not timed.empty:
            out[OFFICIAL_SETTING] = {"width": r["width"], "depth": r["depth"], "recipe": r["recipe"],
                                     "recipe_overrides": json.dumps(r["recipe_overrides"], sort_keys=True),
                                     "batch_size": r["batch_size"], "train_images": r["train_images"],
                                     "patch_size": r["patch_size"], "kernel_size": r["kernel_size"]}
    return out


def _setting_text(key: str, s: dict) -> str:
    model = f"ConvMixer-{s['width']}/{s['depth']}"
    if s["patch_size"] is not None:
        model += f" p{s['patch_size']} k{s['kernel_size']}"
    text = (f"{model}, {recipe_name(s['recipe'])} recipe, batch {s['batch_size']}, {s['train_images']:,} "
            "training images "
            f"per epoch: ")
    if key == REFERENCE_SETTING:
        return text + "the reference report's timed setting (it does not state the patch size)"
    return text + "the official script's logged run"


def _same_setting(row, s: dict) -> bool:
    overrides = row["recipe_overrides"] if isinstance(row["recipe_overrides"], str) and row["recipe_overrides"] \
        else "{}"
    same = ((row["width"], row["depth"], row["recipe"], overrides, row["batch_size"], row["train_images"])
            == (s["width"], s["depth"], s["recipe"], s["recipe_overrides"], s["batch_size"], s["train_images"]))
    if s["patch_size"] is not None:
        same &= (row["patch_size"], row["kernel_size"]) == (s["patch_size"], s["kernel_size"])
    return bool(same) and pd.isna(row.get("train_subset"))


def timing_bars(runs: pd.DataFrame, reference: dict) -> tuple[pd.DataFrame, dict[str, str]]:
    """The timing figure's bars: ConvMixer-256/8 seconds per epoch measured here (per configuration, recipe,
    batch and device: the fastest run, and the slowest), beside the published timings (the reference report's
    CPU and GPU, the official script's logged GPU), slowest first; and the settings, key -> legend text.

    A bar's ``group`` names the published setting it shares model and settings with (reference.yaml's
    timings carry no patch size, so any patch counts for the reference report's); "" for none."""
    settings = _published_settings(reference)
    bars = []
    for t in reference["timings"].itertuples(index=False):
        bars.append({"label": f"reference report: {str(t.device_name).split(' (')[0]}",
                     "seconds": float(t.seconds_per_epoch), "slowest": float("nan"), "published": True,
                     "group": REFERENCE_SETTING if REFERENCE_SETTING in settings else ""})
    logged = reference["logged"]
    if not logged.empty and "seconds_per_epoch" in logged:
        for t in logged[logged["seconds_per_epoch"].notna()].itertuples(index=False):
            name = {"official_logged": "official script's log"}.get(t.source, str(t.source))
            bars.append({"label": f"{name}: {str(t.device_name).split(' (')[0]}, p{t.patch_size} k{t.kernel_size}",
                         "seconds": float(t.seconds_per_epoch), "slowest": float("nan"), "published": True,
                         "group": OFFICIAL_SETTING if t.source == "official_logged" and OFFICIAL_SETTING in settings
                         else ""})
    done = prepare(runs)
    w, d = PAPER_WIDTH_DEPTH
    ours = done[(done["width"] == w) & (done["depth"] == d)] if not done.empty else done
    if not ours.empty:
        ours = ours.assign(overrides=ours["recipe_overrides"].fillna("{}").replace("", "{}"),
                           subset=ours["train_subset"].isna())
        keys = ["patch_size", "kernel_size", "recipe", "overrides", "batch_size", "train_images", "subset",
                "device_kind", "device_name"]
        for key, sub in ours.groupby(keys, sort=True, dropna=False):
            first = sub.iloc[0]
            seconds = pd.to_numeric(sub["seconds_per_epoch"], errors="coerce")
            if seconds.notna().sum() == 0:
                continue
            cores = run_load(first["path"])["cpu_count"]
            device = f"{first['device_kind']} {first['device_name']}" + (
                f" ({cores} cores)" if cores and first["device_kind"] == "CPU" else "")
            group = next((k for k, s in settings.items() if _same_setting(first, s)), "")
            bars.append({"label": f"here: {device}, p{first['patch_size']} k{first['kernel_size']}, "
                                  f"{recipe_name(first['recipe'])} recipe, batch {first['batch_size']}, {len(sub)} "
                                  f"run{'s' if len(sub) != 1 else ''}",
                         "seconds": float(seconds.min()), "slowest": float(seconds.max()) if len(sub) > 1
                         else float("nan"), "published": False, "group": group})
    frame = pd.DataFrame(bars, columns=["label", "seconds", "slowest", "published", "group"])
    frame = frame.sort_values("seconds", ascending=False, kind="stable").reset_index(drop=True)
    used = [k for k in settings if k in set(frame["group"])]
    return frame, {k: _setting_text(k, settings[k]) for k in used}
