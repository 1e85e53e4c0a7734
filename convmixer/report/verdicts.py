"""The paper's claims and their verdicts, from the run records.

An axis claim (kernel, patch) is tested in every setup that varies its axis
(``stats.axis_test``), Holm-adjusted across setups, and takes the verdict of its
lead setup (``wording.VERDICT_RULE``). Claim 1 contrasts a pre-chosen ConvMixer with
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
from . import stats, wording
from .names import cell_name, hyperparameters, parameter_count, regime, short_regime
from .runs import SETUP_FIELDS, as_table, clean, comparable_groups, other_axis, prepare, short_axis


# The paper's claims this study tests, in the order of the summary's numbered list.
CLAIMS = [
    {"id": "architectures", "anchor": "architectures",
     "claim": "ConvMixer beats ViT, MLP-Mixer and ResNet variants of similar size."},
    {"id": "kernel", "anchor": "trend-kernel", "axis": "kernel_size", "sign": +1,
     "claim": "A larger (depthwise) kernel raises accuracy."},
    {"id": "patch", "anchor": "trend-patch", "axis": "patch_size", "sign": -1,
     "claim": "A larger patch lowers accuracy."},
]


def schedule_end(setup_runs: pd.DataFrame) -> dict:
    """How a setup's training ended, read from the records and never from the test curve.

    ``annealed``: every run's learning rate ended at 0, i.e. the setup is the end of a
    one-cycle schedule at its fixed budget (a constant-rate recipe stops mid-training).
    That is a property of the recipe and budget, not a sign that accuracy stopped
    rising. ``train_pct`` (the last epoch's accuracy on the augmented training
    images, mean over runs) is shown beside ``test_pct`` and not read as under- or
    overfitting: strong augmentation alone keeps it below the test accuracy.
    """
    lr_zero = all(lr is not None and abs(lr) < 1e-6 for lr in setup_runs["final_lr"])
    train = [100 * a for a in setup_runs["final_train_accuracy"] if a is not None]
    epochs = int(setup_runs["epochs"].min()) if len(setup_runs) else 0
    # Means of the configurations' means: a configuration with more seeds does not outweigh the others.
    cells = pd.DataFrame({
        "train": pd.to_numeric(setup_runs["final_train_accuracy"], errors="coerce"),
        "test": pd.to_numeric(setup_runs["test_accuracy"], errors="coerce"),
        **{k: setup_runs[k].astype(str) for k in ("kernel_size", "patch_size", "architecture") if k in setup_runs}})
    keys = [k for k in ("kernel_size", "patch_size", "architecture") if k in cells]
    means = cells.groupby(keys, dropna=False)[["train", "test"]].mean() if keys else cells[["train", "test"]]
    train_pct = float(100 * means["train"].mean()) if train else float("nan")
    test_pct = float(100 * means["test"].mean())
    text = (f"the end of a one-cycle schedule at a fixed budget of {epochs} epochs (learning rate annealed to 0)"
            if lr_zero else f"stopped after {epochs} epochs with the learning rate above 0 (not annealed)")
    if train:
        text += f"; last-epoch training accuracy on augmented images {train_pct:.1f}% against {test_pct:.1f}% test"
        chosen = pd.to_numeric(setup_runs.get("selected_epoch", pd.Series(dtype=float)), errors="coerce").dropna()
        earlier = [int(e) for e in chosen if int(e) < epochs]
        if earlier:  # a recipe that tests its best-validation checkpoint: the test accuracy is an earlier epoch's
            selected = sorted(set(earlier))
            whose = "" if len(earlier) == len(setup_runs) else f" for {len(earlier)} of the {len(setup_runs)} runs"
            text += (f" (the test accuracy{whose} is the best-validation checkpoint's, from epoch"
                     f"{'s' if len(selected) > 1 else ''} {wording.join_words([str(e) for e in selected])})")
    return {"annealed": lr_zero, "train_pct": train_pct, "test_pct": test_pct, "text": text}


def _inference_frame(setup_runs: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame({
        "accuracy": 100 * pd.to_numeric(setup_runs["test_accuracy"], errors="coerce"),
        "kernel_size": setup_runs["kernel_size"].astype(int), "patch_size": setup_runs["patch_size"].astype(int),
        "seed": setup_runs["seed"].astype(int), "path": setup_runs["path"]})
    return frame.dropna(subset=["accuracy"]).reset_index(drop=True)


def per_image_correct(paths) -> np.ndarray | None:
    """Runs x images, 1 where the run got the image right, from each record's per-image predictions; None
    when any run lacks them or they are not of the same images in the same order (then only the seeds'
    noise can be counted)."""
    from ..records import RunRecord

    rows, labels = [], None
    for path in paths:
        try:
            saved = RunRecord(path).predictions()
        except (OSError, ValueError):
            return None
        if labels is None:
            labels = saved["label"]
        elif len(saved["label"]) != len(labels) or (saved["label"] != labels).any():
            return None
        rows.append(saved["predicted"] == saved["label"])
    return np.array(rows, dtype=float) if rows else None


def _budget_size(setup_runs: pd.DataFrame) -> float:
    images = pd.to_numeric(setup_runs["train_images"], errors="coerce").max()
    return float(setup_runs["epochs"].iloc[0]) * (0 if pd.isna(images) else float(images))


def no_trend_reason(runs: pd.DataFrame, axis: str) -> str:
    """Why no comparison along ``axis`` exists (for when ``tables.trend_setups`` is empty)."""
    if prepare(runs).empty:
        return "there are no completed runs"
    return (f"no setup has completed runs at two or more {short_axis(axis)} sizes with the "
            f"{short_axis(other_axis(axis))} size held fixed")


def _replicated(frame: pd.DataFrame) -> pd.Series:
    """Which runs belong to a configuration (kernel, patch) with at least ``MIN_RUNS_PER_MODEL`` runs: a
    configuration with one run has no spread of its own, and pooling the others' would assume it (as in claim 1)."""
    sizes = frame.groupby(["kernel_size", "patch_size"])["accuracy"].transform("size")
    return sizes >= stats.MIN_RUNS_PER_MODEL


def untested_reason(runs: pd.DataFrame, axis: str) -> str:
    """Why ``claim_tests`` found nothing to test along ``axis``."""
    if any(_inference_frame(sub)[axis].nunique() >= 2 for sub in comparable_groups(runs).values()):
        return (f"no setup has two or more {short_axis(axis)} sizes with at least {stats.MIN_RUNS_PER_MODEL} seeds "
                "of each configuration")
    return no_trend_reason(runs, axis)


def claim_tests(runs: pd.DataFrame, claim: dict) -> list[dict]:
    """Every setup's test of an axis claim, Holm-adjusted together; the lead setup first.

    Only replicated configurations enter a test (``_replicated``); a setup left with one level of the axis is not
    tested (``illustrations`` gives its differences), and ``left_out`` names the configurations a test leaves out."""
    axis, other = claim["axis"], other_axis(claim["axis"])
    tests = []
    for label, sub in comparable_groups(runs).items():
        frame = _inference_frame(sub)
        if frame.empty or frame[axis].nunique() < 2:
            continue
        kept = _replicated(frame)
        if frame[kept][axis].nunique() < 2:
            continue
        left_out = frame[~kept].groupby([axis, other]).size()
        frame = frame[kept].reset_index(drop=True)
        sub = sub[sub["path"].isin(frame["path"])]  # frame has dropped runs without an accuracy
        result = stats.axis_test(frame, axis, other, per_image_correct(frame["path"]))
        end = schedule_end(sub)
        tests.append({"setup": label, "regime": regime(sub), "n_runs": len(frame), "annealed": end["annealed"],
                      "schedule_end": end["text"], "budget": _budget_size(sub), "result": result,
                      "low": min(frame[axis]), "high": max(frame[axis]),
                      "left_out": [(int(a), int(o), int(n)) for (a, o), n in left_out.items()]})
    adjusted = stats.holm([t["result"]["p"] if t["result"] else float("nan") for t in tests])
    for t, p_holm in zip(tests, adjusted):
        r = t["result"]
        t["p_holm"] = p_holm
        t["verdict"] = stats.verdict_word(r["effect"], p_holm, claim["sign"]) if r else stats.INCONCLUSIVE
    # The lead: a setup that can test the claim at all, then an annealed schedule, then the longest training.
    tests.sort(key=lambda t: (t["result"] is None, not t["annealed"], -t["budget"], t["setup"]))
    return tests


def illustrations(runs: pd.DataFrame, claim: dict, tests: list[dict]) -> list[dict]:
    """What a setup that ``claim_tests`` left untested (``tests``: its result) shows along the claim's axis: at
    each level of the other axis that has two or more of its levels, the mean accuracy at the largest minus at
    the smallest, with how many runs each mean has. No test: a configuration with one run has no spread of its
    own."""
    axis, other = claim["axis"], other_axis(claim["axis"])
    tested = {t["setup"] for t in tests}
    out = []
    for label, sub in comparable_groups(runs).items():
        frame = _inference_frame(sub)
        if label in tested or frame.empty or frame[axis].nunique() < 2:
            continue
        cells = frame.groupby([other, axis])["accuracy"].agg(["mean", "size"])
        for level, at in cells.groupby(level=0):
            at = at.droplevel(0)
            if len(at) >= 2:
                low, high = at.index.min(), at.index.max()
                out.append({"setup": label, "regime": regime(sub), "other": int(level), "low": int(low),
                            "high": int(high), "effect": float(at.loc[high, "mean"] - at.loc[low, "mean"]),
                            "n_low": int(at.loc[low, "size"]), "n_high": int(at.loc[high, "size"])})
    return out


def _confounded(runs: pd.DataFrame, claim: dict, tests: list[dict], items: list[dict]) -> list[tuple[str, str]]:
    """(label, regime) of the setups with two or more levels of the claim's axis that are neither tested nor
    illustrated: each changes the axis only together with the other one."""
    axis = claim["axis"]
    seen = {t["setup"] for t in tests} | {i["setup"] for i in items}
    return [(label, regime(sub)) for label, sub in comparable_groups(runs).items()
            if label not in seen and _inference_frame(sub)[axis].nunique() >= 2]


def _axis_verdict(runs: pd.DataFrame, claim: dict) -> dict:
    tests = claim_tests(runs, claim)
    items = illustrations(runs, claim, tests)
    shown = wording.illustration_sentence(claim["axis"], items) + wording.confounded_sentence(
        claim["axis"], _confounded(runs, claim, tests, items))
    if not tests:
        return {"verdict": stats.NOT_TESTED, "evidence": f"Not tested: {untested_reason(runs, claim['axis'])}." + shown,
                "regime": None, "setups": [], "tests": []}
    lead = tests[0]
    evidence = wording.axis_evidence(claim["axis"], tests).split("\n")
    return {"verdict": lead["verdict"], "evidence": "\n".join([evidence[0] + shown, *evidence[1:]]),
            "regime": lead["regime"], "setups": [t["setup"] for t in tests], "tests": tests}


# Fields that say which model a run trained; every other setup field is its training regime.
MODEL_FIELDS = ["architecture", "hyperparameters", "width", "depth", "patch_size", "kernel_size", "activation"]
REGIME_FIELDS = [f for f in SETUP_FIELDS if f not in MODEL_FIELDS]


def macs_per_image(row) -> int | None:
    """The model's multiply-adds per image in the forward pass (models.baselines.count_model_macs), computed
    from its architecture; None when the record does not name a model that can be built."""
    from ..models.baselines import count_model_macs

    arch = row.get("architecture") or "convmixer"
    try:
        if arch == "convmixer":
            hp = {k: int(row[k]) for k in ("width", "depth", "patch_size", "kernel_size")}
        else:
            hp = hyperparameters(row) | ({"patch_size": int(row["patch_size"])}
                                         if not pd.isna(row.get("patch_size")) else {})
        return count_model_macs(arch, hp)
    except (ValueError, TypeError):
        return None


def architecture_regimes(runs: pd.DataFrame) -> list[dict]:
    """Training regimes (every setup field but the model's) that hold ConvMixer and baseline runs.

    In each, every baseline is paired with a ConvMixer of the regime in each of
    ``wording.MATCHINGS``, chosen before looking at any accuracy (``wording.MATCHING_RULE``);
    ``tests`` are the parameter-matched contrasts (the verdict's), ``matchings``
    all three.
    """
    runs = as_table(runs)
    done = prepare(runs, architecture=None)
    out = []
    if done.empty:
        return out
    keys = [tuple(clean(r[f]) for f in REGIME_FIELDS) for _, r in done.iterrows()]
    done["regime_key"] = [json.dumps(k, default=str) for k in keys]
    for _, sub in done.groupby("regime_key", sort=True):
        conv = sub[sub["architecture"] == "convmixer"]
        base = sub[sub["architecture"] != "convmixer"]
        if not conv.empty and not base.empty:
            out.append(_regime_contrasts(conv, base))
    out.sort(key=lambda r: (not r["annealed"], -r["budget"]))
    return out


CONVMIXER_KEY = ["width", "depth", "activation", "patch_size", "kernel_size"]


def _regime_contrasts(conv: pd.DataFrame, base: pd.DataFrame) -> dict:
    """One regime's claim-1 models, their pairings and contrasts (see ``architecture_regimes``)."""
    ref_runs = _reference_convmixer(conv, base)
    reference = cell_name(ref_runs.iloc[0])
    pairings = _pairings(conv.drop_duplicates(CONVMIXER_KEY), base, reference)
    chosen = set().union(*(p.values() for p in pairings.values())) - {reference}
    others = conv[[cell_name(r) in chosen for _, r in conv.iterrows()]]
    cells = pd.concat([ref_runs, others, base])  # the reference's runs first, then its order as before
    names = [cell_name(r) for _, r in cells.iterrows()]
    models = {n: cells[[m == n for m in names]] for n in dict.fromkeys(names)}
    frame = pd.DataFrame({"group": names, "seed": cells["seed"].astype(int).to_numpy(),
                          "accuracy": 100 * pd.to_numeric(cells["test_accuracy"], errors="coerce").to_numpy(),
                          "path": cells["path"].to_numpy()})
    frame = frame.dropna(subset=["accuracy"])
    counts = frame["group"].value_counts()
    fits = _fits(frame, counts, set().union(*(p.values() for p in pairings.values())))
    annealed = {n: schedule_end(m)["annealed"] for n, m in models.items()}
    sizes = {n: {"parameters": parameter_count(m.iloc[0]), "macs": macs_per_image(m.iloc[0])}
             for n, m in models.items()}
    matchings = {kind: _family(pairing, fits, counts, annealed, sizes, kind) for kind, pairing in pairings.items()}
    tests = matchings["parameters"]
    return {"reference": reference, "regime": wording.regime_text(reference, ref_runs.iloc[0], cells), "tests": tests,
            "matchings": matchings, "runs": cells, "sizes": sizes, "models": models,
            "annealed": annealed[reference] and all(t["annealed"] for t in tests),
            "budget": _budget_size(ref_runs), "n_runs": len(frame)}


def _pairings(conv_cells: pd.DataFrame, base: pd.DataFrame, reference: str) -> dict[str, dict[str, str]]:
    """For each of wording.MATCHINGS, baseline name -> the ConvMixer it is contrasted with (from architectures only)."""
    baselines = {cell_name(r): r for _, r in base.iterrows()}
    same_patch = {b: _patch_match(conv_cells, row) for b, row in baselines.items()}
    return {
        "parameters": {b: reference for b in sorted(baselines)},
        "compute": {b: cell_name(_compute_match(conv_cells, baselines[b])) for b in sorted(baselines)},
        "patch": {b: cell_name(same_patch[b]) for b in sorted(baselines) if same_patch[b] is not None},
    }


def _fits(frame: pd.DataFrame, counts: pd.Series, convmixers: set) -> dict[str, dict]:
    """Each paired ConvMixer's contrasts with every other model, from one OLS fit (stats.group_contrasts).

    A model with one run has no spread of its own: pooling the others' would assume it, so such a model
    does not enter the fit and gets no contrast (inconclusive).
    """
    replicated = frame[frame["group"].map(counts) >= stats.MIN_RUNS_PER_MODEL].reset_index(drop=True)
    correct = per_image_correct(replicated["path"])  # the test images' noise, where every run kept predictions
    return {c: (stats.group_contrasts(replicated, c, correct) or {}) if (
        counts.get(c, 0) >= stats.MIN_RUNS_PER_MODEL and replicated["group"].nunique() > 1) else {}
        for c in sorted(convmixers)}


def _family(pairing: dict, fits: dict, counts: pd.Series, annealed: dict, sizes: dict, kind: str) -> list[dict]:
    """One matching's contrasts (ConvMixer minus baseline), Holm-adjusted across its baselines."""
    results = [fits[c].get(b) for b, c in pairing.items()]
    adjusted = stats.holm([r["p"] if r else float("nan") for r in results])
    return [{"baseline": b, "convmixer": c, "matching": kind, "result": r, "p_holm": p_holm,
             "n_runs": int(counts.get(b, 0)), "annealed": annealed[c] and annealed[b],
             "convmixer_macs": sizes[c]["macs"], "baseline_macs": sizes[b]["macs"],
             "convmixer_parameters": sizes[c]["parameters"], "baseline_parameters": sizes[b]["parameters"],
             "verdict": stats.verdict_word(r["effect"], p_holm, +1) if r else stats.INCONCLUSIVE}
            for (b, c), r, p_holm in zip(pairing.items(), results, adjusted)]


def _rank(row, target: float, *first) -> tuple:
    """How a ConvMixer ranks for a pairing: ``first``, then within MATCH_TOLERANCE of ``target`` parameters,
    the largest kernel, the closest size; the rest only make the order total."""
    size = parameter_count(row) or 0
    return (*first, abs(size - target) > MATCH_TOLERANCE * target, -row["kernel_size"], abs(size - target),
            row["patch_size"], row["width"], row["depth"], str(row["activation"]))


def _compute_match(conv_cells: pd.DataFrame, baseline) -> pd.Series:
    """The ConvMixer closest to ``baseline`` in multiply-adds per image (the smaller ratio, larger count over
    smaller: compute differs by factors), ties broken as ``_rank``."""
    target = macs_per_image(baseline)

    def ratio(row):
        macs = macs_per_image(row)
        return max(macs, target) / min(macs, target) if macs and target else math.inf

    size = parameter_count(baseline) or 0
    return min((r for _, r in conv_cells.iterrows()), key=lambda r: _rank(r, size, ratio(r)))


def _patch_match(conv_cells: pd.DataFrame, baseline) -> pd.Series | None:
    """The ConvMixer at ``baseline``'s patch size, ranked as ``_rank``; None for a model without patches
    (ResNet) or a patch size no ConvMixer of the regime ran at."""
    if pd.isna(baseline.get("patch_size")):
        return None
    same = conv_cells[conv_cells["patch_size"] == int(baseline["patch_size"])]
    size = parameter_count(baseline) or 0
    return min((r for _, r in same.iterrows()), key=lambda r: _rank(r, size), default=None)


def _reference_convmixer(conv: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """The runs of the one ConvMixer the baselines are compared with by parameters, chosen without looking at
    accuracy: among the ConvMixers within MATCH_TOLERANCE (15%) of the baselines' median parameter count (the
    size they were matched to; any ConvMixer when none is), the smallest patch, then the largest kernel, then
    the closest size. A bigger ConvMixer trained in the same regime therefore never becomes the reference."""
    target = float(np.median([parameter_count(r) or 0 for _, r in base.iterrows()]))
    cells = conv.drop_duplicates(CONVMIXER_KEY)

    def rank(row):
        size = parameter_count(row) or 0
        return (abs(size - target) > MATCH_TOLERANCE * target, row["patch_size"], -row["kernel_size"],
                abs(size - target), row["width"], row["depth"], str(row["activation"]))

    best = min((r for _, r in cells.iterrows()), key=rank)
    return conv[(conv[CONVMIXER_KEY] == best[CONVMIXER_KEY]).all(axis=1)]


def _claim_word(tests: list[dict]) -> str:
    """ConvMixer must beat every baseline: any contradiction contradicts, all consistent is consistent."""
    words = [t["verdict"] for t in tests]
    if stats.CONTRADICTS in words:
        return stats.CONTRADICTS
    if words and all(w == stats.CONSISTENT for w in words):
        return stats.CONSISTENT
    return stats.INCONCLUSIVE


def dependence(baseline: str, tests: dict[str, dict]) -> dict:
    """Whether ConvMixer beats ``baseline`` under every matching it has (``tests``: matching -> contrast)."""
    beats = [m for m, t in tests.items() if t["verdict"] == stats.CONSISTENT]
    rest = [m for m in tests if m not in beats]
    text = wording.dependence_text(baseline, tests, beats, rest)
    return {"baseline": baseline, "depends": bool(beats and rest), "beats_under": beats, "text": text}


def dependences(regime: dict) -> list[dict]:
    """``dependence`` for each baseline of a regime, over the matchings that pair it."""
    by_baseline = {}
    for kind, tests in regime["matchings"].items():
        for t in tests:
            by_baseline.setdefault(t["baseline"], {})[kind] = t
    return [dependence(b, tests) for b, tests in sorted(by_baseline.items())]


def _architecture_verdict(runs: pd.DataFrame) -> dict:
    regimes = architecture_regimes(runs)
    if not regimes:
        done = prepare(runs, architecture=None)
        others = sorted(set(done["architecture"]) - {"convmixer"}) if not done.empty else []
        reason = ("Not tested: every completed run is a ConvMixer, so there is no ViT, MLP-Mixer or ResNet run to "
                  "compare against." if not others else
                  f"Not tested: runs of {', '.join(others)} exist, but none shares a training regime with a ConvMixer.")
        return {"verdict": stats.NOT_TESTED, "evidence": reason, "regime": None, "setups": [], "tests": [],
                "details": None}
    lead = regimes[0]
    verdict = _claim_word(lead["tests"])
    depends = dependences(lead)
    tests = [_test_entry(t, lead) for t in lead["tests"]]
    details = {kind: [_test_entry(t, lead) for t in family] for kind, family in lead["matchings"].items()}
    return {"verdict": verdict, "evidence": wording.architecture_evidence(lead, verdict, depends),
            "regime": lead["regime"],
            "setups": [lead["reference"]] + [t["baseline"] for t in lead["tests"]], "tests": tests,
            "details": {"matchings": details, "depends": depends, "sizes": lead["sizes"],
                        "verdict_by_matching": {k: _claim_word(f) for k, f in lead["matchings"].items()},
                        "notes": wording.mixer_token_notes(lead)}}


def _test_entry(t: dict, lead: dict) -> dict:
    """A claim-1 contrast in the shape of an axis claim's test (claims_json reads both alike)."""
    return {"setup": t["baseline"], "regime": lead["regime"], "annealed": t["annealed"], "low": t["baseline"],
            "high": t["convmixer"], "result": t["result"], "p_holm": t["p_holm"], "verdict": t["verdict"],
            "n_runs": t["n_runs"], "matching": t["matching"], "convmixer_macs": t["convmixer_macs"],
            "baseline_macs": t["baseline_macs"], "convmixer_parameters": t["convmixer_parameters"],
            "baseline_parameters": t["baseline_parameters"]}


VERDICT_COLUMNS = ["claim", "verdict", "evidence", "anchor", "id", "regime", "setups", "tests", "details"]


def verdicts(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per claim of ``CLAIMS``: verdict, its regime, the evidence as text, and the anchor that carries it.

    ``details`` holds claim 1's contrasts under every matching (None for the axis claims).
    """
    runs = as_table(runs)
    rows = []
    for claim in CLAIMS:
        result = _architecture_verdict(runs) if "axis" not in claim else _axis_verdict(runs, claim) | {"details": None}
        rows.append({"claim": claim["claim"], **result, "anchor": claim["anchor"], "id": claim["id"]})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def _json_number(value):
    """A finite number to 6 significant digits (not decimals: p-values can be tiny), else None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(f"{float(value):.6g}")


# Claim 1's contrasts also name the matching and both models' sizes.
MATCHING_FIELDS = ["matching", "convmixer_macs", "baseline_macs", "convmixer_parameters", "baseline_parameters"]


def _json_test(t: dict) -> dict:
    r = t["result"] or {}
    out = {"setup": t["setup"], "regime": t["regime"], "verdict": t["verdict"],
           "lr_annealed": bool(t["annealed"]), "low": clean(t["low"]), "high": clean(t["high"]),
           "effect": _json_number(r.get("effect")), "ci_low": _json_number(r.get("ci_low")),
           "ci_high": _json_number(r.get("ci_high")), "p": _json_number(r.get("p")),
           "p_holm": _json_number(t["p_holm"]), "df": _json_number(r.get("df")), "n_runs": int(t["n_runs"])}
    if "left_out" in t:  # configurations with one run, which the test leaves out: [axis level, other level, runs]
        out["left_out"] = [list(cell) for cell in t["left_out"]]
    return out | {k: clean(t[k]) for k in MATCHING_FIELDS if k in t}


def _json_details(details) -> dict:
    """Claim 1's extra data: every matching's contrasts, the claim's word under each, where the conclusion
    depends on the matching, each model's size and multiply-adds, and the disclosed handicaps."""
    if not isinstance(details, dict):
        return {}
    return {"matching_rule": wording.MATCHING_RULE,
            "matchings": {k: [_json_test(t) for t in tests] for k, tests in details["matchings"].items()},
            "verdict_by_matching": details["verdict_by_matching"],
            "depends_on_matching": [{"baseline": d["baseline"], "depends": d["depends"],
                                     "beats_under": d["beats_under"], "text": d["text"]} for d in details["depends"]],
            "models": [{"model": name, "parameters": clean(size["parameters"]), "macs_per_image": clean(size["macs"])}
                       for name, size in details["sizes"].items()],
            "notes": details["notes"]}


def claims_json(runs: pd.DataFrame, table: pd.DataFrame | None = None) -> dict:
    """The verdicts as data (``claims.json`` beside the report): one entry per claim, every setup's test under it."""
    runs = as_table(runs)
    table = verdicts(runs) if table is None else table
    entries = []
    for row in table.itertuples(index=False):
        tests = [_json_test(t) for t in row.tests]
        lead = tests[0] if tests else {}
        regime = row.regime if isinstance(row.regime, str) else None  # None turns NaN inside a DataFrame
        entries.append({"id": row.id, "claim": row.claim, "verdict": row.verdict, "regime": regime,
                        "setups": list(row.setups), "effect": lead.get("effect"), "ci_low": lead.get("ci_low"),
                        "ci_high": lead.get("ci_high"), "p": lead.get("p_holm"),
                        "n_runs": lead.get("n_runs", 0), "tests": tests, **_json_details(row.details)})
    return {"rule": wording.VERDICT_RULE, "claims": entries}


# --------------------------------------------------------------------------- the first screen

def interval(result: dict | None) -> dict:
    """A test result's effect and 95% interval (None each when the test gave no estimate)."""
    return {k: result[k] if result else None for k in ("effect", "ci_low", "ci_high")}


def headlines(runs: pd.DataFrame, table: pd.DataFrame | None = None) -> list[dict]:
    """Each claim of ``CLAIMS`` as the data of one line: the verdict, the effects behind it with their 95%
    intervals (claim 1: every parameter-matched baseline's margin; an axis claim: its lead setup's effect),
    the regime in a few words, and, for claim 1, the baselines whose conclusion another matching changes.

    Read from ``verdicts(runs)`` (pass it as ``table`` when it is at hand); nothing is recomputed but the
    regime's runs."""
    runs = as_table(runs)
    table = verdicts(runs) if table is None else table
    groups = comparable_groups(runs)
    out = []
    for claim, row in zip(CLAIMS, table.itertuples(index=False)):
        entry = {"id": claim["id"], "claim": claim["claim"], "verdict": row.verdict, "anchor": claim["anchor"],
                 "regime": None, "effects": [], "depends": []}
        tests = list(row.tests)
        if "axis" in claim and tests:
            lead = tests[0]
            entry["regime"] = short_regime(groups[lead["setup"]]) if lead["setup"] in groups else None
            entry["effects"] = [{"label": f"{short_axis(claim['axis'])} {lead['low']} → {lead['high']}",
                                 **interval(lead["result"]), "p_holm": lead["p_holm"]}]
        elif tests:
            lead = architecture_regimes(runs)[0]
            ref_runs = lead["models"][lead["reference"]]
            entry["regime"] = short_regime(ref_runs, model="", seeds_word=" each")  # the effects name the models
            entry["reference"] = lead["reference"]
            entry["effects"] = [{"label": t["setup"], **interval(t["result"]), "p_holm": t["p_holm"]} for t in tests]
            details = row.details or {}
            # Where another matching changes the conclusion: those contrasts, in the same shape.
            depends = {d["baseline"] for d in details.get("depends", []) if d["depends"]}
            entry["depends"] = [{"baseline": t["setup"], "matching": kind, "convmixer": t["high"],
                                 **interval(t["result"]), "verdict": t["verdict"]}
                                for kind, family in details.get("matchings", {}).items() if kind != "parameters"
                                for t in family if t["setup"] in depends and t["verdict"] != stats.CONSISTENT]
        out.append(entry)
    return out
