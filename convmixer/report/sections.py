"""The report's sections that combine figures, tables and notes; each returns the HTML of one section.

Each says in a sentence what is missing when the data cannot fill it.
"""

from __future__ import annotations

import pandas as pd

from ..models.convmixer import MACS_COVER
from ..training.recipes import DIFFERENCES
from . import plots
from .cost import FULL_EPOCH_IMAGES, cost_table, reference_marks
from .html import bullets, figure, missing, note, table
from .names import cell_name
from .provenance import GRIDS_DIR, grid_coverage, provenance, recipes_table
from .runs import PAPER_WIDTH_DEPTH, other_axis, prepare, short_axis
from .tables import (architecture_contrasts_table, architectures_table, paper_points, published_trend_series, trend,
                     trend_setups)
from .text import dirty_sentence, jpeg_sentence, lessons, load_sentence
from .verdicts import (CLAIM1_SCOPE, MATCHING_RULE, architecture_regimes, dependences, mixer_token_notes,
                       no_trend_reason, schedule_end)


def _budget(setup_runs: pd.DataFrame) -> str:
    return str(setup_runs["setup_description"].iloc[0])


def trend_section(runs: pd.DataFrame, reference: dict, axis: str) -> str:
    """Accuracy against ``axis`` per comparable setup (figure + numbers), or why there is none."""
    other, short = other_axis(axis), short_axis
    setups = trend_setups(runs, axis)
    if not setups:
        return missing(f"No {short(axis)}-size trend to show: {no_trend_reason(runs, axis)}.")
    stats = trend(runs, axis)
    parts = []
    for label, sub in setups.items():
        paper = paper_points(sub, reference)
        fig = plots.trend_figure(sub, axis, other, paper=None if paper.empty else paper,
                                 title=f"Setup {label}: {_budget(sub)}")
        if paper.empty:
            paper_text = "The paper reports no values for this width and depth."
        else:
            epochs = ", ".join(str(e) for e in sorted(paper["paper_epochs"].unique()))
            paper_text = (f"Open diamonds (dotted): the paper's values ({epochs} epochs) for the same "
                          f"{short(other)} size; compare shapes, not levels.")
        caption = (f"Setup {label}: test accuracy against {short(axis)} size, one line per {short(other)} size. "
                   "Small points are single seeds; lines are mean ± std over seeds; the shaded band is the test-set "
                   f"noise floor (± one binomial standard error of a single run's accuracy). {paper_text}")
        numbers = stats[stats["setup"] == label][["other_value", "value", "n", "mean_pct", "std_pct", "sem_pct",
                                                  "binomial_se_pct"]]
        numbers = numbers.set_axis([short(other), short(axis), "n", "mean (%)", "std over seeds (%)",
                                    "std. error (%)", "test-set SE (%)"], axis=1)
        parts += [figure(fig, alt=f"Accuracy versus {short(axis)} size, setup {label}", caption=caption),
                  table(numbers, table_id=f"trend-{short(axis)}-{label}")]
    return "\n".join(parts)


def learning_curves_section(runs: pd.DataFrame) -> str:
    """Held-out and train accuracy per epoch: one small-multiples figure per setup, a panel per configuration."""
    done = prepare(runs)
    if done.empty:
        return missing("No completed runs, so there are no learning curves.")
    parts = []
    for label, setup_runs in done.groupby("setup", sort=True):
        cells, problems = [], []
        for (p, k), sub in setup_runs.groupby(["patch_size", "kernel_size"], sort=True):
            histories = []
            for run in sub.itertuples():
                try:
                    histories.append((f"seed {run.seed}", plots.read_history(run.path)))
                except (OSError, ValueError, KeyError) as exc:
                    problems.append(f"{run.run_id}: history unreadable ({exc})")
            if histories:
                cells.append((f"patch {p}, kernel {k}", histories))
        if cells:
            parts.append(figure(plots.learning_curves_grid(cells, f"Setup {label}: {_budget(setup_runs)}"),
                                alt=f"Learning curves of setup {label}"))
        parts.append(note(f"Setup {label}: {schedule_end(setup_runs)['text']}."))
        parts += [missing(text) for text in problems]
    return "\n".join(parts)


def architectures_section(runs: pd.DataFrame) -> str:
    """Claim 1: ConvMixer against size-matched baselines trained the same way: the models with their size and
    compute, a figure per regime, and the contrasts under every matching with where the conclusion depends on it."""
    regimes = architecture_regimes(runs)
    if not regimes:
        return missing("No baseline (ResNet, ViT, MLP-Mixer) shares a training regime with a ConvMixer here, so "
                       "claim 1 is not tested. Run grids/cpu-architectures.yaml (and the ConvMixer it compares "
                       "with, in grids/cpu-one-cycle.yaml) to test it.")
    parts = [table(architectures_table(runs), table_id="architectures-table", caption=(
        "Models compared for claim 1. Baselines were matched to the ConvMixer's parameter count within ±15% by "
        "convmixer/models/baselines.py (one fixed family per architecture, one size knob, no per-architecture tuning); "
        "the other ConvMixers of the regime listed are those a compute-matched or same-patch contrast pairs with a "
        "baseline. Every model trains with the same recipe, budget, data, seeds and training loop. Multiply-adds "
        f"per image are the forward pass's ({MACS_COVER}), computed from the architecture. Seconds per epoch is the "
        "fastest of a model's runs, timed while other work shared the machine (each record keeps its load average). "
        "The last column is the accuracy on the augmented training images in the last epoch: how far each model "
        "is from fitting its training data at this budget."))]
    for i, regime in enumerate(regimes):
        parts += _architecture_regime_parts(regime, i)
    parts.append(note(CLAIM1_SCOPE))
    return "\n".join(parts)


def _architecture_regime_parts(regime: dict, index: int) -> list[str]:
    """One regime's figure, its contrasts under every matching, and what the matching changes."""
    cells = regime["runs"]
    names = {j: cell_name(r) for j, r in cells.iterrows()}
    params = {j: regime["sizes"][names[j]]["parameters"] for j in cells.index}
    macs = {j: regime["sizes"][names[j]]["macs"] for j in cells.index}
    suffix = "" if index == 0 else f"-{index + 1}"
    return [
        figure(plots.architecture_figure(cells, params, names, macs), alt="Accuracy against size, compute and time",
               caption=f"{regime['regime']}: test accuracy against parameters, multiply-adds per image and seconds "
                       "per epoch, one point per run (seed)."),
        table(architecture_contrasts_table(regime), table_id=f"architecture-contrasts{suffix}",
              caption=f"{regime['regime']}: each baseline against the ConvMixer each matching pairs it with. "
                      + MATCHING_RULE),
        bullets([d["text"][0].upper() + d["text"][1:] + "." for d in dependences(regime)]
                + mixer_token_notes(regime)),
    ]


def paper_effects(reference: dict) -> list[dict]:
    """The paper's own effects for claims 2 and 3 (ConvMixer-256/8, 200 epochs, one run per cell), computed
    from its published accuracies: kernel smallest -> largest at each patch, patch smallest -> largest at each
    kernel, wherever the table has both ends."""
    table = reference["accuracy"]
    out = []
    for axis in ("kernel_size", "patch_size"):
        other = other_axis(axis)
        for value, sub in table.groupby(other, sort=True):
            if sub[axis].nunique() < 2:
                continue
            low, high = sub.loc[sub[axis].idxmin()], sub.loc[sub[axis].idxmax()]
            out.append({"axis": axis, "other": int(value), "low": int(low[axis]), "high": int(high[axis]),
                        "effect": float(high["paper_accuracy"] - low["paper_accuracy"]),
                        "epochs": int(low["paper_epochs"])})
    return out


def effect_by_budget_section(runs: pd.DataFrame, reference: dict | None = None) -> str:
    """Claims 2 and 3: each setup's effect with its interval, ordered by training budget, so a reader sees
    whether an effect grows, holds or vanishes as training goes on (and what a 4- or 5-epoch result means)."""
    from .verdicts import CLAIMS, claim_tests

    rows = []
    for claim in (c for c in CLAIMS if "axis" in c):
        tests = sorted(claim_tests(runs, claim), key=lambda t: (t["budget"], t["setup"]))
        for t in tests:
            r = t["result"] or {}
            rows.append({
                "claim": f"{short_axis(claim['axis'])} {t['low']} → {t['high']}", "setup": t["setup"],
                "regime": t["regime"], "learning rate annealed to 0": "yes" if t["annealed"] else "no",
                "effect (points)": f"{r['effect']:+.2f}" if r else "—",
                "95% CI": f"{r['ci_low']:+.2f} to {r['ci_high']:+.2f}" if r else "not estimable",
                "Holm p": f"{t['p_holm']:.2g}" if r else "—", "verdict": t["verdict"],
            })
    if not rows:
        return missing("No setup tests claim 2 or 3 yet, so there is no effect to follow across budgets.")
    for e in paper_effects(reference) if reference is not None else []:
        rows.append({
            "claim": f"{short_axis(e['axis'])} {e['low']} → {e['high']}", "setup": "paper",
            "regime": f"ConvMixer-256/8 at {short_axis(other_axis(e['axis']))} {e['other']}, {e['epochs']} epochs, "
                      "one published run per cell (reference.yaml)",
            "learning rate annealed to 0": "—", "effect (points)": f"{e['effect']:+.2f}",
            "95% CI": "— (one run per cell)", "Holm p": "—", "verdict": "published",
        })
    return table(pd.DataFrame(rows), table_id="effect-by-budget-table", caption=(
        "Each setup's effect for claims 2 and 3, from the shortest training to the longest (epochs x training "
        "images). Setups whose learning rate was annealed to 0 are the end of a one-cycle schedule at that budget; "
        "the others stopped mid-training and measure how fast the models learn. The paper's rows are its own "
        "200-epoch effects for ConvMixer-256/8, at the patch or kernel its table has: they set the scale "
        "an effect reaches with long training, not a like-for-like check."))


def published_trends_section(runs: pd.DataFrame, reference: dict) -> str:
    """This project's kernel and patch trends beside the paper's and the reference report's."""
    series = published_trend_series(runs, reference)
    return figure(plots.published_trends_figure(series), alt="Trends here and as published", caption=(
        "Accuracy change from each line's smallest kernel (left) or patch (right) size, in points: this project's "
        "setups (solid), the paper's values (dotted, 200 epochs) and the reference report's (dashed, its own "
        "epochs), all as published in convmixer/reference.yaml. Levels differ with the budget, so each line "
        "starts at 0 and only the shapes compare."))


def cost_section(runs: pd.DataFrame, reference: dict) -> str:
    """Throughput by configuration and device against the reference report's marks, and compute vs accuracy."""
    marks = reference_marks(reference)
    parts = [table(marks[["device_kind", "device_name", "seconds_per_epoch"]].set_axis(
        ["device", "as named there", "seconds per epoch"], axis=1), table_id="reference-timings",
        caption="The reference report's timings (published, not measured here).")]
    cost = cost_table(runs)
    if cost.empty:
        parts.append(missing("No completed runs, so nothing was timed yet; only the reference report's marks "
                             "are shown."))
        return "\n".join(parts)
    projected = [c for c in cost.columns if c.startswith("projected")][0]
    w, d = PAPER_WIDTH_DEPTH
    parts.append(table(cost, table_id="cost-table", caption=(
        "Measured here: seconds per epoch (epochs that include graph tracing excluded) and training images per "
        "second of the fastest run of each configuration, since other work on a shared machine can only slow a "
        "run down; the slowest run shows the spread. "
        f"The projection is {FULL_EPOCH_IMAGES:,} / images per second. "
        "Load avg: the machine's 1-minute load average when training started / ended (mean over runs).")))
    parts.append(note(load_sentence(runs)))
    parts.append(figure(plots.cost_figure(cost, marks, projected), alt="Cost by configuration and device", caption=(
        f"Top: projected seconds for a {FULL_EPOCH_IMAGES:,}-image epoch (log scale) with the reference "
        f"report's marks as dashed lines; the marks are for ConvMixer-{w}/{d}, so only rows marked "
        "like-for-like compare directly. Bottom: measured training images per second.")))
    done = prepare(runs)
    parts.append('<a id="compute"></a>')
    parts.append(figure(plots.compute_accuracy_figure(done), alt="Training compute versus accuracy", caption=(
        "Compute versus accuracy: total training seconds of each run (all epochs) against its test accuracy.")))
    return "\n".join(parts)


def provenance_section(runs: pd.DataFrame) -> str:
    """Recipes, differences from the originals, data sources (JPEG flagged), versions, devices, commits."""
    tables = provenance(runs)
    empty = "No completed runs, so there is nothing to list."
    parts = [
        '<h3 id="recipes">Recipes</h3>', table(recipes_table(), table_id="recipes-table"),
        '<h3 id="differences">Differences from the original</h3>',
        table(pd.DataFrame(DIFFERENCES), table_id="differences-table"),
        '<h3 id="data-sources">Data sources</h3>',
    ]
    sentence = jpeg_sentence(runs)
    if sentence:
        parts.append(note(sentence, "warning jpeg"))
    parts += [
        table(tables["data"], table_id="data-table", empty=empty),
        '<h3 id="versions">Library versions</h3>', table(tables["versions"], table_id="versions-table", empty=empty),
        '<h3 id="devices">Devices</h3>', table(tables["devices"], table_id="devices-table", empty=empty),
        '<h3 id="commits">Code (git commits)</h3>',
        note(dirty_sentence(runs), "warning dirty") if dirty_sentence(runs) else "",
        table(tables["commits"], table_id="commits-table", empty=empty),
    ]
    return "\n".join(parts)


def lessons_section(runs: pd.DataFrame, grids_dir=GRIDS_DIR) -> str:
    """Section 7's generated statements and what the shipped grids (``grids_dir``) would add."""
    grids = grid_coverage(runs, grids_dir)
    return "\n".join([
        bullets(lessons(runs, grids)),
        table(grids, table_id="grids-table", caption="Shipped grids and how much of each has results here.",
              empty="No grid files were found."),
    ])


