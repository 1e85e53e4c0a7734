"""Calibrated inference for the claims, from statsmodels and scipy (no hand-written test statistics).

Each setup (runs that differ only in the ablation axes and the seed) is one
unit of evidence. Its runs' test accuracies, in percent, are fitted with an
ordinary least-squares model

    accuracy ~ C(kernel_size) + C(patch_size) [+ C(seed)]

(a term only for an axis with two or more levels; the seed enters as a block
when every seed ran in every cell, because seeds fix the data order and the
augmentation draws that all cells share). A claim's effect in a setup is the
contrast between the largest and the smallest level of its axis, with a 95%
confidence interval and a two-sided p-value on the model's residual degrees of
freedom. The p-values of one claim's setups are Holm-adjusted together, and a
setup's verdict is decided on them (below).

Every run is scored on the same test images, so the seeds' spread misses the
test set's own sampling noise: on other images from the same distribution the
effect would differ. Where every run of a fit kept its per-image predictions,
that noise is added to the contrast's variance (``image_variance``): the effect
is the mean over images of each image's weighted sum of the runs' correctness
(the contrast's weights on the runs), so its image-sampling variance is the
variance of those per-image sums over the number of images, less the part of it
the seeds already account for (method of moments, estimated per seed block
where the seeds are shared, else not subtracted, which errs wide). The interval
and p-value then use the seeds' and the images' variance together on the
Welch-Satterthwaite degrees of freedom of the two variance estimates (the
seeds' on the model's residual df, the images' on n - 1; scipy's t). The verdicts:

* "consistent with the claim": adjusted p < ALPHA and the effect has the claimed sign,
* "contradicts the claim": adjusted p < ALPHA and the opposite sign,
* "inconclusive": otherwise.

Only configurations with at least MIN_RUNS_PER_MODEL runs enter a fit (``verdicts.claim_tests``): a
configuration with one run has no spread of its own, and pooling the others' would assume it.

With three or more kernel sizes a trend test (the slope of accuracy on kernel
size, in the same model with the kernel as a number) and the adjacent-level
steps show whether the gain keeps going or plateaus. The tests in
tests/test_inference.py check the false-positive rate on synthetic tables with
no effect and the power on a 3-point effect.
"""

from __future__ import annotations

import gc
import math
import warnings

import numpy as np
import pandas as pd

ALPHA = 0.05
# Seeds a model (claim 1) or a configuration (claims 2 and 3) needs before it enters a contrast: with one run
# it has no spread of its own, and pooling the others' would assume it.
MIN_RUNS_PER_MODEL = 2
CONSISTENT, CONTRADICTS, INCONCLUSIVE, NOT_TESTED = (
    "consistent with the claim", "contradicts the claim", "inconclusive", "not tested")


def _formula(frame: pd.DataFrame, factors: list[str], seed_block: bool) -> str:
    terms = [f"C({f})" for f in factors if frame[f].nunique() >= 2]
    if seed_block:
        terms.append("C(seed)")
    return "accuracy ~ " + (" + ".join(terms) if terms else "1")


def seeds_shared(frame: pd.DataFrame, factors: list[str]) -> bool:
    """Every seed ran in every cell, and there are at least two seeds."""
    cells = frame.groupby(factors)["seed"].apply(lambda s: frozenset(s))
    return frame["seed"].nunique() >= 2 and cells.nunique() == 1 and all(
        len(g) == 1 for _, g in frame.groupby(factors + ["seed"]))


def fit(frame: pd.DataFrame, factors: list[str]):
    """OLS fit of ``accuracy`` (percent) on the factors (and a seed block where it applies), or None.

    None when the model has no residual degrees of freedom (e.g. one seed per
    cell): then there is no estimate of the noise and nothing can be tested.
    """
    import statsmodels.formula.api as smf

    block = seeds_shared(frame, factors)
    for use_block in ([True, False] if block else [False]):
        formula = _formula(frame, factors, use_block)
        model = smf.ols(formula, data=frame)
        if model.df_resid >= 1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = model.fit()
            result.formula_text = formula
            return result
    return None


def contrast(result, factor: str, low, high, correct=None, seeds=None) -> dict | None:
    """Mean accuracy at ``factor == high`` minus at ``factor == low``, adjusted for the other terms.

    None when the design cannot separate it from the other terms (e.g. kernel and
    patch changed together): the contrast is then not estimable. ``correct``
    (runs x images, 1 where a run got an image right, rows in the fit's order) and
    ``seeds`` add the test images' sampling noise (``with_image_noise``); give ``seeds`` only when every
    seed ran in every cell (``seeds_shared``).
    """
    names = result.model.exog_names
    vector = np.zeros(len(names))
    for level, weight in ((high, 1.0), (low, -1.0)):
        name = f"C({factor})[T.{level}]"
        if name in names:
            vector[names.index(name)] += weight
        # the reference (first) level is the intercept's: its coefficient is 0
    exog = result.model.exog
    if not np.allclose(vector @ np.linalg.pinv(exog) @ exog, vector, atol=1e-8):
        return None
    return with_image_noise(result, vector, correct, seeds)


def with_image_noise(result, vector, correct=None, seeds=None) -> dict:
    """The contrast ``vector`` of an OLS ``result``: effect, 95% CI, two-sided p and df, from the seeds'
    variance (statsmodels' t test) plus, when ``correct`` is given, the test images' (``image_variance``)."""
    from scipy import stats as sps

    test = result.t_test(vector)
    effect = float(np.asarray(test.effect).ravel()[0])
    seed_se = float(np.asarray(test.sd).ravel()[0])
    df = seed_df = float(result.df_resid)
    image_var = image_variance(result, vector, correct, seeds) if correct is not None else 0.0
    se = math.sqrt(seed_se**2 + image_var)
    if image_var > 0:  # Welch-Satterthwaite: the images' variance rests on n - 1 df, the seeds' on few
        df = (seed_se**2 + image_var) ** 2 / (seed_se**4 / seed_df + image_var**2 / (np.shape(correct)[1] - 1))
    half = float(sps.t.ppf(1 - ALPHA / 2, df)) * se
    p = float(2 * sps.t.sf(abs(effect) / se, df)) if se > 0 else (0.0 if effect else 1.0)
    return {"effect": effect, "ci_low": effect - half, "ci_high": effect + half, "p": p, "df": df,
            "seed_se": seed_se, "image_se": math.sqrt(image_var),
            "noise": "seeds and test images" if correct is not None else "seeds only"}


def image_variance(result, vector, correct, seeds=None) -> float:
    """The test images' sampling variance (points squared) of the contrast ``vector`` of ``result``.

    The effect is ``a @ accuracy`` over the runs, ``a`` the contrast's weights,
    so it is the mean over images of ``D_i = sum_r a_r * correct[r, i]`` (in
    percent). Its variance over new test images is estimated by var(D_i) / n,
    less the seeds' part of var(D_i) (which the OLS term already counts): with
    every seed in every cell (``seeds``), each seed block gives its own D_i and
    their spread estimates that part; otherwise nothing is subtracted (wider).
    """
    correct = np.asarray(correct, dtype=float)
    weights = np.asarray(vector, dtype=float) @ np.linalg.pinv(result.model.exog)  # effect == weights @ accuracy
    parts = 100.0 * weights[:, None] * correct
    per_image = parts.sum(axis=0)
    n_images = correct.shape[1]
    between = float(per_image.var(ddof=1))
    within = 0.0
    if seeds is not None:
        seeds = np.asarray(seeds)
        blocks = np.unique(seeds)
        if len(blocks) >= 2 and len({int((seeds == s).sum()) for s in blocks}) == 1:
            per_block = np.array([parts[seeds == s].sum(axis=0) for s in blocks]) * len(blocks)
            within = float(per_block.var(axis=0, ddof=1).mean()) / len(blocks)
    return max(0.0, between - within) / n_images


def slope_test(frame: pd.DataFrame, factor: str, others: list[str]) -> dict | None:
    """Linear trend of accuracy in ``factor`` (as a number), other factors as categories; None if untestable."""
    import statsmodels.formula.api as smf

    if frame[factor].nunique() < 3:
        return None
    terms = [factor] + [f"C({o})" for o in others if frame[o].nunique() >= 2]
    if seeds_shared(frame, [factor] + others):
        terms.append("C(seed)")
    model = smf.ols("accuracy ~ " + " + ".join(terms), data=frame.assign(**{factor: frame[factor].astype(float)}))
    if model.df_resid < 1:
        return None
    result = model.fit()
    low, high = result.conf_int(alpha=ALPHA).loc[factor]
    return {"slope": float(result.params[factor]), "ci_low": float(low), "ci_high": float(high),
            "p": float(result.pvalues[factor]), "df": float(result.df_resid)}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels' multipletests); NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), np.nan)
    ok = ~np.isnan(p)
    if ok.sum() == 1:  # nothing to adjust (and multipletests is slow for a single value)
        out[ok] = p[ok]
    elif ok.any():
        # statsmodels' Holm branch calls gc.collect() on every call (statsmodels PR #8671), a scan of the whole
        # heap: about 50 ms once TensorFlow is loaded, most of a verdict's time. With the heap frozen for the
        # call, that collection scans only what the call itself creates; unfreeze puts everything back.
        frozen_here = gc.get_freeze_count() == 0
        if frozen_here:
            gc.freeze()
        try:
            out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
        finally:
            if frozen_here:
                gc.unfreeze()
    return out.tolist()


def verdict_word(effect: float, p_adjusted: float, sign: int) -> str:
    if p_adjusted is None or math.isnan(p_adjusted) or p_adjusted >= ALPHA:
        return INCONCLUSIVE
    return CONSISTENT if np.sign(effect) == sign else CONTRADICTS


def axis_test(frame: pd.DataFrame, axis: str, other: str, correct=None) -> dict | None:
    """One setup's test of ``axis``: the extreme-level contrast, plus trend and steps with 3+ levels.

    ``frame`` has columns accuracy (percent), seed, ``axis`` and ``other``. None
    when the axis has fewer than two levels or the model has no residual
    degrees of freedom. ``correct``: the runs' per-image correctness, rows in
    ``frame``'s order, to count the test images' noise (``with_image_noise``).
    """
    levels = sorted(frame[axis].unique())
    if len(levels) < 2:
        return None
    result = fit(frame, [axis, other])
    if result is None:
        return None
    seeds = frame["seed"].to_numpy() if seeds_shared(frame, [axis, other]) else None
    extreme = contrast(result, axis, levels[0], levels[-1], correct, seeds)
    if extreme is None:
        return None
    out = extreme | {"low": levels[0], "high": levels[-1], "n_runs": len(frame), "formula": result.formula_text}
    steps = [contrast(result, axis, a, b, correct, seeds) for a, b in zip(levels, levels[1:])]
    if len(levels) >= 3 and all(steps):
        steps = [step | {"low": a, "high": b} for step, a, b in zip(steps, levels, levels[1:])]
        for step, p_adj in zip(steps, holm([s["p"] for s in steps])):
            step["p_holm"] = p_adj
        out["steps"] = steps
        out["slope"] = slope_test(frame, axis, [other])
    return out


def group_contrasts(frame: pd.DataFrame, reference: str, correct=None) -> dict[str, dict] | None:
    """``reference``'s mean accuracy minus each other group's, from one OLS fit ``accuracy ~ C(group)``
    (plus a seed block when every seed ran in every group); None without residual degrees of freedom.
    ``correct``: per-image correctness, rows in ``frame``'s order, adds the test images' noise."""
    import statsmodels.formula.api as smf

    terms = [f"C(group, Treatment(reference={reference!r}))"]
    shared = seeds_shared(frame, ["group"])
    if shared:
        terms.append("C(seed)")
    model = smf.ols("accuracy ~ " + " + ".join(terms), data=frame)
    if model.df_resid < 1:
        return None
    result = model.fit()
    out = {}
    for group in sorted(set(frame["group"]) - {reference}):
        name = f"{terms[0]}[T.{group}]"
        if name not in result.model.exog_names:
            raise ValueError(f"no coefficient {name!r} in the fitted model")
        vector = -(np.asarray(result.model.exog_names) == name).astype(float)  # reference minus group
        out[group] = with_image_noise(result, vector, correct, frame["seed"].to_numpy() if shared else None)
    return out


def binomial_se_pct(accuracy: float, n_test: int) -> float:
    """Test-set sampling noise of one accuracy, sqrt(p (1 - p) / n), in percent."""
    if not n_test or accuracy is None or math.isnan(accuracy):
        return float("nan")
    return 100 * math.sqrt(accuracy * (1 - accuracy) / n_test)


def prediction_interval(values_pct, level: float = 0.95) -> tuple[float, float]:
    """Where one more run would fall: mean +- t * s * sqrt(1 + 1/n) (scipy's t quantile); NaN for n < 2."""
    from scipy import stats

    v = np.asarray(list(values_pct), dtype=float)
    if len(v) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) * math.sqrt(1 + 1 / len(v))
    return float(v.mean() - half), float(v.mean() + half)


def paired_difference(with_pct, without_pct, level: float = 0.95) -> dict:
    """Mean of the paired differences ``with - without`` (one pair per seed) with its t interval and p-value
    (scipy's ``ttest_rel``); interval and p are NaN for fewer than 2 pairs or equal differences."""
    from scipy import stats

    a, b = np.asarray(list(with_pct), dtype=float), np.asarray(list(without_pct), dtype=float)
    out = {"effect": float(np.mean(a - b)) if len(a) else float("nan"), "n": int(len(a)),
           "low": float("nan"), "high": float("nan"), "p": float("nan")}
    if len(a) >= 2 and np.ptp(a - b) > 0:  # equal differences have no spread to test with
        test = stats.ttest_rel(a, b)
        interval = test.confidence_interval(level)
        out.update(low=float(interval.low), high=float(interval.high), p=float(test.pvalue))
    return out
