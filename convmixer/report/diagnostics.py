"""Where a gap to a published run comes from, one known difference at a time.

A diagnostic run trains a published setting (``anchors.matching_runs``) with
recipe overrides that change exactly one field of its recipe, such as
``{initialisation: pytorch}``. Each diagnostic run is paired with the one run of
the published setting that has its seed and everything else of its setup (data,
backend, precision, ...); for an override of the initialisation, optimiser or
schedule, the same seed also draws the same data order and augmentation. Pairs
are reported per setup, never pooled across data or backends:

* 2 or more pairs: the mean of their differences with a 95% t interval and
  p-value (a paired t-test, ``stats.paired_difference``; a test checks that its
  interval misses a zero effect 5% of the time);
* 1 pair: the difference only, not a test (how far seeds move this setting is
  unknown with one seed, and another setting's spread would be a guess).

``gap_sources`` lists, for the official log, every known difference (the seeds, the
data copy, ``recipes.official_differences``) with what these runs or the tests show about it.

The sentences say which way a difference moves ours against the published value;
how much of a gap it "explains" is left to a reader, since the published value is
itself one run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import anchors, stats
from ..training.recipes import RECIPES, official_differences
from .runs import SETUP_FIELDS, as_table, prepare

# What a pair shares besides its seed: every field of a setup but the recipe overrides.
PAIRED_FIELDS = [f for f in SETUP_FIELDS if f != "recipe_overrides"]


def _key(run: dict) -> tuple:
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in (run[f] for f in PAIRED_FIELDS))


def _pairs(with_runs: pd.DataFrame, without_runs: pd.DataFrame) -> dict[tuple, list[dict]]:
    """Setup key -> pairs (one run on each side, one to one) of runs with the same seed and setup but for the
    recipe overrides; a seed with more than one run on either side is ambiguous and left out."""
    def by_seed(frame):
        runs = {}
        for r in frame.to_dict("records"):
            if not math.isnan(r["test_accuracy"]):
                runs.setdefault((_key(r), int(r["seed"])), []).append(r)
        return runs

    without = by_seed(without_runs)
    out: dict[tuple, list[dict]] = {}
    for (key, seed), runs in sorted(by_seed(with_runs).items(), key=lambda item: item[0][1]):
        twins = without.get((key, seed), [])
        if len(runs) == 1 and len(twins) == 1:
            out.setdefault(key, []).append({
                "seed": seed, "with": 100 * float(runs[0]["test_accuracy"]),
                "without": 100 * float(twins[0]["test_accuracy"]), "setup": twins[0]["setup"],
                "with_setup": runs[0]["setup"],
                "jpeg": anchors.is_true(runs[0]["lossy_jpeg"]) and anchors.is_true(twins[0]["lossy_jpeg"])})
    return out


def diagnostics(runs: pd.DataFrame, reference: dict) -> list[dict]:
    """One dict per published run, recipe difference and setup with at least one pair: the row
    (``published_runs``), ``overrides`` (the diagnostic runs'), ``field`` and ``words`` (the one difference of
    their recipe, a ``Recipe`` field and in words), ``setup`` and ``with_setup`` (the setup labels of the
    published setting's runs and of the diagnostic's), ``pairs`` ([{"seed", "with", "without", ...}], test accuracy in
    percent), ``with_mean`` and ``without_mean`` over the pairs, ``difference`` (``stats.paired_difference``),
    and ``jpeg``."""
    done = prepare(runs)
    if done.empty:
        return []
    out = []
    for row in anchors.published_runs(reference):
        without = anchors.matching_runs(done, row)
        if without.empty:
            continue
        for overrides, field, value in anchors.one_difference(done, row):
            found = _pairs(anchors.matching_runs(done, {**row, "recipe_overrides": overrides}), without)
            for pairs in found.values():
                with_pct, without_pct = [p["with"] for p in pairs], [p["without"] for p in pairs]
                out.append({**row, "setting": anchors.setting_name(row),
                            "source_name": anchors.SOURCE_NAMES.get(row["source"], row["source"]),
                            "overrides": overrides, "field": field,
                            "words": anchors.difference_words(field, value), "setup": pairs[0]["setup"],
                            "with_setup": pairs[0]["with_setup"], "pairs": pairs,
                            "with_mean": float(np.mean(with_pct)), "without_mean": float(np.mean(without_pct)),
                            "difference": stats.paired_difference(with_pct, without_pct),
                            "jpeg": all(p["jpeg"] for p in pairs)})
    return out


def diagnostic_sentences(d: dict) -> list[str]:
    """What one diagnostic shows: both sides over the same seeds, the paired difference, and which way it moves
    ours against the published value, as far as its pairs can tell."""
    diff, n = d["difference"], d["difference"]["n"]
    data = " on the JPEG copy" if d["jpeg"] else ""
    seeds = f"seed{'s' if n != 1 else ''} {', '.join(str(p['seed']) for p in d['pairs'])}"
    before, after = d["without_mean"] - d["published"], d["with_mean"] - d["published"]
    out = [f"Against {d['source_name']} ({d['setting']}, {d['published']:.2f}%), with {d['words']}: "
           f"{d['with_mean']:.2f}% (setup {d['with_setup']}) against {d['without_mean']:.2f}% without it (setup "
           f"{d['setup']}), {seeds}{' each' if n == 1 else ''}{data}, "
           f"{diff['effect']:+.2f} points; ours minus the published value goes from {before:+.2f} to "
           f"{after:+.2f} points."]
    if n >= 2 and not math.isnan(diff["low"]):
        interval = (f"{diff['effect']:+.2f} points (95% CI {diff['low']:+.2f} to {diff['high']:+.2f}, paired "
                    f"t-test over {n} seeds, p = {diff['p']:.2g})")
        if diff["low"] > 0 or diff["high"] < 0:
            way = ("away from" if abs(after) > abs(before) and after * before > 0 else
                   "past" if after * before < 0 else "toward")
            out.append(f"Paired by seed, {d['words']} moves our accuracy {way} the published value by {interval}.")
        else:
            out.append(f"Paired by seed: {interval}; the interval includes 0, so {n} pairs cannot tell the effect "
                       f"of {d['words']} from 0.")
    elif n >= 2:
        out.append(f"The {n} pairs differ by exactly the same amount: no spread to test with.")
    else:
        out.append("One pair, not a test.")
    return out


def pending(runs: pd.DataFrame, reference: dict) -> list[dict]:
    """Diagnostics not completed yet: per published setting and recipe difference with unfinished, resumable
    runs (each has a checkpoint) of seeds not completed, the row plus ``field``, ``words`` and ``seeds``."""
    table = as_table(runs)
    unfinished_runs = table[(table["status"] == "incomplete") & table["resumable"].map(anchors.is_true)]
    if unfinished_runs.empty:
        return []
    done = prepare(table)
    out = []
    for row in anchors.published_runs(reference):
        for overrides, field, value in anchors.one_difference(unfinished_runs, row):
            variant = {**row, "recipe_overrides": overrides}
            seeds = anchors.in_progress(anchors.matching_runs(unfinished_runs, variant),
                                        done=anchors.matching_runs(done, variant))
            if seeds:
                out.append({**row, "field": field, "words": anchors.difference_words(field, value), "seeds": seeds})
    return out


def unfinished(runs: pd.DataFrame, reference: dict) -> list[str]:
    """A sentence per ``pending`` diagnostic, so a reader knows which difference is being measured."""
    return [f"Diagnostic under way (resumable: {p['seeds']}): {anchors.setting_name(p)}, with {p['words']}, to "
            "measure that one difference." for p in pending(runs, reference)]


# Each difference in a few words (the report's table gives the whole of recipes.official_differences).
SOURCE_WORDS = {
    "optimizer": "optimizer (Adam's epsilon: 1e-7 here before the bias correction, PyTorch's 1e-8 after it)",
    "precision": "precision (float32 here, mixed precision on the log's GPU)",
    "initialisation": "initialisation (Keras' here, PyTorch's defaults in the script)",
    "augmentation arithmetic": "augmentation arithmetic",
    "augmentation randomness": "augmentation randomness",
}

# What is known of a difference without a run that changes it: the tests that establish it, and their reach.
SETTLED = {
    "augmentation arithmetic": "not measured on accuracy; each op's pixels equal Pillow's at torchvision's "
                               "magnitudes, one op at a time, and RandAugment draws one of its 14 ops per image and "
                               "round (tests/test_augment.py)",
    "augmentation randomness": "other draws from the same distributions: part of what seeds vary",
    "optimizer": "not measured on accuracy; with equal epsilons, 3 steps of a small ConvMixer equal PyTorch's "
                 "(model, loss, AdamW, BatchNorm) within 0.01 x lr (tests/test_pytorch_step.py, where PyTorch is "
                 "installed)",
}
# The recipe fields whose diagnostic isolates a known difference (recipes.official_differences' aspects).
ASPECT_FIELDS = {"initialisation": ("initialisation",), "optimizer": ("adam_epsilon",)}


def gap_sources(runs: pd.DataFrame, reference: dict, rows: list[dict]) -> pd.DataFrame:
    """Where a gap to the official script's log can come from: the number of seeds, the data, then each known
    difference of the official script as logged (``recipes.official_differences``), each with what these runs and
    tests show about it (a diagnostic's paired difference, an unfinished diagnostic, a test, or "not measured
    here"), then any diagnostic of another recipe field. ``rows``: ``anchors.like_for_like``. Empty when the log has no
    completed run here."""
    logged = [r for r in rows if r["source"] == "official_logged" and r["n"] > 0]
    if not logged:
        return pd.DataFrame()

    def per_setup(texts):
        return texts[0][1] if len(texts) == 1 else "; ".join(f"setup {setup}: {text}" for setup, text in texts)

    def shows(fields):
        measured = [(d["setup"], _short(d)) for d in found if d["field"] in fields]
        waiting = [f"{p['words']}, {p['seeds']}" for p in pending_here if p["field"] in fields]
        unfinished_words = f"a diagnostic is unfinished (resumable: {'; '.join(waiting)})"
        if measured:
            return per_setup(measured) + (f"; {unfinished_words}" if waiting else "")
        return unfinished_words if waiting else None

    found = [d for d in diagnostics(runs, reference) if d["source"] == "official_logged"]
    pending_here = [p for p in pending(runs, reference) if p["source"] == "official_logged"]
    out = [{"possible source": "seeds", "original": "one run (the log)",
            "here": per_setup([(r["setup"], f"{r['n']} seed{'s' if r['n'] != 1 else ''}") for r in logged]),
            "what these runs and tests show": per_setup([(r["setup"], r["verdict"] + (
                f": the log against our 95% prediction interval for one run, {r['pi_low']:.2f}-{r['pi_high']:.2f}%"
                if r["n"] > 1 else "")) for r in logged])},
           {"possible source": "data", "original": "canonical CIFAR-10",
            "here": per_setup([(r["setup"], "lossy JPEG copy" if r["jpeg"] else "the data its records name")
                               for r in logged]),
            "what these runs and tests show": per_setup([(r["setup"], "not measured here, so unknown" if r["jpeg"] else
                                                "no JPEG copy in these runs") for r in logged])}]
    for difference in official_differences(RECIPES["official-logged"]):
        aspect = difference["aspect"]
        out.append({"possible source": aspect, "original": difference["original"], "here": difference["here"],
                    "what these runs and tests show": shows(ASPECT_FIELDS.get(aspect, ())) or SETTLED.get(
                        aspect, "not measured here")})
    mapped = {f for fields in ASPECT_FIELDS.values() for f in fields}
    for field in sorted({d["field"] for d in found + pending_here} - mapped):
        out.append({"possible source": f"recipe field {field}", "original": "the logged run's",
                    "here": "changed by a diagnostic", "what these runs and tests show": shows((field,))})
    return pd.DataFrame(out)


def source_line(source: dict) -> str:
    """One ``gap_sources`` row as a line: the source in a few words, then what these runs and tests show about it."""
    name = source["possible source"]
    words = (f"data ({source['here']} here, {source['original']} in the log)" if name == "data"
             else SOURCE_WORDS.get(name, name))
    return f"{words[0].upper()}{words[1:]}: {source['what these runs and tests show']}."


def _short(d: dict) -> str:
    """A diagnostic's paired difference in a table cell."""
    diff, n = d["difference"], d["difference"]["n"]
    head = f"{diff['effect']:+.2f} points with {d['words']} (ours {d['without_mean']:.2f}% -> {d['with_mean']:.2f}%"
    if n >= 2 and not math.isnan(diff["low"]):
        return head + f"; 95% CI {diff['low']:+.2f} to {diff['high']:+.2f}, paired over {n} seeds)"
    return head + f"; {n} pair{'s' if n != 1 else ''}, not a test)"
