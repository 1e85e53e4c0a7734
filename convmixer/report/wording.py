"""The verdicts in words: the rules as the report states them, and each test, contrast and regime as a
sentence. ``verdicts`` decides (effects, intervals, verdict words, pairings) and calls these to phrase its
evidence; the report's sections, the README block and claims.json take their sentences from here."""

from __future__ import annotations

import pandas as pd

from ..models.baselines import MATCH_TOLERANCE
from .names import ARCHITECTURE_NAMES, hyperparameters, recipe_name, trained_on_jpeg
from .runs import other_axis, short_axis
from .stats import CONTRADICTS, INCONCLUSIVE, MIN_RUNS_PER_MODEL, NOT_TESTED


# How a verdict is reached, stated once for the evidence and the note under the verdict table.
VERDICT_RULE = (
    "Each setup (runs that differ only in kernel size, patch size and seed) is one unit of evidence. Its runs' "
    "test accuracies (percent) are fitted by ordinary least squares, accuracy ~ C(kernel) + C(patch), with a seed "
    f"block where every seed ran in every cell (statsmodels); only configurations with at least {MIN_RUNS_PER_MODEL} "
    "seeds enter, since a configuration with one run has no spread of its own (a test names those it leaves out; "
    "a setup left untested shows its differences as an illustration, with no test). A claim's effect in a setup "
    "is the difference between the largest and the smallest level of its axis, with a 95% confidence interval and a two-sided p-value that "
    "count the seeds' spread and, where every run kept its per-image test predictions, the test images' own "
    "sampling noise (every run is scored on the same test images; method of moments on the per-image "
    "differences, Welch-Satterthwaite degrees of freedom); the p-values of one claim's setups are Holm-adjusted "
    "together. A setup is "
    "consistent with the claim (or contradicts it) when its adjusted p < 0.05 and the effect has the claimed (or "
    "the opposite) sign, and inconclusive otherwise. A claim's verdict is that of its lead setup: the longest "
    "training whose learning rate was annealed to 0 (the end of a one-cycle schedule at a fixed budget), else the "
    "longest training; the lead is chosen from the recipe and budget alone, never from accuracy. On synthetic "
    "tables of this grid's shape with no "
    "effect, the rule calls a claim consistent in under 5% of draws (tests/test_inference.py)."
)


# The ways a baseline is paired with a ConvMixer of its regime, each fixed from the architectures alone.
MATCHINGS = {
    "parameters": "matched by parameters",
    "compute": "matched by compute",
    "patch": "compared at the same patch size",
}


MATCHING_RULE = (
    "Matched by parameters (the verdict's pairing): every baseline against one ConvMixer, the smallest patch and "
    f"then the largest kernel among those within ±{MATCH_TOLERANCE:.0%} of the baselines' median size. Matched "
    "by compute: each baseline against the ConvMixer of the regime closest to it in multiply-adds per image "
    "(the smallest ratio of the larger count to the smaller, since compute differs by factors). At "
    "the same patch size: each patch-based baseline against the ConvMixer at its patch size (largest kernel, then "
    "closest size). No pairing looks at accuracy. All contrasts come from one OLS fit over every model in the "
    "claim-1 table (stats.group_contrasts), so a pair has the same interval under every matching; the p-values of "
    "each matching are Holm-adjusted across its baselines. Multiply-adds count the forward pass's convolutions, "
    "dense layers and attention products (convmixer/models, count_model_macs).")


def claim1_scope(regime: dict) -> str:
    """What claim 1's test here can and cannot say, with the model sizes read from the regime's runs."""
    sizes = sorted({round(size["parameters"] / 1000) for size in regime["sizes"].values() if size.get("parameters")})
    at = (f"{sizes[0]:,}k to {sizes[-1]:,}k parameters" if len(sizes) > 1
          else f"{sizes[0]:,}k parameters" if sizes else "the sizes in the table")
    return (
        f"This is CIFAR-10 with models of {at} and a CPU budget; the paper's claim 1 is mainly about "
        "ImageNet-scale models, which a small-CIFAR result can neither confirm nor refute, only illustrate. "
        "The shared recipe is the ConvMixer code's own (locuslab/convmixer-cifar10's defaults), chosen for ConvMixer "
        "and not tuned for any baseline: the margins say how the baselines fare under it, not after tuning of their "
        "own. The verdict matches models by parameters, as the paper does; parameters are not compute, so the same "
        "baselines are also contrasted with the ConvMixer closest to each in multiply-adds per image, and with a "
        "ConvMixer of the same patch size, and the claim-1 table and figure show each model's multiply-adds and "
        "seconds per epoch on this machine.")


def regime_text(reference: str, first, cells: pd.DataFrame) -> str:
    seeds = cells.groupby(cells["architecture"].map(lambda a: ARCHITECTURE_NAMES.get(a, a)), sort=False)[
        "seed"].nunique()
    seeds_text = (f"{seeds.iloc[0]} seed{'s' if seeds.iloc[0] != 1 else ''} each" if seeds.nunique() == 1 else
                  "seeds: " + ", ".join(f"{arch} {n}" for arch, n in seeds.items()))
    jpeg = trained_on_jpeg(cells)
    return (f"{reference} against size-matched baselines after {first['epochs']} epochs of the "
            f"{recipe_name(first['recipe'])} recipe on {'the JPEG copy of CIFAR-10' if jpeg else 'CIFAR-10'} "
            f"({seeds_text}; the same recipe, budget, data, seeds and training loop)")


def test_line(t: dict, axis: str) -> str:
    r = t["result"]
    head = f"setup {t['setup']} ({t['regime']}; {t['schedule_end']}): "
    left_out = ""
    if t.get("left_out"):
        left_out = (f"; left out, with fewer than {MIN_RUNS_PER_MODEL} seeds: " + ", ".join(
            f"{short_axis(axis)} {a} at {short_axis(other_axis(axis))} {o} ({n} run{'s' if n != 1 else ''})"
            for a, o, n in t["left_out"]))
    if r is None:
        return head + (f"{short_axis(axis)} {t['low']} → {t['high']}: not estimable (the design changes "
                       f"{short_axis(other_axis(axis))} together with it"
                       + (", once the configurations with one run are left out" if left_out else "")
                       + f"): {t['verdict']}{left_out}")
    text = (head + f"{short_axis(axis)} {r['low']} → {r['high']}: {r['effect']:+.2f} points "
            f"(95% CI {r['ci_low']:+.2f} to {r['ci_high']:+.2f}; p = {r['p']:.2g}, Holm-adjusted {t['p_holm']:.2g}; "
            f"{r['df']:.0f} df; noise from {r.get('noise', 'seeds only')}; {r['n_runs']} runs): {t['verdict']}")
    text += left_out
    if r.get("steps"):
        trend_text = f" Linear trend {slope_words(r['slope'], axis)}." if r.get("slope") else ""
        text += f". Adjacent sizes: {step_words(r['steps'])}.{trend_text}"
    return text


def step_words(steps: list[dict]) -> str:
    """A test's adjacent-size contrasts: "3 → 5: +1.20 (Holm p 0.01); 5 → 7: ..."."""
    return "; ".join(f"{s['low']} → {s['high']}: {s['effect']:+.2f} (Holm p {s['p_holm']:.2g})" for s in steps)


def slope_words(slope: dict, axis: str) -> str:
    """A test's linear trend: "+0.40 points per kernel step of 1 (95% CI ... to ..., p = ...)"."""
    return (f"{slope['slope']:+.2f} points per {short_axis(axis)} step of 1 (95% CI {slope['ci_low']:+.2f} to "
            f"{slope['ci_high']:+.2f}, p = {slope['p']:.2g})")


def millions(macs) -> str:
    return f"{macs / 1e6:.2f}M" if macs else "?"


def contrast_line(t: dict) -> str:
    r = t["result"]
    if r is None:
        return (f"not estimable ({t['n_runs']} run{'s' if t['n_runs'] != 1 else ''} of it; a contrast needs at "
                f"least {MIN_RUNS_PER_MODEL} seeds of each model): {t['verdict']}")
    return (f"{r['effect']:+.2f} points (95% CI {r['ci_low']:+.2f} to {r['ci_high']:+.2f}; Holm-adjusted p = "
            f"{t['p_holm']:.2g}; {r['df']:.0f} residual df): {t['verdict']}")


def matching_line(t: dict, reference: str) -> str:
    """A compute-matched or same-patch contrast, with both models' multiply-adds and parameters."""
    same = " (the parameter-matched ConvMixer)" if t["convmixer"] == reference else ""
    return (f"{MATCHINGS[t['matching']].capitalize()}: {t['convmixer']}{same} ({millions(t['convmixer_macs'])} "
            f"multiply-adds per image, {t['convmixer_parameters'] or 0:,} parameters) minus {t['baseline']} "
            f"({millions(t['baseline_macs'])}, {t['baseline_parameters'] or 0:,}): " + contrast_line(t))


def join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def short_contrast(t: dict) -> str:
    r = t["result"]
    return (f"{t['convmixer']} minus it: " + (f"{r['effect']:+.2f} points, 95% CI {r['ci_low']:+.2f} to "
            f"{r['ci_high']:+.2f}, Holm-adjusted p = {t['p_holm']:.2g}" if r else "not estimable")
            + f", {t['verdict']}")


def mixer_token_notes(regime: dict) -> list[str]:
    """Each MLP-Mixer's token-mixing width against its token count: a possible handicap, said beside the verdict."""
    from ..cifar10 import IMAGE_SIZE

    notes = []
    for name, runs in regime["models"].items():
        row = runs.iloc[0]
        hp = hyperparameters(row)
        if row["architecture"] != "mlp_mixer" or "token_mlp_dim" not in hp or pd.isna(row.get("patch_size")):
            continue
        tokens = (IMAGE_SIZE // int(row["patch_size"])) ** 2
        notes.append(
            f"{name} mixes its {tokens} tokens through a token MLP of {hp['token_mlp_dim']} hidden units, because its "
            "family ties the token MLP to half the channel width so that its parameters can match the ConvMixer's "
            "(convmixer/models/baselines.py). That bottleneck may handicap it: the original Mixers' token MLPs "
            "are wider than their token count (Mixer-B/16: 384 units for 196 tokens).")
    return notes


def runs_against(n_low: int, n_high: int) -> str:
    """How many runs each side of a difference (low → high) has, in words: "one run each", "mean of 3 runs → 1
    run"."""
    if n_low == n_high == 1:
        return "one run each"
    return " → ".join("1 run" if n == 1 else f"mean of {n} runs" for n in (n_low, n_high))


def illustration_sentence(axis: str, items: list[dict]) -> str:
    """``verdicts.illustrations`` as one sentence to follow a verdict's summary ("" when there are none)."""
    if not items:
        return ""
    other = short_axis(other_axis(axis))
    by_setup = {}
    for i in items:
        by_setup.setdefault((i["setup"], i["regime"]), []).append(
            f"{short_axis(axis)} {i['low']} → {i['high']} at {other} {i['other']}: {i['effect']:+.2f} points "
            f"({runs_against(i['n_low'], i['n_high'])})")
    return (" Illustration only, no test (a configuration with one run has no spread of its own): "
            + "; ".join(f"setup {setup}, {regime}: {', '.join(parts)}" for (setup, regime), parts in by_setup.items())
            + ".")


def confounded_sentence(axis: str, setups: list[tuple[str, str]]) -> str:
    """``verdicts._confounded`` as one sentence ("" when there are none): setups a reader would otherwise miss."""
    return "".join(f" Neither tested nor illustrated: setup {label}, {regime}, changes {short_axis(axis)} only "
                   f"together with {short_axis(other_axis(axis))}." for label, regime in setups)


def axis_evidence(axis: str, tests: list[dict]) -> str:
    """An axis claim's evidence: a summary line (the lead setup's verdict, effect and interval, and the other
    regimes' words; the README shows it), then every setup's test."""
    lead = tests[0]
    r = lead["result"] or {}
    trained = ("at the end of its one-cycle schedule" if lead["annealed"]
               else "stopped mid-schedule (learning rate above 0)")
    summary = f"{lead['verdict']} for {lead['regime']}, {trained}"
    if r:
        summary += (f": {short_axis(axis)} {r['low']} → {r['high']} changes accuracy by "
                    f"{r['effect']:+.2f} points (95% CI {r['ci_low']:+.2f} to {r['ci_high']:+.2f}, Holm-adjusted "
                    f"p = {lead['p_holm']:.2g})")
    others = [f"{t['verdict']} for {t['regime']}" for t in tests[1:]]
    if others:
        summary += ". Other regimes: " + "; ".join(others)
    return "\n".join([summary + ".", *[test_line(t, axis) for t in tests]])


def dependence_text(baseline: str, tests: dict[str, dict], beats: list[str], rest: list[str]) -> str:
    """Whether ConvMixer beats ``baseline`` under each matching (``beats``) or not (``rest``), in words."""
    if beats and rest:
        # "Not when" would read as the baseline winning: say what each other matching found.
        found = {CONTRADICTS: "it beats ConvMixer", INCONCLUSIVE: "the margin is inconclusive",
                 NOT_TESTED: "it was not tested"}
        return (f"the conclusion for {baseline} depends on the matching: ConvMixer beats it when "
                f"{join_words([MATCHINGS[m] for m in beats])}, but "
                + "; ".join(f"{found.get(tests[m]['verdict'], 'the margin is ' + tests[m]['verdict'])} when "
                            f"{MATCHINGS[m]} ({short_contrast(tests[m])})" for m in rest))
    if beats:
        return f"ConvMixer beats {baseline} under every matching tested ({join_words([MATCHINGS[m] for m in beats])})"
    return (f"ConvMixer beats {baseline} under no matching tested ("
            + "; ".join(f"{MATCHINGS[m]}: {short_contrast(t)}" for m, t in tests.items()) + ")")


def architecture_evidence(lead: dict, verdict: str, depends: list[dict]) -> str:
    """Claim 1's evidence: a summary line (every parameter-matched contrast, and where another matching
    changes the conclusion; the README shows it), then every contrast, the dependences, the rule and notes."""
    lines = [f"{lead['reference']} minus {t['baseline']}: " + contrast_line(t) for t in lead["tests"]]
    lines += [matching_line(t, lead["reference"]) for kind in ("compute", "patch") for t in lead["matchings"][kind]]
    lines += [d["text"][0].upper() + d["text"][1:] + "." for d in depends]
    lines += [MATCHING_RULE, *mixer_token_notes(lead)]
    margins = "; ".join(
        f"{t['baseline']} {t['result']['effect']:+.2f} points (95% CI {t['result']['ci_low']:+.2f} to "
        f"{t['result']['ci_high']:+.2f})" if t["result"] else f"{t['baseline']} not estimable"
        for t in lead["tests"])
    changed = [d["text"] for d in depends if d["depends"]]
    matching_text = ("Matched by parameters, as in the paper; " + ("; ".join(changed) if changed else
                     "the conclusion for each baseline is the same under every matching tested") + ". ")
    head = (f"{verdict} for {lead['regime']}: {lead['reference']} minus {margins}. " + matching_text +
            "ConvMixer must beat every baseline for the claim to hold here. " + claim1_scope(lead))
    return "\n".join([head, *lines])
