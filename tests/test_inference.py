"""The verdict rule's error rates, checked on synthetic results tables of the real grids' shapes.

A claim verdict goes through the same code as the report (``verdicts.verdicts``
on a load_runs-shaped frame). With no effect, "consistent with the claim" may
come out in at most 5% of tables; with a 3-point effect and a seed std of 0.5
point it must come out in at least 90%.
"""

import numpy as np
import pandas as pd
import pytest

from convmixer.report import stats, tables, verdicts
from convmixer.report.runs import COLUMNS, prepare

# (kernel, patch) cells: the one-cycle grid's design and the 4-epoch full-data 2 x 2 design.
SHAPES = {
    "one-cycle": [(3, 2), (9, 2), (9, 4)],
    "two-by-two": [(3, 2), (9, 2), (3, 4), (9, 4)],
}
TABLES = 200


def synthetic_runs(cells, rng, effect=0.0, seed_std=0.5, seeds=3):
    """Completed runs of one setup; kernel 9 adds ``effect`` points and patch 4 removes it."""
    rows = []
    for k, p in cells:
        for s in range(seeds):
            accuracy = 60.0 + rng.normal(0, seed_std) + effect * (k == 9) - effect * (p == 4)
            rows.append({"status": "completed", "width": 64, "depth": 4, "recipe": "official",
                         "recipe_overrides": "{}", "epochs": 25, "batch_size": 512, "data": None,
                         "activation": "gelu", "backend": "tensorflow", "train_images": 50000,
                         "dataset_fingerprint": "sha256:x", "lossy_jpeg": True, "seed": s, "kernel_size": k,
                         "patch_size": p, "test_accuracy": accuracy / 100, "run_id": f"r{k}{p}{s}",
                         "path": f"/nowhere/r{k}{p}{s}"})
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def positive_rate(cells, effect, seed=0):
    rng = np.random.default_rng(seed)
    hits = {"kernel": 0, "patch": 0}
    for _ in range(TABLES):
        table = verdicts.verdicts(synthetic_runs(cells, rng, effect)).set_index("id")["verdict"]
        for claim in hits:
            hits[claim] += table[claim] == stats.CONSISTENT
    return {claim: n / TABLES for claim, n in hits.items()}


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_no_effect_is_called_consistent_in_at_most_5_percent(shape):
    rates = positive_rate(SHAPES[shape], effect=0.0)
    assert max(rates.values()) <= 0.05, rates


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_a_3_point_effect_is_detected_in_at_least_90_percent(shape):
    rates = positive_rate(SHAPES[shape], effect=3.0, seed=1)
    assert min(rates.values()) >= 0.90, rates


def test_contrast_matches_the_cell_means_in_a_balanced_design():
    rng = np.random.default_rng(2)
    frame = verdicts._inference_frame(prepare(synthetic_runs(SHAPES["two-by-two"], rng, effect=2.0)))
    result = stats.axis_test(frame, "kernel_size", "patch_size")
    means = frame.groupby("kernel_size")["accuracy"].mean()
    assert result["effect"] == pytest.approx(means[9] - means[3])
    assert result["ci_low"] < result["effect"] < result["ci_high"]
    assert result["df"] == len(frame) - 5  # intercept, kernel, patch, two seed-block terms


def test_holm_is_statsmodels_holm():
    import gc

    assert stats.holm([0.01, 0.04, float("nan")])[:2] == pytest.approx([0.02, 0.04])
    assert np.isnan(stats.holm([0.01, 0.04, float("nan")])[2])
    # The heap is frozen only for statsmodels' call (its gc.collect), and left as it was found.
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
        assert gc.get_freeze_count() == frozen  # a caller's frozen heap stays frozen
    finally:
        gc.unfreeze()


def test_trend_across_kernel_sizes_shows_a_plateau_step_by_step():
    rng = np.random.default_rng(3)
    rows = [{"kernel_size": k, "patch_size": 2, "seed": s, "accuracy": {3: 50, 5: 55, 7: 55, 9: 55}[k]
             + rng.normal(0, 0.3)} for k in (3, 5, 7, 9) for s in range(3)]
    result = stats.axis_test(pd.DataFrame(rows), "kernel_size", "patch_size")
    p = [s["p_holm"] for s in result["steps"]]
    assert p[0] < 0.05 and p[1] > 0.05 and p[2] > 0.05  # the gain is all in 3 -> 5
    assert result["slope"]["p"] < 0.05


def test_prediction_interval_and_binomial_noise():
    low, high = stats.prediction_interval([70.0, 71.0, 72.0])
    assert low < 70.0 and high > 72.0 and (low + high) / 2 == pytest.approx(71.0)
    assert stats.binomial_se_pct(0.5, 10_000) == pytest.approx(0.5)


# --------------------------------------------------------------------------- claim 1

BASELINES = {  # size-matched members of convmixer/baselines.py's families
    "resnet": ({"width": 6, "blocks_per_stage": 3}, None),
    "vit": ({"dim": 32, "depth": 4, "heads": 4, "mlp_ratio": 2}, 4),
    "mlp_mixer": ({"dim": 26, "depth": 4, "token_mlp_dim": 13, "channel_mlp_dim": 52}, 2),
}


def architecture_runs(rng, advantage=0.0, seed_std=0.5, seeds=3):
    """ConvMixer-64/4 p2 k9 and the three baselines in one regime; ConvMixer ``advantage`` points better."""
    import json

    frame = synthetic_runs([(9, 2)], rng, seeds=seeds, seed_std=seed_std)
    frame["test_accuracy"] += advantage / 100
    frame["architecture"], frame["hyperparameters"] = "convmixer", "{}"
    parts = [frame]
    for arch, (hp, patch) in BASELINES.items():
        base = synthetic_runs([(9, 2)], rng, seeds=seeds, seed_std=seed_std)
        base["architecture"], base["hyperparameters"] = arch, json.dumps(hp, sort_keys=True)
        base["width"] = base["depth"] = base["kernel_size"] = None
        base["patch_size"] = patch
        base["run_id"] = base["path"] = [f"/nowhere/{arch}{s}" for s in range(seeds)]
        parts.append(base)
    return pd.concat(parts, ignore_index=True)


def architecture_rate(advantage, seed):
    rng = np.random.default_rng(seed)
    hits = sum(verdicts.verdicts(architecture_runs(rng, advantage)).set_index("id")["verdict"]["architectures"]
               == stats.CONSISTENT for _ in range(TABLES))
    return hits / TABLES


@pytest.mark.slow
def test_claim_1_without_an_advantage_is_called_consistent_in_at_most_5_percent():
    assert architecture_rate(0.0, seed=4) <= 0.05


@pytest.mark.slow
def test_claim_1_with_a_3_point_advantage_is_detected_in_at_least_90_percent():
    assert architecture_rate(3.0, seed=5) >= 0.90


def test_claim_1_compares_each_baseline_with_the_pre_chosen_convmixer():
    runs = architecture_runs(np.random.default_rng(6), advantage=5.0)
    regimes = verdicts.architecture_regimes(runs)
    assert len(regimes) == 1 and regimes[0]["reference"] == "ConvMixer-64/4 p2 k9"
    assert sorted(t["baseline"] for t in regimes[0]["tests"]) == [
        "MLP-Mixer-26/4 (token MLP 13, channel MLP 52, patch 2)", "ResNet-20 (width 6)",
        "ViT-32/4 (4 heads, MLP ratio 2, patch 4)"]
    assert all(t["result"]["effect"] > 3 for t in regimes[0]["tests"])
    table = tables.architectures_table(runs)
    assert set(table["n"]) == {3}
    assert table.set_index("model").loc["ResNet-20 (width 6)", "parameters (computed here)"] == "38,872"
    claim = verdicts.claims_json(runs)["claims"][0]
    assert claim["verdict"] == stats.CONSISTENT and len(claim["tests"]) == 3
    evidence = verdicts.verdicts(runs).iloc[0]["evidence"]
    assert "ImageNet" in evidence
    # the summary line (the README shows only it) carries each baseline's margin with its interval
    summary = evidence.splitlines()[0]
    for t in regimes[0]["tests"]:
        r = t["result"]
        assert f"{t['baseline']} {r['effect']:+.2f} points (95% CI {r['ci_low']:+.2f} to {r['ci_high']:+.2f})" in summary


def test_claim_1_section_shows_the_models_their_sizes_and_a_figure():
    from convmixer.report import sections

    html = sections.architectures_section(architecture_runs(np.random.default_rng(7), advantage=2.0))
    assert 'id="architectures-table"' in html and "38,872" in html and "data:image/png;base64," in html
    assert "ImageNet" in html
    assert "not tested" in sections.architectures_section(synthetic_runs([(9, 2)], np.random.default_rng(8)))


def test_claims_json_keeps_tiny_p_values():
    rng = np.random.default_rng(9)
    claims = verdicts.claims_json(synthetic_runs(SHAPES["two-by-two"], rng, effect=10.0, seed_std=0.1))
    p = claims["claims"][1]["p"]
    assert 0 < p < 1e-6  # six significant digits, not six decimals


def test_claim_1_compares_with_one_convmixer_even_when_the_regime_has_others():
    rng = np.random.default_rng(10)
    runs = architecture_runs(rng, advantage=2.0)
    bigger = synthetic_runs([(9, 1)], rng)  # a ConvMixer-256/8 p1 in the same regime: smaller patch, not the size
    bigger["architecture"], bigger["hyperparameters"], bigger["width"], bigger["depth"] = "convmixer", "{}", 256, 8
    bigger["run_id"] = bigger["path"] = [f"/nowhere/big{s}" for s in range(len(bigger))]
    (regime,) = verdicts.architecture_regimes(pd.concat([runs, bigger], ignore_index=True))
    assert regime["reference"] == "ConvMixer-64/4 p2 k9"  # the size the baselines match
    assert not any("ConvMixer" in t["baseline"] for t in regime["tests"])


def test_claim_1_gives_no_contrast_to_a_model_with_one_run_and_says_how_many_seeds_each_has():
    runs = architecture_runs(np.random.default_rng(11), advantage=8.0)
    vit = runs.index[runs["architecture"] == "vit"]
    runs = runs.drop(vit[1:])  # the ViT has one seed: its spread is unknown
    (regime,) = verdicts.architecture_regimes(runs)
    assert "seeds: ConvMixer 3, MLP-Mixer 3, ResNet 3, ViT 1" in regime["regime"]
    assert runs["lossy_jpeg"].dtype == bool and "on the JPEG copy of CIFAR-10" in regime["regime"]
    tests = {t["baseline"].split("-")[0]: t for t in regime["tests"]}
    assert tests["ViT"]["result"] is None and tests["ViT"]["verdict"] == stats.INCONCLUSIVE
    assert tests["ViT"]["n_runs"] == 1
    assert tests["ResNet"]["verdict"] == stats.CONSISTENT and tests["MLP"]["verdict"] == stats.CONSISTENT
    assert tests["ResNet"]["result"]["df"] == 9 - 3 - 2  # 9 runs, 3 models, 2 seed-block terms: no ViT run in the fit
    row = verdicts.verdicts(runs).set_index("id").loc["architectures"]
    assert row["verdict"] == stats.INCONCLUSIVE  # ConvMixer must beat every baseline
    assert "not estimable (1 run of it; a contrast needs at least 2 seeds of each model)" in row["evidence"]
    assert "ViT-32/4 (4 heads, MLP ratio 2, patch 4) not estimable" in row["evidence"].splitlines()[0]


def test_claim_1_table_shows_how_well_each_model_fits_its_training_images(tmp_path):
    runs = architecture_runs(np.random.default_rng(12), advantage=2.0)
    resnet = runs.index[runs["architecture"] == "resnet"]
    for i, run in enumerate(resnet):
        folder = tmp_path / f"resnet{i}"
        folder.mkdir()
        pd.DataFrame({"epoch": [1, 2], "accuracy": [0.3, 0.6 + 0.1 * i], "lr": [0.01, 0.0]}).to_csv(
            folder / "history.csv", index=False)
        runs.loc[run, "path"] = str(folder)
    table = tables.architectures_table(runs).set_index("model")
    assert table.loc["ResNet-20 (width 6)", "last-epoch train accuracy (%)"] == "70.0"  # mean of 60, 70, 80
    assert table.loc["ConvMixer-64/4 p2 k9", "last-epoch train accuracy (%)"] == "—"  # no history recorded


def image_level_setup(rng, cells, seeds=3, images=2000, model_spread=3.0, seed_std=0.05):
    """Runs of one setup scored on a fresh test set: every model finds other images easy (a per-image,
    per-cell logit shift), but no cell is better on average over the image distribution. Most images are
    easy or hard for every run (a wide spread of difficulty), as on CIFAR-10."""
    base = rng.normal(1.5, 6.0, images)
    shift = {cell: rng.normal(0.0, model_spread, images) for cell in cells}
    rows, correct = [], []
    for k, p in cells:
        for s in range(seeds):
            chance = 1 / (1 + np.exp(-(base + shift[(k, p)] + rng.normal(0, seed_std))))
            right = rng.random(images) < chance
            rows.append({"accuracy": 100 * right.mean(), "kernel_size": k, "patch_size": p, "seed": s})
            correct.append(right)
    return pd.DataFrame(rows), np.array(correct, dtype=float)


@pytest.mark.slow
def test_counting_the_test_images_keeps_the_false_positive_rate_where_the_seeds_alone_lose_it():
    rng = np.random.default_rng(6)
    draws, with_images, seeds_only, covered = 300, 0, 0, 0
    for _ in range(draws):
        frame, correct = image_level_setup(rng, SHAPES["one-cycle"])
        full = stats.axis_test(frame, "kernel_size", "patch_size", correct)
        bare = stats.axis_test(frame, "kernel_size", "patch_size")
        assert full["effect"] == pytest.approx(bare["effect"]) and full["noise"] == "seeds and test images"
        with_images += full["p"] < stats.ALPHA
        seeds_only += bare["p"] < stats.ALPHA
        covered += full["ci_low"] <= 0 <= full["ci_high"]
    assert with_images / draws <= 0.07  # 5% within the sampling error of 300 draws
    assert seeds_only / draws >= 0.12  # the seeds' spread alone misses the test set's noise here
    assert covered / draws >= 0.93


def test_image_noise_is_what_the_per_image_sums_say():
    # Two cells, one seed each... and two seeds, where the images' part is known: D_i = mean over seeds of
    # (right in cell 9) - (right in cell 3); with identical seeds the seeds explain none of var(D_i).
    frame = pd.DataFrame({"accuracy": [50.0, 50.0, 50.0, 50.0], "kernel_size": [3, 3, 9, 9],
                          "patch_size": [2, 2, 2, 2], "seed": [0, 1, 0, 1]})
    correct = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=float)
    frame["accuracy"] = 100 * correct.mean(axis=1) + np.array([0.0, 0.1, 0.0, 0.1])  # tiny seed noise
    result = stats.fit(frame, ["kernel_size", "patch_size"])
    vector = np.zeros(len(result.model.exog_names))
    vector[result.model.exog_names.index("C(kernel_size)[T.9]")] = 1.0
    expected = np.var(100 * (correct[2:].mean(axis=0) - correct[:2].mean(axis=0)), ddof=1) / 4
    assert stats.image_variance(result, vector, correct, frame["seed"].to_numpy()) == pytest.approx(expected)


def test_no_relabelling_of_the_committed_25_epoch_kernel_runs_is_called_consistent():
    """The committed ConvMixer-64/4 kernel 3 and 9 runs (patch 2, 25 epochs): every way of calling three of the
    six runs "kernel 9" except the true one must not give a significant gain, with the test images counted."""
    from itertools import combinations
    from pathlib import Path

    from convmixer.report.runs import load_runs

    done = prepare(load_runs(Path(__file__).resolve().parents[1] / "results"))
    runs = done[(done["width"] == 64) & (done["recipe"] == "official") & (done["epochs"] == 25)
                & (done["patch_size"] == 2) & done["kernel_size"].isin([3, 9])].reset_index(drop=True)
    assert sorted(runs["kernel_size"]) == [3, 3, 3, 9, 9, 9]
    correct = verdicts.per_image_correct(runs["path"])
    assert correct is not None  # every committed run keeps its per-image predictions
    called = []
    for nines in combinations(range(6), 3):
        kernel = [9 if i in nines else 3 for i in range(6)]
        frame = pd.DataFrame({"accuracy": 100 * runs["test_accuracy"], "kernel_size": kernel, "patch_size": 2,
                              "seed": runs["seed"].astype(int)})
        result = stats.axis_test(frame, "kernel_size", "patch_size", correct)
        if result and result["p"] < stats.ALPHA and result["effect"] > 0:
            called.append(kernel)
    truth = [9 if k == 9 else 3 for k in runs["kernel_size"]]
    assert called == [truth]
