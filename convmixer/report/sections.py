"""The report's sections that combine figures, tables and notes; each returns the HTML of one section.

Figures come first and the evidence behind them is folded (``html.details``): a
reader sees the verdicts, the forest plot and each section's figure at a glance
and opens what they want to check. Each section says in a sentence what is
missing when the data cannot fill it.
"""

from __future__ import annotations

import re

import pandas as pd

from ..models.convmixer import MACS_COVER
from ..training.recipes import DIFFERENCES
from ..training.show import read_history
from . import plots
from .anchors import (APPROXIMATE_POINTS, APPROXIMATELY, NOT_REPRODUCED, REPRODUCED, gap_reading, log_lines,
                      reference_gap_reading)
from .curves import curve_sentences, logged_curves
from .cost import FULL_EPOCH_IMAGES, cost_table, reference_marks, timing_bars, timings_by_setup
from .diagnostics import diagnostic_sentences, diagnostics, gap_sources, unfinished
from .html import bullets, details, figure, missing, note, paragraph, sentences, table, verdict_lines
from .names import cell_name, recipe_name, short_regime
from .provenance import GRIDS_DIR, grid_coverage, provenance, recipes_table
from .runs import PAPER_WIDTH_DEPTH, as_table, comparable_groups, other_axis, prepare, short_axis
from .tables import (architecture_contrasts_table, architectures_table, comparison_display, comparison_table,
                     like_for_like_table, paper_points, published_trend_series, setups_table, trend, trend_setups)
from .text import (dirty_sentence, jpeg_sentence, lessons, load_sentence, published_comparison,
                   reference_differences, reference_report_observations, reproduction_sentences, scope,
                   setup_facts)
from .verdicts import (CLAIMS, architecture_regimes, claim_tests, dependences, headlines, interval, no_trend_reason,
                       schedule_end, untested_reason)
from .verdicts import verdicts as claim_verdicts
from .wording import (MATCHINGS, MATCHING_RULE, VERDICT_RULE, claim1_scope, mixer_token_notes, slope_words,
                      step_words)


def _budget(setup_runs: pd.DataFrame) -> str:
    return str(setup_runs["setup_description"].iloc[0])


def short_setup(setup_runs: pd.DataFrame, model: bool = True) -> str:
    """A setup's budget in a few words, for figure labels: model, epochs, recipe and a training subset."""
    first = setup_runs.iloc[0]
    text = f"{first['epochs']} ep {recipe_name(first['recipe'])}"
    if not pd.isna(first.get("train_subset")) and not pd.isna(first.get("train_images")):
        text += f", {int(first['train_images']) / 1000:g}k img"
    return (f"{first['width']}/{first['depth']}, " if model else "") + text


def _points(effect, low=None, high=None, unit=" points") -> str:
    if effect is None:
        return "not estimable"
    interval = f" (95% CI {low:+.2f} to {high:+.2f})" if low is not None and high is not None else ""
    return f"{effect:+.2f}{unit}{interval}"


def _short_model(name: str) -> str:
    """A model's name without its parenthesised details: ResNet-20 (width 6) -> ResNet-20."""
    return name.split(" (")[0]


# --------------------------------------------------------------------------- the first screen

def verdict_line_data(runs: pd.DataFrame, table: pd.DataFrame | None = None) -> list[dict]:
    """``verdicts.headlines`` as the first screen's lines: the effects and notes as short text."""
    runs = as_table(runs)
    table = claim_verdicts(runs) if table is None else table
    lines = []
    for h, row in zip(headlines(runs, table), table.itertuples(index=False)):
        effects, notes = [], []
        if h["id"] == "architectures" and h["effects"]:
            margins = sorted(h["effects"], key=lambda e: (e["effect"] is None, e["effect"] or 0))
            effects = [f"{h['reference']} minus " + ", ".join(
                f"{_short_model(e['label'])} {_points(e['effect'], e['ci_low'], e['ci_high'], '')}".replace(
                    "95% CI ", "95% CI " if i == 0 else "") for i, e in enumerate(margins))
                + " points, matched by parameters"]
            notes = [f"{MATCHINGS[d['matching']].capitalize()}, {d['convmixer']} minus "
                     f"{_short_model(d['baseline'])}: {_points(d['effect'], d['ci_low'], d['ci_high'], '')}: "
                     f"{d['verdict']}." for d in h["depends"]]
        elif h["effects"]:
            effects = [f"{e['label']}: {_points(e['effect'], e['ci_low'], e['ci_high'])}" for e in h["effects"]]
        else:
            notes = sentences(str(row.evidence).splitlines()[0])[:1]
        lines.append({**h, "effects": effects, "notes": notes, "details": f"claim-{h['id']}"})
    return lines


def _tests_of(runs: pd.DataFrame, claim: dict, table: pd.DataFrame | None) -> list[dict]:
    """An axis claim's tests (``claim_tests``): the verdict table's own when given, so nothing is fitted twice."""
    return claim_tests(runs, claim) if table is None else list(table.iloc[CLAIMS.index(claim)]["tests"])


def forest_panels(runs: pd.DataFrame, reference: dict | None = None, table: pd.DataFrame | None = None) -> list[dict]:
    """The forest plot's data (``plots.forest_figure``): every claim's effects with their 95% intervals.

    Claim 1: every baseline against the ConvMixer each matching pairs it with, in every regime (a pair two
    matchings share is one row); claims 2 and 3: every setup's extreme-level effect, the lead setup first,
    and the paper's own 200-epoch effect (``paper_effects``) where its table has one. The verdict's own
    contrasts are marked ``lead``."""
    runs = as_table(runs)
    panels = []
    rows = []
    regimes = architecture_regimes(runs)
    words = {"parameters": "params", "compute": "compute", "patch": "patch"}
    # ConvMixer-64/4 is said once, in the title, when every contrasted ConvMixer has that width and depth.
    sizes = {t["convmixer"].split(" ")[0] for r in regimes for family in r["matchings"].values() for t in family}
    for i, regime in enumerate(regimes):
        prefix = "" if len(regimes) == 1 else f"{short_setup(regime['models'][regime['reference']], False)}: "
        seen = {}
        for kind, family in regime["matchings"].items():
            for t in family:
                key = (t["convmixer"], t["baseline"])
                if key in seen:
                    seen[key]["kinds"].append(words[kind])
                    continue
                seen[key] = {"convmixer": t["convmixer"], "baseline": t["baseline"], "kinds": [words[kind]],
                             **interval(t["result"]), "verdict": t["verdict"],
                             "lead": i == 0 and kind == "parameters", "published": False}
        # A baseline by its family (ResNet) when the regime has one of that family, else by its short name.
        families = [re.sub(r"-[\d/]+$", "", _short_model(b)) for b in {e["baseline"] for e in seen.values()}]
        for entry in sorted(seen.values(), key=lambda e: (e["baseline"], not e["lead"], e["convmixer"])):
            conv = entry.pop("convmixer")
            conv = conv.split(" ", 1)[1] if len(sizes) == 1 and " " in conv else conv.replace("ConvMixer-", "")
            base = _short_model(entry.pop("baseline"))
            family = re.sub(r"-[\d/]+$", "", base)
            entry["label"] = (f"{prefix}{family if families.count(family) == 1 else base} vs {conv} "
                              f"({', '.join(entry.pop('kinds'))})")
            rows.append(entry)
    model = next(iter(sizes)) if len(sizes) == 1 else "ConvMixer"
    panels.append({"title": f"1. {model} − baseline", "sign": +1, "rows": rows,
                   "xlabel": "accuracy difference (points)",
                   "empty": "not tested: no baseline\nshares a regime with a ConvMixer"})
    groups = comparable_groups(runs)
    paper = paper_effects(reference) if reference is not None else []
    for number, claim in enumerate(CLAIMS, start=1):
        if "axis" not in claim:
            continue
        axis = claim["axis"]
        tests = _tests_of(runs, claim, table)
        contrasts = {(t["low"], t["high"]) for t in tests}
        models = {(groups[t["setup"]]["width"].iloc[0], groups[t["setup"]]["depth"].iloc[0]) for t in tests}
        rows = []
        for j, t in enumerate(tests):
            label = f"{t['setup']}: {short_setup(groups[t['setup']], model=len(models) > 1)}"
            if len(contrasts) > 1:
                label += f", {t['low']} → {t['high']}"
            rows.append({"label": label, **interval(t["result"]), "verdict": t["verdict"], "lead": j == 0,
                         "published": False})
        for e in (e for e in paper if e["axis"] == axis):
            same = contrasts == {(e["low"], e["high"])}
            rows.append({"label": f"paper: {short_axis(other_axis(axis))[0]}{e['other']}, "
                                  + ("" if same else f"{e['low']} → {e['high']}, ") + f"{e['epochs']} ep",
                         "effect": e["effect"], "ci_low": None, "ci_high": None, "verdict": "published",
                         "lead": False, "published": True})
        title = f"{number}. Larger {short_axis(axis)}"
        if len(contrasts) == 1:
            low, high = next(iter(contrasts))
            title = f"{number}. {short_axis(axis).capitalize()} {low} → {high}"
        panels.append({"title": title, "sign": claim["sign"], "rows": rows, "xlabel": "accuracy change (points)",
                       "empty": f"not tested: {untested_reason(runs, axis)}"})
    return panels


def first_screen(runs: pd.DataFrame, reference: dict, published: list[dict], table: pd.DataFrame | None = None) -> str:
    """What a reader takes in at a glance: first what the paper-scale runs show (ours against the published
    logs and the reference report's rows, like for like), then the three claims one line each (verdict, effect
    with its 95% interval, regime), and the forest plot of every effect behind them."""
    runs = as_table(runs)
    table = claim_verdicts(runs) if table is None else table
    lines = verdict_line_data(runs, table)
    reading = gap_reading(published, brief=True)
    headline = (log_lines(published) + reading
                # the brief reading of the reference report's distance from the paper carries its reproduced rows
                + ([] if set(reference_gap_reading(published, brief=True)) & set(reading) else
                   [f"The reference report's row {s}" for s in reproduction_sentences(published)[:1]])
                + unfinished(runs, reference))
    panels = forest_panels(runs, reference, table)
    return "\n".join([
        ('<div class="headline"><strong>At the paper\'s model size</strong> (ConvMixer-256/8, <a href="#like-for-like">like '
         'for like</a> with published runs):'
         + bullets(headline) + "</div>") if headline else "",
        '<p class="claims-lead"><strong>The paper\'s three claims</strong>, each with the regime it was tested in here:</p>',
        verdict_lines(lines),
        figure(plots.forest_figure(panels), alt="Forest plot: every claim's effects with their 95% intervals",
               element_id="forest", caption=(
                   "Every effect behind the verdicts, with its 95% confidence interval (accuracy points). Claim 1: "
                   "ConvMixer minus each baseline under each matching (params: by parameters, the verdict's; "
                   "compute: by multiply-adds; patch: at the same patch size). Claims 2 and 3: each setup's effect "
                   "from the smallest to the largest size (setup: model, epochs, recipe). Bold: the contrasts the verdict rests on. "
                   "The paper reports one run per cell, so its effects carry no interval. Details below.")),
    ])


# --------------------------------------------------------------------------- verdict details

def _axis_details(claim: dict, number: int, row, runs: pd.DataFrame, reference: dict | None) -> str:
    axis = claim["axis"]
    tests = list(row.tests)
    groups = comparable_groups(runs)
    parts = [bullets(sentences(str(row.evidence).splitlines()[0]))]
    if tests:
        frame = pd.DataFrame([{
            "setup": t["setup"], "regime": short_regime(groups[t["setup"]]) if t["setup"] in groups else t["regime"],
            "learning rate at the end": "annealed to 0" if t["annealed"] else "above 0",
            "contrast": f"{short_axis(axis)} {t['low']} → {t['high']}",
            "effect (points)": f"{t['result']['effect']:+.2f}" if t["result"] else "not estimable",
            "95% CI": f"{t['result']['ci_low']:+.2f} to {t['result']['ci_high']:+.2f}" if t["result"] else "—",
            "p": f"{t['result']['p']:.2g}" if t["result"] else "—", "Holm p": f"{t['p_holm']:.2g}",
            "df": f"{t['result']['df']:.0f}" if t["result"] else "—",
            "noise from": t["result"].get("noise", "seeds only") if t["result"] else "—",
            "runs": t["n_runs"], "verdict": t["verdict"]} for t in tests])
        parts.append(table(frame, table_id=f"claim-{claim['id']}-tests", caption=(
            "Each setup's test, the lead setup (whose verdict the claim takes) first; p-values are Holm-adjusted "
            "across the setups.")))
        steps = []
        for t in tests:
            r = t["result"] or {}
            if r.get("steps"):
                steps.append(f"Setup {t['setup']}, adjacent sizes: {step_words(r['steps'])}.")
            if r.get("slope"):
                steps.append(f"Setup {t['setup']}, linear trend: {slope_words(r['slope'], axis)}.")
        parts.append(bullets(steps))
        parts.append(bullets([f"Setup {t['setup']}: {t['schedule_end']}." for t in tests]))
    for e in (e for e in (paper_effects(reference) if reference is not None else []) if e["axis"] == axis):
        parts.append(paragraph(f"The paper's own effect: {short_axis(axis)} {e['low']} → {e['high']} at "
                               f"{short_axis(other_axis(axis))} {e['other']}, {e['effect']:+.2f} points after "
                               f"{e['epochs']} epochs (one published run per cell, so no interval)."))
    parts.append(f'<p>Figures: <a href="#{claim["anchor"]}">accuracy against {short_axis(axis)} size</a>, '
                 '<a href="#effect-by-budget">effects against training budget</a>.</p>')
    return details(f"Claim {number}: {claim['claim']} — {row.verdict}", *parts, element_id=f"claim-{claim['id']}")


def _architecture_details(claim: dict, number: int, row) -> str:
    """Claim 1's evidence as short sentences: the verdict's summary, every contrast, what the matching changes."""
    lines = str(row.evidence).splitlines()
    items = [s for line in lines for s in sentences(line)]
    return details(f"Claim {number}: {claim['claim']} — {row.verdict}", bullets(items),
                   '<p>Tables and figure: <a href="#architectures">section 2.1</a>.</p>',
                   element_id=f"claim-{claim['id']}")


def verdict_details(runs: pd.DataFrame, reference: dict | None = None, table: pd.DataFrame | None = None) -> str:
    """The full evidence of every verdict (every regime, test and p-value), folded one claim at a time, and
    how a verdict is reached."""
    runs = as_table(runs)
    table = claim_verdicts(runs) if table is None else table
    parts = []
    for number, (claim, row) in enumerate(zip(CLAIMS, table.itertuples(index=False)), start=1):
        if "axis" in claim:
            parts.append(_axis_details(claim, number, row, runs, reference))
        else:
            parts.append(_architecture_details(claim, number, row))
    parts.append(details("How a verdict is reached", bullets(sentences(VERDICT_RULE)),
                         paragraph("The same verdicts are in claims.json beside this page."),
                         element_id="verdict-rule"))
    return "\n".join(parts)


def summary_rest(runs: pd.DataFrame, reference: dict, published: list[dict], results_dir=None) -> str:
    """The summary below the first screen: what the report covers, then the rest folded (``published``:
    ``anchors.like_for_like``)."""
    runs = as_table(runs)
    return "\n".join([
        note(scope(runs, results_dir)),
        details("What each setup trained: budget, data and device",
                bullets([f"Setup {label}: {facts}" for label, facts in setup_facts(runs)]),
                element_id="setup-facts"),
        details("Accuracy levels against the published ones", paragraph(published_comparison(runs, reference, published)),
                "<p>What the reference report's own published numbers show:</p>",
                bullets(reference_report_observations(reference)), element_id="published-levels"),
    ])


# --------------------------------------------------------------------------- 2. original versus reproduction

def comparison_section(runs: pd.DataFrame, reference: dict, published: list[dict]) -> str:
    """Every published single run beside ours like for like (visible), then the sources, the setups and every
    configuration beside the published values (folded)."""
    runs = as_table(runs)
    comparison = comparison_table(runs, reference)
    not_run = int((comparison["n"] == 0).sum())
    sources = gap_sources(runs, reference, published)
    return "\n".join([
        '<a id="like-for-like"></a>',
        "<p>Like for like with every published single run: the same model, recipe, epochs, batch size and "
        "number of training images (the data copy each row names; the recipes' known differences from the "
        "originals are listed in section 6). Each published value is one run, so the verdict asks whether our seeds could have produced it: "
        f"<em>{REPRODUCED}</em> when it lies inside our 95% prediction interval for one run, "
        f"<em>{APPROXIMATELY}</em> when outside it but within {APPROXIMATE_POINTS} points of our "
        f"mean, <em>{NOT_REPRODUCED}</em> otherwise; one seed gives no interval. A setting not run here "
        "shows its training cost on this project's CPU, measured by <code>python -m convmixer bench --record "
        "results/bench</code>.</p>",
        table(like_for_like_table(published), table_id="like-for-like-table"),
        bullets(gap_reading(published) + reproduction_sentences(published) + reference_differences(published)),
        *[figure(plots.logged_curve_figure(curve), alt=f"Ours per epoch against {curve['source_name']}", caption=(
            f"Ours per epoch (a line per seed) against the accuracies printed in {curve['source_name']} "
            f"({curve['where']}).")) + bullets(
            curve_sentences(curve)) for curve in logged_curves(runs, reference)],
        diagnostics_block(runs, reference),
        table(sources, table_id="gap-sources", caption=(
            "Where a gap to the official script's log can come from: the seeds, the data, and each known difference "
            "of the official-logged recipe from the script's logged run, with what these runs and tests show about "
            "each. A diagnostic run changes one of them at a time; \"not measured here\" means no run here isolates "
            "it.")) if not sources.empty
        else "",
        details("Sources of the published values",
                bullets([f"{name.replace('_', ' ')}: {source}" for name, source in reference["sources"].items()]),
                element_id="sources"),
        details("Setups (budgets) of the completed runs",
                table(setups_table(runs), table_id="setups-table",
                      empty="No completed runs, so there are no setups yet."), element_id="setups"),
        details(f"Every configuration beside the published values ({len(comparison) - not_run} rows run here, "
                f"{not_run} published configurations not run)",
                table(comparison_display(comparison), table_id="comparison-table", caption=(
                    "One row per configuration run here (per setup), plus the published configurations not run "
                    "(marked not run). Parameters are computed from the architecture; paper count is ✓ when they "
                    "equal the paper's count, — where the paper lists no count. Our accuracy is the mean ± "
                    "standard deviation over seeds, in percent, with n seeds.")),
                missing(f"{not_run} published configuration(s) have no run here (rows marked 'not run').")
                if not_run else "", element_id="comparison-details"),
    ])


def diagnostics_block(runs: pd.DataFrame, reference: dict) -> str:
    """Runs of a published setting with one recipe field changed, paired by seed and setup with its own runs."""
    found, pending = diagnostics(runs, reference), unfinished(runs, reference)
    if not found and not pending:
        return ""
    return "\n".join(["<p>One known difference at a time: runs of a published setting with one field of its "
                      "recipe changed, each paired with the run of the setting itself that has its seed and setup "
                      "(for a change of initialisation, optimiser or schedule, the same data order and "
                      "augmentation draws).</p>",
                      bullets([" ".join(diagnostic_sentences(d)) for d in found] + pending)])


# --------------------------------------------------------------------------- 3. trends

def trend_section(runs: pd.DataFrame, reference: dict, axis: str) -> str:
    """Accuracy against ``axis``, a panel per comparable setup (one figure), the numbers folded; or why
    there is none."""
    runs = as_table(runs)
    other, short = other_axis(axis), short_axis
    setups = trend_setups(runs, axis)
    if not setups:
        return missing(f"No {short(axis)}-size trend to show: {no_trend_reason(runs, axis)}.")
    stats = trend(runs, axis)
    panels, papers, numbers = [], [], []
    for label, sub in setups.items():
        paper = paper_points(sub, reference)
        panels.append((f"Setup {label}: {short_setup(sub)}", sub, None if paper.empty else paper))
        if not paper.empty:
            papers.append(label)
        frame = stats[stats["setup"] == label][["other_value", "value", "n", "mean_pct", "std_pct", "sem_pct",
                                                "binomial_se_pct"]]
        frame = frame.set_axis([short(other), short(axis), "n", "mean (%)", "std over seeds (%)",
                                "std. error (%)", "test-set SE (%)"], axis=1)
        numbers.append(table(frame, table_id=f"trend-{short(axis)}-{label}", caption=f"Setup {label}: {_budget(sub)}."))
    paper_text = (f" Open diamonds (dotted) in setup{'s' if len(papers) > 1 else ''} {', '.join(papers)}: the "
                  f"paper's values (200 epochs) for the same {short(other)} size; compare shapes, not levels."
                  if papers else "")
    caption = (f"Test accuracy against {short(axis)} size, a panel per setup, a line per {short(other)} size. "
               "Small points are single seeds; lines are mean ± std over seeds; the shaded band is the test-set "
               f"noise floor (± one binomial standard error of a single run's accuracy).{paper_text}")
    return "\n".join([
        figure(plots.trend_grid(panels, axis, other), alt=f"Accuracy versus {short(axis)} size", caption=caption),
        details(f"The numbers: mean, spread and standard errors per setup and {short(axis)} size", *numbers,
                element_id=f"trend-{short(axis)}-numbers"),
    ])


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


def budget_sentences(runs: pd.DataFrame, reference: dict | None = None,
                     verdict_table: pd.DataFrame | None = None) -> list[str]:
    """What the effects at several one-cycle budgets of one model show, against the paper's 200-epoch effect,
    in words that claim no more than that: how the effect moved between the budgets measured, and that a
    larger model's long-training effect elsewhere does not say how this one would move."""
    runs = as_table(runs)
    groups = comparable_groups(runs)
    table = reference["accuracy"] if reference is not None else pd.DataFrame()

    def paper_effect(axis, low, high):
        """The paper's effect for exactly low -> high, at the first value of the other axis that has both."""
        other = other_axis(axis)
        for value, sub in (table.groupby(other, sort=True) if not table.empty else []):
            a, b = sub[sub[axis] == low], sub[sub[axis] == high]
            if len(a) and len(b):
                return {"other": int(value), "effect": float(b["paper_accuracy"].iloc[0] - a["paper_accuracy"].iloc[0]),
                        "axis": axis}
        return None

    out = []
    for claim in (c for c in CLAIMS if "axis" in c):
        by_model = {}
        for t in _tests_of(runs, claim, verdict_table):
            if not (t["annealed"] and t["result"]):
                continue
            first = groups[t["setup"]].iloc[0]
            key = (first["width"], first["depth"], first["recipe"], first["dataset_fingerprint"], t["low"], t["high"])
            by_model.setdefault(key, []).append(t)
        for (width, depth, recipe, _, low, high), tests in by_model.items():
            if len({t["budget"] for t in tests}) < 2:
                continue
            tests.sort(key=lambda t: t["budget"])
            epochs = [int(groups[t["setup"]]["epochs"].iloc[0]) for t in tests]
            effects = [t["result"]["effect"] for t in tests]
            moved = "grew" if abs(effects[-1]) > abs(effects[0]) else "shrank"
            text = (f"{short_axis(claim['axis']).capitalize()} {low} → {high}, ConvMixer-{width}/{depth} at the end "
                    f"of the {recipe_name(recipe)} recipe's one-cycle schedule: "
                    + ", ".join(f"{e:+.2f} points after {n} epochs" for e, n in zip(effects, epochs))
                    + f"; the effect {moved} from {epochs[0]} to {epochs[-1]} epochs.")
            e = paper_effect(claim["axis"], low, high)
            if e:
                runs_here = groups[tests[-1]["setup"]]
                other = other_axis(claim["axis"])
                ours = {v for v, sub in runs_here.groupby(other) if {low, high} <= set(sub[claim["axis"]])}
                what = "model and budget" if e["other"] in ours else f"model, {short_axis(other)} and budget"
                text += (f" The paper's 200-epoch effect of the same change ({short_axis(claim['axis'])} {low} → "
                         f"{high}) for ConvMixer-256/8 at {short_axis(other)} {e['other']} is {e['effect']:+.2f}: "
                         f"another {what}, so it does "
                         f"not show whether this model's effect would grow or shrink beyond {epochs[-1]} epochs, and "
                         "these runs do not show that short training overstates the effect.")
            out.append(text)
    return out


def effect_by_budget_section(runs: pd.DataFrame, reference: dict | None = None,
                             verdict_table: pd.DataFrame | None = None) -> str:
    """Claims 2 and 3: each setup's effect with its interval, ordered by training budget, so a reader sees
    whether an effect grows, holds or vanishes as training goes on (and what a 4- or 5-epoch result means).
    The forest plot on the first screen draws the same effects; the table is folded."""
    runs = as_table(runs)
    groups = comparable_groups(runs)
    rows = []
    for claim in (c for c in CLAIMS if "axis" in c):
        tests = sorted(_tests_of(runs, claim, verdict_table), key=lambda t: (t["budget"], t["setup"]))
        for t in tests:
            r = t["result"] or {}
            rows.append({
                "claim": f"{short_axis(claim['axis'])} {t['low']} → {t['high']}", "setup": t["setup"],
                "regime": short_regime(groups[t["setup"]]),
                "learning rate annealed to 0": "yes" if t["annealed"] else "no",
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
                      "one published run per cell",
            "learning rate annealed to 0": "—", "effect (points)": f"{e['effect']:+.2f}",
            "95% CI": "— (one run per cell)", "Holm p": "—", "verdict": "published",
        })
    return "\n".join([
        '<p>The <a href="#forest">forest plot</a> at the top draws these effects with their intervals; the table '
        "lists them from the shortest training to the longest.</p>",
        bullets(budget_sentences(runs, reference, verdict_table)),
        details("Each setup's effect for claims 2 and 3, by training budget", table(
            pd.DataFrame(rows), table_id="effect-by-budget-table", caption=(
                "From the shortest training to the longest (epochs x training images). Setups whose learning rate "
                "was annealed to 0 are the end of a one-cycle schedule at that budget; the others stopped "
                "mid-training and measure how fast the models learn. The paper's rows are its own 200-epoch "
                "effects for ConvMixer-256/8, at the patch or kernel its table has: they set the scale an effect "
                "reaches with long training, not a like-for-like check.")), element_id="effect-by-budget-details"),
    ])


def published_trends_section(runs: pd.DataFrame, reference: dict) -> str:
    """This project's kernel and patch trends beside the paper's and the reference report's."""
    runs = as_table(runs)
    series = published_trend_series(runs, reference)
    return figure(plots.published_trends_figure(series), alt="Trends here and as published", caption=(
        "Accuracy change from each line's smallest kernel (left) or patch (right) size, in points: this project's "
        "setups (solid), the paper's values (dotted, 200 epochs) and the reference report's (dashed, its own "
        "epochs), all as published in convmixer/reference.yaml. Levels differ with the budget, so each line "
        "starts at 0 and only the shapes compare."))


# --------------------------------------------------------------------------- 4. learning curves

def learning_curves_section(runs: pd.DataFrame) -> str:
    """Every setup's learning in one figure (a panel per setup, a line per configuration), how each setup's
    training ended, and the per-seed small multiples folded."""
    runs = as_table(runs)
    done = prepare(runs)
    if done.empty:
        return missing("No completed runs, so there are no learning curves.")
    overview, grids, ends, problems = [], [], [], []
    for label, setup_runs in done.groupby("setup", sort=True):
        cells, lines = [], []
        for (p, k), sub in setup_runs.groupby(["patch_size", "kernel_size"], sort=True):
            histories = []
            for run in sub.itertuples():
                try:
                    histories.append((f"seed {run.seed}", read_history(run.path)))
                except (OSError, ValueError, KeyError) as exc:
                    problems.append(f"{run.run_id}: history unreadable ({exc})")
            if histories:
                cells.append((f"patch {p}, kernel {k}", histories))
                lines.append((p, k, [h for _, h in histories]))
        if cells:
            overview.append((f"Setup {label}: {short_setup(setup_runs)}", lines))
            grids.append(figure(plots.learning_curves_grid(cells, f"Setup {label}: {_budget(setup_runs)}"),
                                alt=f"Learning curves of setup {label}"))
        ends.append(f"Setup {label}: {schedule_end(setup_runs)['text']}.")
    parts = []
    if overview:
        parts.append(figure(plots.learning_overview(overview), alt="Learning curves of every setup", caption=(
            "Held-out accuracy (validation, or test for recipes without a validation split) per epoch, mean over "
            "seeds, a line per configuration: colour by kernel size, line style by patch size.")))
    parts.append(bullets(ends))
    parts.append(details("Every seed's held-out and training accuracy, one figure per setup", *grids,
                         element_id="learning-curves-per-seed"))
    parts += [missing(text) for text in problems]
    return "\n".join(parts)


# --------------------------------------------------------------------------- 2.1 claim 1

def architectures_section(runs: pd.DataFrame) -> str:
    """Claim 1: ConvMixer against size-matched baselines trained the same way: the models with their size and
    compute, a figure per regime, and the contrasts under every matching with where the conclusion depends on it."""
    runs = as_table(runs)
    regimes = architecture_regimes(runs)
    if not regimes:
        return missing("No baseline (ResNet, ViT, MLP-Mixer) shares a training regime with a ConvMixer here, so "
                       "claim 1 is not tested. Run grids/cpu-architectures.yaml (and the ConvMixer it compares "
                       "with, in grids/cpu-one-cycle.yaml) to test it.")
    parts = []
    for i, regime in enumerate(regimes):
        parts += _architecture_regime_parts(regime, i)
    parts.append(note(claim1_scope(regimes[0])))
    parts.append(details("The models compared: size, compute, speed and accuracy", table(
        architectures_table(runs), table_id="architectures-table", caption=(
            "Baselines were matched to the ConvMixer's parameter count within ±15% by "
            "convmixer/models/baselines.py (one fixed family per architecture, one size knob, no per-architecture "
            "tuning); the other ConvMixers of the regime listed are those a compute-matched or same-patch contrast "
            "pairs with a baseline. Every model trains with the same recipe, budget, data, seeds and training loop. "
            f"Multiply-adds per image are the forward pass's ({MACS_COVER}), computed from the architecture. "
            "Seconds per epoch is the fastest of a model's runs, timed while other work shared the machine (each "
            "record keeps its load average). The last column is the accuracy on the augmented training images in "
            "the last epoch: how far each model is from fitting its training data at this budget.")),
        element_id="architectures-models"))
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
              caption=f"{regime['regime']}: each baseline against the ConvMixer each matching pairs it with."),
        bullets([d["text"][0].upper() + d["text"][1:] + "." for d in dependences(regime)]
                + mixer_token_notes(regime)),
        details("How each matching pairs the models", bullets(sentences(MATCHING_RULE)),
                element_id=f"matching-rule{suffix}"),
    ]


# --------------------------------------------------------------------------- 5. cost

def cost_section(runs: pd.DataFrame, reference: dict) -> str:
    """ConvMixer-256/8 seconds per epoch here beside the published timings (figure), every configuration's
    seconds per epoch by setup (one compact table), the full measurements folded, and compute vs accuracy."""
    runs = as_table(runs)
    marks = reference_marks(reference)
    bars, settings = timing_bars(runs, reference)
    w, d = PAPER_WIDTH_DEPTH
    parts = []
    if not bars.empty:
        parts.append(figure(plots.timing_figure(bars, settings), alt="Seconds per epoch here and as published",
                            element_id="timing-figure", caption=(
            f"Seconds per training epoch of ConvMixer-{w}/{d}, as in the reference report's Figure 3: its CPU and "
            "GPU timings and the official script's logged GPU (published, hatched) beside the runs here (solid, "
            "the fastest run; the whisker reaches the slowest, slowed by other work on a shared machine). Bars of "
            "one colour trained the same model and settings.")))
    if not any(not p for p in bars["published"]):
        parts.append(missing(f"No ConvMixer-{w}/{d} run has completed here yet, so only the published timings are "
                             "drawn."))
    compact, devices = timings_by_setup(runs)
    if compact.empty:
        parts.append(missing("No completed runs, so nothing was timed yet."))
        return "\n".join(parts)
    parts.append(table(compact, table_id="timings-by-setup", caption=(
        "Seconds per epoch of every configuration here (the fastest run of each; columns: patch and kernel size)"
        + (f", all on {devices[0]}." if len(devices) == 1 else ".") + " Epochs that include graph tracing are "
        "excluded.")))
    parts.append(note(load_sentence(runs)))
    cost = cost_table(runs)
    parts.append(details("Every configuration's measured speed, load and projected full epoch", table(
        cost, table_id="cost-table", caption=(
            "Measured here: seconds per epoch (epochs that include graph tracing excluded) and training images per "
            "second of the fastest run of each configuration, since other work on a shared machine can only slow "
            "a run down; the slowest run shows the spread. "
            f"The projection is {FULL_EPOCH_IMAGES:,} / images per second. "
            "Load avg: the machine's 1-minute load average when training started / ended (mean over runs).")),
        table(marks[["device_kind", "device_name", "seconds_per_epoch"]].set_axis(
            ["device", "as named there", "seconds per epoch"], axis=1), table_id="reference-timings",
            caption="The reference report's timings (published, not measured here)."),
        element_id="cost-details"))
    done = prepare(runs)
    parts.append('<a id="compute"></a>')
    parts.append(figure(plots.compute_accuracy_figure(done), alt="Training compute versus accuracy", caption=(
        "Compute versus accuracy: total training seconds of each run (all epochs) against its test accuracy.")))
    return "\n".join(parts)


# --------------------------------------------------------------------------- 6, 7

def provenance_section(runs: pd.DataFrame) -> str:
    """Recipes, differences from the originals, data sources (JPEG flagged), versions, devices, commits:
    each folded under its name; the warnings stay in view."""
    runs = as_table(runs)
    tables = provenance(runs)
    empty = "No completed runs, so there is nothing to list."
    parts = []
    sentence = jpeg_sentence(runs)
    if sentence:
        parts.append(note(sentence, "warning jpeg"))
    dirty = dirty_sentence(runs)
    if dirty:
        parts.append(note(dirty, "warning dirty"))
    parts += [
        details("Recipes", table(recipes_table(), table_id="recipes-table"), element_id="recipes"),
        details("Differences from the original", table(pd.DataFrame(DIFFERENCES), table_id="differences-table"),
                element_id="differences"),
        details("Data sources", table(tables["data"], table_id="data-table", empty=empty), element_id="data-sources"),
        details("Library versions", table(tables["versions"], table_id="versions-table", empty=empty),
                element_id="versions"),
        details("Devices", table(tables["devices"], table_id="devices-table", empty=empty), element_id="devices"),
        details("Code (git commits)", table(tables["commits"], table_id="commits-table", empty=empty),
                element_id="commits"),
    ]
    return "\n".join(parts)


def lessons_section(runs: pd.DataFrame, grids_dir=GRIDS_DIR) -> str:
    """Section 7's generated statements and what the shipped grids (``grids_dir``) would add (folded: each
    grid's coverage in a table, its description as a sentence below it rather than a paragraph in a cell)."""
    runs = as_table(runs)
    grids = grid_coverage(runs, grids_dir)
    described = [f"{g}: {text}" for g, text in zip(grids["grid"], grids["description"]) if text] if not grids.empty \
        else []
    return "\n".join([
        bullets(lessons(runs, grids)),
        details("Shipped grids and how much of each has results here",
                table(grids.drop(columns="description") if not grids.empty else grids, table_id="grids-table",
                      empty="No grid files were found."),
                bullets(described), element_id="grids"),
    ])
