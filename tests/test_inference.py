"""The verdict rule's error rates, checked on synthetic results tables of the real grids' shapes.

A claim verdict goes through the same code as the report (``analysis.verdicts``
on a load_runs-shaped frame). With no effect, "consistent with the claim" may
come out in at most 5% of tables; with a 3-point effect and a seed std of 0.5
point it must come out in at least 90%.
"""

import numpy as np
import pandas as pd
import pytest

from convmixer import analysis, inference
from convmixer.results import COLUMNS

# (kernel, patch) cells: the converged grid's design and the 4-epoch full-data 2 x 2 design.
SHAPES = {
    "converged": [(3, 2), (9, 2), (9, 4)],
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
        table = analysis.verdicts(synthetic_runs(cells, rng, effect)).set_index("id")["verdict"]
        for claim in hits:
            hits[claim] += table[claim] == inference.CONSISTENT
    return {claim: n / TABLES for claim, n in hits.items()}


@pytest.mark.parametrize("shape", SHAPES)
def test_no_effect_is_called_consistent_in_at_most_5_percent(shape):
    rates = positive_rate(SHAPES[shape], effect=0.0)
    assert max(rates.values()) <= 0.05, rates


@pytest.mark.parametrize("shape", SHAPES)
def test_a_3_point_effect_is_detected_in_at_least_90_percent(shape):
    rates = positive_rate(SHAPES[shape], effect=3.0, seed=1)
    assert min(rates.values()) >= 0.90, rates


def test_contrast_matches_the_cell_means_in_a_balanced_design():
    rng = np.random.default_rng(2)
    frame = analysis._inference_frame(analysis.prepare(synthetic_runs(SHAPES["two-by-two"], rng, effect=2.0)))
    result = inference.axis_test(frame, "kernel_size", "patch_size")
    means = frame.groupby("kernel_size")["accuracy"].mean()
    assert result["effect"] == pytest.approx(means[9] - means[3])
    assert result["ci_low"] < result["effect"] < result["ci_high"]
    assert result["df"] == len(frame) - 5  # intercept, kernel, patch, two seed-block terms


def test_holm_is_statsmodels_holm():
    assert inference.holm([0.01, 0.04, float("nan")])[:2] == pytest.approx([0.02, 0.04])
    assert np.isnan(inference.holm([0.01, 0.04, float("nan")])[2])


def test_trend_across_kernel_sizes_shows_a_plateau_step_by_step():
    rng = np.random.default_rng(3)
    rows = [{"kernel_size": k, "patch_size": 2, "seed": s, "accuracy": {3: 50, 5: 55, 7: 55, 9: 55}[k]
             + rng.normal(0, 0.3)} for k in (3, 5, 7, 9) for s in range(3)]
    result = inference.axis_test(pd.DataFrame(rows), "kernel_size", "patch_size")
    p = [s["p_holm"] for s in result["steps"]]
    assert p[0] < 0.05 and p[1] > 0.05 and p[2] > 0.05  # the gain is all in 3 -> 5
    assert result["slope"]["p"] < 0.05


def test_prediction_interval_and_binomial_noise():
    low, high = inference.prediction_interval([70.0, 71.0, 72.0])
    assert low < 70.0 and high > 72.0 and (low + high) / 2 == pytest.approx(71.0)
    assert inference.binomial_se_pct(0.5, 10_000) == pytest.approx(0.5)
