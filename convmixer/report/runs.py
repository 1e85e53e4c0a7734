"""The run records as tables: one row per run folder, and the completed runs typed and grouped into setups.

``load_runs`` reads every folder under ``RESULTS/runs/``. A folder that is
incomplete (still running, interrupted, failed) or corrupt becomes a row with
that ``status`` and a ``problem`` saying why, never an exception, so the report
can list it as skipped. A completed record of a run another folder already
records (a copy such as ``runs/X.bak``) becomes a "duplicate" row: one run is
one seed, however many folders hold it (``mark_duplicates``).

``prepare`` turns such a frame into the completed runs with integer fields as
ints and a ``setup`` label. Only runs of one *setup* are compared with each
other: a setup is every configuration field except the two ablation axes
(kernel size, patch size) and the seed, because runs that differ in width,
recipe, epochs, data, ... would confound the trend with something else. Every
table, verdict and sentence of the report starts from ``prepare``. The report
prepares its runs once (``prepare_table``, which also reads each run's
history.csv) and hands that table to every section, for which ``prepare`` is
only a filter.

Reference numbers (paper, reference report) come only from ``load_reference``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import records
from ..training.config import PARAMETER_NAMES
from .names import describe_setup


METRIC_COLUMNS = records.METRIC_COLUMNS
COLUMNS = (
    ["run_id", "config_hash", "status", "problem", "resumable", "path"] + PARAMETER_NAMES + METRIC_COLUMNS
    + ["device_kind", "device_name", "backend_used", "train_loop", "dataset_description", "dataset_fingerprint",
       "lossy_jpeg", "versions"]
)


def read_run(run_dir) -> dict:
    """One run folder as a flat dict (see COLUMNS); its status is ``records.validate_record``'s, the one
    validation the sweep's plan uses too, so a record is never done for one and corrupt for the other."""
    run_dir = Path(run_dir)
    row = dict.fromkeys(COLUMNS)
    row.update(run_id=run_dir.name, path=str(run_dir))
    check = records.RunRecord(run_dir).state()
    params = check.params if isinstance(check.params, dict) else {}
    row.update({k: params.get(k) for k in PARAMETER_NAMES})
    row["run_id"] = params.get("run_id", run_dir.name)
    row["config_hash"] = params.get("config_hash")
    row["architecture"] = row["architecture"] or "convmixer"  # records from before the field existed
    for key in ("recipe_overrides", "hyperparameters"):
        row[key] = json.dumps(row[key] or {}, sort_keys=True) if isinstance(row[key], (dict, type(None))) else row[key]
    if check.state != "completed":
        row.update(status=check.state, problem=check.problem, resumable=bool(check.resumable))
        return row
    metrics = check.metrics
    device, dataset = metrics.get("device") or {}, metrics.get("dataset") or {}
    row.update({k: metrics.get(k) for k in METRIC_COLUMNS})
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
    return row


def load_runs(results_dir=None) -> pd.DataFrame:
    """All run folders of ``results_dir/runs`` (default: ``records.default_results_dir()``; one row each, sorted
    by run id); empty if none."""
    runs_dir = Path(results_dir or records.default_results_dir()) / "runs"
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
    rows = [read_run(p) for p in folders]
    # A forced re-run keeps the run's completed record in RESULTS/.previous/ until its new attempt completes,
    # and the sweep restores it if that attempt fails: until then it is the run's measurement, and counts.
    for folder, row in zip(folders, list(rows)):
        kept = records.previous_record_dir(folder)
        if row["status"] != "completed" and kept.is_dir():
            previous = read_run(kept)
            if previous["status"] == "completed":
                rows.append(previous)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return mark_duplicates(frame.sort_values("run_id", kind="stable").reset_index(drop=True))


DUPLICATE = "duplicate"


def _keep_first(row) -> tuple:
    """Which of several records of one run counts: the one in the folder named after its run id, which is
    the folder the sweep plans, resumes and replaces with --force (a copy lives under another name, so
    it can go stale without the sweep noticing); among the rest, the first folder by name, so the
    choice never depends on the order the file system lists folders in."""
    return (Path(str(row["path"])).name != row["run_id"], str(row["path"]))


def mark_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every completed record whose run id or configuration hash an earlier one of the same
    data has (``_keep_first``'s order) marked ``status="duplicate"``, its ``problem`` naming the record that
    counts.

    Two folders of one run are one measurement: counting both would double its
    seed, shrink the spread and the intervals, and inflate ``n_runs``. A run whose
    configuration names no data (``data: null``) trains on each machine's default
    source, so the same run id on other data (another dataset fingerprint) is another
    measurement, of another setup: both count.
    """
    done = frame[frame["status"] == "completed"]
    if done.empty:
        return frame
    frame = frame.copy()
    kept: dict[tuple, str] = {}  # ("run id" | "configuration", value, data fingerprint) -> the folder that counts
    # Folders are named relative to the results folder: the reason is shown in the report, which must
    # not depend on where the results lie on this machine.
    for index in sorted(done.index, key=lambda i: _keep_first(frame.loc[i])):
        row = frame.loc[index]
        data = row["dataset_fingerprint"] if isinstance(row["dataset_fingerprint"], str) else None
        keys = [("run id", row["run_id"], data)]
        if isinstance(row["config_hash"], str):
            keys.append(("configuration", row["config_hash"], data))
        clash = next((key for key in keys if key in kept), None)
        if clash is None:
            kept.update({key: f"runs/{Path(str(row['path'])).name}" for key in keys})
            continue
        what, value, _ = clash
        frame.loc[index, "status"] = DUPLICATE
        frame.loc[index, "problem"] = (f"same {what} {value} as {kept[clash]}, which is counted instead "
                                       "(a copy of a run is not another seed)")
    return frame


def duplicate_lines(frame: pd.DataFrame) -> list[str]:
    """One line per record ``mark_duplicates`` left out, and per record counted from ``.previous/`` (a forced
    re-run's, see ``load_runs``), for the command line."""
    rows = frame[frame["status"] == DUPLICATE]
    kept = frame[(frame["status"] == "completed")
                 & frame["path"].map(lambda p: Path(str(p)).parent.name == ".previous")]
    return ([f"warning: {path}: not counted: {problem}" for path, problem in zip(rows["path"], rows["problem"])]
            + [f"note: {path}: counted: the completed record a forced re-run of {run_id} keeps until its new attempt "
               "completes" for path, run_id in zip(kept["path"], kept["run_id"])])


# --------------------------------------------------------------------------- published values

REFERENCE_FILE = Path(__file__).resolve().parent.parent / "reference.yaml"


def load_reference() -> dict:
    """Published values (paper, reference report), labelled as such; never measured here.

    Returns {"sources": {...}, "accuracy": DataFrame, "timings": DataFrame, "logged": DataFrame,
    "logged_curves": {source: {"where", "train_accuracy", "test_accuracy", "lr"}}} (per-epoch lists, epoch 1 first).
    """
    import yaml

    spec = yaml.safe_load(REFERENCE_FILE.read_text(encoding="utf-8"))
    return {
        "sources": spec["sources"],
        "accuracy": pd.DataFrame(spec["accuracy"]),
        "timings": pd.DataFrame(spec["timings"]),
        "logged": pd.DataFrame(spec.get("logged", [])),
        "logged_curves": {c["source"]: c for c in spec.get("logged_curves", [])},
    }


PAPER_WIDTH_DEPTH = (256, 8)  # the architecture of the paper's CIFAR-10 ablation table


# --------------------------------------------------------------------------- setups

AXES = ("kernel_size", "patch_size")
# Configuration fields that define a setup (all but the ablation axes and the seed).
# The dataset fingerprint is added because ``data: null`` resolves per machine
# ($CONVMIXER_DATA), so two runs with the same setting may still differ in data.
# Derived from the config so that a field added to RunConfig separates setups too.
SETUP_FIELDS = [n for n in PARAMETER_NAMES if n not in ("kernel_size", "patch_size", "seed")] + ["dataset_fingerprint"]
INT_FIELDS = ["width", "depth", "patch_size", "kernel_size", "epochs", "batch_size", "seed",
              "train_images", "test_images", "trainable_parameters"]


def short_axis(axis: str) -> str:
    """The axis as tables, captions and evidence name it: kernel_size -> kernel."""
    return axis.replace("_size", "")


def other_axis(axis: str) -> str:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {list(AXES)}, got {axis!r}")
    return AXES[1] if axis == AXES[0] else AXES[0]


def clean(value):
    """A hashable, comparable stand-in for a cell (None/NaN -> None, whole floats -> int)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):  # recipe_overrides given as a mapping (load_runs stores JSON text)
        return json.dumps(value, sort_keys=True)
    return value


def _sort_key(values):
    return tuple((v is None, str(type(v).__name__), v if not isinstance(v, (list, dict)) else str(v))
                 for v in values)


def _setup_label(i: int) -> str:
    """A, B, ..., Z, AA, AB, ...: short names the tables and figure titles share."""
    label = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        label = chr(ord("A") + r) + label
    return label


def prepare(runs: pd.DataFrame, architecture: str | None = "convmixer") -> pd.DataFrame:
    """Completed runs with integer fields as ints and a ``setup`` label plus its description.

    Only ConvMixer runs by default: every section but claim 1 is about ConvMixer;
    ``architecture=None`` keeps every architecture (claim 1). Accepts frames with
    only some of ``COLUMNS`` (e.g. hand-built in tests).

    Cheap on a ``prepare_table`` result, which the report notebook makes once and
    passes to every section; a ``load_runs`` frame is prepared here in full.
    """
    table = as_table(runs)
    done = table[table["status"] == "completed"]
    if architecture is not None:
        done = done[done["architecture"] == architecture]
    return done.reset_index(drop=True).copy()  # a copy: callers add columns


# What prepare_table adds to a load_runs frame; a frame with all of them is taken as prepared.
PREPARED_COLUMNS = ("setup", "setup_description", "final_lr", "final_train_accuracy")


def as_table(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` if it is a ``prepare_table`` result, else that table: a function that prepares its runs more
    than once (directly or through the functions it calls) calls this first, so a raw frame is prepared once."""
    return runs if set(PREPARED_COLUMNS) <= set(runs.columns) else prepare_table(runs)


def prepare_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every record of a ``load_runs`` frame, ready for the report: fields cleaned (integers as ints), and each
    completed run labelled with its ``setup`` (A, B, ...; over every architecture, ConvMixer's first, so a
    label is the same whichever architectures a section looks at) and ``setup_description``. Completed runs
    come first, by setup, patch, kernel and seed; the rest keep their order with no setup."""
    frame = runs.reindex(columns=COLUMNS + [c for c in runs.columns if c not in COLUMNS])
    frame["architecture"] = frame["architecture"].astype(object).where(frame["architecture"].notna(), "convmixer")
    frame["hyperparameters"] = frame["hyperparameters"].map(lambda v: "{}" if v is None or v != v else v)
    # load_runs stores integers as floats (NaN for corrupt rows); make keys and labels read "3", not "3.0".
    for col in dict.fromkeys(SETUP_FIELDS + INT_FIELDS):
        frame[col] = pd.Series([clean(v) for v in frame[col]], index=frame.index, dtype=object)
    frame["test_accuracy"] = pd.to_numeric(frame["test_accuracy"], errors="coerce")
    done = frame[frame["status"] == "completed"].copy()
    rest = frame[frame["status"] != "completed"].copy()
    keys = [tuple(r[f] for f in SETUP_FIELDS) for _, r in done.iterrows()]
    order = {k: _setup_label(i) for i, k in enumerate(sorted(set(keys), key=_sort_key))}
    done["setup"] = pd.Series([order[k] for k in keys], index=done.index, dtype=object)
    descriptions = {}
    for label, sub in done.groupby("setup", sort=True):
        row = sub.iloc[0].to_dict()
        images = sorted({v for v in sub["train_images"] if v is not None})
        row["train_images"] = images[0] if len(images) == 1 else None
        descriptions[label] = describe_setup(row)
    done["setup_description"] = done["setup"].map(descriptions) if not done.empty else pd.Series(dtype=object)
    ends = [history_end(path) for path in done["path"]]  # read here once, for every section that needs it
    done["final_lr"] = pd.Series([e["lr"] for e in ends], index=done.index, dtype=object)
    done["final_train_accuracy"] = pd.Series([e["accuracy"] for e in ends], index=done.index, dtype=object)
    done = done.sort_values(["setup", "patch_size", "kernel_size", "seed"], kind="stable")
    if rest.empty:
        return done.reset_index(drop=True)
    for column in PREPARED_COLUMNS:
        rest[column] = pd.Series([None] * len(rest), index=rest.index, dtype=object)  # None, not NaN
    return pd.concat([done, rest]).reset_index(drop=True)


def comparable_groups(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Completed runs grouped by setup (every field but kernel size, patch size and seed).

    Returns {setup label: its runs}; only runs inside one group are compared.
    """
    done = prepare(runs)
    return {label: sub.reset_index(drop=True) for label, sub in done.groupby("setup", sort=True)}


# --------------------------------------------------------------------------- one run's files beyond its row

def history_end(path) -> dict:
    """The last epoch's learning rate and accuracy on the (augmented) training images, from history.csv;
    None where the file or the column is missing."""
    h = history(path)
    out = {"lr": None, "accuracy": None}
    if h is not None and len(h):
        for key in out:
            if key in h:
                out[key] = float(h[key].iloc[-1])
    return out


def history(path) -> pd.DataFrame | None:
    """A run's history.csv (one row per epoch), or None when it is missing or unreadable."""
    try:
        return records.RunRecord(str(path)).history()
    except (OSError, ValueError):
        return None


def run_load(path) -> dict:
    """A run's 1-minute load average at start and end of training and its machine's core count.

    Read from the run's metrics.json (older runs have no ``load_average``); missing values are None.
    """
    try:
        metrics = records.RunRecord(str(path)).metrics
        start, end = (metrics.get("load_average") or [None, None])[:2]
        cores = (metrics.get("device") or {}).get("cpu_count")
    except (OSError, ValueError, TypeError, AttributeError):
        return {"start": None, "end": None, "cpu_count": None}
    return {"start": start, "end": end, "cpu_count": cores}


