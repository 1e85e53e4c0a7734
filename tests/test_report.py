"""The reproducibility report: analysis rules on hand-built tables, and the HTML built from real run records.

Fast tests check every verdict branch and table rule on hand-built DataFrames.
Slow tests train six tiny ConvMixers on synthetic data (seconds each), add a
corrupt run folder, build the report through papermill and nbconvert, and check
the HTML (and, where /usr/bin/chromium exists, what a headless browser renders).
"""

import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from convmixer import report
from convmixer.report import anchors, build, cost, html, plots, provenance, sections, stats, tables, text, verdicts, wording
from convmixer.report import runs as runs_module
from convmixer.report.runs import COLUMNS, comparable_groups, load_reference, load_runs, prepare

ROOT = Path(__file__).resolve().parent.parent
SECTION_ANCHORS = ["summary", "verdicts", "forest", "comparison", "architectures", "trends", "trend-kernel",
                   "trend-patch", "trend-published", "effect-by-budget", "learning-curves", "cost", "timing-figure",
                   "provenance", "lessons", "skipped"]
# What the notebook's source names itself (the rest come from the sections' functions).
NOTEBOOK_ANCHORS = ["summary", "comparison", "architectures", "trends", "trend-kernel", "trend-patch",
                    "trend-published", "effect-by-budget", "learning-curves", "cost", "provenance", "lessons",
                    "skipped"]
HEADINGS = ["1. Summary", "2. Original versus reproduction", "3. Trend plots", "4. Learning curves", "5. Cost",
            "6. Method and provenance", "7. What was easy, what was difficult, what a reader needs to go further",
            "Skipped runs"]
COMPARISON_HEADERS = ["setup", "model", "patch", "kernel", "recipe", "epochs", "our accuracy (%)", "n",
                      "test-set SE (%)", "parameters (computed here)", "paper count", "paper (%)",
                      "reference report (%)"]
JPEG_PHRASE = "JPEG is lossy"
MAX_CELL_CHARS = 240  # a table cell holds a phrase or a sentence, never a paragraph
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# (kernel, patch, seed): two seeds on the patch-2 line so verdicts see noise, one seed on patch 4.
CONFIGS = [(3, 2, 0), (3, 2, 1), (5, 2, 0), (5, 2, 1), (3, 4, 0), (5, 4, 0)]


# --------------------------------------------------------------------------- hand-built run tables

def fake_runs(rows, **common):
    """A load_runs-shaped frame: completed runs of one setup unless a row says otherwise."""
    base = {"status": "completed", "width": 16, "depth": 1, "recipe": "seed", "recipe_overrides": "{}",
            "epochs": 2, "batch_size": 64, "data": "synthetic:200:100", "activation": "gelu",
            "backend": "tensorflow", "train_images": 180, "device_kind": "CPU", "device_name": "test cpu",
            "images_per_second": 100.0, "seconds_per_epoch": 1.8, "total_train_seconds": 4.0,
            "dataset_fingerprint": "sha256:x", "lossy_jpeg": False, "seed": 0, "patch_size": 2}
    frame = pd.DataFrame([{**base, **common, "run_id": f"run{i}", "path": f"/nowhere/run{i}", **r}
                          for i, r in enumerate(rows)])
    return frame.reindex(columns=COLUMNS)


def kernel_runs(accuracies: dict, patch=2, **common):
    """{kernel: [accuracy per seed]} -> runs."""
    return fake_runs([{"kernel_size": k, "patch_size": patch, "seed": s, "test_accuracy": a}
                      for k, accs in accuracies.items() for s, a in enumerate(accs)], **common)


def verdict_of(runs, claim_id):
    v = verdicts.verdicts(runs)
    row = v.iloc[[c["id"] for c in verdicts.CLAIMS].index(claim_id)]
    return row["verdict"], row["evidence"], row["anchor"]


def test_increasing_kernel_trend_is_consistent_with_the_claim_and_states_its_regime():
    verdict, evidence, anchor = verdict_of(kernel_runs({3: [0.50, 0.51, 0.52], 9: [0.70, 0.71, 0.72]}), "kernel")
    assert verdict == stats.CONSISTENT
    assert anchor == "trend-kernel"
    assert "kernel 3 → 9" in evidence and "+20.00 points" in evidence and "95% CI" in evidence
    assert "ConvMixer-16/1 after 2 epochs of the Keras-example recipe on synthetic data (3 seeds)" in evidence


def test_reversed_kernel_trend_contradicts_the_claim():
    verdict, evidence, _ = verdict_of(kernel_runs({3: [0.70, 0.71, 0.72], 9: [0.50, 0.51, 0.52]}), "kernel")
    assert verdict == stats.CONTRADICTS
    assert "-20.00 points" in evidence


def test_difference_within_noise_is_inconclusive():
    verdict, _, _ = verdict_of(kernel_runs({3: [0.40, 0.60], 9: [0.61, 0.41]}), "kernel")
    assert verdict == stats.INCONCLUSIVE


def test_configurations_with_one_run_are_not_tested_only_illustrated():
    verdict, evidence, _ = verdict_of(kernel_runs({3: [0.50], 5: [0.55]}), "kernel")
    assert verdict == stats.NOT_TESTED
    assert evidence.startswith("Not tested: no setup has two or more kernel sizes with at least 2 seeds")
    assert ("Illustration only, no test (a configuration with one run has no spread of its own): setup A, "
            "ConvMixer-16/1 after 2 epochs of the Keras-example recipe on synthetic data (1 seed): kernel 3 → 5 at patch 2: "
            "+5.00 points (one run each).") in evidence
    # one run beside three: still no test, and the sentence says which mean has how many runs
    _, evidence, _ = verdict_of(kernel_runs({3: [0.50, 0.52, 0.51], 9: [0.40]}), "kernel")
    assert "kernel 3 → 9 at patch 2: -11.00 points (mean of 3 runs → 1 run)" in evidence
    # kernel and patch changed together: replicated, but the kernel effect cannot be separated
    confounded = fake_runs([{"kernel_size": k, "patch_size": p, "seed": s, "test_accuracy": a}
                            for (k, p), accs in {(3, 2): [0.5, 0.51], (9, 4): [0.7, 0.71]}.items()
                            for s, a in enumerate(accs)])
    assert verdict_of(confounded, "kernel")[0] == stats.INCONCLUSIVE
    assert "not estimable" in verdict_of(confounded, "kernel")[1]


def test_a_configuration_with_one_run_leaves_the_test_and_is_named():
    replicated = {3: [0.50, 0.51, 0.52], 9: [0.60, 0.62, 0.61]}
    alone = verdicts.claim_tests(kernel_runs(replicated), verdicts.CLAIMS[1])[0]
    beside = verdicts.claim_tests(kernel_runs(replicated | {5: [0.90]}), verdicts.CLAIMS[1])[0]
    # in the fit, a lone run at kernel 5 would have made a third level, with steps and a trend resting on it
    assert beside["result"] == alone["result"] and "steps" not in beside["result"]
    assert (beside["n_runs"], beside["left_out"]) == (6, [(5, 2, 1)])
    evidence = verdict_of(kernel_runs(replicated | {5: [0.90]}), "kernel")[1]
    assert "left out, with fewer than 2 seeds: kernel 5 at patch 2 (1 run)" in evidence
    assert "Illustration only" not in evidence  # the setup is tested
    # patch 4 has one run: an additive fit would measure the patch effect on it alone, with the others' spread
    runs = fake_runs([{"kernel_size": k, "patch_size": p, "seed": s, "test_accuracy": a}
                      for (k, p), accs in {(3, 2): [0.50, 0.51, 0.52], (9, 2): [0.60, 0.62, 0.61],
                                           (9, 4): [0.55]}.items() for s, a in enumerate(accs)])
    verdict, evidence, _ = verdict_of(runs, "patch")
    assert verdict == stats.NOT_TESTED
    assert "patch 2 → 4 at kernel 9: -6.00 points (mean of 3 runs → 1 run)" in evidence
    assert verdict_of(runs, "kernel")[0] == stats.CONSISTENT
    # replicated cells that change kernel and patch together, once the lone run is left out: said so, and named
    runs = fake_runs([{"kernel_size": k, "patch_size": p, "seed": s, "test_accuracy": a}
                      for (k, p), accs in {(3, 2): [0.50, 0.51, 0.52], (9, 4): [0.60, 0.62, 0.61],
                                           (9, 2): [0.55]}.items() for s, a in enumerate(accs)])
    evidence = verdict_of(runs, "kernel")[1]
    assert ("kernel 3 → 9: not estimable (the design changes patch together with it, once the configurations with "
            "one run are left out): inconclusive; left out, with fewer than 2 seeds: kernel 9 at patch 2 (1 run)"
            ) in evidence
    # a setup whose configurations change kernel only together with patch is named, not passed over
    runs = fake_runs([{"kernel_size": k, "patch_size": p, "seed": s, "test_accuracy": a}
                      for (k, p), accs in {(3, 2): [0.50, 0.51, 0.52], (9, 4): [0.60]}.items()
                      for s, a in enumerate(accs)])
    verdict, evidence, _ = verdict_of(runs, "kernel")
    assert verdict == stats.NOT_TESTED and evidence.endswith(
        "Neither tested nor illustrated: setup A, ConvMixer-16/1 after 2 epochs of the Keras-example recipe on "
        "synthetic data (1-3 seeds per configuration), changes kernel only together with patch.")
    # a run without an accuracy leaves its configuration's other runs in the test
    verdict, evidence, _ = verdict_of(kernel_runs({3: [0.50, 0.51, 0.52], 9: [0.60, 0.62, float("nan")]}), "kernel")
    assert verdict == stats.CONSISTENT and "5 runs" in evidence


def test_nan_accuracies_are_left_out():
    runs = kernel_runs({3: [0.50, 0.51], 9: [float("nan"), float("nan")]})
    verdict, evidence, _ = verdict_of(runs, "kernel")  # kernel 9 has no accuracy left: one kernel size only
    assert verdict == stats.NOT_TESTED and "two or more kernel sizes" in evidence


def test_the_lead_setup_is_the_longest_training_and_p_values_are_holm_adjusted():
    short = kernel_runs({3: [0.50, 0.51, 0.52], 9: [0.70, 0.71, 0.72]}, epochs=2)
    long = kernel_runs({3: [0.60, 0.62, 0.61], 9: [0.61, 0.60, 0.62]}, epochs=6)
    runs = pd.concat([short, long], ignore_index=True)
    verdict, evidence, _ = verdict_of(runs, "kernel")
    assert verdict == stats.INCONCLUSIVE  # the 6-epoch setup leads, and it shows no effect
    assert evidence.startswith("inconclusive for ConvMixer-16/1 after 6 epochs")
    assert "consistent with the claim for ConvMixer-16/1 after 2 epochs" in evidence
    claim = verdicts.claims_json(runs)["claims"][1]
    assert claim["regime"].startswith("ConvMixer-16/1 after 6 epochs") and claim["setups"] == ["B", "A"]
    ps = {t["setup"]: (t["p"], t["p_holm"]) for t in claim["tests"]}
    # Holm over two tests: the smaller p is doubled, the larger kept (and never below the first's adjusted p)
    assert ps["A"][0] < ps["B"][0]
    assert ps["A"][1] == pytest.approx(min(1.0, 2 * ps["A"][0]), rel=1e-4)
    assert ps["B"][1] == pytest.approx(max(ps["B"][0], ps["A"][1]), rel=1e-4)


def test_single_kernel_value_is_not_tested():
    runs = kernel_runs({5: [0.5, 0.6]})
    verdict, evidence, _ = verdict_of(runs, "kernel")
    assert verdict == stats.NOT_TESTED
    assert "two or more kernel sizes" in evidence
    assert verdict_of(runs, "patch")[0] == stats.NOT_TESTED


def test_patch_claim_direction():
    lower_with_bigger_patch = fake_runs([{"kernel_size": 5, "patch_size": p, "seed": s, "test_accuracy": a}
                                         for p, accs in {1: [0.8, 0.81], 4: [0.6, 0.61]}.items()
                                         for s, a in enumerate(accs)])
    assert verdict_of(lower_with_bigger_patch, "patch")[0] == stats.CONSISTENT
    higher = lower_with_bigger_patch.assign(patch_size=lower_with_bigger_patch["patch_size"].map({1: 4, 4: 1}))
    assert verdict_of(higher, "patch")[0] == stats.CONTRADICTS


def test_runs_of_different_budgets_are_not_compared():
    # kernel 3 at 2 epochs and kernel 9 at 4 epochs: two setups, one kernel each -> no trend
    runs = pd.concat([kernel_runs({3: [0.5, 0.5]}, epochs=2), kernel_runs({9: [0.9, 0.9]}, epochs=4)],
                     ignore_index=True)
    assert len(comparable_groups(runs)) == 2
    assert verdict_of(runs, "kernel")[0] == stats.NOT_TESTED


def test_a_report_prepares_its_runs_once(monkeypatch):
    runs = kernel_runs({3: [0.5, 0.6], 5: [0.7, 0.8]})
    runs.loc[len(runs)] = runs.iloc[0]
    runs.loc[len(runs) - 1, ["status", "run_id"]] = ["failed", "a failed run"]
    table = runs_module.prepare_table(runs)  # what the notebook does, once
    calls = []
    real = runs_module.prepare_table
    monkeypatch.setattr(runs_module, "prepare_table", lambda frame: calls.append(1) or real(frame))
    verdicts.verdicts(table)
    tables.comparison_table(table, load_reference())
    text.scope(table)
    assert calls == []  # every section read the prepared table
    assert list(tables.skipped(table)["run id"]) == ["a failed run"]  # records that did not complete stay in it
    assert table.loc[table["status"] != "completed", "final_lr"].tolist() == [None]  # None, never NaN
    assert set(prepare(runs.assign(setup="mine"))["setup"]) == {"A"}  # a column of that name alone is not a table
    # The same labels and rows as from the raw frame, and a caller's change never reaches the table.
    pd.testing.assert_frame_equal(prepare(table), prepare(runs))
    mine = prepare(table)
    mine["setup"] = "changed by a caller"
    assert set(prepare(table)["setup"]) == {"A"} and len(prepare(table)) == 4


def test_architecture_claim_is_not_tested_with_a_reason():
    verdict, evidence, _ = verdict_of(kernel_runs({3: [0.5], 5: [0.6]}), "architectures")
    assert verdict == stats.NOT_TESTED
    assert "every completed run is a ConvMixer" in evidence


def test_comparison_table_lists_published_rows_not_run():
    runs = kernel_runs({3: [0.5, 0.7], 5: [0.6]})
    table = tables.comparison_table(runs, load_reference())
    ours = table[table["n"] > 0]
    assert list(ours["kernel"]) == [3, 5] and list(ours["n"]) == [2, 1]
    assert ours.iloc[0]["our accuracy (%)"] == "60.00 ± 14.14"
    not_run = table[table["n"] == 0]
    assert len(not_run) == len(load_reference()["accuracy"])
    assert set(not_run["our accuracy (%)"]) == {"not run"}
    assert set(not_run["paper count"]) == {"✓"}  # the builder's counts equal reference.yaml's paper_params


def test_param_check_reads_the_published_counts():
    ref = load_reference()
    row = ref["accuracy"].iloc[0]
    key = (int(row.width), int(row.depth), int(row.patch_size), int(row.kernel_size))
    assert tables.param_check(*key, ref) == "✓"
    wrong = {**ref, "accuracy": ref["accuracy"].assign(paper_params=ref["accuracy"]["paper_params"] + 1)}
    assert tables.param_check(*key, wrong) == "✗"
    assert tables.param_check(16, 1, 2, 3, ref) == "—"  # not a published configuration


def test_comparison_table_attaches_published_values_to_matching_runs():
    ref = load_reference()
    first = ref["accuracy"].iloc[0]
    runs = fake_runs([{"width": int(first.width), "depth": int(first.depth), "patch_size": int(first.patch_size),
                       "kernel_size": int(first.kernel_size), "test_accuracy": 0.5}])
    table = tables.comparison_table(runs, ref)
    row = table[table["n"] == 1].iloc[0]
    assert row["paper accuracy (%)"] == pytest.approx(first.paper_accuracy)
    assert row["reference report epochs"] == first.reference_epochs
    assert len(table) == len(ref["accuracy"])  # the matched published row is not repeated


def test_published_comparison_names_only_what_section_2_calls_like_for_like():
    ref = load_reference()
    # the reference report's 70.62% row: ConvMixer-256/8 p4 k9, 5 epochs of its recipe at batch 128
    row = dict(width=256, depth=8, patch_size=4, kernel_size=9, epochs=5, batch_size=128, test_accuracy=0.6543)

    def comparison(runs):
        return text.published_comparison(runs, ref, anchors.like_for_like(runs, ref))

    like = comparison(fake_runs([row]))
    assert "Like for like (section 2)" in like and "65.43%" in like and "70.62%" in like
    assert "Keras-example recipe, 5 epochs" in like and "the reference report measured" in like
    # another budget, or another batch size, is not the published setting: section 2 does not match it either
    for changed in ({"epochs": 4}, {"batch_size": 64}):
        other = comparison(fake_runs([{**row, **changed}]))
        assert "No run here trains a published run's setting" in other and "Like for like" not in other
        assert "92.61-95.88% in the paper" in other  # the published range, read from reference.yaml
    assert comparison(fake_runs([{"status": "failed"}])) == ""


def test_setup_facts_say_data_budget_and_device_per_setup():
    facts = text.setup_facts(fake_runs([{"test_accuracy": 0.5, "lossy_jpeg": True},
                                            {"test_accuracy": 0.5, "epochs": 3, "lossy_jpeg": True}]))
    assert [label for label, _ in facts] == ["A", "B"]
    assert all("JPEG copy of CIFAR-10" in text and "device: CPU (test cpu)" in text for _, text in facts)
    assert "2 epochs" in facts[0][1] and "3 epochs" in facts[1][1]


def test_cost_table_takes_the_fastest_run():
    runs = pd.concat([kernel_runs({3: [0.5]}, images_per_second=50.0), kernel_runs({3: [0.5]}, images_per_second=80.0)],
                     ignore_index=True)
    row = cost.cost_table(runs).iloc[0]
    assert row["runs"] == 2 and row["images per second"] == 80.0 and row["slowest run images per second"] == 50.0


def test_cost_table_projects_a_full_epoch():
    table = cost.cost_table(kernel_runs({3: [0.5]}, images_per_second=50.0))
    projected = [c for c in table.columns if c.startswith("projected")][0]
    assert table.iloc[0][projected] == pytest.approx(cost.FULL_EPOCH_IMAGES / 50.0)
    assert pd.isna(table.iloc[0]["load avg (start/end)"])  # no metrics.json: no load recorded
    marks = cost.reference_marks(load_reference())
    assert all(label.startswith("reference report: ") for label in marks["label"])


def test_cost_table_reports_the_load_average(tmp_path):
    runs = kernel_runs({3: [0.5, 0.6], 5: [0.7]})
    runs["path"] = [str(tmp_path / f"run{i}") for i in range(len(runs))]
    for i, load in enumerate([[1.0, 3.0], [2.0, 5.0], None]):  # the last run predates load_average
        Path(runs["path"][i]).mkdir()
        metrics = {"device": {"cpu_count": 2}, **({"load_average": load} if load else {})}
        (Path(runs["path"][i]) / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    loads = cost.cost_table(runs).set_index("configuration")["load avg (start/end)"]
    assert loads.iloc[0] == "1.50 / 4.00" and pd.isna(loads.iloc[1])
    sentence = text.load_sentence(runs)
    assert "exceeded its core count" in sentence and "2 of the 2 runs that recorded it" in sentence
    assert "no run here recorded its load" in text.load_sentence(kernel_runs({3: [0.5]}))


PAPER_SCALE = dict(width=256, depth=8)


def test_the_timing_figure_sets_measured_runs_beside_the_published_timings_and_marks_the_same_setting():
    ref = load_reference()
    runs = fake_runs([
        # the reference report's timed setting: ConvMixer-256/8, seed recipe, its batch, 45,000 images
        {**PAPER_SCALE, "kernel_size": 9, "patch_size": 4, "epochs": 5, "batch_size": 128, "train_images": 45_000,
         "seconds_per_epoch": 300.0, "test_accuracy": 0.7},
        {**PAPER_SCALE, "kernel_size": 9, "patch_size": 4, "epochs": 5, "batch_size": 128, "train_images": 45_000,
         "seconds_per_epoch": 110.0, "seed": 1, "test_accuracy": 0.7},
        # the official log's: p2 k5, official-logged recipe, batch 512, 50,000 images
        {**PAPER_SCALE, "kernel_size": 5, "patch_size": 2, "epochs": 25, "batch_size": 512, "train_images": 50_000,
         "recipe": "official-logged", "seconds_per_epoch": 900.0, "test_accuracy": 0.9},
        # the same model on a training subset: neither
        {**PAPER_SCALE, "kernel_size": 5, "patch_size": 2, "epochs": 5, "batch_size": 128, "train_images": 10_000,
         "train_subset": 10_000, "seconds_per_epoch": 60.0, "test_accuracy": 0.5},
        {"kernel_size": 3, "test_accuracy": 0.5},  # another model: not drawn
    ], data=None)
    bars, settings = cost.timing_bars(runs, ref)
    published = bars[bars["published"]].set_index("label")
    assert published["seconds"].to_dict() == {"reference report: CPU": 5000.0, "reference report: NVIDIA K80": 237.0,
                                              "official script's log: RTX 2080 Ti, p2 k5": 42.5}
    ours = bars[~bars["published"]]
    assert len(ours) == 3 and all(label.startswith("here: CPU test cpu, ") for label in ours["label"])
    fastest = ours[ours["label"].str.contains("p4 k9")].iloc[0]
    assert (fastest["seconds"], fastest["slowest"], fastest["group"]) == (110.0, 300.0, cost.REFERENCE_SETTING)
    assert ours[ours["label"].str.contains("official-logged")].iloc[0]["group"] == cost.OFFICIAL_SETTING
    assert ours[ours["seconds"] == 60.0].iloc[0]["group"] == ""
    assert list(bars["seconds"]) == sorted(bars["seconds"], reverse=True)
    assert "does not state the patch size" in settings[cost.REFERENCE_SETTING]
    assert "p2 k5, official-logged recipe, batch 512" in settings[cost.OFFICIAL_SETTING]
    fig = plots.timing_figure(bars, settings)
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].patches) == len(bars)
    assert_legible(fig)


def test_timings_by_setup_are_one_compact_row_per_setup():
    runs = pd.concat([kernel_runs({3: [0.5, 0.5], 9: [0.6]}, seconds_per_epoch=12.5, epochs=2),
                      kernel_runs({3: [0.5]}, seconds_per_epoch=4.25, epochs=3)], ignore_index=True)
    runs.loc[1, "seconds_per_epoch"] = 30.0  # the slower seed of (A, p2 k3): the fastest is shown
    table, devices = cost.timings_by_setup(runs)
    assert devices == ["CPU: test cpu"] and "device" not in table  # one device: said once, in the caption
    assert list(table["setup"]) == ["A", "B"] and list(table["runs"]) == [3, 1]
    assert table.set_index("setup").loc["A", ["p2 k3", "p2 k9"]].tolist() == ["12", "12"]
    assert table.set_index("setup").loc["B", ["p2 k3", "p2 k9"]].tolist() == ["4.2", ""]
    cells = table.astype(str).to_numpy().ravel()
    assert not any("not comparable" in c for c in cells)
    two = pd.concat([runs, kernel_runs({5: [0.5]}, device_name="other cpu")], ignore_index=True)
    assert "device" in cost.timings_by_setup(two)[0]


def assert_legible(fig):
    """A report figure as html.figure embeds it: no wider than the content column, every text at least
    10 px on screen (its points at html.FIGURE_DPI)."""
    import matplotlib.text
    from PIL import Image

    small = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(matplotlib.text.Text)
             if t.get_visible() and t.get_text().strip() and t.get_fontsize() * html.FIGURE_DPI / 72 < 10]
    assert small == []
    width = Image.open(io.BytesIO(html.figure_png(fig))).size[0]
    assert width <= html.CONTENT_WIDTH_PX


def _history(epochs, start=0.3):
    return pd.DataFrame({"epoch": range(1, epochs + 1), "accuracy": [start + 0.05 * e for e in range(epochs)],
                         "val_accuracy": [start + 0.04 * e for e in range(epochs)], "loss": 1.0, "val_loss": 1.0})


@pytest.mark.slow  # seconds: seven full-size figures measured
def test_report_figures_are_drawn_at_the_size_they_are_shown():
    runs = prepare(fake_runs([{"kernel_size": k, "patch_size": p, "seed": s, "test_accuracy": 0.5 + 0.01 * (k + s),
                               "test_images": 100} for k in (3, 5, 9) for p in (2, 4) for s in (0, 1)]))
    ref = load_reference()
    many = [(f"Setup {label}: a long budget description of twelve words or so, as setups have", runs, None)
            for label in "ABCDE"]
    figures = {
        "trend grid": plots.trend_grid(many, "kernel_size", "patch_size"),
        "learning overview": plots.learning_overview(
            [(f"Setup {label}", [(2, 3, [_history(3)]), (4, 9, [_history(3)])]) for label in "ABCDE"]),
        "learning grid": plots.learning_curves_grid([(f"patch {p}, kernel {k}", [("seed 0", _history(25))])
                                                     for p in (2, 4) for k in (3, 5, 7, 9)], "Setup A: budget"),
        "published trends": plots.published_trends_figure(tables.published_trend_series(runs, ref)),
        "compute": plots.compute_accuracy_figure(runs.assign(train_loop="model.fit")),
        "architectures": plots.architecture_figure(
            runs, {j: 40_000 + j for j in runs.index}, {j: f"model {j % 6} with a long name" for j in runs.index},
            {j: 1e6 * (j + 1) for j in runs.index}),
        "forest": plots.forest_figure(sections.forest_panels(pd.concat(
            [kernel_runs({3: [0.5, 0.51], 9: [0.6, 0.61]}, epochs=e) for e in (2, 3, 4, 5, 6, 7)],
            ignore_index=True), ref)),
    }
    for name, fig in figures.items():
        try:
            assert_legible(fig)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


def test_learning_curves_have_whole_epoch_ticks():
    fig = plots.learning_curves_grid([("patch 2, kernel 3", [("seed 0", _history(3))])], "Setup A")
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)
    fig = plots.learning_overview([("Setup A", [(2, 3, [_history(2), _history(2)])])])
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 2]
    assert ticks and all(float(t).is_integer() for t in ticks)
    # the overview draws the mean over seeds of the held-out accuracy
    assert list(fig.axes[0].lines[0].get_ydata()) == pytest.approx([30.0, 34.0])


def test_table_headers_wrap_only_at_spaces():
    page = html.table(pd.DataFrame({"test-set SE (%)": [1.0], "load avg (start/end)": ["1 / 2"], "setup": ["A"]}),
                      table_id="t")
    soup = BeautifulSoup(page, "html.parser")
    headers = soup.find_all("th")
    assert [th.get_text() for th in headers] == ["test-set SE (%)", "load avg (start/end)", "setup"]
    kept_whole = [span.get_text() for span in soup.select("th span.nw")]
    assert kept_whole == ["test-set", "(%)", "(start/end)"]
    assert "white-space: nowrap" in build.REPORT_CSS and "overflow-wrap: anywhere" not in build.REPORT_CSS
    assert [td.get_text() for td in soup.find_all("td")] == ["1.00", "1 / 2", "A"]


def test_the_first_screen_says_each_verdict_with_its_effect_interval_and_regime():
    runs = pd.concat([kernel_runs({3: [0.50, 0.51, 0.52], 9: [0.70, 0.71, 0.72]}, epochs=6),
                      kernel_runs({3: [0.50, 0.51, 0.52], 9: [0.50, 0.52, 0.51]}, epochs=2)], ignore_index=True)
    table = verdicts.verdicts(runs)
    lines = sections.verdict_line_data(runs, table)
    assert [line["verdict"] for line in lines] == list(table["verdict"])
    kernel = lines[1]
    claim = verdicts.claims_json(runs, table)["claims"][1]
    assert kernel["effects"] == [f"kernel 3 → 9: {claim['effect']:+.2f} points (95% CI {claim['ci_low']:+.2f} to "
                                 f"{claim['ci_high']:+.2f})"]
    assert kernel["regime"] == "ConvMixer-16/1, 6 epochs of the Keras-example recipe, synthetic data, 3 seeds"
    assert lines[0]["notes"] == ["Not tested: every completed run is a ConvMixer, so there is no ViT, MLP-Mixer or "
                                 "ResNet run to compare against."]
    page = BeautifulSoup(html.verdict_lines(lines), "html.parser")
    items = page.select("li.verdict-line")
    assert [li.select_one("a.verdict-word")["href"] for li in items] == [
        f"#claim-{c['id']}" for c in verdicts.CLAIMS]
    assert "+20.00 points (95% CI" in items[1].get_text() and "(ConvMixer-16/1, 6 epochs" in items[1].get_text()
    # the forest plot: every setup's effect with its interval, the lead first and bold, the paper's effect
    panels = sections.forest_panels(runs, load_reference())
    kernel_panel = panels[1]
    assert kernel_panel["title"] == "2. Kernel 3 → 9" and kernel_panel["sign"] == 1
    ours = [r for r in kernel_panel["rows"] if not r["published"]]
    assert [r["label"] for r in ours] == ["B: 6 ep Keras-example", "A: 2 ep Keras-example"] and [r["lead"] for r in ours] == [True, False]
    assert ours[0]["effect"] == pytest.approx(claim["effect"], abs=1e-4)
    assert ours[0]["ci_low"] < ours[0]["effect"] < ours[0]["ci_high"]
    paper = [r for r in kernel_panel["rows"] if r["published"]]
    assert [(r["label"], round(r["effect"], 2)) for r in paper] == [("paper: p1, 200 ep", 2.27)]  # 95.88 - 93.61
    assert panels[0]["rows"] == [] and panels[2]["sign"] == -1


def test_verdict_details_keep_every_test_in_folds_without_paragraph_cells():
    runs = pd.concat([kernel_runs({3: [0.50, 0.51, 0.52], 5: [0.6, 0.61, 0.6], 9: [0.70, 0.71, 0.72]}, epochs=6),
                      kernel_runs({3: [0.50, 0.51, 0.52], 9: [0.50, 0.52, 0.51]}, epochs=2)], ignore_index=True)
    soup = BeautifulSoup(sections.verdict_details(runs, load_reference()), "html.parser")
    folds = {d["id"]: d for d in soup.find_all("details")}
    assert set(folds) == {"claim-architectures", "claim-kernel", "claim-patch", "verdict-rule"}
    tests = folds["claim-kernel"].find("table", id="claim-kernel-tests")
    assert [tr.find("td").get_text() for tr in tests.find("tbody").find_all("tr")] == ["B", "A"]  # the lead first
    text = folds["claim-kernel"].get_text(" ")
    assert "adjacent sizes: 3 → 5" in text and "linear trend" in text and "The paper's own effect" in text
    assert max(len(td.get_text()) for td in soup.find_all("td")) <= MAX_CELL_CHARS
    rule = [li.get_text() for li in folds["verdict-rule"].find_all("li")]  # a sentence a line, not one block
    assert len(rule) >= 5 and " ".join(rule) == " ".join(wording.VERDICT_RULE.split())


def test_jpeg_sentence_only_for_lossy_sources():
    assert text.jpeg_sentence(kernel_runs({3: [0.5]})) is None
    lossy = kernel_runs({3: [0.5]}, lossy_jpeg=True, dataset_description="CIFAR-10 PNG→JPEG folder")
    assert JPEG_PHRASE in text.jpeg_sentence(lossy)
    assert "yes (lossy)" in set(provenance.provenance(lossy)["data"]["JPEG copy"])


def test_empty_results_give_sentences_not_errors():
    empty = pd.DataFrame(columns=COLUMNS)
    assert "no completed runs" in text.scope(empty)
    assert set(verdicts.verdicts(empty)["verdict"]) == {stats.NOT_TESTED}
    assert cost.cost_table(empty).empty and tables.skipped(empty).empty
    assert tables.trend(empty, "kernel_size").empty
    assert all(t.empty for t in provenance.provenance(empty).values())
    assert "no completed runs" in sections.trend_section(empty, load_reference(), "patch_size")


def test_skipped_lists_reasons():
    runs = fake_runs([{"kernel_size": 3, "test_accuracy": 0.5},
                      {"status": "corrupt", "problem": "params.json unreadable", "kernel_size": None}])
    table = tables.skipped(runs)
    assert list(table["status"]) == ["corrupt"] and table.iloc[0]["reason"] == "params.json unreadable"


def test_external_resources_are_detected():
    page = ('<html><head><script src="https://cdn.example/x.js"></script>'
            '<link rel="stylesheet" href="//cdn.example/a.css"><style>/* https://ok */ b {background:url(https://x/y.png)}'
            '</style></head><body><a href="https://example.org">plain link</a>'
            '<img src="data:image/png;base64,AA=="></body></html>')
    found = build.external_resources(page)
    assert len(found) == 3
    assert not any("example.org" in f for f in found)


def test_report_notebook_is_committed_without_outputs():
    nb = nbformat.read(ROOT / "notebooks" / "report.ipynb", as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code_cells)
    params = [c for c in code_cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'results_dir = "../results"' in params[0].source
    sources = "\n".join(c.source for c in nb.cells)
    for anchor in NOTEBOOK_ANCHORS:
        assert f'id="{anchor}"' in sources, anchor


# --------------------------------------------------------------------------- real runs, real report

def _train(results: Path, kernel, patch, seed):
    from convmixer.training.config import RunConfig
    from convmixer.training.train import train

    config = RunConfig(width=16, depth=1, patch_size=patch, kernel_size=kernel, epochs=2, batch_size=64,
                       seed=seed, data="synthetic:200:100")
    train(config, results / "runs" / config.run_id, log=io.StringIO())


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for kernel, patch, seed in CONFIGS:
        _train(root, kernel, patch, seed)
    broken = root / "runs" / "broken_run"
    broken.mkdir()
    (broken / "params.json").write_text("{not json", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def built(results_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "index.html"
    path = report.build_report(results=results_dir, out=out, readme=None)  # tmp results: no README to refresh
    return path, path.read_text(encoding="utf-8")


def parse_table(page: str, table_id: str) -> pd.DataFrame:
    soup = BeautifulSoup(page, "html.parser")
    tab = soup.find("table", id=table_id)
    assert tab is not None, f"table #{table_id} missing"
    headers = [" ".join(th.get_text().split()) for th in tab.find("thead").find_all("th")]
    rows = [[td.get_text(strip=True) for td in tr.find_all("td")] for tr in tab.find("tbody").find_all("tr")]
    return pd.DataFrame(rows, columns=headers)


@pytest.mark.slow
def test_analysis_on_real_runs(results_dir):
    runs = load_runs(results_dir)
    assert (runs["status"] == "completed").sum() == len(CONFIGS)
    v = verdicts.verdicts(runs)
    assert len(v) == len(verdicts.CLAIMS)
    # the kernel is tested on the patch-2 line (2 seeds each); patch 4's single runs leave the patch claim
    # untested, shown as an illustration
    assert v.iloc[1]["verdict"] != stats.NOT_TESTED and v.iloc[1]["tests"][0]["left_out"] == [(3, 4, 1), (5, 4, 1)]
    assert v.iloc[2]["verdict"] == stats.NOT_TESTED and "Illustration only" in v.iloc[2]["evidence"]
    table = tables.comparison_table(runs, load_reference())
    ours = table[table["n"] > 0].set_index(["patch", "kernel"])["n"].to_dict()
    assert ours == {(2, 3): 2, (2, 5): 2, (4, 3): 1, (4, 5): 1}
    assert list(tables.skipped(runs)["folder"]) == ["broken_run"]


@pytest.mark.slow
def test_report_has_every_section_and_no_code(built):
    path, page = built
    soup = BeautifulSoup(page, "html.parser")
    for anchor in SECTION_ANCHORS:
        assert f'id="{anchor}"' in page and soup.find(id=anchor) is not None, anchor
    text = soup.get_text(" ")
    for heading in HEADINGS:
        assert heading in text, heading
    # every verdict links to its folded evidence, which exists and names the claim
    links = soup.select("#verdicts li.verdict-line a.verdict-word")
    assert len(links) == len(verdicts.CLAIMS)
    for link, claim in zip(links, verdicts.CLAIMS):
        fold = soup.find(id=link["href"][1:])
        assert fold is not None and fold.name == "details" and claim["claim"] in fold.summary.get_text()
    # every id once; no table cell holds a paragraph
    ids = [tag["id"] for tag in soup.find_all(id=True)]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    cells = [td.get_text(" ", strip=True) for td in soup.find_all("td")]
    assert cells and max(map(len, cells)) <= MAX_CELL_CHARS, max(cells, key=len)
    # comparison table: headers, our rows with n, and the published rows we did not run
    comparison = parse_table(page, "comparison-table")
    for header in COMPARISON_HEADERS:
        assert header in comparison.columns, header
    assert "not run" in set(comparison["our accuracy (%)"])
    # figures are inline PNGs; nothing is fetched from the network
    assert page.count("data:image/png;base64,") >= 6
    assert build.external_resources(page) == []
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    # no code: code cells have no input area, no highlighted source
    assert not soup.select(".jp-CodeCell .jp-InputArea") and not soup.select(".highlight, .input_area")
    assert "load_runs(" not in text and "show(" not in text
    # the corrupt folder is listed with its reason; synthetic data is not a JPEG copy
    skipped = parse_table(page, "skipped-table")
    assert list(skipped["folder"]) == ["broken_run"] and "params.json" in skipped.iloc[0]["reason"]
    assert JPEG_PHRASE not in text
    # the executed notebook is not kept (it is not committed); the verdicts are, as data
    assert not (path.parent / "report.ipynb").exists()
    claims = json.loads((path.parent / "claims.json").read_text())
    assert [c["id"] for c in claims["claims"]] == [c["id"] for c in verdicts.CLAIMS]
    shown = {c["id"]: c["verdict"] for c in claims["claims"]}
    assert [a.get_text() for a in links] == [shown[c["id"]] for c in verdicts.CLAIMS]


@pytest.mark.slow
def test_empty_results_folder_renders(tmp_path):
    # The command line refuses a folder without runs (an empty report would look like a result); the
    # report itself still renders one, every section saying what is missing.
    (tmp_path / "results").mkdir()
    out = report.build_report(results=tmp_path / "results", out=tmp_path / "report" / "index.html", readme=None)
    page = out.read_text(encoding="utf-8")
    text = BeautifulSoup(page, "html.parser").get_text(" ")
    assert "There are no completed runs" in text
    assert "No kernel-size trend to show" in text and "there are no learning curves" in text
    assert "not tested" in text and "Not tested: there are no completed runs" in text
    assert set(parse_table(page, "comparison-table")["our accuracy (%)"]) == {"not run"}


@pytest.mark.slow
def test_adding_a_run_changes_the_report(results_dir, built, tmp_path):
    _, before = built
    more = tmp_path / "results"
    shutil.copytree(results_dir, more)
    _train(more, 3, 4, 1)  # a second seed for (patch 4, kernel 3)
    after = report.build_report(results=more, out=tmp_path / "out" / "index.html", readme=None).read_text(
        encoding="utf-8")

    def n_of(page):
        t = parse_table(page, "comparison-table")
        t = t[t["setup"] != "—"]
        return dict(zip(zip(t["patch"], t["kernel"]), t["n"]))

    assert n_of(before)[("4", "3")] == "1" and n_of(after)[("4", "3")] == "2"
    assert f"{len(CONFIGS)} completed runs" in before and f"{len(CONFIGS) + 1} completed runs" in after


@pytest.mark.slow
def test_rebuilding_from_the_same_records_gives_the_same_bytes(built, results_dir, tmp_path):
    path, page = built
    again = report.build_report(results=results_dir, out=tmp_path / "index.html", readme=None)
    assert again.read_text(encoding="utf-8") == page
    assert (tmp_path / "claims.json").read_bytes() == (path.parent / "claims.json").read_bytes()


@pytest.mark.slow
def test_failed_execution_keeps_the_previous_report(built, tmp_path):
    path, page = built
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('results_dir = "x"'),
                                          nbformat.v4.new_code_cell('raise RuntimeError("boom")')])
    bad.cells[0].metadata["tags"] = ["parameters"]
    bad.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb_path = tmp_path / "bad.ipynb"
    nbformat.write(bad, nb_path)
    kept = (path.parent / "claims.json").read_bytes()
    with pytest.raises(report.ReportError, match="left unchanged"):
        report.build_report(results=tmp_path, out=path, notebook=nb_path, readme=None)
    assert path.read_text(encoding="utf-8") == page
    assert (path.parent / "claims.json").read_bytes() == kept
    assert (path.parent / "report.failed.ipynb").exists()


# --------------------------------------------------------------------------- a real browser

def _chromium(*args, user_data_dir, timeout=90):
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (.ci/run installs it: apt-get install chromium chromium-driver)")
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={user_data_dir}",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_headless_browser_renders_sections_and_images(built, tmp_path):
    path, _ = built
    done = _chromium("--dump-dom", path.as_uri(), user_data_dir=tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    soup = BeautifulSoup(done.stdout, "html.parser")
    for anchor in SECTION_ANCHORS:
        assert soup.find(id=anchor) is not None, anchor
    images = [img["src"] for img in soup.find_all("img")]
    assert len(images) >= 6 and all(src.startswith("data:image/png;base64,") for src in images)


# Run in the page: everything a reader at this width would find broken, one line each. Folds are opened
# first, so what they hold is checked too. Elements inside a table's own scrolling box may be wider.
LAYOUT_PROBLEMS_JS = """
const minScale = arguments[0];
const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
  (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
document.querySelectorAll('details').forEach(d => { d.open = true; });
const out = [], page = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth > page)
  out.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} px of content in ${page} px`);
for (const e of document.querySelectorAll('body *')) {
  if (e.parentElement.closest('.table-scroll')) continue;
  const r = e.getBoundingClientRect();
  if ((r.width || r.height) && (r.right > page + 1 || r.left < -1))
    out.push(`${name(e)} spans ${Math.round(r.left)} to ${Math.round(r.right)} px of a ${page} px page`);
}
for (const th of document.querySelectorAll('th')) {
  const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const m of node.data.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const lines = new Set(Array.from(range.getClientRects(), r => Math.round(r.bottom)));
      if (lines.size > 1) out.push(`header "${th.textContent}" breaks inside "${m[0]}"`);
    }
  }
}
for (const img of document.images) {
  const r = img.getBoundingClientRect();
  if (!img.complete || !img.naturalWidth) out.push(`image "${img.alt}" does not decode`);
  else if (minScale && r.width / img.naturalWidth < minScale)
    out.push(`image "${img.alt}" is shown at ${(r.width / img.naturalWidth).toFixed(2)} of its natural size`);
}
const ids = Array.from(document.querySelectorAll('[id]'), e => e.id);
for (const id of new Set(ids.filter((id, i) => ids.indexOf(id) !== i))) out.push(`id "${id}" occurs more than once`);
return out;
"""
FIRST_SCREEN_JS = """
return [Array.from(document.querySelectorAll('#verdicts li.verdict-line'), li => [
          li.querySelector('.verdict-word').textContent, li.textContent,
          li.getBoundingClientRect().bottom + window.scrollY, li.getBoundingClientRect().top + window.scrollY]),
        (document.querySelector('#forest img') || {getBoundingClientRect: () => ({top: Infinity})})
          .getBoundingClientRect().top + window.scrollY,
        (document.querySelector('div.headline') || {getBoundingClientRect: () => ({bottom: Infinity})})
          .getBoundingClientRect().bottom + window.scrollY,
        document.documentElement.scrollHeight];
"""
FIRST_SCREEN_PX = 800  # the first screen at 1280 px: what a reader sees before scrolling
# Where the browser test leaves its screenshots (report-1280px.png, report-390px.png): a temporary folder.
SCREENSHOTS = Path(tempfile.gettempdir()) / "convmixer-report-screenshots"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium driven by selenium: at 390 px it emulates a phone (desktop Chrome will not open a
    window that narrow)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("no /usr/bin/chromium + /usr/bin/chromedriver (make browser installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def open_at(driver, path, width):
    phone = width < 600
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 844 if phone else FIRST_SCREEN_PX, "deviceScaleFactor": 2 if phone else 1,
        "mobile": phone})
    driver.get(path.as_uri())
    assert driver.execute_script("return window.innerWidth") == width


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 390])
def test_the_page_is_legible_in_a_browser(built, browser, width):
    """At a laptop's and a phone's width: nothing is wider than the page (tables scroll in their own box), no
    table header breaks inside a word, every image decodes (at 1280 px shown at 0.9 of its natural size or
    more, so its text is as large as it was drawn), every id is unique, and the console is clean. A
    screenshot of the first screen is left in SCREENSHOTS (outside the repository) for a developer to look at."""
    path, _ = built
    open_at(browser, path, width)
    SCREENSHOTS.mkdir(exist_ok=True)
    browser.get_screenshot_as_file(str(SCREENSHOTS / f"report-{width}px.png"))
    problems = browser.execute_script(LAYOUT_PROBLEMS_JS, 0.9 if width >= 1000 else 0)
    assert problems == [], "\n".join(problems[:20])
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], json.dumps(severe)[:2000]


@pytest.mark.slow
def test_the_first_screen_leads_with_the_paper_scale_then_the_verdicts_and_the_forest_plot(built, browser):
    path, _ = built
    open_at(browser, path, 1280)
    lines, forest_top, headline_bottom, height = browser.execute_script(FIRST_SCREEN_JS)
    claims = json.loads((path.parent / "claims.json").read_text())["claims"]
    assert [word for word, *_ in lines] == [c["verdict"] for c in claims]
    assert headline_bottom <= lines[0][3]  # what the paper-scale runs show comes first, above the verdicts
    for (_, text, bottom, _), claim in zip(lines, claims):
        assert claim["claim"] in text and bottom <= FIRST_SCREEN_PX, (text, bottom)
    assert forest_top <= FIRST_SCREEN_PX, f"the forest plot starts at {forest_top} px (page {height} px)"


@pytest.mark.slow
def test_the_committed_reports_first_screen_holds_the_verdicts_and_the_forest_plot(browser):
    """The committed report, from the real records: their sentences are longer than the fixtures', so the
    paper-scale headline must stay short enough that the three verdicts and the forest plot's top are seen
    before scrolling."""
    open_at(browser, ROOT / "report" / "index.html", 1280)
    lines, forest_top, headline_bottom, _ = browser.execute_script(FIRST_SCREEN_JS)
    assert len(lines) == 3 and headline_bottom <= lines[0][3]
    assert max(bottom for _, _, bottom, _ in lines) <= FIRST_SCREEN_PX and forest_top <= FIRST_SCREEN_PX, (
        [bottom for _, _, bottom, _ in lines], forest_top)


@pytest.mark.slow  # seconds: a headless browser
def test_the_layout_check_finds_what_it_looks_for(browser, tmp_path):
    """LAYOUT_PROBLEMS_JS on a page with each fault it checks for: each is reported."""
    import base64

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1600, 40), "white").save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    page = tmp_path / "faults.html"
    page.write_text(
        '<html><body style="margin:0"><div id="twice"></div><p id="twice">x</p>'
        '<table><thead><tr><th style="width:3em;overflow-wrap:anywhere">configuration</th></tr></thead></table>'
        f'<img alt="wide" src="data:image/png;base64,{png}" style="max-width:100%">'
        '<div style="width:2000px">wide</div>'
        '<div class="table-scroll" style="overflow-x:auto"><table><tr><td style="width:3000px">scrolls in its box'
        "</td></tr></table></div></body></html>", encoding="utf-8")
    open_at(browser, page, 1280)
    problems = "\n".join(browser.execute_script(LAYOUT_PROBLEMS_JS, 0.9))
    assert 'id "twice" occurs more than once' in problems
    assert 'header "configuration" breaks inside "configuration"' in problems
    assert 'image "wide" is shown at 0.' in problems
    assert "the page scrolls sideways" in problems and "div spans 0 to 2000 px" in problems
    assert "td" not in problems  # inside a scrolling box: allowed


def test_runs_from_a_dirty_tree_are_flagged():
    runs = fake_runs([{"test_accuracy": 0.5, "git_commit": "abc123"},
                      {"test_accuracy": 0.5, "seed": 1, "git_commit": "abc123+dirty"}])
    sentence = text.dirty_sentence(runs)
    assert sentence.startswith("1 of 2 completed runs") and "run1" in sentence and "run0" not in sentence
    assert text.dirty_sentence(runs.assign(git_commit="abc123")) is None
    assert "+dirty" in sections.provenance_section(runs)


def test_regime_names_unequal_seed_counts_and_how_training_ended():
    runs = kernel_runs({3: [0.50, 0.51, 0.52], 9: [0.70, 0.71]})
    verdict, evidence, _ = verdict_of(runs, "kernel")
    assert "(2-3 seeds per configuration), stopped mid-schedule (learning rate above 0)" in evidence.splitlines()[0]


def _with_histories(tmp_path, runs, lr_end, train_end, test_curve_end):
    """Give every fake run a history.csv: 5 epochs, the given last lr, training and test accuracy."""
    paths = []
    for i, run_id in enumerate(runs["run_id"]):
        folder = tmp_path / run_id
        folder.mkdir(parents=True)
        rows = ["epoch,loss,accuracy,test_loss,test_accuracy,lr"]
        rows += [f"{e},1.0,{train_end - 0.1 * (5 - e)},1.0,{test_curve_end},{0.01 if e < 5 else lr_end}"
                 for e in range(1, 6)]
        (folder / "history.csv").write_text("\n".join(rows) + "\n")
        paths.append(str(folder))
    return runs.assign(path=paths)


def test_how_training_ended_comes_from_the_schedule_and_training_accuracy_never_the_test_curve(tmp_path):
    runs = kernel_runs({3: [0.50, 0.51, 0.52], 9: [0.70, 0.71, 0.72]}, epochs=5)
    annealed = verdicts.schedule_end(prepare(_with_histories(tmp_path / "a", runs, 0.0, 0.55, 0.9)))
    assert annealed["annealed"] and annealed["train_pct"] == pytest.approx(55.0)
    assert "end of a one-cycle schedule at a fixed budget of 5 epochs" in annealed["text"]
    # Shown, not read: on augmented images a training accuracy below the test accuracy is no sign of underfitting.
    assert annealed["text"].endswith("55.0% against 61.0% test") and "underfit" not in annealed["text"]
    # The test curve (here flat at 10% or at 90%) changes nothing: the schedule and training accuracy decide.
    flat = verdicts.schedule_end(prepare(_with_histories(tmp_path / "b", runs, 0.0, 0.55, 0.1)))
    assert flat == annealed
    constant = verdicts.schedule_end(prepare(_with_histories(tmp_path / "c", runs, 0.001, 0.95, 0.9)))
    assert not constant["annealed"] and "not annealed" in constant["text"]
    # A recipe that tests its best-validation checkpoint: the test accuracy is not the last epoch's, and it says so.
    best = verdicts.schedule_end(prepare(_with_histories(tmp_path / "d", runs.assign(
        selected_epoch=[5, 4, 5, 3, 5, 5]), 0.001, 0.95, 0.9)))
    assert best["text"].endswith("(the test accuracy for 2 of the 6 runs is the best-validation checkpoint's, from "
                                 "epochs 3 and 4)")
    every = verdicts.schedule_end(prepare(_with_histories(tmp_path / "f", runs.assign(selected_epoch=4), 0.001, 0.95,
                                                          0.9)))
    assert every["text"].endswith("(the test accuracy is the best-validation checkpoint's, from epoch 4)")
    assert "checkpoint" not in verdicts.schedule_end(prepare(_with_histories(
        tmp_path / "e", runs.assign(selected_epoch=5), 0.001, 0.95, 0.9)))["text"]


def test_every_count_of_runs_agrees_across_the_report(tmp_path):
    from convmixer.training.config import RunConfig

    rows = [{"kernel_size": k, "seed": 0, "test_accuracy": 0.5, "run_id": f"conv{k}"} for k in (3, 9)]
    rows += [{"architecture": "resnet", "hyperparameters": '{"blocks_per_stage": 1, "width": 4}', "width": None,
              "depth": None, "patch_size": None, "seed": 0, "test_accuracy": 0.4, "run_id": "resnet"},
             {"status": "incomplete", "kernel_size": 5, "seed": 0, "run_id": "unfinished"}]
    runs = fake_runs(rows)
    scope = text.scope(runs)
    assert "covers 2 completed ConvMixer runs" in scope and "1 completed run of the claim-1 baselines" in scope
    assert "1 run folder was skipped" in scope  # the unfinished one, not the baseline
    assert len(tables.skipped(runs)) == 1
    grids = tmp_path / "grids"
    grids.mkdir()
    (grids / "g.yaml").write_text("base: {architecture: resnet, hyperparameters: {blocks_per_stage: 1, width: 4}}\n"
                                  "runs: [{seed: 0}]\n")
    coverage = provenance.grid_coverage(runs.assign(run_id=[
        "conv3", "conv9", RunConfig(architecture="resnet", hyperparameters={"blocks_per_stage": 1, "width": 4}).run_id,
        "unfinished"]), grids)
    assert coverage["completed here"].tolist() == [1]  # a baseline's completed run counts for its grid


def test_budget_sentences_say_how_an_effect_moved_and_claim_nothing_beyond_the_budgets(tmp_path):
    rows = []
    for epochs, gap in ((8, 0.03), (25, 0.01)):
        for k in (3, 9):
            for s in range(3):
                rows.append({"kernel_size": k, "seed": s, "epochs": epochs, "recipe": "official", "batch_size": 512,
                             "test_accuracy": 0.6 + (gap if k == 9 else 0) + 0.001 * s,
                             "run_id": f"e{epochs}k{k}s{s}"})
    runs = fake_runs(rows)
    runs = runs.assign(path=[str(tmp_path / r) for r in runs["run_id"]])
    for path in runs["path"]:  # one-cycle histories: the learning rate ends at 0
        Path(path).mkdir()
        (Path(path) / "history.csv").write_text("epoch,loss,accuracy,test_loss,test_accuracy,lr\n1,1,0.5,1,0.5,0.0\n")
    [kernel] = sections.budget_sentences(runs, load_reference())
    assert "+3.00 points after 8 epochs, +1.00 points after 25 epochs; the effect shrank from 8 to 25" in kernel
    assert "paper's 200-epoch effect of the same change (kernel 3 → 9) for ConvMixer-256/8 at patch 1 is +2.27: another model, patch and budget" in kernel
    assert "do not show that short training overstates" in kernel
    assert sections.budget_sentences(runs[runs["epochs"] == 25], load_reference()) == []  # one budget: no trend


def test_the_budget_lesson_says_where_levels_are_compared():
    cpu = text.lessons(fake_runs([{"seed": 0, "test_accuracy": 0.5}]))[0]
    assert cpu.startswith("Budget: all 1 completed run trained on CPU. The longest is 2 epochs")
    assert "trends, not levels; levels are compared only with published runs of the same setting" in cpu
    mixed = text.lessons(fake_runs([{"seed": s, "test_accuracy": 0.5, "device_kind": kind}
                                    for s, kind in enumerate(["CPU", "GPU", "GPU"])]))[0]
    assert mixed.startswith("Budget: runs trained on GPU (2 runs), CPU (1 run). The longest is 2 epochs")
    paper = text.lessons(fake_runs([{"seed": 0, "test_accuracy": 0.5, "epochs": 200}]))[0]
    assert paper == "Budget: all 1 completed run trained on CPU."  # a 200-epoch run: levels are in reach
    assert text.lessons(fake_runs([]))[0].startswith("Budget: no completed runs")


def test_the_lessons_count_every_architectures_runs_and_grids_not_summed_runs():
    runs = fake_runs([{"seed": 0, "test_accuracy": 0.5, "lossy_jpeg": True},
                      {"seed": 0, "test_accuracy": 0.4, "lossy_jpeg": True, "architecture": "resnet",
                       "hyperparameters": '{"depth": 8, "width": 8}', "dataset_description": "a JPEG zip"}])
    grids = pd.DataFrame({"grid": ["a.yaml", "b.yaml"], "description": ["", ""], "planned runs": [2, 1],
                          "completed here": [2, 0]})
    lines = text.lessons(runs, grids)
    assert lines[0].startswith("Budget: all 2 completed runs trained on CPU. The longest is 2 epochs")
    assert lines[1].startswith("Data: 2 of 2 completed runs used a JPEG copy of CIFAR-10")
    assert lines[-1].startswith("Going further: 1 of the 2 shipped grids has every run completed here; not (fully) "
                                "run: b.yaml.")
    # A baseline's long run does not bring the paper's ConvMixer numbers in reach; an unreadable grid is not complete.
    long_baseline = runs.assign(epochs=[2, 200])
    assert "The longest is 2 epochs, so the paper's 200-epoch numbers are out of reach" in text.lessons(long_baseline)[0]
    unreadable = pd.concat([grids.iloc[:1], pd.DataFrame({"grid": ["bad.yaml"], "description": ["unreadable: x"],
                                                          "planned runs": [None], "completed here": [None]})])
    assert "not (fully) run: bad.yaml." in text.lessons(runs, unreadable.astype({"planned runs": "Int64",
                                                                               "completed here": "Int64"}))[-1]


def test_the_committed_reports_table_cells_hold_a_phrase_not_a_paragraph():
    # The real records make longer cells than the fixtures do (diagnostics, several setups, long differences).
    page = (ROOT / "report" / "index.html").read_text(encoding="utf-8")
    cells = [td.get_text() for td in BeautifulSoup(page, "html.parser").find_all("td")]
    assert cells and max(map(len, cells)) <= MAX_CELL_CHARS, max(cells, key=len)
