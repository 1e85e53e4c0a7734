"""Claim 1 under three matchings: by parameters (the verdict), by compute and at the same patch size.

Synthetic regimes of the real grids' shape (ConvMixer-64/4 p2 k9, p2 k3 and p4 k9 with the three size-matched
baselines) go through the same code as the report. The pairings must follow from the architectures alone,
every contrast from one fit, and the text must say where the conclusion changes with the matching.
"""

import json

import numpy as np
import pandas as pd
import pytest

from convmixer.models.baselines import count_model_macs
from convmixer.report import plots, sections, stats, tables, verdicts, wording
from convmixer.report.names import cell_name
from convmixer.report.runs import COLUMNS, prepare

REFERENCE, COMPACT, COARSE = "ConvMixer-64/4 p2 k9", "ConvMixer-64/4 p2 k3", "ConvMixer-64/4 p4 k9"
RESNET, VIT = "ResNet-20 (width 6)", "ViT-32/4 (4 heads, MLP ratio 2, patch 4)"
MIXER = "MLP-Mixer-26/4 (token MLP 13, channel MLP 52, patch 2)"
MODELS = {  # name: (architecture, hyperparameters, patch, kernel)
    REFERENCE: ("convmixer", {}, 2, 9),
    COMPACT: ("convmixer", {}, 2, 3),
    COARSE: ("convmixer", {}, 4, 9),
    RESNET: ("resnet", {"width": 6, "blocks_per_stage": 3}, None, None),
    VIT: ("vit", {"dim": 32, "depth": 4, "heads": 4, "mlp_ratio": 2}, 4, None),
    MIXER: ("mlp_mixer", {"dim": 26, "depth": 4, "token_mlp_dim": 13, "channel_mlp_dim": 52}, 2, None),
}


def regime_runs(means: dict, seed=0, noise=0.2, seeds=3, mixer_patch=2, twins=()):
    """Completed runs of one regime: each model of ``means`` (name -> mean accuracy, %) over ``seeds`` seeds.

    ``twins``: (model, other) pairs where ``model`` repeats ``other``'s run-to-run noise, so that equal means
    give a difference of exactly 0.
    """
    rng = np.random.default_rng(seed)
    shift = rng.normal(0, 0.3, seeds)  # a seed moves every model alike (shared data order and augmentation)
    own = {name: rng.normal(0, noise, seeds) for name in means}
    for model, other in twins:
        own[model] = own[other]
    rows = []
    for name, mean in means.items():
        arch, hp, patch, kernel = MODELS[name]
        patch = mixer_patch if arch == "mlp_mixer" else patch
        for s in range(seeds):
            rows.append({
                "status": "completed", "architecture": arch, "hyperparameters": json.dumps(hp, sort_keys=True),
                "width": 64 if arch == "convmixer" else None, "depth": 4 if arch == "convmixer" else None,
                "patch_size": patch, "kernel_size": kernel, "activation": "gelu", "recipe": "official",
                "recipe_overrides": "{}", "epochs": 25, "batch_size": 512, "data": None, "backend": "tensorflow",
                "train_images": 50000, "test_images": 10000, "dataset_fingerprint": "sha256:x", "lossy_jpeg": True,
                "seed": s, "test_accuracy": (mean + shift[s] + own[name][s]) / 100,
                "seconds_per_epoch": 10.0 + s, "run_id": f"{arch}{patch}{kernel}-{s}",
                "path": f"/nowhere/{arch}{patch}{kernel}-{s}"})
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


# ConvMixer p2 k9 is 3 points above the ResNet; p2 k3, of about the ResNet's compute, is level with it.
LEVEL_AT_COMPUTE = {REFERENCE: 78.0, COMPACT: 75.0, COARSE: 74.0, RESNET: 75.0, VIT: 63.0, MIXER: 66.0}
TWINS = [(COMPACT, RESNET)]


def lead(runs):
    (regime,) = verdicts.architecture_regimes(runs)
    return regime


def by_baseline(regime, matching):
    return {t["baseline"]: t for t in regime["matchings"][matching]}


def test_each_baseline_meets_the_convmixer_closest_in_compute_and_the_one_at_its_patch():
    regime = lead(regime_runs(LEVEL_AT_COMPUTE, twins=TWINS))
    assert {b: t["convmixer"] for b, t in by_baseline(regime, "parameters").items()} == dict.fromkeys(
        [MIXER, RESNET, VIT], REFERENCE)
    # MACs: p2 k9 9.70M, p2 k3 4.98M, p4 k9 2.57M; ResNet 5.84M, ViT 3.24M, Mixer 3.54M (ratio 1.38 vs 1.41).
    assert {b: t["convmixer"] for b, t in by_baseline(regime, "compute").items()} == {
        RESNET: COMPACT, VIT: COARSE, MIXER: COARSE}
    assert {b: t["convmixer"] for b, t in by_baseline(regime, "patch").items()} == {VIT: COARSE, MIXER: REFERENCE}
    resnet = by_baseline(regime, "compute")[RESNET]
    assert (resnet["convmixer_macs"], resnet["baseline_macs"]) == (
        count_model_macs("convmixer", {"width": 64, "depth": 4, "patch_size": 2, "kernel_size": 3}),
        count_model_macs("resnet", {"width": 6, "blocks_per_stage": 3}))


def test_pairings_do_not_follow_accuracy():
    flipped = {name: 150 - mean for name, mean in LEVEL_AT_COMPUTE.items()}  # every ranking reversed
    pairs = [{m: {b: t["convmixer"] for b, t in by_baseline(lead(regime_runs(means)), m).items()}
              for m in wording.MATCHINGS} for means in (LEVEL_AT_COMPUTE, flipped)]
    assert pairs[0] == pairs[1]


def test_the_verdict_says_when_the_conclusion_depends_on_the_matching():
    runs = regime_runs(LEVEL_AT_COMPUTE, twins=TWINS)
    row = verdicts.verdicts(runs).set_index("id").loc["architectures"]
    assert row["verdict"] == stats.CONSISTENT  # by parameters, the paper's sense
    regime = lead(runs)
    assert by_baseline(regime, "parameters")[RESNET]["verdict"] == stats.CONSISTENT
    assert by_baseline(regime, "compute")[RESNET]["verdict"] == stats.INCONCLUSIVE
    summary = row["evidence"].splitlines()[0]  # the README shows only this line
    assert (f"the conclusion for {RESNET} depends on the matching: ConvMixer beats it when matched by parameters, "
            "but the margin is inconclusive when matched by compute (") in summary
    assert f"{COMPACT} minus it: " in summary
    assert f"ConvMixer beats {VIT} under every matching tested" in row["evidence"]
    assert row["details"]["verdict_by_matching"] == {
        "parameters": stats.CONSISTENT, "compute": stats.INCONCLUSIVE, "patch": stats.CONSISTENT}


def test_without_a_dependence_the_summary_says_the_matchings_agree():
    means = LEVEL_AT_COMPUTE | {COMPACT: 78.0}  # now the compute-matched ConvMixer beats the ResNet too
    summary = verdicts.verdicts(regime_runs(means)).set_index("id").loc["architectures", "evidence"].splitlines()[0]
    assert "depends on the matching" not in summary
    assert "the conclusion for each baseline is the same under every matching tested" in summary


def test_every_contrast_comes_from_one_fit_and_each_matching_is_holm_adjusted_on_its_own():
    runs = regime_runs(LEVEL_AT_COMPUTE, twins=TWINS)
    regime = lead(runs)
    same = by_baseline(regime, "patch")[VIT]["result"]
    assert same == by_baseline(regime, "compute")[VIT]["result"]  # one pair, one interval
    # Balanced seeds: the effect is the difference of the two models' mean accuracies.
    done = prepare(runs, architecture=None)
    acc = done.assign(name=done.apply(cell_name, axis=1)).groupby("name")["test_accuracy"].mean() * 100
    assert same["effect"] == pytest.approx(acc[COARSE] - acc[VIT])
    assert same["df"] == 18 - 6 - 2  # 18 runs, 6 models, 2 seed-block terms
    for kind, family in regime["matchings"].items():
        assert [t["p_holm"] for t in family] == pytest.approx(stats.holm([t["result"]["p"] for t in family])), kind


def test_a_resnet_has_no_same_patch_contrast_and_nor_has_a_patch_no_convmixer_ran():
    runs = regime_runs({name: mean for name, mean in LEVEL_AT_COMPUTE.items() if name != COARSE})
    regime = lead(runs)
    assert by_baseline(regime, "patch").keys() == {MIXER}  # nothing at patch 4 for the ViT, no patch for the ResNet
    assert by_baseline(regime, "compute")[VIT]["convmixer"] == COMPACT  # the closest left in compute
    assert COARSE not in regime["models"]


def test_claims_json_carries_every_matching_the_sizes_and_the_dependence():
    runs = regime_runs(LEVEL_AT_COMPUTE, twins=TWINS)
    claim = verdicts.claims_json(runs)["claims"][0]
    assert claim["id"] == "architectures" and len(claim["tests"]) == 3
    assert [len(claim["matchings"][m]) for m in ("parameters", "compute", "patch")] == [3, 3, 2]
    compute = {t["low"]: t for t in claim["matchings"]["compute"]}
    assert compute[RESNET]["high"] == COMPACT and compute[RESNET]["verdict"] == stats.INCONCLUSIVE
    assert compute[RESNET]["convmixer_macs"] == 4_981_376 and compute[RESNET]["baseline_macs"] == 5_843_184
    models = {m["model"]: m for m in claim["models"]}
    assert models[VIT]["macs_per_image"] == count_model_macs(
        "vit", {"dim": 32, "depth": 4, "heads": 4, "mlp_ratio": 2, "patch_size": 4})
    assert [d["baseline"] for d in claim["depends_on_matching"] if d["depends"]] == [RESNET]
    assert claim["verdict_by_matching"]["compute"] == stats.INCONCLUSIVE
    assert json.loads(json.dumps(claim)) == claim  # plain JSON, no numpy types


def test_the_mixers_token_bottleneck_is_disclosed_from_its_own_hyperparameters():
    for patch, tokens in ((2, 256), (4, 64)):
        notes = wording.mixer_token_notes(lead(regime_runs(LEVEL_AT_COMPUTE, mixer_patch=patch, twins=TWINS)))
        assert len(notes) == 1 and f"its {tokens} tokens through a token MLP of 13 hidden units" in notes[0]
    row = verdicts.verdicts(regime_runs(LEVEL_AT_COMPUTE, twins=TWINS)).set_index("id").loc["architectures"]
    evidence = row["evidence"]
    assert "may handicap it" in evidence


def test_the_section_shows_multiply_adds_every_matching_and_the_dependence():
    runs = regime_runs(LEVEL_AT_COMPUTE, twins=TWINS)
    table = tables.architectures_table(runs).set_index("model")
    assert list(table.index[:3]) == [REFERENCE, COMPACT, COARSE] and set(table.index[3:]) == {RESNET, VIT, MIXER}
    assert table.loc[REFERENCE, "multiply-adds per image (computed here)"] == "9,699,968"
    assert table.loc[RESNET, "seconds per epoch"] == 10.0  # the fastest run's, still shown
    contrasts = tables.architecture_contrasts_table(lead(runs))
    assert list(contrasts["matching"].value_counts().sort_index()) == [2, 3, 3]
    html = sections.architectures_section(runs)
    assert 'id="architecture-contrasts"' in html and "4,981,376" in html
    assert "depends on the matching" in html and "may handicap it" in html


def test_the_figure_places_each_run_at_its_models_multiply_adds():
    regime = lead(regime_runs(LEVEL_AT_COMPUTE, twins=TWINS))
    cells = regime["runs"]
    names = {j: cell_name(r) for j, r in cells.iterrows()}
    macs = {j: regime["sizes"][names[j]]["macs"] for j in cells.index}
    params = {j: regime["sizes"][names[j]]["parameters"] for j in cells.index}
    fig = plots.architecture_figure(cells, params, names, macs)
    panel = fig.axes[1]
    assert "multiply-adds" in panel.get_xlabel()
    shown = sorted(x for c in panel.collections for x, _ in c.get_offsets())
    assert shown == pytest.approx(sorted(v / 1e6 for v in macs.values()))


def test_a_matching_where_the_baseline_wins_is_said_so_not_hidden_in_not_when():
    from convmixer.report import wording

    def contrast(verdict, effect):
        return {"convmixer": "ConvMixer-64/4 p2 k3", "verdict": verdict, "p_holm": 0.01,
                "result": {"effect": effect, "ci_low": effect - 0.5, "ci_high": effect + 0.5}}

    tests = {"parameters": contrast(stats.CONSISTENT, 2.0), "compute": contrast(stats.CONTRADICTS, -1.0)}
    text = wording.dependence_text("ResNet-20", tests, ["parameters"], ["compute"])
    assert text.startswith("the conclusion for ResNet-20 depends on the matching: ConvMixer beats it when matched by "
                           "parameters, but it beats ConvMixer when matched by compute (ConvMixer-64/4 p2 k3 minus "
                           "it: -1.00 points")
