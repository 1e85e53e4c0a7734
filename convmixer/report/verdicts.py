"""The paper's claims and their verdicts, from the run records.

An axis claim (kernel, patch) is tested in every setup that varies its axis
(``stats.axis_test``), Holm-adjusted across setups, and takes the verdict of its
lead setup (``VERDICT_RULE``). Claim 1 contrasts a pre-chosen ConvMixer with
size-matched baselines trained in the same regime (rows that match a published
run like for like are ``anchors``'). Every function accepts an
empty or partial ``load_runs`` frame and returns "not tested" rather than raising.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from ..models.baselines import MATCH_TOLERANCE
from . import stats
from .names import ARCHITECTURE_NAMES, cell_name, parameter_count, regime
from .runs import SETUP_FIELDS, clean, comparable_groups, history, other_axis, prepare, short_axis


# The paper's claims this study tests, in the order of the summary's numbered list.
CLAIMS = [
    {"id": "architectures", "anchor": "architectures",
     "claim": "ConvMixer beats ViT, MLP-Mixer and ResNet variants of similar size."},
    {"id": "kernel", "anchor": "trend-kernel", "axis": "kernel_size", "sign": +1,
     "claim": "A larger (depthwise) kernel raises accuracy."},
    {"id": "patch", "anchor": "trend-patch", "axis": "patch_size", "sign": -1,
     "claim": "A larger patch lowers accuracy."},
]


# How a verdict is reached, stated once for the evidence and the note under the verdict table.
VERDICT_RULE = (
    "Each setup (runs that differ only in kernel size, patch size and seed) is one unit of evidence. Its runs' "
    "test accuracies (percent) are fitted by ordinary least squares, accuracy ~ C(kernel) + C(patch), with a seed "
    "block where every seed ran in every cell (statsmodels). A claim's effect in a setup is the difference between "
    "the largest and the smallest level of its axis, with a 95% confidence interval and a two-sided p-value on the "
    "model's residual degrees of freedom; the p-values of one claim's setups are Holm-adjusted together. A setup is "
    "consistent with the claim (or contradicts it) when its adjusted p < 0.05 and the effect has the claimed (or "
    "the opposite) sign, and inconclusive otherwise. A claim's verdict is that of its lead setup: the longest "
    "training whose learning rate was annealed to 0 (the end of a one-cycle schedule at a fixed budget), else the "
    "longest training; the lead is chosen from the recipe and budget alone, never from accuracy. On synthetic "
    "tables of this grid's shape with no "
    "effect, the rule calls a claim consistent in under 5% of draws (tests/test_inference.py)."
)


def schedule_end(setup_runs: pd.DataFrame) -> dict:
    """How a setup's training ended, read from the records and never from the test curve.

    ``annealed``: every run's learning rate ended at 0, i.e. the setup is the end of a
    one-cycle schedule at its fixed budget (a constant-rate recipe stops mid-training).
    That is a property of the recipe and budget, not a sign that accuracy stopped
    rising. ``train_pct`` (the last epoch's accuracy on the augmented training
    images, mean over runs) beside ``test_pct`` says whether the models still
    underfit: below the test accuracy means they do not yet fit their own training data.
    """
    lr_zero, train = True, []
    for path in setup_runs["path"]:
        h = history(path)
        lr_zero &= h is not None and "lr" in h and bool(abs(float(h["lr"].iloc[-1])) < 1e-6)
        if h is not None and "accuracy" in h and len(h):
            train.append(100 * float(h["accuracy"].iloc[-1]))
    epochs = int(setup_runs["epochs"].min()) if len(setup_runs) else 0
    train_pct = float(np.mean(train)) if train else float("nan")
    test_pct = float(100 * pd.to_numeric(setup_runs["test_accuracy"], errors="coerce").mean())
    underfit = bool(train) and train_pct < test_pct
    text = (f"the end of a one-cycle schedule at a fixed budget of {epochs} epochs (learning rate annealed to 0)"
            if lr_zero else f"stopped after {epochs} epochs with the learning rate above 0 (not annealed)")
    if train:
        text += (f"; last-epoch training accuracy on augmented images {train_pct:.1f}% against {test_pct:.1f}% test"
                 + (": the models still underfit" if underfit else ""))
    return {"annealed": lr_zero, "train_pct": train_pct, "test_pct": test_pct, "underfit": underfit, "text": text}


def _inference_frame(setup_runs: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({
        "accuracy": 100 * pd.to_numeric(setup_runs["test_accuracy"], errors="coerce"),
        "kernel_size": setup_runs["kernel_size"].astype(int), "patch_size": setup_runs["patch_size"].astype(int),
        "seed": setup_runs["seed"].astype(int)})
    return frame.dropna(subset=["accuracy"]).reset_index(drop=True)


def _budget_size(setup_runs: pd.DataFrame) -> float:
    images = pd.to_numeric(setup_runs["train_images"], errors="coerce").max()
    return float(setup_runs["epochs"].iloc[0]) * (0 if pd.isna(images) else float(images))


def no_trend_reason(runs: pd.DataFrame, axis: str) -> str:
    """Why no comparison along ``axis`` exists (for when ``tables.trend_setups`` is empty)."""
    if prepare(runs).empty:
        return "there are no completed runs"
    return (f"no setup has completed runs at two or more {short_axis(axis)} sizes with the "
            f"{short_axis(other_axis(axis))} size held fixed")


def claim_tests(runs: pd.DataFrame, claim: dict) -> list[dict]:
    """Every setup's test of an axis claim, Holm-adjusted together; the lead setup first."""
    axis, other = claim["axis"], other_axis(claim["axis"])
    tests = []
    for label, sub in comparable_groups(runs).items():
        frame = _inference_frame(sub)
        if frame.empty or frame[axis].nunique() < 2:
            continue
        result = stats.axis_test(frame, axis, other)
        end = schedule_end(sub)
        tests.append({"setup": label, "regime": regime(sub), "n_runs": len(frame), "annealed": end["annealed"],
                      "schedule_end": end["text"], "budget": _budget_size(sub), "result": result,
                      "low": min(frame[axis]), "high": max(frame[axis])})
    adjusted = stats.holm([t["result"]["p"] if t["result"] else float("nan") for t in tests])
    for t, p_holm in zip(tests, adjusted):
        r = t["result"]
        t["p_holm"] = p_holm
        t["verdict"] = stats.verdict_word(r["effect"], p_holm, claim["sign"]) if r else stats.INCONCLUSIVE
    # The lead: a setup that can test the claim at all, then an annealed schedule, then the longest training.
    tests.sort(key=lambda t: (t["result"] is None, not t["annealed"], -t["budget"], t["setup"]))
    return tests


def _test_line(t: dict, axis: str) -> str:
    r = t["result"]
    head = f"setup {t['setup']} ({t['regime']}; {t['schedule_end']}): "
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
    tests = claim_tests(runs, claim)
    if not tests:
        return {"verdict": stats.NOT_TESTED, "evidence": f"Not tested: {no_trend_reason(runs, claim['axis'])}.",
                "regime": None, "setups": [], "tests": []}
    lead = tests[0]
    r = lead["result"] or {}
    trained = ("at the end of its one-cycle schedule" if lead["annealed"]
               else "stopped mid-schedule (learning rate above 0)")
    summary = f"{lead['verdict']} for {lead['regime']}, {trained}"
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
MIN_RUNS_PER_MODEL = 2  # seeds a model needs before its own run-to-run spread enters a contrast
CLAIM1_SCOPE = (
    "This is CIFAR-10 at about 40k parameters and a CPU budget; the paper's claim 1 is mainly about "
    "ImageNet-scale models, which a small-CIFAR result can neither confirm nor refute, only illustrate. "
    "The shared recipe is the ConvMixer code's own (locuslab/convmixer-cifar10's defaults), chosen for ConvMixer "
    "and not tuned for any baseline: the margins say how the baselines fare under it, not after tuning of their own. "
    "Size means parameters, as in the paper, not compute: the models are not matched in arithmetic per image, and "
    "the claim-1 figure shows what each costs per epoch on this machine.")


def architecture_regimes(runs: pd.DataFrame) -> list[dict]:
    """Training regimes (every setup field but the model's) that hold ConvMixer and baseline runs.

    In each, the ConvMixer compared is fixed before looking at any accuracy: the
    paper's headline cell, the smallest patch and, at that patch, the largest
    kernel. Each baseline is contrasted with it (``stats.group_contrasts``) and
    the baselines' p-values are Holm-adjusted together.
    """
    done = prepare(runs, architecture=None)
    out = []
    if done.empty:
        return out
    keys = [tuple(clean(r[f]) for f in REGIME_FIELDS) for _, r in done.iterrows()]
    done["regime_key"] = [json.dumps(k, default=str) for k in keys]
    for _, sub in done.groupby("regime_key", sort=True):
        conv = sub[sub["architecture"] == "convmixer"]
        base = sub[sub["architecture"] != "convmixer"]
        if conv.empty or base.empty:
            continue
        ref_runs = _reference_convmixer(conv, base)
        cells = pd.concat([ref_runs, base])
        names = [cell_name(r) for _, r in cells.iterrows()]
        frame = pd.DataFrame({"group": names, "seed": cells["seed"].astype(int).to_numpy(),
                              "accuracy": 100 * pd.to_numeric(cells["test_accuracy"], errors="coerce").to_numpy()})
        frame = frame.dropna()
        reference = cell_name(ref_runs.iloc[0])
        # A model with one run has no spread of its own: pooling the others' would assume it, so such a
        # model gets no contrast (inconclusive), and it does not enter the fit.
        counts = frame["group"].value_counts()
        replicated = frame[frame["group"].map(counts) >= MIN_RUNS_PER_MODEL]
        contrasts = (stats.group_contrasts(replicated, reference) or {}) if (
            counts.get(reference, 0) >= MIN_RUNS_PER_MODEL and replicated["group"].nunique() > 1) else {}
        baselines = sorted(set(names) - {reference})
        adjusted = stats.holm([contrasts[b]["p"] if b in contrasts else float("nan") for b in baselines])
        ref_annealed = schedule_end(ref_runs)["annealed"]
        tests = []
        for name, p_holm in zip(baselines, adjusted):
            r = contrasts.get(name)
            model_runs = cells[[n == name for n in names]]
            tests.append({"baseline": name, "result": r, "p_holm": p_holm, "n_runs": int(counts.get(name, 0)),
                          "annealed": ref_annealed and schedule_end(model_runs)["annealed"],
                          "verdict": stats.verdict_word(r["effect"], p_holm, +1) if r else stats.INCONCLUSIVE})
        first = ref_runs.iloc[0]
        seeds = cells.groupby(cells["architecture"].map(lambda a: ARCHITECTURE_NAMES.get(a, a)), sort=False)[
            "seed"].nunique()
        seeds_text = (f"{seeds.iloc[0]} seed{'s' if seeds.iloc[0] != 1 else ''} each" if seeds.nunique() == 1 else
                      "seeds: " + ", ".join(f"{arch} {n}" for arch, n in seeds.items()))
        # Over the column (map hands Python bools), not one row: a row of a bool column holds numpy.bool_.
        jpeg = cells["lossy_jpeg"].map(lambda v: v is True).all()
        regime = (f"{reference} against size-matched baselines after {first['epochs']} epochs of the "
                  f"{first['recipe']} recipe on {'the JPEG copy of CIFAR-10' if jpeg else 'CIFAR-10'} "
                  f"({seeds_text}; the same recipe, budget, data, seeds and training loop)")
        out.append({"reference": reference, "regime": regime, "tests": tests, "runs": cells,
                    "annealed": ref_annealed and all(t["annealed"] for t in tests), "budget": _budget_size(ref_runs),
                    "n_runs": len(frame)})
    out.sort(key=lambda r: (not r["annealed"], -r["budget"]))
    return out


def _reference_convmixer(conv: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """The runs of the one ConvMixer the baselines are compared with, chosen without looking at accuracy:
    among the ConvMixers within MATCH_TOLERANCE (15%) of the baselines' median parameter count (the size they were
    matched to; any ConvMixer when none is), the smallest patch, then the largest kernel, then the closest
    size. A bigger ConvMixer trained in the same regime therefore never becomes the reference; other
    ConvMixers of the regime take no part in claim 1."""
    target = float(np.median([parameter_count(r) or 0 for _, r in base.iterrows()]))
    key = ["width", "depth", "activation", "patch_size", "kernel_size"]
    cells = conv.drop_duplicates(key)

    def rank(row):
        size = parameter_count(row) or 0
        return (abs(size - target) > MATCH_TOLERANCE * target, row["patch_size"], -row["kernel_size"],
                abs(size - target), row["width"], row["depth"], str(row["activation"]))

    best = min((r for _, r in cells.iterrows()), key=rank)
    return conv[(conv[key] == best[key]).all(axis=1)]


def _architecture_verdict(runs: pd.DataFrame) -> dict:
    regimes = architecture_regimes(runs)
    if not regimes:
        done = prepare(runs, architecture=None)
        others = sorted(set(done["architecture"]) - {"convmixer"}) if not done.empty else []
        reason = ("Not tested: every completed run is a ConvMixer, so there is no ViT, MLP-Mixer or ResNet run to "
                  "compare against." if not others else
                  f"Not tested: runs of {', '.join(others)} exist, but none shares a training regime with a ConvMixer.")
        return {"verdict": stats.NOT_TESTED, "evidence": reason, "regime": None, "setups": [], "tests": []}
    lead = regimes[0]
    words = [t["verdict"] for t in lead["tests"]]
    if stats.CONTRADICTS in words:
        verdict = stats.CONTRADICTS
    elif words and all(w == stats.CONSISTENT for w in words):
        verdict = stats.CONSISTENT
    else:
        verdict = stats.INCONCLUSIVE
    lines = []
    for t in lead["tests"]:
        r = t["result"]
        lines.append(f"{lead['reference']} minus {t['baseline']}: " + (
            f"{r['effect']:+.2f} points (95% CI {r['ci_low']:+.2f} to {r['ci_high']:+.2f}; Holm-adjusted p = "
            f"{t['p_holm']:.2g}; {r['df']:.0f} residual df): {t['verdict']}" if r else
            f"not estimable ({t['n_runs']} run{'s' if t['n_runs'] != 1 else ''} of it; a contrast needs at least "
            f"{MIN_RUNS_PER_MODEL} seeds of each model): {t['verdict']}"))
    # The first line is the summary the README shows, so it carries every contrast (the lines below add
    # the Holm p-values and degrees of freedom).
    margins = "; ".join(
        f"{t['baseline']} {t['result']['effect']:+.2f} points (95% CI {t['result']['ci_low']:+.2f} to "
        f"{t['result']['ci_high']:+.2f})" if t["result"] else f"{t['baseline']} not estimable"
        for t in lead["tests"])
    head = (f"{verdict} for {lead['regime']}: {lead['reference']} minus {margins}. ConvMixer must beat every "
            "baseline for the claim to hold here. " + CLAIM1_SCOPE)
    tests = [{"setup": t["baseline"], "regime": lead["regime"], "annealed": t["annealed"], "low": t["baseline"],
              "high": lead["reference"], "result": t["result"], "p_holm": t["p_holm"], "verdict": t["verdict"],
              "n_runs": t["n_runs"]} for t in lead["tests"]]
    return {"verdict": verdict, "evidence": "\n".join([head, *lines]), "regime": lead["regime"],
            "setups": [lead["reference"]] + [t["baseline"] for t in lead["tests"]], "tests": tests}


VERDICT_COLUMNS = ["claim", "verdict", "evidence", "anchor", "id", "regime", "setups", "tests"]


def verdicts(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per claim of ``CLAIMS``: verdict, its regime, the evidence as text, and the anchor that carries it."""
    rows = []
    for claim in CLAIMS:
        result = _architecture_verdict(runs) if "axis" not in claim else _axis_verdict(runs, claim)
        rows.append({"claim": claim["claim"], **result, "anchor": claim["anchor"], "id": claim["id"]})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def _json_number(value):
    """A finite number to 6 significant digits (not decimals: p-values can be tiny), else None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(f"{float(value):.6g}")


def claims_json(runs: pd.DataFrame, table: pd.DataFrame | None = None) -> dict:
    """The verdicts as data (``claims.json`` beside the report): one entry per claim, every setup's test under it."""
    table = verdicts(runs) if table is None else table
    entries = []
    for row in table.itertuples(index=False):
        tests = []
        for t in row.tests:
            r = t["result"] or {}
            tests.append({"setup": t["setup"], "regime": t["regime"], "verdict": t["verdict"],
                          "lr_annealed": bool(t["annealed"]), "low": clean(t["low"]), "high": clean(t["high"]),
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
