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

The sentences say which way a difference moves ours against the published value;
how much of a gap it "explains" is left to a reader, since the published value is
itself one run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import anchors, stats
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
                "jpeg": anchors.is_true(runs[0]["lossy_jpeg"]) and anchors.is_true(twins[0]["lossy_jpeg"])})
    return out


def diagnostics(runs: pd.DataFrame, reference: dict) -> list[dict]:
    """One dict per published run, recipe difference and setup with at least one pair: the row
    (``published_runs``), ``overrides`` (the diagnostic runs'), ``words`` (the one difference), ``setup`` (the
    published setting's runs' setup label), ``pairs`` ([{"seed", "with", "without", ...}], test accuracy in
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
                            "overrides": overrides, "words": anchors.difference_words(field, value),
                            "setup": pairs[0]["setup"], "pairs": pairs,
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
           f"{d['with_mean']:.2f}% against {d['without_mean']:.2f}% without it (setup {d['setup']}, {seeds}{data}), "
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


def unfinished(runs: pd.DataFrame, reference: dict) -> list[str]:
    """A sentence per published setting and recipe difference with diagnostic runs not completed yet (resumable:
    each has a checkpoint), so a reader knows which difference is being measured."""
    table = as_table(runs)
    pending = table[(table["status"] == "incomplete") & table["resumable"].map(anchors.is_true)]
    if pending.empty:
        return []
    done = prepare(table)
    out = []
    for row in anchors.published_runs(reference):
        for overrides, field, value in anchors.one_difference(pending, row):
            variant = {**row, "recipe_overrides": overrides}
            seeds = anchors.in_progress(anchors.matching_runs(pending, variant),
                                        done=anchors.matching_runs(done, variant))
            if seeds:
                out.append(f"Unfinished diagnostic: {anchors.setting_name(row)}, with "
                           f"{anchors.difference_words(field, value)} (resumable: {seeds}).")
    return out
