"""Ours per epoch against a published run's printed log: where along training a gap to it opens.

The official script and the keras-io example printed their accuracies after every
epoch (``reference.yaml``, ``logged_curves``). Each completed run of such a
setting here (``anchors.matching_runs``) is read from its history.csv and set
beside that log epoch by epoch; runs of the setting with one recipe field changed
(``anchors.one_difference``) are shown beside them as variants. A gap is placed,
in fitting or in generalisation, only with 2 or more seeds (see
``curve_sentences``): the log is one run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats
from .anchors import (SOURCE_NAMES, difference_words, is_true, matching_runs, one_difference, published_runs,
                      setting_name)
from .runs import history, prepare
from .wording import join_words


CURVE_BLOCK = 5  # a sentence gives the mean difference over blocks of this many epochs: one log epoch is noisy
LAST_EPOCHS = 3  # where a gap is placed: the mean over the last epochs, not one epoch's noise


def logged_curves(runs: pd.DataFrame, reference: dict) -> list[dict]:
    """Per epoch, each completed run of a logged setting against that log's printed per-epoch accuracies.

    Returns one dict per logged run with a published curve and at least one matching run here: the row
    (``published_runs``), ``where`` (the log's source), ``held_out`` ("test" or "validation"), ``log_held_out``
    and ``log_train`` (percent, epoch 1 first), ``ours`` ([{"seed", "jpeg", "held_out", "train"}], percent per
    epoch from history.csv), ``gaps`` ({epoch: (held-out, train) mean difference ours - log, in points})
    over the epochs every run has, and ``variants``: the curves, as ``ours`` plus ``words``, of runs of the
    setting with one recipe field changed (``anchors.one_difference``).
    """
    done = prepare(runs)
    curves = reference.get("logged_curves") or {}
    out = []
    for row in published_runs(reference):
        curve = curves.get(row["source"])
        if curve is None:
            continue
        column = "test_accuracy" if curve["held_out"] == "test" else "val_accuracy"
        ours = _run_curves(matching_runs(done, row), column)
        if not ours:
            continue
        variants = [{**c, "words": difference_words(field, value)} for overrides, field, value
                    in one_difference(done, row)
                    for c in _run_curves(matching_runs(done, {**row, "recipe_overrides": overrides}), column)]
        log_held_out, log_train = list(curve["held_out_accuracy"]), list(curve["train_accuracy"])
        epochs = min(len(log_held_out), *(len(o["held_out"]) for o in ours))
        gaps = {e: (float(np.mean([o["held_out"][e - 1] for o in ours])) - log_held_out[e - 1],
                    float(np.mean([o["train"][e - 1] for o in ours])) - log_train[e - 1])
                for e in range(1, epochs + 1)}
        out.append({**row, "setting": setting_name(row), "source_name": SOURCE_NAMES.get(row["source"], row["source"]),
                    "where": curve["where"], "held_out": curve["held_out"], "log_held_out": log_held_out,
                    "log_train": log_train, "ours": ours, "gaps": gaps, "variants": variants})
    return out


def _run_curves(matched: pd.DataFrame, column: str) -> list[dict]:
    """Per seed, a run's held-out (``column``) and training accuracy per epoch, in percent, from history.csv."""
    out = []
    for run in matched.sort_values("seed").itertuples():
        h = history(run.path)
        if h is None or column not in h or "accuracy" not in h:
            continue
        out.append({"seed": int(run.seed), "jpeg": is_true(run.lossy_jpeg),
                    "held_out": [100 * float(v) for v in h[column]],
                    "train": [100 * float(v) for v in h["accuracy"]]})
    return out


def curve_sentences(curve: dict) -> list[str]:
    """What the per-epoch comparison shows, in numbers, and where the gap arises as far as our runs can tell.

    A gap is placed (in fitting or in generalisation) from its mean over the last LAST_EPOCHS epochs, with 2 or
    more seeds, when the log lies outside the 95% prediction interval for one more of our runs (the verdict's
    test). One run against one is no test: the seed spread of this very setting is unknown, and another
    setting's would be a guess, so one seed gives the numbers only."""
    gaps, n, held_out = curve["gaps"], len(curve["ours"]), f"{curve['held_out']} accuracy"
    last = max(gaps)
    blocks = [(a, min(a + CURVE_BLOCK - 1, last)) for a in range(1, last + 1, CURVE_BLOCK)]
    if len(blocks) > 1 and blocks[-1][1] - blocks[-1][0] + 1 < CURVE_BLOCK:  # a short tail joins the block before
        blocks[-2:] = [(blocks[-2][0], last)]
    data = " on the JPEG copy" if all(o["jpeg"] for o in curve["ours"]) else ""
    images = " (on other 5,000 images than the log's)" if curve["held_out"] == "validation" else ""
    spans = join_words([f"{a}-{b}" if b > a else str(a) for a, b in blocks])

    def means(i):
        return ", ".join(f"{np.mean([gaps[e][i] for e in range(a, b + 1)]):+.2f}" for a, b in blocks)
    ours_train = float(np.mean([o["train"][last - 1] for o in curve["ours"]]))
    ours_held_out = float(np.mean([o["held_out"][last - 1] for o in curve["ours"]]))
    log_train, log_held_out = curve["log_train"][last - 1], curve["log_held_out"][last - 1]
    steps = np.diff(curve["log_held_out"][:last]) if last > 1 else np.zeros(1)
    worst = max(gaps, key=lambda e: abs(gaps[e][0]))  # one epoch can carry a block's mean (keras-io's first)
    drop, at = float(max(0.0, -np.min(steps))), int(np.argmin(steps)) + 1  # the fall from epoch ``at`` to at + 1
    over_blocks = f"averaged over epochs {spans}" if last > 1 else "at epoch 1"
    out = [f"Per epoch against {curve['source_name']} ({n} seed{'s' if n != 1 else ''} here{data}), ours minus "
           f"the log, {over_blocks}: {held_out}{images} {means(0)} points; accuracy on the "
           f"augmented training images {means(1)} points (ours {ours_train:.2f}%, the log's {log_train:.2f}%, at "
           f"the end). Training minus {held_out} at the end: ours {ours_train - ours_held_out:.2f} points, the "
           f"log's {log_train - log_held_out:.2f}."
           + (f" The log is one run, whose {held_out} falls by up to {drop:.1f} points from one epoch to the "
              f"next (epoch {at} to {at + 1}): hence the averages." if drop > 0 else "")
           + (f" The largest single-epoch difference in {held_out} is {gaps[worst][0]:+.2f} points, at epoch {worst} "
              f"(the log's {curve['log_held_out'][worst - 1]:.2f}%)." if last > 1 else "")]
    window = [e for e in gaps if e > last - LAST_EPOCHS]
    held_out_gap = float(np.mean([gaps[e][0] for e in window]))
    train_gap = float(np.mean([gaps[e][1] for e in window]))
    variants = _variant_sentences(curve, window, held_out)
    over = f"over the last {len(window)} epochs" if len(window) > 1 else f"at epoch {last}"
    if n >= 2:
        # The log is one run: is it outside the 95% prediction interval for one more of ours (the verdict's
        # test, whose 5% error rate a test checks)? Each seed's gap is its mean over the window.
        def beyond(what):
            low, high = stats.prediction_interval(
                [np.mean([o[what][e - 1] - curve[f"log_{what}"][e - 1] for e in window]) for o in curve["ours"]])
            return high < 0, (f"the 95% prediction interval for one run from our {n} seeds, {low:+.2f} to "
                              f"{high:+.2f} points from the log")
        (train_beyond, train_scale), (held_beyond, held_scale) = beyond("train"), beyond("held_out")
        alone = f"the log lies inside {train_scale} for training accuracy and inside {held_scale} for {held_out}"
    else:
        out.append(f"{over.capitalize()} the training accuracy differs by {train_gap:+.2f} points and the "
                   f"{held_out} by {held_out_gap:+.2f}. One run against one is no test, so these curves cannot tell "
                   "yet whether the gap comes from fitting the training images or from generalisation.")
        return out + variants
    if train_beyond:
        out.append(f"The gap is already in the training accuracy ({train_gap:+.2f} points {over}, beyond "
                   f"{train_scale}): ours fits its augmented training images less well than the logged run did, "
                   "which points at training (optimiser, schedule, augmentation, initialisation or the data copy) "
                   "rather than at generalisation alone.")
    elif held_beyond:
        out.append(f"The training accuracies differ by {train_gap:+.2f} points {over}, within {train_scale}, but "
                   f"the {held_out} by {held_out_gap:+.2f}, beyond {held_scale}: that points at generalisation or "
                   "at the held-out data (the JPEG copy) rather than at fitting.")
    else:
        out.append(f"{over.capitalize()} the training accuracy differs by {train_gap:+.2f} points and the "
                   f"{held_out} by {held_out_gap:+.2f}; {alone}, so these curves cannot tell whether the gap comes from "
                   "fitting the training images or from generalisation.")
    return out + variants


def _variant_sentences(curve: dict, window: list[int], held_out: str) -> list[str]:
    """For runs of the setting with one recipe field changed, their gaps to the log over the same epochs beside
    ours over the same seeds: numbers, not a test."""
    def gap(runs, key):
        return float(np.mean([[r[key][e - 1] - curve[f"log_{key}"][e - 1] for e in window] for r in runs]))

    ours = {o["seed"]: o for o in curve["ours"]}
    out = []
    for words in dict.fromkeys(v["words"] for v in curve.get("variants", [])):
        runs = [v for v in curve["variants"]
                if v["words"] == words and v["seed"] in ours and len(v["held_out"]) >= max(window)]
        if not runs:
            continue
        twins = [ours[v["seed"]] for v in runs]
        seeds = ", ".join(str(v["seed"]) for v in runs)
        out.append(f"With {words} (seed{'s' if len(runs) != 1 else ''} {seeds}; not a test), over the last "
                   f"{len(window)} epochs: training accuracy {gap(runs, 'train'):+.2f} points and {held_out} "
                   f"{gap(runs, 'held_out'):+.2f} points against the log; without it, over the same "
                   f"seed{'s' if len(runs) != 1 else ''}, {gap(twins, 'train'):+.2f} and {gap(twins, 'held_out'):+.2f}.")
    return out
