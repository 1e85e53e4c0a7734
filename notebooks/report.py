# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # ConvMixer on CIFAR-10: reproducibility report
#
# A reproduction of *Patches Are All You Need?* (ConvMixer) in Keras 3. Every number below is either measured by this project's runs (read from the results folder) or a published value read from `convmixer/reference.yaml`, labelled *paper* or *reference report*.
#
# [Summary](#summary) · [Original versus reproduction](#comparison) · [Trends](#trends) · [Learning curves](#learning-curves) · [Cost](#cost) · [Method and provenance](#provenance) · [Easy, difficult, further](#lessons) · [Skipped runs](#skipped)

# %% tags=["parameters"]
# Parameters (papermill overrides these)
results_dir = "../results"

# %%
# Load the run records and the published values; everything below is computed from these.
import matplotlib

matplotlib.use("Agg")  # figures are embedded by html.figure, never shown by the inline backend

from pathlib import Path

from convmixer.report import anchors, html, sections, tables, text, verdicts
from convmixer.report.provenance import GRIDS_DIR
from convmixer.report.runs import load_reference, load_runs

runs = load_runs(results_dir)
reference = load_reference()
# Every published single run, like for like; costs of the unrun ones from bench records (results/bench).
published_runs = anchors.like_for_like(runs, reference, Path(results_dir) / "bench", anchors.planned_settings(GRIDS_DIR))
show, table, note, missing, bullets = html.show, html.table, html.note, html.missing, html.bullets

# %% [markdown]
# <a id="summary"></a>
#
# ## 1. Summary

# %%
show(
    "<p>At the paper's scale (ConvMixer-256/8), like for like with the published logged runs "
    '(<a href="#like-for-like">table</a>):</p>',
    bullets(anchors.summary_sentences(published_runs)),
    note(text.scope(runs, results_dir)),
    "<p>What each setup trained: budget per run, data and device.</p>",
    bullets([f"Setup {label}: {facts}" for label, facts in text.setup_facts(runs)]),
    html.paragraph(text.published_comparison(runs, reference)),
    "<p>The paper's claims tested here:</p>",
    bullets([c["claim"] for c in verdicts.CLAIMS], ordered=True),
    '<a id="verdicts"></a>',
    html.verdict_table(verdicts.verdicts(runs)),
    note(verdicts.VERDICT_RULE + " Each verdict links to the figure or table that carries it; "
         "the same verdicts are in claims.json beside this page."),
    "<p>Like-for-like rows with the reference report (same model, patch, kernel, epochs and recipe):</p>",
    bullets(text.reproduction_sentences(published_runs)
            or ["No completed run matches a reference-report row like for like."]),
    "<p>What the reference report's own published numbers show:</p>",
    bullets(text.reference_report_observations(reference)),
)

# %% [markdown]
# <a id="comparison"></a>
#
# ## 2. Original versus reproduction
#
# First every published single run (the reference report's five rows, the official script's log and the keras-io example's log) set beside ours like for like; then one row per configuration this project ran, plus the published configurations it did not run (marked *not run*). *Parameters* are computed from the architecture; *paper count* is ✓ when they equal the paper's count, — where the paper lists no count. Our accuracy is the mean ± standard deviation over seeds, in percent, with n seeds. Runs are grouped into *setups* (same budget and recipe); only runs of one setup are compared with each other.

# %%
show(
    '<a id="like-for-like"></a>',
    "<p>Like for like with every published single run: the same model, recipe, epochs, batch size and full "
    "data. Each published value is one run, so the verdict asks whether our seeds could have produced it: "
    f"<em>{anchors.REPRODUCED}</em> when it lies inside our 95% prediction interval for one run, "
    f"<em>{anchors.APPROXIMATELY}</em> when outside it but within {anchors.APPROXIMATE_POINTS} points of our "
    f"mean, <em>{anchors.NOT_REPRODUCED}</em> otherwise; one seed gives no interval. A setting not run here "
    "shows its training cost on this project's CPU, measured by <code>python -m convmixer bench --record "
    "results/bench</code>.</p>",
    table(tables.like_for_like_table(published_runs), table_id="like-for-like-table"),
    bullets([f"{name.replace('_', ' ')}: {source}" for name, source in reference["sources"].items()]),
    table(tables.setups_table(runs), table_id="setups-table", caption="Setups (budgets) of the completed runs.",
          empty="No completed runs, so there are no setups yet."),
)
comparison = tables.comparison_table(runs, reference)
not_run = int((comparison["n"] == 0).sum())
show(
    table(tables.comparison_display(comparison), table_id="comparison-table"),
    missing(f"{not_run} published configuration(s) have no run here (rows marked 'not run').") if not_run else "",
)

# %% [markdown]
# <a id="architectures"></a>
#
# ### 2.1 Claim 1: ConvMixer against ResNet, ViT and MLP-Mixer of the same size

# %%
show(sections.architectures_section(runs))

# %% [markdown]
# <a id="trends"></a>
#
# ## 3. Trend plots
#
# Accuracy against kernel size (one line per patch size) and against patch size (one line per kernel size), per setup. Every seed is a point; lines show mean ± standard deviation over seeds.

# %% [markdown]
# <a id="trend-kernel"></a>
#
# ### 3.1 Accuracy versus kernel size

# %%
show(sections.trend_section(runs, reference, "kernel_size"))

# %% [markdown]
# <a id="trend-patch"></a>
#
# ### 3.2 Accuracy versus patch size

# %%
show(sections.trend_section(runs, reference, "patch_size"))

# %% [markdown]
# <a id="trend-published"></a>
#
# ### 3.3 These trends beside the published ones

# %%
show(sections.published_trends_section(runs, reference))

# %% [markdown]
# <a id="effect-by-budget"></a>
#
# ### 3.4 Effects against training budget

# %%
show(sections.effect_by_budget_section(runs, reference))

# %% [markdown]
# <a id="learning-curves"></a>
#
# ## 4. Learning curves
#
# One figure per setup, a panel per configuration: held-out (validation, or test for recipes without a validation split) and training accuracy per epoch, one colour per seed, and how the setup's training ended: whether the learning rate was annealed to 0, and the last epoch's training accuracy (on augmented images) beside the test accuracy (below it: the models still underfit).

# %%
show(sections.learning_curves_section(runs))

# %% [markdown]
# <a id="cost"></a>
#
# ## 5. Cost
#
# Seconds per epoch and training images per second by configuration and device, against the reference report's timings, and total training compute against accuracy.

# %%
show(sections.cost_section(runs, reference))

# %% [markdown]
# <a id="provenance"></a>
#
# ## 6. Method and provenance
#
# The recipes, every known difference from the original code, and what produced each number: data sources with fingerprints, library versions, devices and git commits.

# %%
show(sections.provenance_section(runs))

# %% [markdown]
# <a id="lessons"></a>
#
# ## 7. What was easy, what was difficult, what a reader needs to go further
#
# **Easy.** The architecture is small and fully specified: the Keras model follows the official PyTorch definition layer for layer, and its parameter count is computed and checked against the paper (the *paper count* column). The "seed" recipe (the Keras example) ports directly.
#
# **Difficult.** The compute budget: the paper's full schedules need GPUs, which a CPU cannot match in reasonable time, so CPU runs use short schedules or small models. The original augmentations (torchvision's RandAugment, ColorJitter and RandomErasing) have no exact Keras equivalents. TF Addons, which the reference report's optimizer came from, is end-of-life, so its weight decay had to be converted. CIFAR-10 is sometimes distributed as JPEG images, which are lossy.
#
# **What the data here says about these points:**

# %%
show(sections.lessons_section(runs))

# %% [markdown]
# <a id="skipped"></a>
#
# ## Skipped runs
#
# Run folders that are not complete (still running, interrupted, failed or corrupt) are left out of every table above; here is why.

# %%
show(table(tables.skipped(runs), table_id="skipped-table",
           empty="No run folder was skipped: every run folder holds a completed run (or there are none)."))
