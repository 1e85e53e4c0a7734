"""Everything the report concludes, computed from the run records (pure pandas, no plotting).

The report notebook only calls these functions and renders what they return, so
the tests can reach every number and every verdict. Rules that shape the code:

* Only runs of one *setup* are compared with each other. A setup is every
  configuration field except the two ablation axes (kernel size, patch size)
  and the seed: runs that differ in width, recipe, epochs, data, ... would
  confound the trend with something else.
* Reference numbers (paper, reference report) come only from
  ``results.load_reference()``; nothing here types one in.
* Every function accepts an empty or partial results table and returns an
  empty frame (or a sentence) instead of raising, so the report always renders.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .training.config import PARAMETER_NAMES
from .models.convmixer import count_parameters
from .training.recipes import RECIPES
from .results import COLUMNS

AXES = ("kernel_size", "patch_size")
# Configuration fields that define a setup (all but the ablation axes and the seed).
# The dataset fingerprint is added because ``data: null`` resolves per machine
# ($CONVMIXER_DATA), so two runs with the same setting may still differ in data.
# Derived from the config so that a field added to RunConfig separates setups too.
SETUP_FIELDS = [n for n in PARAMETER_NAMES if n not in ("kernel_size", "patch_size", "seed")] + ["dataset_fingerprint"]
INT_FIELDS = ["width", "depth", "patch_size", "kernel_size", "epochs", "batch_size", "seed",
              "train_images", "test_images", "trainable_parameters"]

# The reference report's epoch: CIFAR-10's 50,000 training images less the seed
# recipe's validation split. Projections of our throughput use the same size.
CIFAR10_TRAIN_IMAGES = 50_000
FULL_EPOCH_IMAGES = int(round(CIFAR10_TRAIN_IMAGES * (1 - RECIPES["seed"].val_fraction)))

PAPER_WIDTH_DEPTH = (256, 8)  # the architecture of the paper's CIFAR-10 ablation table

# The paper's claims this study tests, in the order of the summary's numbered list.
CLAIMS = [
    {"id": "architectures", "anchor": "architectures",
     "claim": "ConvMixer beats ViT, MLP-Mixer and ResNet variants of similar size."},
    {"id": "kernel", "anchor": "trend-kernel", "axis": "kernel_size", "sign": +1,
     "claim": "A larger (depthwise) kernel raises accuracy."},
    {"id": "patch", "anchor": "trend-patch", "axis": "patch_size", "sign": -1,
     "claim": "A larger patch lowers accuracy."},
]



# --------------------------------------------------------------------------- setups

def _clean(value):
    """A hashable, comparable stand-in for a cell (None/NaN -> None, whole floats -> int)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):  # recipe_overrides given as a mapping (results.py stores JSON text)
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


def describe_setup(row) -> str:
    """The budget a setup trains with, in words (used as figure titles and table captions)."""
    parts = [model_name(row), f"{row['recipe']} recipe"]
    overrides = row.get("recipe_overrides")
    if overrides not in (None, "", "{}"):
        parts.append(f"overrides {overrides}")
    parts.append(f"{row['epochs']} epochs")
    train_images = row.get("train_images")
    if not pd.isna(train_images):
        parts.append(f"{int(train_images):,} train images")
    if not pd.isna(row.get("test_subset")):  # a missing subset arrives as None or NaN from pandas
        parts.append(f"{int(row['test_subset']):,} test images")
    parts.append(f"batch {row['batch_size']}")
    if row.get("data"):
        parts.append(f"data {row['data']}")
    else:  # the default source differs per machine ($CONVMIXER_DATA): name it by its fingerprint
        parts.append(f"default data {str(row.get('dataset_fingerprint'))[:15]}…")
    if row.get("activation") not in (None, "gelu"):
        parts.append(str(row["activation"]))
    if row.get("backend") not in (None, "tensorflow"):
        parts.append(str(row["backend"]))
    return ", ".join(parts)


def prepare(runs: pd.DataFrame, architecture: str | None = "convmixer") -> pd.DataFrame:
    """Completed runs with integer fields as ints and a ``setup`` label plus its description.

    Only ConvMixer runs by default: every section but claim 1 is about ConvMixer;
    ``architecture=None`` keeps every architecture (claim 1). Accepts frames with
    only some of ``results.COLUMNS`` (e.g. hand-built in tests).
    """
    frame = runs.reindex(columns=COLUMNS + [c for c in runs.columns if c not in COLUMNS])
    frame["architecture"] = frame["architecture"].astype(object).where(frame["architecture"].notna(), "convmixer")
    frame["hyperparameters"] = frame["hyperparameters"].map(lambda v: "{}" if v is None or v != v else v)
    done = frame[frame["status"] == "completed"].copy()
    if architecture is not None:
        done = done[done["architecture"] == architecture]
    # load_runs stores integers as floats (NaN for corrupt rows); make keys and labels read "3", not "3.0".
    for col in dict.fromkeys(SETUP_FIELDS + INT_FIELDS):
        done[col] = pd.Series([_clean(v) for v in done[col]], index=done.index, dtype=object)
    done["test_accuracy"] = pd.to_numeric(done["test_accuracy"], errors="coerce")
    keys = [tuple(_clean(r[f]) for f in SETUP_FIELDS) for _, r in done.iterrows()]
    order = {k: _setup_label(i) for i, k in enumerate(sorted(set(keys), key=_sort_key))}
    done["setup"] = [order[k] for k in keys]
    descriptions = {}
    for label, sub in done.groupby("setup", sort=True):
        row = sub.iloc[0].to_dict()
        images = sorted({v for v in sub["train_images"] if v is not None})
        row["train_images"] = images[0] if len(images) == 1 else None
        descriptions[label] = describe_setup(row)
    done["setup_description"] = done["setup"].map(descriptions) if not done.empty else pd.Series(dtype=object)
    return done.sort_values(["setup", "patch_size", "kernel_size", "seed"], kind="stable").reset_index(drop=True)


def comparable_groups(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Completed runs grouped by setup (every field but kernel size, patch size and seed).

    Returns {setup label: its runs}; only runs inside one group are compared.
    """
    done = prepare(runs)
    return {label: sub.reset_index(drop=True) for label, sub in done.groupby("setup", sort=True)}


def setups_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per setup: its label, budget, and which kernel sizes, patch sizes and seeds ran."""
    rows = []
    for label, sub in comparable_groups(runs).items():
        rows.append({
            "setup": label,
            "budget": sub["setup_description"].iloc[0],
            "kernel sizes": ", ".join(map(str, sorted(sub["kernel_size"].unique()))),
            "patch sizes": ", ".join(map(str, sorted(sub["patch_size"].unique()))),
            "seeds": ", ".join(map(str, sorted(sub["seed"].unique()))),
            "runs": len(sub),
        })
    return pd.DataFrame(rows, columns=["setup", "budget", "kernel sizes", "patch sizes", "seeds", "runs"])


# --------------------------------------------------------------------------- accuracy

def _pct_stats(acc, test_images=None) -> dict:
    """Mean, sample std and standard error of accuracies, in percent (std/sem NaN for n=1), and the
    test-set noise floor: the binomial standard error of one run's accuracy on ``test_images`` images."""
    from .inference import binomial_se_pct

    values = 100 * np.asarray(list(acc), dtype=float)
    n = len(values)
    std = float(values.std(ddof=1)) if n > 1 else float("nan")
    mean = float(values.mean()) if n else float("nan")
    tests = pd.to_numeric(pd.Series(list(test_images) if test_images is not None else []), errors="coerce").dropna()
    return {"n": n, "mean_pct": mean, "std_pct": std, "sem_pct": std / math.sqrt(n) if n > 1 else float("nan"),
            "binomial_se_pct": binomial_se_pct(mean / 100, int(tests.iloc[0])) if len(tests) else float("nan")}


def format_mean_std(stats: dict) -> str:
    if stats["n"] == 0:
        return ""
    if stats["n"] == 1:
        return f"{stats['mean_pct']:.2f}"
    return f"{stats['mean_pct']:.2f} ± {stats['std_pct']:.2f}"


def param_check(width, depth, patch_size, kernel_size, reference: dict) -> str:
    """✓ / ✗: the builder's parameter count against the paper's (``paper_params`` in reference.yaml).

    — where the published file lists no count for this width, depth, patch and kernel.
    """
    ref = reference["accuracy"]
    if ref.empty or "paper_params" not in ref:
        return "—"
    match = ref[(ref["width"] == width) & (ref["depth"] == depth) & (ref["patch_size"] == patch_size)
                & (ref["kernel_size"] == kernel_size)]["paper_params"].dropna()
    if match.empty:
        return "—"
    return "✓" if count_parameters(width, depth, patch_size, kernel_size) == int(match.iloc[0]) else "✗"


COMPARISON_COLUMNS = [
    "setup", "width", "depth", "patch", "kernel", "recipe", "our epochs", "our accuracy (%)", "n",
    "test-set SE (%)", "train images", "parameters (computed here)", "paper count",
    "paper accuracy (%)", "paper epochs", "reference report accuracy (%)", "reference report epochs",
]


def comparison_table(runs: pd.DataFrame, reference: dict) -> pd.DataFrame:
    """Original versus reproduction: one row per (setup, patch, kernel) plus published rows never run.

    Our accuracy is mean ± std over seeds in percent with n; published values are
    attached where width, depth, patch and kernel match (their epochs differ from
    ours, which the epochs columns show).
    """
    ref = reference["accuracy"].copy()
    ref_key = ["width", "depth", "patch_size", "kernel_size"]
    ref = ref.set_index(ref_key) if not ref.empty else ref
    done = prepare(runs)
    rows, matched = [], set()
    for (label, p, k), sub in done.groupby(["setup", "patch_size", "kernel_size"], sort=True):
        first = sub.iloc[0]
        w, d = first["width"], first["depth"]
        key = (w, d, p, k)
        published = ref.loc[key] if not ref.empty and key in ref.index else None
        if published is not None:
            matched.add(key)
        images = sorted({v for v in sub["train_images"] if v is not None})
        rows.append(_comparison_row(
            setup=label, width=w, depth=d, patch=p, kernel=k, recipe=first["recipe"],
            train_images=", ".join(f"{v:,}" for v in images), published=published, reference=reference,
            our_epochs=first["epochs"], stats=_pct_stats(sub["test_accuracy"], sub["test_images"]),
        ))
    for key, published in (ref.iterrows() if not ref.empty else []):
        if tuple(int(v) for v in key) in matched:
            continue
        w, d, p, k = (int(v) for v in key)
        rows.append(_comparison_row(setup="—", width=w, depth=d, patch=p, kernel=k, recipe="—",
                                    train_images="", published=published, reference=reference,
                                    our_epochs=None, stats=None))
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    for col in ("paper epochs", "reference report epochs", "our epochs", "n"):
        table[col] = pd.to_numeric(table[col]).astype("Int64")  # whole numbers, blank where missing
    return table


def comparison_display(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table as the report shows it: model as width/depth, published values with their epochs."""
    def published(accuracy, epochs):
        return "—" if pd.isna(accuracy) else f"{accuracy:.2f} ({int(epochs)} ep)"

    return pd.DataFrame({
        "setup": table["setup"], "model": [f"{w}/{d}" for w, d in zip(table["width"], table["depth"])],
        "patch": table["patch"], "kernel": table["kernel"], "recipe": table["recipe"], "epochs": table["our epochs"],
        "our accuracy (%)": table["our accuracy (%)"], "n": table["n"], "test-set SE (%)": table["test-set SE (%)"],
        "parameters (computed here)": table["parameters (computed here)"], "paper count": table["paper count"],
        "paper (%)": [published(a, e) for a, e in zip(table["paper accuracy (%)"], table["paper epochs"])],
        "reference report (%)": [published(a, e) for a, e in zip(table["reference report accuracy (%)"],
                                                                  table["reference report epochs"])],
    })


def _comparison_row(*, setup, width, depth, patch, kernel, recipe, train_images, published, reference,
                    our_epochs, stats):
    def pub(name):
        return None if published is None or pd.isna(published[name]) else published[name].item()

    return {
        "setup": setup, "width": width, "depth": depth, "patch": patch, "kernel": kernel, "recipe": recipe,
        "train images": train_images,
        "parameters (computed here)": f"{count_parameters(width, depth, patch, kernel):,}",
        "paper count": param_check(width, depth, patch, kernel, reference),
        "paper accuracy (%)": pub("paper_accuracy"), "paper epochs": pub("paper_epochs"),
        "reference report accuracy (%)": pub("reference_accuracy"),
        "reference report epochs": pub("reference_epochs"),
        "our epochs": our_epochs,
        "our accuracy (%)": format_mean_std(stats) if stats else "not run",
        "n": stats["n"] if stats else 0,
        "test-set SE (%)": (f"{stats['binomial_se_pct']:.2f}" if stats and math.isfinite(stats["binomial_se_pct"])
                            else ""),
    }


def short_axis(axis: str) -> str:
    """The axis as tables, captions and evidence name it: kernel_size -> kernel."""
    return axis.replace("_size", "")


def other_axis(axis: str) -> str:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {list(AXES)}, got {axis!r}")
    return AXES[1] if axis == AXES[0] else AXES[0]


TREND_COLUMNS = ["setup", "other_axis", "other_value", "axis", "value", "n", "mean_pct", "std_pct", "sem_pct",
                 "binomial_se_pct"]


def trend(runs: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Accuracy statistics per setup, per value of the other axis, per value of ``axis``.

    e.g. axis="kernel_size": rows (setup, patch_size=p, kernel_size=k) with n, mean,
    std and standard error of test accuracy over seeds, in percent.
    """
    other = other_axis(axis)
    done = prepare(runs)
    rows = []
    for (label, o, v), sub in done.groupby(["setup", other, axis], sort=True):
        rows.append({"setup": label, "other_axis": other, "other_value": o, "axis": axis, "value": v,
                     **_pct_stats(sub["test_accuracy"], sub["test_images"])})
    return pd.DataFrame(rows, columns=TREND_COLUMNS)


def trend_setups(runs: pd.DataFrame, axis: str) -> dict[str, pd.DataFrame]:
    """Setups that can show a trend along ``axis``: some line (other axis fixed) has two or more values."""
    other = other_axis(axis)
    return {label: sub for label, sub in comparable_groups(runs).items()
            if (sub.groupby(other)[axis].nunique() >= 2).any()}


def no_trend_reason(runs: pd.DataFrame, axis: str) -> str:
    """Why no comparison along ``axis`` exists (for when ``trend_setups`` is empty)."""
    if prepare(runs).empty:
        return "there are no completed runs"
    return (f"no setup has completed runs at two or more {short_axis(axis)} sizes with the "
            f"{short_axis(other_axis(axis))} size held fixed")


def published_trend_series(runs: pd.DataFrame, reference: dict) -> list[dict]:
    """Lines for plots.published_trends_figure: ours per setup and line, the paper's, the reference report's."""
    series = []
    stats_by_axis = {axis: trend(runs, axis) for axis in AXES}
    for axis in AXES:
        other = other_axis(axis)
        for (label, o), line in stats_by_axis[axis].groupby(["setup", "other_value"], sort=True):
            if line["value"].nunique() >= 2:
                series.append({"axis": axis, "kind": "ours", "x": list(line["value"]), "y": list(line["mean_pct"]),
                               "label": f"setup {label}, {short_axis(other)} {o}"})
        ref = reference["accuracy"]
        for o, sub in ref.groupby(other) if not ref.empty else []:
            if sub[axis].nunique() >= 2:
                series.append({"axis": axis, "kind": "paper", "x": list(sub[axis]), "y": list(sub["paper_accuracy"]),
                               "label": f"{short_axis(other)} {o}, {int(sub['paper_epochs'].iloc[0])} epochs"})
        for (e, o), sub in ref.groupby(["reference_epochs", other]) if not ref.empty else []:
            if sub[axis].nunique() >= 2:
                series.append({"axis": axis, "kind": "reference report", "x": list(sub[axis]),
                               "y": list(sub["reference_accuracy"]), "label": f"{short_axis(other)} {o}, {e} epochs"})
    return series


def paper_points(setup_runs: pd.DataFrame, reference: dict) -> pd.DataFrame:
    """The paper's accuracies for a setup's architecture (empty unless it is the paper's width/depth)."""
    ref = reference["accuracy"]
    if setup_runs.empty or ref.empty:
        return ref.iloc[0:0]
    w, d = setup_runs["width"].iloc[0], setup_runs["depth"].iloc[0]
    return ref[(ref["width"] == w) & (ref["depth"] == d)].reset_index(drop=True)


def recipes_table() -> pd.DataFrame:
    """The named recipes side by side (one column per recipe), including the Keras weight decay used."""
    import dataclasses

    table = {name: {**dataclasses.asdict(r), "keras AdamW weight_decay": r.keras_weight_decay}
             for name, r in RECIPES.items()}
    frame = pd.DataFrame(table).drop(index="name")
    return frame.rename_axis("field").reset_index().astype(str)


# --------------------------------------------------------------------------- verdicts

# How a verdict is reached, stated once for the evidence and the note under the verdict table.
VERDICT_RULE = (
    "Each setup (runs that differ only in kernel size, patch size and seed) is one unit of evidence. Its runs' "
    "test accuracies (percent) are fitted by ordinary least squares, accuracy ~ C(kernel) + C(patch), with a seed "
    "block where every seed ran in every cell (statsmodels). A claim's effect in a setup is the difference between "
    "the largest and the smallest level of its axis, with a 95% confidence interval and a two-sided p-value on the "
    "model's residual degrees of freedom; the p-values of one claim's setups are Holm-adjusted together. A setup is "
    "consistent with the claim (or contradicts it) when its adjusted p < 0.05 and the effect has the claimed (or "
    "the opposite) sign, and inconclusive otherwise. A claim's verdict is that of its lead setup: the longest "
    "training that converged (learning rate ended at 0 and the mean test-accuracy curve moved less than 1 point "
    "over the last 20% of epochs), else the longest training. On synthetic tables of this grid's shape with no "
    "effect, the rule calls a claim consistent in under 5% of draws (tests/test_inference.py)."
)
CONVERGENCE_WINDOW, CONVERGENCE_POINTS = 0.2, 1.0


def regime(setup_runs: pd.DataFrame) -> str:
    """The regime a verdict holds in, in words: model, epochs, recipe, data and seeds."""
    first = setup_runs.iloc[0]
    seeds = setup_runs["seed"].nunique()
    images = first.get("train_images")
    subset = (f" on a {int(images):,}-image training subset" if not pd.isna(first.get("train_subset"))
              and not pd.isna(images) else "")
    if setup_runs["lossy_jpeg"].map(lambda v: v is True).all():
        data = "the JPEG copy of CIFAR-10"
    elif str(first.get("data") or "").startswith("synthetic"):
        data = "synthetic data"
    else:
        data = "CIFAR-10"
    return (f"{model_name(first)} after {first['epochs']} epochs of the {first['recipe']} recipe{subset} on {data} "
            f"({seeds} seed{'s' if seeds != 1 else ''})")


ARCHITECTURE_NAMES = {"convmixer": "ConvMixer", "resnet": "ResNet", "vit": "ViT", "mlp_mixer": "MLP-Mixer"}


def _hyperparameters(row) -> dict:
    value = row.get("hyperparameters")
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value) if isinstance(value, str) and value else {}
    except ValueError:
        return {}


def model_name(row) -> str:
    """ConvMixer-64/4, or a baseline with the hyperparameters that set its size."""
    arch = row.get("architecture") or "convmixer"
    if arch == "convmixer":
        return f"ConvMixer-{row['width']}/{row['depth']}"
    hp = _hyperparameters(row)
    patch = f", patch {row['patch_size']}" if not pd.isna(row.get("patch_size")) else ""
    if arch == "resnet":
        return f"ResNet-{6 * hp.get('blocks_per_stage', 0) + 2} (width {hp.get('width')})"
    if arch == "vit":
        return (f"ViT-{hp.get('dim')}/{hp.get('depth')} ({hp.get('heads')} heads, MLP ratio "
                f"{hp.get('mlp_ratio')}{patch})")
    return (f"MLP-Mixer-{hp.get('dim')}/{hp.get('depth')} (token MLP {hp.get('token_mlp_dim')}, channel MLP "
            f"{hp.get('channel_mlp_dim')}{patch})")


def cell_name(row) -> str:
    """A model as one cell of a comparison: ConvMixer-64/4 p2 k9, or the baseline's name."""
    if (row.get("architecture") or "convmixer") == "convmixer":
        return f"{model_name(row)} p{row['patch_size']} k{row['kernel_size']}"
    return model_name(row)


def parameter_count(row) -> int | None:
    from .models.baselines import count_model_parameters

    arch = row.get("architecture") or "convmixer"
    if arch == "convmixer":
        hp = {k: int(row[k]) for k in ("width", "depth", "patch_size", "kernel_size")}
    else:
        hp = _hyperparameters(row) | ({"patch_size": int(row["patch_size"])}
                                      if not pd.isna(row.get("patch_size")) else {})
    try:
        return count_model_parameters(arch, hp)
    except (ValueError, TypeError):
        return None


def _history(path) -> pd.DataFrame | None:
    from . import records

    try:
        return pd.read_csv(Path(str(path)) / records.HISTORY)
    except (OSError, ValueError):
        return None


def convergence(setup_runs: pd.DataFrame) -> dict:
    """Whether a setup's training finished: the learning rate ended at 0 and, in every cell, the mean (over
    seeds) held-out accuracy moved less than CONVERGENCE_POINTS over the last CONVERGENCE_WINDOW of epochs."""
    moves, lr_zero = [], True
    for _, cell in setup_runs.groupby(["patch_size", "kernel_size"]):
        curves = []
        for path in cell["path"]:
            h = _history(path)
            column = next((c for c in ("test_accuracy", "val_accuracy") if h is not None and c in h), None)
            if column is None:
                return {"converged": False, "lr_ends_at_zero": None, "last_move_points": None,
                        "text": "no learning curve recorded"}
            curves.append(100 * h[column].to_numpy(dtype=float))
            lr_zero &= bool(abs(float(h["lr"].iloc[-1])) < 1e-6) if "lr" in h else False
        length = min(len(c) for c in curves)
        mean = np.mean([c[:length] for c in curves], axis=0)
        window = mean[length - 1 - max(1, math.ceil(CONVERGENCE_WINDOW * length)):] if length > 1 else mean
        moves.append(float(window.max() - window.min()))
    move = max(moves) if moves else float("nan")
    converged = lr_zero and move < CONVERGENCE_POINTS
    text = (f"learning rate {'ended at 0' if lr_zero else 'did not end at 0'}; mean held-out accuracy moved "
            f"{move:.2f} points over the last {CONVERGENCE_WINDOW:.0%} of epochs (largest over cells)")
    return {"converged": converged, "lr_ends_at_zero": lr_zero, "last_move_points": move,
            "text": ("converged: " if converged else "not converged: ") + text}


def _inference_frame(setup_runs: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({
        "accuracy": 100 * pd.to_numeric(setup_runs["test_accuracy"], errors="coerce"),
        "kernel_size": setup_runs["kernel_size"].astype(int), "patch_size": setup_runs["patch_size"].astype(int),
        "seed": setup_runs["seed"].astype(int)})
    return frame.dropna(subset=["accuracy"]).reset_index(drop=True)


def _budget_size(setup_runs: pd.DataFrame) -> float:
    images = pd.to_numeric(setup_runs["train_images"], errors="coerce").max()
    return float(setup_runs["epochs"].iloc[0]) * (0 if pd.isna(images) else float(images))


def claim_tests(runs: pd.DataFrame, claim: dict) -> list[dict]:
    """Every setup's test of an axis claim, Holm-adjusted together; the lead setup first."""
    from . import inference

    axis, other = claim["axis"], other_axis(claim["axis"])
    tests = []
    for label, sub in comparable_groups(runs).items():
        frame = _inference_frame(sub)
        if frame.empty or frame[axis].nunique() < 2:
            continue
        result = inference.axis_test(frame, axis, other)
        conv = convergence(sub)
        tests.append({"setup": label, "regime": regime(sub), "n_runs": len(frame), "converged": conv["converged"],
                      "convergence": conv["text"], "budget": _budget_size(sub), "result": result,
                      "low": min(frame[axis]), "high": max(frame[axis])})
    adjusted = inference.holm([t["result"]["p"] if t["result"] else float("nan") for t in tests])
    for t, p_holm in zip(tests, adjusted):
        r = t["result"]
        t["p_holm"] = p_holm
        t["verdict"] = inference.verdict_word(r["effect"], p_holm, claim["sign"]) if r else inference.INCONCLUSIVE
    # The lead: a setup that can test the claim at all, then converged, then the longest training.
    tests.sort(key=lambda t: (t["result"] is None, not t["converged"], -t["budget"], t["setup"]))
    return tests


def _test_line(t: dict, axis: str) -> str:
    r = t["result"]
    head = f"setup {t['setup']} ({t['regime']}; {t['convergence']}): "
    if r is None:
        return head + (f"{short_axis(axis)} {t['low']} → {t['high']}: not estimable (no seed replicates, so the "
                       f"noise is unknown, or the design changes {short_axis(other_axis(axis))} together with it): "
                       f"{t['verdict']}")
    text = (head + f"{short_axis(axis)} {r['low']} → {r['high']}: {r['effect']:+.2f} points "
            f"(95% CI {r['ci_low']:+.2f} to {r['ci_high']:+.2f}; p = {r['p']:.2g}, Holm-adjusted {t['p_holm']:.2g}; "
            f"{r['df']:.0f} residual df; {r['n_runs']} runs): {t['verdict']}")
    if r.get("steps"):
        steps = "; ".join(f"{s['low']} → {s['high']}: {s['effect']:+.2f} (Holm p {s['p_holm']:.2g})"
                          for s in r["steps"])
        slope = r.get("slope")
        trend_text = (f" Linear trend {slope['slope']:+.2f} points per {short_axis(axis)} step of 1 "
                      f"(95% CI {slope['ci_low']:+.2f} to {slope['ci_high']:+.2f}, p = {slope['p']:.2g})."
                      if slope else "")
        text += f". Adjacent sizes: {steps}.{trend_text}"
    return text


def _axis_verdict(runs: pd.DataFrame, claim: dict) -> dict:
    from . import inference

    tests = claim_tests(runs, claim)
    if not tests:
        return {"verdict": inference.NOT_TESTED, "evidence": f"Not tested: {no_trend_reason(runs, claim['axis'])}.",
                "regime": None, "setups": [], "tests": []}
    lead = tests[0]
    r = lead["result"] or {}
    summary = f"{lead['verdict']} for {lead['regime']}"
    if r:
        summary += (f": {short_axis(claim['axis'])} {r['low']} → {r['high']} changes accuracy by "
                    f"{r['effect']:+.2f} points (95% CI {r['ci_low']:+.2f} to {r['ci_high']:+.2f}, Holm-adjusted "
                    f"p = {lead['p_holm']:.2g})")
    others = [f"{t['verdict']} for {t['regime']}" for t in tests[1:]]
    if others:
        summary += ". Other regimes: " + "; ".join(others)
    lines = [summary + ".", *[_test_line(t, claim["axis"]) for t in tests]]
    return {"verdict": lead["verdict"], "evidence": "\n".join(lines), "regime": lead["regime"],
            "setups": [t["setup"] for t in tests], "tests": tests}


# Fields that say which model a run trained; every other setup field is its training regime.
MODEL_FIELDS = ["architecture", "hyperparameters", "width", "depth", "patch_size", "kernel_size", "activation"]
REGIME_FIELDS = [f for f in SETUP_FIELDS if f not in MODEL_FIELDS]
CLAIM1_SCOPE = (
    "This is CIFAR-10 at about 40k parameters and a CPU budget; the paper's claim 1 is mainly about "
    "ImageNet-scale models, which a small-CIFAR result can neither confirm nor refute, only illustrate.")


def architecture_regimes(runs: pd.DataFrame) -> list[dict]:
    """Training regimes (every setup field but the model's) that hold ConvMixer and baseline runs.

    In each, the ConvMixer compared is fixed before looking at any accuracy: the
    paper's headline cell, the smallest patch and, at that patch, the largest
    kernel. Each baseline is contrasted with it (``inference.group_contrasts``) and
    the baselines' p-values are Holm-adjusted together.
    """
    from . import inference

    done = prepare(runs, architecture=None)
    out = []
    if done.empty:
        return out
    keys = [tuple(_clean(r[f]) for f in REGIME_FIELDS) for _, r in done.iterrows()]
    done["regime_key"] = [json.dumps(k, default=str) for k in keys]
    for _, sub in done.groupby("regime_key", sort=True):
        conv = sub[sub["architecture"] == "convmixer"]
        base = sub[sub["architecture"] != "convmixer"]
        if conv.empty or base.empty:
            continue
        patch = min(conv["patch_size"])
        kernel = max(conv[conv["patch_size"] == patch]["kernel_size"])
        ref_runs = conv[(conv["patch_size"] == patch) & (conv["kernel_size"] == kernel)]
        cells = pd.concat([ref_runs, base])
        names = [cell_name(r) for _, r in cells.iterrows()]
        frame = pd.DataFrame({"group": names, "seed": cells["seed"].astype(int).to_numpy(),
                              "accuracy": 100 * pd.to_numeric(cells["test_accuracy"], errors="coerce").to_numpy()})
        reference = cell_name(ref_runs.iloc[0])
        contrasts = inference.group_contrasts(frame.dropna(), reference) or {}
        baselines = sorted(set(names) - {reference})
        adjusted = inference.holm([contrasts[b]["p"] if b in contrasts else float("nan") for b in baselines])
        tests = []
        for name, p_holm in zip(baselines, adjusted):
            r = contrasts.get(name)
            tests.append({"baseline": name, "result": r, "p_holm": p_holm, "n_runs": int((frame["group"] == name).sum()),
                          "verdict": inference.verdict_word(r["effect"], p_holm, +1) if r else inference.INCONCLUSIVE})
        first = ref_runs.iloc[0]
        seeds = cells["seed"].nunique()
        regime = (f"{reference} against size-matched baselines after {first['epochs']} epochs of the "
                  f"{first['recipe']} recipe on {'the JPEG copy of CIFAR-10' if first['lossy_jpeg'] is True else 'CIFAR-10'} "
                  f"({seeds} seed{'s' if seeds != 1 else ''}, the same recipe, budget, data, seeds and training loop)")
        out.append({"reference": reference, "regime": regime, "tests": tests, "runs": cells,
                    "converged": convergence(ref_runs)["converged"], "budget": _budget_size(ref_runs),
                    "n_runs": len(frame)})
    out.sort(key=lambda r: (not r["converged"], -r["budget"]))
    return out


def _architecture_verdict(runs: pd.DataFrame) -> dict:
    from . import inference

    regimes = architecture_regimes(runs)
    if not regimes:
        done = prepare(runs, architecture=None)
        others = sorted(set(done["architecture"]) - {"convmixer"}) if not done.empty else []
        reason = ("Not tested: every completed run is a ConvMixer, so there is no ViT, MLP-Mixer or ResNet run to "
                  "compare against." if not others else
                  f"Not tested: runs of {', '.join(others)} exist, but none shares a training regime with a ConvMixer.")
        return {"verdict": inference.NOT_TESTED, "evidence": reason, "regime": None, "setups": [], "tests": []}
    lead = regimes[0]
    words = [t["verdict"] for t in lead["tests"]]
    if inference.CONTRADICTS in words:
        verdict = inference.CONTRADICTS
    elif words and all(w == inference.CONSISTENT for w in words):
        verdict = inference.CONSISTENT
    else:
        verdict = inference.INCONCLUSIVE
    lines = []
    for t in lead["tests"]:
        r = t["result"]
        lines.append(f"{lead['reference']} minus {t['baseline']}: " + (
            f"{r['effect']:+.2f} points (95% CI {r['ci_low']:+.2f} to {r['ci_high']:+.2f}; Holm-adjusted p = "
            f"{t['p_holm']:.2g}; {r['df']:.0f} residual df): {t['verdict']}" if r else
            f"not estimable (no seed replicates): {t['verdict']}"))
    head = (f"{verdict} for {lead['regime']}: ConvMixer must beat every baseline for the claim to hold here. "
            + CLAIM1_SCOPE)
    tests = [{"setup": t["baseline"], "regime": lead["regime"], "converged": lead["converged"], "low": t["baseline"],
              "high": lead["reference"], "result": t["result"], "p_holm": t["p_holm"], "verdict": t["verdict"],
              "n_runs": t["n_runs"]} for t in lead["tests"]]
    return {"verdict": verdict, "evidence": "\n".join([head, *lines]), "regime": lead["regime"],
            "setups": [lead["reference"]] + [t["baseline"] for t in lead["tests"]], "tests": tests}


def architectures_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Claim 1's models side by side: hyperparameters, parameters (computed here), speed and accuracy."""
    columns = ["model", "architecture", "hyperparameters", "parameters (computed here)", "epochs", "recipe",
               "seconds per epoch", "our accuracy (%)", "n", "test-set SE (%)"]
    rows = []
    for regime in architecture_regimes(runs):
        for name, sub in regime["runs"].groupby(regime["runs"].apply(cell_name, axis=1), sort=False):
            first = sub.iloc[0]
            stats = _pct_stats(sub["test_accuracy"], sub["test_images"])
            hp = (f"width {first['width']}, depth {first['depth']}, patch {first['patch_size']}, kernel "
                  f"{first['kernel_size']}" if first["architecture"] == "convmixer" else
                  ", ".join(f"{k} {v}" for k, v in (_hyperparameters(first) | (
                      {"patch_size": first["patch_size"]} if not pd.isna(first["patch_size"]) else {})).items()))
            count = parameter_count(first)
            rows.append({"model": name, "architecture": ARCHITECTURE_NAMES.get(first["architecture"]),
                         "hyperparameters": hp, "parameters (computed here)": f"{count:,}" if count else "?",
                         "epochs": first["epochs"], "recipe": first["recipe"],
                         "seconds per epoch": round(pd.to_numeric(sub["seconds_per_epoch"], errors="coerce").min(), 1),
                         "our accuracy (%)": format_mean_std(stats), "n": stats["n"],
                         "test-set SE (%)": f"{stats['binomial_se_pct']:.2f}"})
    return pd.DataFrame(rows, columns=columns)


VERDICT_COLUMNS = ["claim", "verdict", "evidence", "anchor", "id", "regime", "setups", "tests"]


def verdicts(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per claim of ``CLAIMS``: verdict, its regime, the evidence as text, and the anchor that carries it."""
    rows = []
    for claim in CLAIMS:
        result = _architecture_verdict(runs) if "axis" not in claim else _axis_verdict(runs, claim)
        rows.append({"claim": claim["claim"], **result, "anchor": claim["anchor"], "id": claim["id"]})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def _json_number(value):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else round(float(value), 6)


def claims_json(runs: pd.DataFrame, table: pd.DataFrame | None = None) -> dict:
    """The verdicts as data (``claims.json`` beside the report): one entry per claim, every setup's test under it."""
    table = verdicts(runs) if table is None else table
    entries = []
    for row in table.itertuples(index=False):
        tests = []
        for t in row.tests:
            r = t["result"] or {}
            tests.append({"setup": t["setup"], "regime": t["regime"], "verdict": t["verdict"],
                          "converged": bool(t["converged"]), "low": _clean(t["low"]), "high": _clean(t["high"]),
                          "effect": _json_number(r.get("effect")), "ci_low": _json_number(r.get("ci_low")),
                          "ci_high": _json_number(r.get("ci_high")), "p": _json_number(r.get("p")),
                          "p_holm": _json_number(t["p_holm"]), "df": _json_number(r.get("df")),
                          "n_runs": int(t["n_runs"])})
        lead = tests[0] if tests else {}
        regime = row.regime if isinstance(row.regime, str) else None  # None turns NaN inside a DataFrame
        entries.append({"id": row.id, "claim": row.claim, "verdict": row.verdict, "regime": regime,
                        "setups": list(row.setups), "effect": lead.get("effect"), "ci_low": lead.get("ci_low"),
                        "ci_high": lead.get("ci_high"), "p": lead.get("p_holm"),
                        "n_runs": lead.get("n_runs", 0), "tests": tests})
    return {"rule": VERDICT_RULE, "claims": entries}


# --------------------------------------------------------------------------- cost

def run_load(path) -> dict:
    """A run's 1-minute load average at start and end of training and its machine's core count.

    Read from the run's metrics.json (older runs have no ``load_average``); missing values are None.
    """
    from . import records

    try:
        metrics = records.read_json(Path(str(path)) / records.METRICS)
        start, end = (metrics.get("load_average") or [None, None])[:2]
        cores = (metrics.get("device") or {}).get("cpu_count")
    except (OSError, ValueError, TypeError, AttributeError):
        return {"start": None, "end": None, "cpu_count": None}
    return {"start": start, "end": end, "cpu_count": cores}


def _busy(load: dict) -> bool | None:
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
    training started and ended (see ``load_sentence``).
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


def load_sentence(runs: pd.DataFrame) -> str:
    """The note under the cost table: what the load average means and how many runs were timed on a busy machine."""
    done = prepare(runs)
    busy = [_busy(run_load(path)) for path in done["path"]] if not done.empty else []
    known = [b for b in busy if b is not None]
    counted = (f"{sum(known)} of the {len(known)} runs that recorded it started or ended above it"
               if known else "no run here recorded its load")
    return ("Timings taken while the machine's load average exceeded its core count were slowed by other work, "
            f"so they are slower than the hardware allows ({counted}).")


def reference_marks(reference: dict) -> pd.DataFrame:
    """The reference report's seconds-per-epoch marks with the labels the cost figure draws."""
    t = reference["timings"].copy()
    if t.empty:
        return t.assign(label=pd.Series(dtype=str))
    t["label"] = [f"reference report: {kind} ~{s:,.0f} s/epoch" + (f" ({name.split(' (')[0]})" if kind != "CPU" else "")
                  for kind, name, s in zip(t["device_kind"], t["device_name"], t["seconds_per_epoch"])]
    return t


# --------------------------------------------------------------------------- provenance

def _count_by(done: pd.DataFrame, columns: list[str], names: list[str]) -> pd.DataFrame:
    if done.empty:
        return pd.DataFrame(columns=names + ["runs"])
    keyed = done[columns].astype(object).where(done[columns].notna(), "—").astype(str)
    table = keyed.groupby(columns, sort=True).size().reset_index(name="runs")
    return table.set_axis(names + ["runs"], axis=1)


def provenance(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Tables: data sources (with fingerprints and a lossy-JPEG flag), library versions, devices, commits."""
    done = prepare(runs)
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


def dirty_sentence(runs: pd.DataFrame) -> str | None:
    """A warning naming every run whose recorded commit had uncommitted changes ("+dirty"), else None."""
    done = prepare(runs, architecture=None)
    dirty = done[done["git_commit"].astype(str).str.endswith("+dirty")] if not done.empty else done
    if dirty.empty:
        return None
    return (f"{len(dirty)} of {len(done)} completed runs were trained from a working tree with uncommitted "
            f"changes (commit recorded as +dirty), so their code cannot be recovered exactly: "
            f"{', '.join(sorted(dirty['run_id']))}.")


def jpeg_sentence(runs: pd.DataFrame) -> str | None:
    """A plain statement when any run trained on a JPEG (lossy) copy of CIFAR-10, else None."""
    done = prepare(runs)
    lossy = done[done["lossy_jpeg"].map(lambda v: v is True)] if not done.empty else done
    if lossy.empty:
        return None
    sources = sorted({str(s) for s in lossy["dataset_description"].dropna()})
    return (f"{len(lossy)} of {len(done)} completed runs used a JPEG copy of CIFAR-10 ({'; '.join(sources)}). "
            "JPEG is lossy: its pixels differ from the canonical release, so these runs' accuracies are not "
            "strictly comparable with the paper's or with runs on the canonical data.")


def skipped(runs: pd.DataFrame) -> pd.DataFrame:
    """Run folders that are not completed (incomplete, failed, corrupt), with the reason."""
    columns = ["folder", "run id", "status", "reason"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rest = runs[runs["status"] != "completed"]
    return pd.DataFrame({
        "folder": [Path(str(p)).name for p in rest["path"]],
        "run id": rest["run_id"].tolist(),
        "status": rest["status"].tolist(),
        "reason": rest["problem"].fillna("").tolist(),
    }, columns=columns)


# --------------------------------------------------------------------------- text

def scope(runs: pd.DataFrame, results_dir=None) -> str:
    """What the report covers, in one paragraph generated from the data."""
    done = prepare(runs)
    from .records import portable_path

    where = f" in {portable_path(Path(results_dir).resolve())}" if results_dir is not None else ""
    n_skipped = len(runs) - len(done)
    skipped_text = (f" {n_skipped} run folder{'s were' if n_skipped != 1 else ' was'} skipped "
                    "(see Skipped runs)." if n_skipped else "")
    if done.empty:
        return (f"There are no completed runs{where}, so nothing was measured yet: the tables below show only "
                f"the published values and every verdict is “not tested”.{skipped_text}")
    devices = sorted(set(done["device_kind"].dropna().astype(str)))
    epochs = sorted(set(done["epochs"]))
    sizes = sorted({f"ConvMixer-{w}/{d}" for w, d in zip(done["width"], done["depth"])})
    return (f"This report covers {len(done)} completed run{'s' if len(done) != 1 else ''}{where} in "
            f"{done['setup'].nunique()} setup{'s' if done['setup'].nunique() != 1 else ''} "
            f"({', '.join(sizes)}; {', '.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''}; "
            f"trained on {', '.join(devices) or 'unknown devices'}). Published values are for the paper's "
            f"ConvMixer-{PAPER_WIDTH_DEPTH[0]}/{PAPER_WIDTH_DEPTH[1]} and their own schedules; trends here are "
            f"compared within a setup only.{skipped_text}")


def _data_words(setup_runs: pd.DataFrame) -> str:
    """What a setup trained on, in words; the JPEG copy is named as such because it lowers accuracy."""
    if setup_runs["lossy_jpeg"].map(lambda v: v is True).all():
        return "JPEG copy of CIFAR-10 (lossy)"
    sources = sorted({str(s) for s in setup_runs["dataset_description"].dropna()})
    return "; ".join(sources) or "unknown data"


def _devices(setup_runs: pd.DataFrame) -> str:
    kinds, names = (setup_runs[c].fillna("?").astype(str) for c in ("device_kind", "device_name"))
    return ", ".join(sorted(set(kinds + " (" + names + ")")))


def setup_facts(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(setup label, "budget; data: ...; device: ...") for each setup, in plain words (report and README)."""
    done = prepare(runs)
    return [(label, f"{sub['setup_description'].iloc[0]}; data: {_data_words(sub)}; device: {_devices(sub)}.")
            for label, sub in done.groupby("setup", sort=True)]


def published_comparison(runs: pd.DataFrame, reference: dict) -> str:
    """How our accuracy levels stand against the published ones, in plain words, from the data.

    A like-for-like row (same model, patch, kernel and epochs as a reference-report
    row, the same recipe family) is named with both numbers; otherwise the text says
    that no run matches and compares the best cell here with the published range.
    """
    done = prepare(runs)
    if done.empty:
        return ""
    cells = (done.groupby(["setup", "width", "depth", "patch_size", "kernel_size", "epochs", "recipe"])
             ["test_accuracy"].agg(["mean", "count"]).reset_index())
    published = pd.DataFrame(reference.get("accuracy", []))
    matches = []
    for _, c in cells.iterrows():
        hit = published[(published["width"] == c["width"]) & (published["depth"] == c["depth"])
                        & (published["patch_size"] == c["patch_size"])
                        & (published["kernel_size"] == c["kernel_size"])
                        & (published["reference_epochs"] == c["epochs"])] if not published.empty else published
        if c["recipe"] == "seed" and not hit.empty:  # the reference report trained the seed recipe
            matches.append(f"setup {c['setup']}'s ConvMixer-{c['width']}/{c['depth']} p{c['patch_size']} "
                           f"k{c['kernel_size']} at {c['epochs']} epochs reaches {100 * c['mean']:.2f}% "
                           f"(n={c['count']}) where the reference report measured "
                           f"{hit['reference_accuracy'].iloc[0]:.2f}%")
    best = cells.loc[cells["mean"].idxmax()]
    text = (f"The best cell here is setup {best['setup']}'s ConvMixer-{best['width']}/{best['depth']} "
            f"p{best['patch_size']} k{best['kernel_size']} at {100 * best['mean']:.2f}% after {best['epochs']} "
            f"epochs.")
    if not published.empty:
        text += (f" Published ConvMixer-256/8 values are {published['paper_accuracy'].min():.2f}-"
                 f"{published['paper_accuracy'].max():.2f}% in the paper (200 epochs) and "
                 f"{published['reference_accuracy'].min():.2f}-{published['reference_accuracy'].max():.2f}% in "
                 f"the reference report ({published['reference_epochs'].min()}-"
                 f"{published['reference_epochs'].max()} epochs): levels differ with the budget, so the claims "
                 "are judged on trends within one setup.")
    if matches:
        text += " Like for like: " + "; ".join(matches) + "."
    else:
        text += (" No run here matches a reference-report row's model, patch, kernel and epochs, so no level is "
                 "compared like for like.")
    return text


REPRODUCED, NOT_REPRODUCED, NOT_TESTED_ONE_SEED = "approximately reproduced", "not reproduced", "not tested (one seed)"


def reproductions(runs: pd.DataFrame, reference: dict) -> list[dict]:
    """Like-for-like rows with the reference report: same model, patch, kernel and epochs, its (seed) recipe.

    The reference report published one run per row, so its value is one draw:
    the row is "approximately reproduced" when that value lies inside the 95%
    prediction interval for one more run from our seeds (scipy's t quantile),
    "not reproduced" when outside, and not tested with fewer than two seeds.
    """
    from .inference import prediction_interval

    done = prepare(runs)
    published = pd.DataFrame(reference.get("accuracy", []))
    if done.empty or published.empty:
        return []
    out = []
    cells = done[done["recipe"] == "seed"].groupby(["setup", "width", "depth", "patch_size", "kernel_size", "epochs"])
    for (label, w, d, p, k, e), sub in cells:
        hit = published[(published["width"] == w) & (published["depth"] == d) & (published["patch_size"] == p)
                        & (published["kernel_size"] == k) & (published["reference_epochs"] == e)]
        if hit.empty or sub["train_subset"].notna().any():
            continue
        values = 100 * pd.to_numeric(sub["test_accuracy"], errors="coerce").dropna()
        low, high = prediction_interval(values)
        ref = float(hit["reference_accuracy"].iloc[0])
        verdict = NOT_TESTED_ONE_SEED if len(values) < 2 else (REPRODUCED if low <= ref <= high else NOT_REPRODUCED)
        out.append({"setup": label, "model": f"ConvMixer-{w}/{d}", "patch_size": p, "kernel_size": k, "epochs": e,
                    "n": len(values), "mean": float(values.mean()), "pi_low": low, "pi_high": high,
                    "reference": ref, "verdict": verdict})
    return out


def reproduction_sentences(runs: pd.DataFrame, reference: dict) -> list[str]:
    return [f"ConvMixer-{r['model'].split('-')[1]} p{r['patch_size']} k{r['kernel_size']}, {r['epochs']} epochs of "
            f"the seed recipe (setup {r['setup']}): {r['verdict']}. Ours {r['mean']:.2f}% over {r['n']} "
            f"seed{'s' if r['n'] != 1 else ''}" + (f" (95% prediction interval for one run {r['pi_low']:.2f}-"
                                                  f"{r['pi_high']:.2f}%)" if r["n"] > 1 else "")
            + f"; the reference report's single run {r['reference']:.2f}%."
            for r in reproductions(runs, reference)]


def reference_report_observations(reference: dict) -> list[str]:
    """What the reference report's own published table shows, computed from reference.yaml."""
    ref = pd.DataFrame(reference.get("accuracy", []))
    if ref.empty:
        return []
    out = []
    budgets = sorted(ref["reference_epochs"].dropna().astype(int).unique())
    if len(budgets) > 1:
        out.append(f"Its accuracy table mixes training budgets ({', '.join(map(str, budgets))} epochs) in one "
                   "comparison, so rows of different budgets cannot be compared with each other.")
    for (e, p), sub in ref.groupby(["reference_epochs", "patch_size"]):
        sub = sub.sort_values("kernel_size")
        for (_, a), (_, b) in zip(sub.iterrows(), list(sub.iterrows())[1:]):
            if b["reference_accuracy"] < a["reference_accuracy"]:
                out.append(f"At {int(e)} epochs and patch {int(p)} its kernel {int(a['kernel_size'])} "
                           f"({a['reference_accuracy']:.2f}%) is above kernel {int(b['kernel_size'])} "
                           f"({b['reference_accuracy']:.2f}%), against its own reading of the kernel claim.")
    for e, sub in ref.groupby("reference_epochs"):
        if len(sub) == 2 and sub["patch_size"].nunique() == 2 and sub["kernel_size"].nunique() == 2:
            a, b = sub.iloc[0], sub.iloc[1]
            out.append(f"Its {int(e)}-epoch pair (patch {int(a['patch_size'])} kernel {int(a['kernel_size'])} vs "
                       f"patch {int(b['patch_size'])} kernel {int(b['kernel_size'])}) changes patch and kernel "
                       "together, so it cannot separate the two effects.")
    out.append("Each of its rows is a single run, so none carries an estimate of seed-to-seed noise.")
    return out


def grid_coverage(runs: pd.DataFrame, grids_dir) -> pd.DataFrame:
    """Per shipped grid file: its description, planned runs and how many have a completed record here."""
    from .sweep import SweepError, load_grid

    import yaml

    columns = ["grid", "description", "planned runs", "completed here"]
    grids_dir = Path(grids_dir)
    files = sorted(grids_dir.glob("*.yaml")) + sorted(grids_dir.glob("*.yml")) if grids_dir.is_dir() else []
    done_ids = set(prepare(runs)["run_id"]) if not runs.empty else set()
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


def lessons(runs: pd.DataFrame, grids: pd.DataFrame | None = None) -> list[str]:
    """Section 7's statements: fixed facts of the method, and conditional ones checked against the data."""
    done = prepare(runs)
    seed = RECIPES["seed"]
    out = []
    kinds = set(done["device_kind"].dropna().astype(str)) if not done.empty else set()
    if done.empty:
        out.append("Budget: no completed runs were found, so no statement about speed or accuracy can be made yet.")
    elif kinds <= {"CPU"}:
        out.append(f"Budget: all {len(done)} completed runs trained on CPU, so the budget allowed only short "
                   "schedules and/or small models; the paper's full-schedule numbers are out of reach at this "
                   "budget, so the comparison is about trends, not levels.")
    else:
        counts = done["device_kind"].value_counts()
        out.append("Budget: runs trained on " + ", ".join(f"{k} ({v} runs)" for k, v in counts.items()) + ".")
    sentence = jpeg_sentence(runs)
    out.append("Data: " + (sentence if sentence else (
        "no completed run used a JPEG copy of CIFAR-10." if not done.empty else
        "the loader accepts the canonical archive and also image-folder copies; a JPEG copy is lossy, and "
        "the report says so whenever a run used one.")))
    out.append("Augmentation: the official recipe's steps (random resized crop, flip, RandAugment, colour "
               "jitter, random erasing) are torchvision's, per image, computed on whole batches in numpy with "
               "Pillow's arithmetic (each step is tested pixel for pixel against Pillow); only the random draws "
               "differ (numpy generators seeded per seed, epoch and batch).")
    out.append(f"Optimizer: TF Addons' AdamW (used by the reference report) is end-of-life; its decoupled "
               f"weight decay {seed.weight_decay:g} is not multiplied by the learning rate, Keras 3's is, so the "
               f"seed recipe passes weight_decay = {seed.weight_decay:g} / {seed.lr:g} = "
               f"{seed.keras_weight_decay:g} to keras.optimizers.AdamW (exact for its constant learning rate).")
    if grids is not None and not grids.empty:
        planned = int(grids["planned runs"].fillna(0).sum())
        have = int(grids["completed here"].fillna(0).sum())
        missing = grids[grids["completed here"].fillna(0) < grids["planned runs"].fillna(0)]["grid"].tolist()
        out.append(f"Going further: {have} of the {planned} runs planned by the shipped grids have completed "
                   "records here" + (f"; not (fully) run: {', '.join(missing)}. Run them with "
                                     "`python -m convmixer sweep grids/NAME.yaml` on a machine that fits each grid's "
                                     "description below, then rebuild this report with "
                                     "`python -m convmixer report`." if missing else "; every grid is complete."))
    else:
        out.append("Going further: no grid files were found next to the package; add runs with "
                   "`python -m convmixer train ...` or `python -m convmixer sweep GRID` and rebuild the report.")
    return out
