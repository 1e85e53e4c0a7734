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
# A Keras 3 reproduction of *Patches Are All You Need?* (ConvMixer): every number is measured here or published (`convmixer/reference.yaml`).
#
# [Verdicts](#summary) · [Original versus reproduction](#comparison) · [Trends](#trends) · [Learning curves](#learning-curves) · [Cost](#cost) · [Method and provenance](#provenance) · [Easy, difficult, further](#lessons) · [Skipped runs](#skipped)

# %% tags=["parameters"]
# Parameters (papermill overrides these)
results_dir = "../results"

# %%
# Load the run records and the published values; everything below is computed from these.
import matplotlib

matplotlib.use("Agg")  # figures are embedded by html.figure, never shown by the inline backend

from pathlib import Path

from convmixer.report import anchors, html, sections, tables, verdicts
from convmixer.report.provenance import GRIDS_DIR
from convmixer.report.runs import load_reference, load_runs, prepare_table

runs = prepare_table(load_runs(results_dir))  # prepared once; every section reads this table
reference = load_reference()
verdict_table = verdicts.verdicts(runs)
# Every published single run, like for like; costs of the unrun ones from bench records (results/bench).
published_runs = anchors.like_for_like(runs, reference, Path(results_dir) / "bench", anchors.planned_settings(GRIDS_DIR))
show, table = html.show, html.table

# %% [markdown]
# <a id="summary"></a>
#
# ## 1. Summary

# %%
show(sections.first_screen(runs, reference, published_runs, verdict_table))

# %%
show(sections.verdict_details(runs, reference, verdict_table), sections.summary_rest(runs, reference, published_runs, results_dir))

# %% [markdown]
# <a id="comparison"></a>
#
# ## 2. Original versus reproduction
#
# Every published single run (the reference report's five rows, the official script's log and the keras-io example's log) beside ours like for like; below it, folded: the sources, the setups (runs with the same budget and recipe; only runs of one setup are compared with each other) and every configuration run here beside the published values.

# %%
show(sections.comparison_section(runs, reference, published_runs))

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
# Accuracy against kernel size (a line per patch size) and against patch size (a line per kernel size), a panel per setup. Every seed is a point; lines show mean ± standard deviation over seeds.

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
show(sections.effect_by_budget_section(runs, reference, verdict_table))

# %% [markdown]
# <a id="learning-curves"></a>
#
# ## 4. Learning curves
#
# How each setup learned, and how its training ended: whether the learning rate was annealed to 0, and the last epoch's training accuracy (on augmented images) beside the test accuracy (on augmented images it can sit below the test accuracy without any underfitting).

# %%
show(sections.learning_curves_section(runs))

# %% [markdown]
# <a id="cost"></a>
#
# ## 5. Cost
#
# Seconds per epoch at the paper's scale beside the published CPU and GPU timings, every configuration's seconds per epoch here, and total training compute against accuracy.

# %%
show(sections.cost_section(runs, reference))

# %% [markdown]
# <a id="provenance"></a>
#
# ## 6. Method and provenance
#
# The recipes, every known difference from the original code, and what produced each number: data sources with fingerprints, library versions, devices and git commits (each folded under its name).

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
