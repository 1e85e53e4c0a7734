"""What the runs cost: throughput per configuration and device, projected to the reference report's epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..training.recipes import RECIPES
from .runs import PAPER_WIDTH_DEPTH, prepare, run_load


# The reference report's epoch: CIFAR-10's 50,000 training images less the seed
# recipe's validation split. Projections of our throughput use the same size.
CIFAR10_TRAIN_IMAGES = 50_000
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
    load_column, like = "load avg (start/end)", "against the reference report's marks"
    columns = ["setup", "configuration", "device", "runs", "train images per epoch", "seconds per epoch",
               "images per second", "slowest run images per second", projected, "mean total training seconds",
               load_column, like]
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
                # The reference report timed ConvMixer-256/8 without stating the patch size, and the patch
                # changes the cost several-fold: no row is known to match its configuration.
                like: ("not comparable: its patch size is unknown" if (first["width"], first["depth"])
                       == PAPER_WIDTH_DEPTH else "not comparable: another model size"),
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


