"""Regenerates notebooks/report.ipynb (committed without outputs). Edit here, then run it.

The notebook is thin: every number comes from ``convmixer.analysis``, every
figure from ``convmixer.plots``, and ``convmixer.report`` turns them into HTML.
``python -m convmixer report`` executes it with papermill and renders it without
code cells. Markdown cells carry the section headings and their stable anchors
(``<a id="..."></a>``), which the summary's verdict links point at.
"""
from pathlib import Path

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell


def section(anchor, heading, text=""):
    return md(f'<a id="{anchor}"></a>\n\n{heading}' + (f"\n\n{text}" if text else ""))


cells = [
    md("# ConvMixer on CIFAR-10: reproducibility report\n\n"
       "A reproduction of *Patches Are All You Need?* (ConvMixer) in Keras 3. Every number below is either "
       "measured by this project's runs (read from the results folder) or a published value read from "
       "`convmixer/reference.yaml`, labelled *paper* or *reference report*.\n\n"
       "[Summary](#summary) · [Original versus reproduction](#comparison) · [Trends](#trends) · "
       "[Learning curves](#learning-curves) · [Cost](#cost) · [Method and provenance](#provenance) · "
       "[Easy, difficult, further](#lessons) · [Skipped runs](#skipped)"),
]
params = code('# Parameters (papermill overrides these)\nresults_dir = "../results"')
params.metadata["tags"] = ["parameters"]
cells += [
    params,
    code("# Load the run records and the published values; everything below is computed from these.\n"
         "import html\n"
         "from pathlib import Path\n"
         "\n"
         "import matplotlib\n"
         "\n"
         "matplotlib.use(\"Agg\")  # figures are embedded by report.figure, never shown by the inline backend\n"
         "\n"
         "from convmixer import analysis, report\n"
         "from convmixer.results import load_reference, load_runs\n"
         "\n"
         "runs = load_runs(results_dir)\n"
         "reference = load_reference()\n"
         "show, table, note, missing = report.show, report.table, report.note, report.missing"),

    section("summary", "## 1. Summary"),
    code("show(\n"
         "    note(analysis.scope(runs, results_dir)),\n"
         "    \"<p>What each setup trained: budget per run, data and device.</p>\",\n"
         "    report.bullets([f\"Setup {label}: {facts}\" for label, facts in analysis.setup_facts(runs)]),\n"
         "    f\"<p>{html.escape(analysis.published_comparison(runs, reference))}</p>\",\n"
         "    \"<p>The paper's claims tested here:</p>\",\n"
         "    report.bullets([c[\"claim\"] for c in analysis.CLAIMS], ordered=True),\n"
         "    '<a id=\"verdicts\"></a>',\n"
         "    report.verdict_table(analysis.verdicts(runs)),\n"
         "    note(analysis.VERDICT_RULE + \" Each verdict links to the figure or table that carries it; \"\n"
         "         \"the same verdicts are in claims.json beside this page.\"),\n"
         "    \"<p>Like-for-like rows with the reference report (same model, patch, kernel, epochs and recipe):</p>\",\n"
         "    report.bullets(analysis.reproduction_sentences(runs, reference)\n"
         "                   or [\"No completed run matches a reference-report row like for like.\"]),\n"
         "    \"<p>What the reference report's own published numbers show:</p>\",\n"
         "    report.bullets(analysis.reference_report_observations(reference)),\n"
         ")"),

    section("comparison", "## 2. Original versus reproduction",
            "One row per configuration this project ran, plus the published configurations it did not run "
            "(marked *not run*). *Parameters* are computed from the architecture; *paper count* is ✓ when they "
            "equal the paper's count, — where the paper lists no count. Our accuracy is the mean ± standard "
            "deviation over seeds, in percent, with n seeds. Runs are grouped into *setups* (same budget and "
            "recipe); only runs of one setup are compared with each other."),
    code("show(\n"
         "    report.bullets([f\"{name.replace('_', ' ')}: {text}\" for name, text in reference[\"sources\"].items()]),\n"
         "    table(analysis.setups_table(runs), table_id=\"setups-table\", caption=\"Setups (budgets) of the completed runs.\",\n"
         "          empty=\"No completed runs, so there are no setups yet.\"),\n"
         ")\n"
         "comparison = analysis.comparison_table(runs, reference)\n"
         "not_run = int((comparison[\"n\"] == 0).sum())\n"
         "show(\n"
         "    table(comparison, table_id=\"comparison-table\"),\n"
         "    missing(f\"{not_run} published configuration(s) have no run here (rows marked 'not run').\") if not_run else \"\",\n"
         ")"),

    section("trends", "## 3. Trend plots",
            "Accuracy against kernel size (one line per patch size) and against patch size (one line per kernel "
            "size), per setup. Every seed is a point; lines show mean ± standard deviation over seeds."),
    section("trend-kernel", "### 3.1 Accuracy versus kernel size"),
    code("show(report.trend_section(runs, reference, \"kernel_size\"))"),
    section("trend-patch", "### 3.2 Accuracy versus patch size"),
    code("show(report.trend_section(runs, reference, \"patch_size\"))"),
    section("trend-published", "### 3.3 These trends beside the published ones"),
    code("show(report.published_trends_section(runs, reference))"),

    section("learning-curves", "## 4. Learning curves",
            "One figure per setup, a panel per configuration: held-out (validation, or test for recipes "
            "without a validation split) and training accuracy per epoch, one colour per seed, and whether "
            "the setup's training converged."),
    code("show(report.learning_curves_section(runs))"),

    section("cost", "## 5. Cost",
            "Seconds per epoch and training images per second by configuration and device, against the "
            "reference report's timings, and total training compute against accuracy."),
    code("show(report.cost_section(runs, reference))"),

    section("provenance", "## 6. Method and provenance",
            "The recipes, every known difference from the original code, and what produced each number: "
            "data sources with fingerprints, library versions, devices and git commits."),
    code("show(report.provenance_section(runs))"),

    section("lessons", "## 7. What was easy, what was difficult, what a reader needs to go further",
            "**Easy.** The architecture is small and fully specified: the Keras model follows the official "
            "PyTorch definition layer for layer, and its parameter count is computed and checked against the "
            "paper (the *paper count* column). The \"seed\" recipe (the Keras example) ports directly.\n\n"
            "**Difficult.** The compute budget: the paper's full schedules need GPUs, which a CPU cannot match "
            "in reasonable time, so CPU runs use short schedules or small models. The original "
            "augmentations (torchvision's RandAugment, ColorJitter and RandomErasing) have no exact Keras "
            "equivalents. TF Addons, which the reference report's optimizer came from, is end-of-life, so its "
            "weight decay had to be converted. CIFAR-10 is sometimes distributed as JPEG images, which are lossy.\n\n"
            "**What the data here says about these points:**"),
    code("show(report.lessons_section(runs, Path(analysis.__file__).resolve().parent.parent / \"grids\"))"),

    section("skipped", "## Skipped runs",
            "Run folders that are not complete (still running, interrupted, failed or corrupt) are left out of "
            "every table above; here is why."),
    code("show(table(analysis.skipped(runs), table_id=\"skipped-table\",\n"
         "           empty=\"No run folder was skipped: every run folder holds a completed run (or there are none).\"))"),
]
for i, cell in enumerate(cells):
    cell.id = f"report-{i:02d}"  # stable ids: regenerating gives no diff unless the content changed
nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nb.metadata["title"] = "ConvMixer on CIFAR-10: reproducibility report"
nbf.validate(nb)
out = Path(__file__).resolve().parent.parent / "notebooks" / "report.ipynb"
nbf.write(nb, str(out))
print(f"wrote {out}")
