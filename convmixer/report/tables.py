"""The report's accuracy tables: setups, original versus reproduction, trends, claim 1's models, skipped runs.

Our accuracies are means ± sample std over seeds in percent, with the test-set
noise floor (the binomial standard error of one run); published values come
from ``runs.load_reference`` and are attached where the model matches.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..models.convmixer import count_parameters
from .anchors import override_words
from .names import ARCHITECTURE_NAMES, hyperparameters, recipe_name
from .stats import binomial_se_pct
from .runs import AXES, comparable_groups, other_axis, prepare, short_axis
from .verdicts import architecture_regimes
from .wording import MATCHINGS


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


def _pct_stats(acc, test_images=None) -> dict:
    """Mean, sample std and standard error of accuracies, in percent (std/sem NaN for n=1), and the
    test-set noise floor: the binomial standard error of one run's accuracy on ``test_images`` images."""
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
        "patch": table["patch"], "kernel": table["kernel"], "recipe": table["recipe"].map(recipe_name),
        "epochs": table["our epochs"],
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


ISA_WORDS = {"avx512f": "AVX-512", "avx2": "AVX2", "avx": "AVX"}


def _cpu_words(cost: dict) -> str:
    """'2 cores of an AVX-512 CPU': the machine a cost was measured on, as the reader compares it with theirs."""
    isa = ISA_WORDS.get(cost.get("isa"), cost.get("isa"))
    cpu = f"an {isa} CPU" if isa else "a CPU"  # every vector extension's name starts with "A"
    return f"{cost['cores']} cores of {cpu}" if cost.get("cores") else cpu


def like_for_like_table(rows: list[dict]) -> pd.DataFrame:
    """``anchors.like_for_like`` as the report shows it: the published run, ours, the verdict (or the cost)."""
    out = []
    for r in rows:
        verdict = r["verdict"]
        if r["n"] == 0:
            cost = r["cost"]
            hours = (f"about {cost['hours']:.1f} hours of training (wall clock) on {_cpu_words(cost)} "
                     f"({cost['images_per_second']:.1f} "
                     f"training images/s measured by bench, {cost['measured']})" if cost else None)
            if r.get("in_progress"):
                verdict = f"not run yet (unfinished, resumable: {r['in_progress']})" + (
                    f"; a run takes {hours}" if hours else "")
            else:
                verdict += f": {hours}" if hours else ": cost not yet measured here"
                if r["planned"]:
                    verdict += "; planned in " + ", ".join(f"grids/{g}" for g in r["planned"])
        else:
            verdict += f" ({r['difference']:+.2f} points)" if r["n"] > 1 else ""
            if r.get("in_progress"):
                verdict += f"; unfinished, resumable: {r['in_progress']}"
        ours = "—" if r["n"] == 0 else (f"{r['mean']:.2f}" + (f" ± {r['sd']:.2f}" if r["n"] > 1 else ""))
        out.append({
            "published run": f"{r['source_name']}: {r['published']:.2f}",
            "setting": r["setting"], "setup": r["setup"] or "—",
            "ours (%)": ours + (" (JPEG copy)" if r["jpeg"] else ""), "n": r["n"],
            "95% PI, one run (%)": f"{r['pi_low']:.2f}-{r['pi_high']:.2f}" if r["n"] > 1 else "—",
            "verdict": verdict,
        })
    return pd.DataFrame(out, columns=["published run", "setting", "setup", "ours (%)", "n", "95% PI, one run (%)",
                                      "verdict"])


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


def architectures_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Claim 1's models side by side: hyperparameters, parameters and multiply-adds per image (both computed
    from the architecture), speed and accuracy. Every ConvMixer a matching pairs with a baseline is listed."""
    columns = ["model", "architecture", "hyperparameters", "parameters (computed here)",
               "multiply-adds per image (computed here)", "epochs", "recipe", "seconds per epoch", "our accuracy (%)",
               "n", "test-set SE (%)", "last-epoch train accuracy (%)"]
    rows = []
    for regime in architecture_regimes(runs):
        for name, sub in regime["models"].items():
            first = sub.iloc[0]
            stats = _pct_stats(sub["test_accuracy"], sub["test_images"])
            count, macs = regime["sizes"][name]["parameters"], regime["sizes"][name]["macs"]
            rows.append({"model": name, "architecture": ARCHITECTURE_NAMES.get(first["architecture"]),
                         "hyperparameters": _hyperparameter_text(first),
                         "parameters (computed here)": f"{count:,}" if count else "?",
                         "multiply-adds per image (computed here)": f"{macs:,}" if macs else "?",
                         "epochs": first["epochs"], "recipe": recipe_name(first["recipe"]),
                         "seconds per epoch": round(pd.to_numeric(sub["seconds_per_epoch"], errors="coerce").min(), 1),
                         "our accuracy (%)": format_mean_std(stats), "n": stats["n"],
                         "test-set SE (%)": f"{stats['binomial_se_pct']:.2f}",
                         "last-epoch train accuracy (%)": _last_train_accuracy(sub)})
    return pd.DataFrame(rows, columns=columns)


def _hyperparameter_text(first) -> str:
    if first["architecture"] == "convmixer":
        return (f"width {first['width']}, depth {first['depth']}, patch {first['patch_size']}, kernel "
                f"{first['kernel_size']}")
    patch = {"patch_size": first["patch_size"]} if not pd.isna(first["patch_size"]) else {}
    return ", ".join(f"{k} {v}" for k, v in (hyperparameters(first) | patch).items())


def architecture_contrasts_table(regime: dict) -> pd.DataFrame:
    """One regime's claim-1 contrasts under every matching (``wording.MATCHINGS``): which ConvMixer each
    baseline meets, both models' multiply-adds per image, the margin with its interval, and the verdict."""
    columns = ["matching", "ConvMixer", "baseline", "ConvMixer multiply-adds", "baseline multiply-adds",
               "ConvMixer minus baseline (points)", "95% CI", "Holm p", "verdict"]
    rows = []
    for kind, tests in regime["matchings"].items():
        for t in tests:
            r = t["result"]
            rows.append({"matching": MATCHINGS[kind], "ConvMixer": t["convmixer"], "baseline": t["baseline"],
                         "ConvMixer multiply-adds": f"{t['convmixer_macs']:,}" if t["convmixer_macs"] else "?",
                         "baseline multiply-adds": f"{t['baseline_macs']:,}" if t["baseline_macs"] else "?",
                         "ConvMixer minus baseline (points)": f"{r['effect']:+.2f}" if r else "—",
                         "95% CI": f"{r['ci_low']:+.2f} to {r['ci_high']:+.2f}" if r else "not estimable",
                         "Holm p": f"{t['p_holm']:.2g}" if r else "—", "verdict": t["verdict"]})
    return pd.DataFrame(rows, columns=columns)


def _last_train_accuracy(runs: pd.DataFrame) -> str:
    """Mean over runs of the last epoch's accuracy on the (augmented) training images (``prepare_table``
    reads it from history.csv)."""
    last = [a for a in runs["final_train_accuracy"] if a is not None]
    return f"{100 * np.mean(last):.1f}" if last else "—"


def skipped(runs: pd.DataFrame) -> pd.DataFrame:
    """Run folders that are not completed (incomplete, failed, corrupt), with the reason."""
    columns = ["folder", "run id", "recipe overrides", "status", "reason"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rest = runs[runs["status"] != "completed"]
    return pd.DataFrame({
        "folder": [Path(str(p)).name for p in rest["path"]],
        "run id": rest["run_id"].tolist(),
        # A run id names its overrides only by a hash: a diagnostic would read as a twin of its setting's run.
        "recipe overrides": [_overrides_cell(v) for v in rest["recipe_overrides"]],
        "status": rest["status"].tolist(),
        "reason": rest["problem"].astype(object).fillna("").tolist(),
    }, columns=columns)


def _overrides_cell(value) -> str:
    """A record's recipe overrides (JSON text, or a mapping) as words; "" for none, the text as it is when it
    is not a mapping of plain values."""
    try:
        overrides = value if isinstance(value, dict) else json.loads(value) if isinstance(value, str) and value else {}
        return override_words(overrides) if isinstance(overrides, dict) else str(value)
    except (TypeError, ValueError):  # garbled, or a value words cannot name (a list)
        return str(value)


