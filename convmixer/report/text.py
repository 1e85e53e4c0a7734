"""The report's sentences, generated from the run records: scope, setups, published levels, caveats, lessons.

Nothing here decides a verdict (``verdicts``) or builds a table (``tables``,
``cost``, ``provenance``); it says in words what those found, and every function
returns an empty result or a sentence saying what is missing rather than raising.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from ..records import portable_path
from ..training.recipes import RECIPES
from .cost import was_busy
from .runs import PAPER_WIDTH_DEPTH, other_axis, prepare, run_load, short_axis
from .names import trained_on_jpeg
from .wording import runs_against

PAPER_EPOCHS = 200  # the paper's CIFAR-10 budget (reference.yaml's paper_epochs)


def scope(runs: pd.DataFrame, results_dir=None) -> str:
    """What the report covers, in one paragraph generated from the data."""
    done, every = prepare(runs), prepare(runs, architecture=None)
    where = f" in {portable_path(Path(results_dir).resolve())}" if results_dir is not None else ""
    n_skipped = len(runs) - len(every)  # every architecture's completed runs count; the rest are skipped
    skipped_text = (f" {n_skipped} run folder{'s were' if n_skipped != 1 else ' was'} skipped "
                    "(see Skipped runs)." if n_skipped else "")
    baselines = len(every) - len(done)
    baseline_text = (f" It also covers {baselines} completed run{'s' if baselines != 1 else ''} of the claim-1 "
                     "baselines (ResNet, ViT, MLP-Mixer)." if baselines else "")
    if every.empty:
        return (f"There are no completed runs{where}, so nothing was measured yet: the tables below show only "
                f"the published values and every verdict is “not tested”.{skipped_text}")
    devices = sorted(set(done["device_kind"].dropna().astype(str)))
    epochs = sorted(set(done["epochs"]))
    sizes = sorted({f"ConvMixer-{w}/{d}" for w, d in zip(done["width"], done["depth"])})
    if done.empty:
        return f"There are no completed ConvMixer runs{where}.{baseline_text}{skipped_text}"
    return (f"This report covers {len(done)} completed ConvMixer run{'s' if len(done) != 1 else ''}{where} in "
            f"{done['setup'].nunique()} setup{'s' if done['setup'].nunique() != 1 else ''} "
            f"({', '.join(sizes)}; {', '.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''}; "
            f"trained on {', '.join(devices) or 'unknown devices'}). Published values are for the paper's "
            f"ConvMixer-{PAPER_WIDTH_DEPTH[0]}/{PAPER_WIDTH_DEPTH[1]} and their own schedules; trends here are "
            f"compared within a setup only.{baseline_text}{skipped_text}")


def _data_words(setup_runs: pd.DataFrame) -> str:
    """What a setup trained on, in words; the JPEG copy is named as such because it lowers accuracy."""
    if trained_on_jpeg(setup_runs):
        return "JPEG copy of CIFAR-10 (lossy)"
    sources = sorted({str(s) for s in setup_runs["dataset_description"].dropna()})
    return "; ".join(sources) or "unknown data"


def _devices(setup_runs: pd.DataFrame) -> str:
    kinds, names = (setup_runs[c].fillna("?").astype(str) for c in ("device_kind", "device_name"))
    return ", ".join(sorted(set(kinds + " (" + names + ")")))


def setup_facts(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """(setup label, "budget; data: ...; device: ...") for each setup, in plain words (report and README)."""
    done = prepare(runs)
    return [(label, f"{sub['setup_description'].iloc[0]}; data: {_data_words(sub)}; device: {_devices(sub)}.")
            for label, sub in done.groupby("setup", sort=True)]


def published_comparison(runs: pd.DataFrame, reference: dict, rows: list[dict]) -> str:
    """How our accuracy levels stand against the published ones, in plain words, from the data.

    ``rows``: ``anchors.like_for_like``, the one definition of "like for like" (section 2's table); each
    published run that ran here is named with both numbers, otherwise the text says that none did.
    """
    done = prepare(runs)
    if done.empty:
        return ""
    cells = (done.groupby(["setup", "width", "depth", "patch_size", "kernel_size", "epochs"])
             ["test_accuracy"].mean().reset_index())
    published = pd.DataFrame(reference.get("accuracy", []))
    best = cells.loc[cells["test_accuracy"].idxmax()]
    text = (f"The best cell here is setup {best['setup']}'s ConvMixer-{best['width']}/{best['depth']} "
            f"p{best['patch_size']} k{best['kernel_size']} at {100 * best['test_accuracy']:.2f}% after "
            f"{best['epochs']} epochs.")
    if not published.empty:
        text += (f" Published ConvMixer-256/8 values are {published['paper_accuracy'].min():.2f}-"
                 f"{published['paper_accuracy'].max():.2f}% in the paper (200 epochs) and "
                 f"{published['reference_accuracy'].min():.2f}-{published['reference_accuracy'].max():.2f}% in "
                 f"the reference report ({published['reference_epochs'].min()}-"
                 f"{published['reference_epochs'].max()} epochs): levels differ with the budget, so the claims "
                 "are judged on trends within one setup.")
    matches = [f"setup {r['setup']}'s {r['setting']} reaches {r['mean']:.2f}% (n={r['n']}) where "
               f"{r['source_name']} measured {r['published']:.2f}%" for r in rows if r["n"] > 0]
    if matches:
        text += " Like for like (section 2): " + "; ".join(matches) + "."
    else:
        text += (" No run here trains a published run's setting (model, recipe, epochs, batch size and training "
                 "images), so no level is compared like for like.")
    return text


def reproduction_sentences(rows: list[dict]) -> list[str]:
    """The reference report's rows that ran here, one sentence each (``anchors.like_for_like`` rows)."""
    return [f"{r['setting']} (setup {r['setup']}" + (", on the JPEG copy of CIFAR-10" if r["jpeg"] else "")
            + f"): {r['verdict']}. Ours {r['mean']:.2f}% over {r['n']} "
            f"seed{'s' if r['n'] != 1 else ''}" + (f" (95% prediction interval for one run {r['pi_low']:.2f}-"
                                                  f"{r['pi_high']:.2f}%)" if r["n"] > 1 else "")
            + f"; the reference report's single run {r['published']:.2f}% (ours {r['difference']:+.2f} points)"
            + (f"; {r['seeds_planned']}" if r.get("seeds_planned") else "") + "."
            for r in rows if r["source"] == "reference_report" and r["n"] > 0]


def reference_report_observations(reference: dict) -> list[str]:
    """What the reference report's own published table shows, computed from reference.yaml."""
    ref = pd.DataFrame(reference.get("accuracy", []))
    if ref.empty:
        return []
    out = []
    budgets = sorted(ref["reference_epochs"].dropna().astype(int).unique())
    if len(budgets) > 1:
        out.append(f"Its accuracy table mixes training budgets ({', '.join(map(str, budgets))} epochs) in one "
                   "comparison, so rows of different budgets cannot be compared with each other.")
    for (e, p), sub in ref.groupby(["reference_epochs", "patch_size"]):
        sub = sub.sort_values("kernel_size")
        for (_, a), (_, b) in zip(sub.iterrows(), list(sub.iterrows())[1:]):
            if b["reference_accuracy"] < a["reference_accuracy"]:
                out.append(f"At {int(e)} epochs and patch {int(p)} its kernel {int(a['kernel_size'])} "
                           f"({a['reference_accuracy']:.2f}%) is above kernel {int(b['kernel_size'])} "
                           f"({b['reference_accuracy']:.2f}%), against its own reading of the kernel claim "
                           "(one run each, so not a test).")
    for e, sub in ref.groupby("reference_epochs"):
        if len(sub) == 2 and sub["patch_size"].nunique() == 2 and sub["kernel_size"].nunique() == 2:
            a, b = sub.iloc[0], sub.iloc[1]
            out.append(f"Its {int(e)}-epoch pair (patch {int(a['patch_size'])} kernel {int(a['kernel_size'])} vs "
                       f"patch {int(b['patch_size'])} kernel {int(b['kernel_size'])}) changes patch and kernel "
                       "together, so it cannot separate the two effects.")
    out.append("Each of its rows is a single run, so none carries an estimate of seed-to-seed noise.")
    return out


def reference_differences(rows: list[dict]) -> list[str]:
    """The reference report's own kernel and patch differences beside ours, like for like: each pair of its rows
    that changes one of the two at the same budget, where one setup of ours ran both (``anchors.like_for_like``
    rows). Single runs on its side, so an illustration, never a test."""
    ran = [r for r in rows if r["source"] == "reference_report" and r["n"] > 0]
    out = []
    for a, b in itertools.combinations(sorted(ran, key=lambda r: (r["patch_size"], r["kernel_size"])), 2):
        changed = [axis for axis in ("kernel_size", "patch_size") if a[axis] != b[axis]]
        if len(changed) != 1 or a["setup"] != b["setup"] or a["epochs"] != b["epochs"]:
            continue
        axis, other = changed[0], other_axis(changed[0])
        low, high = sorted((a, b), key=lambda r: r[axis])
        out.append(f"The reference report's {short_axis(axis)} {low[axis]} → {high[axis]} at {short_axis(other)} "
                   f"{low[other]} ({low['epochs']} epochs): {high['published'] - low['published']:+.2f} points there "
                   f"(one run each), {high['mean'] - low['mean']:+.2f} here (setup {low['setup']}, "
                   f"{runs_against(low['n'], high['n'])}). An illustration, not a test.")
    return out


def load_sentence(runs: pd.DataFrame) -> str:
    """The note under the cost table: what the load average means and how many runs were timed on a busy machine."""
    done = prepare(runs)
    busy = [was_busy(run_load(path)) for path in done["path"]] if not done.empty else []
    known = [b for b in busy if b is not None]
    counted = (f"{sum(known)} of the {len(known)} runs that recorded it started or ended above it"
               if known else "no run here recorded its load")
    return ("Timings taken while the machine's load average exceeded its core count were slowed by other work, "
            f"so they are slower than the hardware allows ({counted}).")


def dirty_sentence(runs: pd.DataFrame) -> str | None:
    """A warning naming every run whose recorded commit had uncommitted changes ("+dirty"), else None."""
    done = prepare(runs, architecture=None)
    dirty = done[done["git_commit"].astype(str).str.endswith("+dirty")] if not done.empty else done
    if dirty.empty:
        return None
    return (f"{len(dirty)} of {len(done)} completed runs were trained from a working tree with uncommitted "
            f"changes (commit recorded as +dirty), so their code cannot be recovered exactly: "
            f"{', '.join(sorted(dirty['run_id']))}.")


def jpeg_sentence(runs: pd.DataFrame) -> str | None:
    """A plain statement when any run (of any architecture) trained on a JPEG (lossy) copy of CIFAR-10, else None."""
    done = prepare(runs, architecture=None)
    lossy = done[done["lossy_jpeg"].map(lambda v: v is True)] if not done.empty else done
    if lossy.empty:
        return None
    sources = sorted({str(s) for s in lossy["dataset_description"].dropna()})
    return (f"{len(lossy)} of {len(done)} completed runs used a JPEG copy of CIFAR-10 ({'; '.join(sources)}). "
            "JPEG is lossy: its pixels differ from the canonical release, so these runs' accuracies are not "
            "strictly comparable with the paper's or with runs on the canonical data.")


def lessons(runs: pd.DataFrame, grids: pd.DataFrame | None = None) -> list[str]:
    """Section 7's statements: fixed facts of the method, and conditional ones checked against the data (every
    architecture's runs: the claim-1 baselines were trained and recorded like the ConvMixers)."""
    done = prepare(runs, architecture=None)
    seed = RECIPES["seed"]
    out = []
    if done.empty:
        out.append("Budget: no completed runs were found, so no statement about speed or accuracy can be made yet.")
    else:
        counts = done["device_kind"].fillna("unknown device").astype(str).value_counts()
        devices = (f"all {len(done)} completed run{'s' if len(done) != 1 else ''} trained on CPU"
                   if set(counts.index) == {"CPU"} else "runs trained on " + ", ".join(
                       f"{k} ({v} run{'s' if v != 1 else ''})" for k, v in counts.items()))
        # The paper's budget is about ConvMixer: a baseline's longer run does not bring its numbers in reach.
        longest = int(pd.to_numeric(prepare(runs)["epochs"], errors="coerce").max())
        out.append(f"Budget: {devices}." + (
            f" The longest is {longest} epochs, so the paper's 200-epoch numbers are out of reach here: against "
            "the paper the comparison is of trends, not levels; levels are compared only with published runs of "
            "the same setting (the reference report's rows and the logged runs, section 2)."
            if longest < PAPER_EPOCHS else ""))
    sentence = jpeg_sentence(runs)
    out.append("Data: " + (sentence if sentence else (
        "no completed run used a JPEG copy of CIFAR-10." if not done.empty else
        "the loader accepts the canonical archive and also image-folder copies; a JPEG copy is lossy, and "
        "the report says so whenever a run used one.")))
    out.append("Augmentation: the official recipe's steps (random resized crop, flip, RandAugment, colour "
               "jitter, random erasing) are torchvision's, per image, computed on whole batches in numpy with "
               "Pillow's arithmetic (each step is tested pixel for pixel against Pillow); only the random draws "
               "differ (numpy generators seeded per seed, epoch and batch).")
    out.append(f"Optimizer: TF Addons' AdamW (used by the reference report) is end-of-life; its decoupled "
               f"weight decay {seed.weight_decay:g} is not multiplied by the learning rate, Keras 3's is, so the "
               f"Keras-example recipe (seed in the code) passes weight_decay = {seed.weight_decay:g} / {seed.lr:g} = "
               f"{seed.keras_weight_decay:g} to keras.optimizers.AdamW (exact for its constant learning rate).")
    if grids is not None and not grids.empty:
        # Grids share runs (one run may be planned by two grids), so count grids, not summed runs.
        # An unreadable grid (no counts) is not complete.
        complete = (grids["completed here"] >= grids["planned runs"]).fillna(False).astype(bool)
        missing = grids[~complete]["grid"].tolist()
        out.append(f"Going further: {int(complete.sum())} of the {len(grids)} shipped grids "
                   f"{'has' if int(complete.sum()) == 1 else 'have'} every run completed here" + (f"; not (fully) run: {', '.join(missing)}. Run them with "
                                     "`python -m convmixer sweep grids/NAME.yaml` on a machine that fits each grid's "
                                     "description below, then rebuild this report with "
                                     "`python -m convmixer report`." if missing else "; every grid is complete."))
    else:
        out.append("Going further: no grid files were found next to the package; add runs with "
                   "`python -m convmixer train ...` or `python -m convmixer sweep GRID` and rebuild the report.")
    return out


