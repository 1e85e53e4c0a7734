"""Where a gap to a published run comes from, one known difference at a time.

A diagnostic run trains a published setting (``anchors.matching_runs``) with one
more recipe override, such as ``{initialisation: pytorch}``; everything else is
the same, seeds included, so the same seed draws the same data order and
augmentation. Each diagnostic run is paired with the run of the published setting
that has its seed and data, and the pairs' differences are what is reported:

* 2 or more pairs: their mean with a 95% t interval and p-value (a paired t-test,
  ``stats.paired_difference``; a test checks that its interval misses a zero
  effect 5% of the time);
* 1 pair: the difference only, set against what seeds alone move the difference
  of two single runs here (2 x sqrt(2) x the largest seed standard deviation of
  the test accuracy among this project's 3-seed settings): a description, not a
  test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import anchors, stats
from .runs import prepare


def _yes(flag) -> bool:
    """A record's True (a bool, or numpy's from a bool column); missing or unknown is not True."""
    return isinstance(flag, (bool, np.bool_)) and bool(flag)


def diagnostics(runs: pd.DataFrame, reference: dict) -> list[dict]:
    """One dict per published run and override that some runs here add to its setting alone, with at least one
    run of the published setting itself: the row (``published_runs``), ``override`` ({key: value}), ``words``,
    ``pairs`` ([{"seed", "with", "without"}], test accuracy in percent), ``with_mean`` and ``without_mean``
    over the pairs, ``difference`` (``stats.paired_difference``), ``jpeg`` and ``seed_sd`` (test accuracy)."""
    done = prepare(runs)
    if done.empty:
        return []
    spread = anchors.seed_spread(done, "test_accuracy")
    out = []
    for row in anchors.published_runs(reference):
        without = anchors.matching_runs(done, row)
        if without.empty:
            continue
        for key, value in anchors.one_more_override(done, row):
            pairs, changed = [], anchors.matching_runs(done, anchors.with_override(row, key, value))
            for run in changed.sort_values("seed").itertuples():
                twin = without[(without["seed"] == run.seed)
                               & (without["dataset_fingerprint"] == run.dataset_fingerprint)]
                if len(twin):
                    pairs.append({"seed": int(run.seed), "with": 100 * float(run.test_accuracy),
                                  "without": 100 * float(twin["test_accuracy"].iloc[0]),
                                  "jpeg": _yes(run.lossy_jpeg) and _yes(twin["lossy_jpeg"].iloc[0])})
            if not pairs:
                continue
            with_pct, without_pct = [p["with"] for p in pairs], [p["without"] for p in pairs]
            out.append({**row, "setting": anchors.setting_name(row),
                        "source_name": anchors.SOURCE_NAMES.get(row["source"], row["source"]),
                        "override": {key: value}, "words": anchors.override_words({key: value}), "pairs": pairs,
                        "with_mean": float(np.mean(with_pct)), "without_mean": float(np.mean(without_pct)),
                        "difference": stats.paired_difference(with_pct, without_pct),
                        "jpeg": all(p["jpeg"] for p in pairs), "seed_sd": spread})
    return out


def diagnostic_sentences(d: dict) -> list[str]:
    """What one diagnostic shows: both sides' accuracy over the same seeds, the paired difference, and how
    much of the gap to the published run it accounts for, as far as its pairs can tell."""
    diff, n = d["difference"], d["difference"]["n"]
    data = " on the JPEG copy" if d["jpeg"] else ""
    seeds = f"seed{'s' if n != 1 else ''} {', '.join(str(p['seed']) for p in d['pairs'])}"
    gap = d["without_mean"] - d["published"]
    out = [f"Against {d['source_name']} ({d['setting']}, {d['published']:.2f}%), with {d['words']}: ours "
           f"{d['with_mean']:.2f}% against {d['without_mean']:.2f}% without it ({seeds}{data}), "
           f"{diff['effect']:+.2f} points; ours minus the published value goes from {gap:+.2f} to "
           f"{d['with_mean'] - d['published']:+.2f} points."]
    if n >= 2:
        interval = f"{diff['effect']:+.2f} points (95% CI {diff['low']:+.2f} to {diff['high']:+.2f}, paired " \
                   f"t-test over {n} seeds, p = {diff['p']:.2g})"
        if diff["low"] > 0 or diff["high"] < 0:
            out.append(f"Paired by seed, {d['words']} changes the accuracy at this setting by {interval}: a "
                       "measured part of the gap." if diff["effect"] * gap < 0 else
                       f"Paired by seed, {d['words']} changes the accuracy at this setting by {interval}, away "
                       "from the log: it does not explain the gap.")
        else:
            out.append(f"Paired by seed: {interval}; the interval includes 0, so {n} pairs show no effect of "
                       f"{d['words']} at this precision.")
    elif d["seed_sd"] is not None:
        noise = 2 * np.sqrt(2) * d["seed_sd"]
        scale = (f"what seeds alone move the difference of two single runs here ({noise:.1f} points: 2 x sqrt(2) "
                 f"x {d['seed_sd']:.2f}, the largest seed standard deviation of the test accuracy among this "
                 "project's settings with 3 seeds)")
        out.append(f"One pair: the difference is {'beyond' if abs(diff['effect']) > noise else 'within'} {scale}; "
                   "more seeds are needed to say how much of the gap it explains.")
    return out
