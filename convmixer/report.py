"""The HTML reproducibility report: execute ``notebooks/report.ipynb``, render it without code.

``build_report`` runs the notebook with papermill (the notebook only calls
``analysis`` and ``plots`` and displays what they return through the helpers
below), converts it with nbconvert's lab template minus every script that would
load something from a CDN, and writes one self-contained HTML file atomically.

The display helpers (``table``, ``figure``, ``verdict_table``, ...) live here, not
in the notebook, so that the notebook stays thin and every table shares one look.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from . import records

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "report.ipynb"
VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'


class ReportError(RuntimeError):
    """The report could not be built; any previous report was left as it was."""


# --------------------------------------------------------------------------- display helpers

def show(*parts: str):
    """Display HTML fragments as one notebook output."""
    from IPython.display import HTML, display

    display(HTML("\n".join(parts)))


def note(text: str, kind: str = "note") -> str:
    """A paragraph of generated text; kind "missing" marks what the data does not (yet) cover."""
    return f'<p class="note {html.escape(kind)}">{html.escape(text)}</p>'


def missing(text: str) -> str:
    return note(text, "missing")


def bullets(items, ordered=False) -> str:
    tag = "ol" if ordered else "ul"
    return f"<{tag}>" + "".join(f"<li>{_inline_code(html.escape(t))}</li>" for t in items) + f"</{tag}>"


def _inline_code(escaped: str) -> str:
    # `command` in generated sentences -> <code>command</code> (text is already escaped).
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _format_cell(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def table(df: pd.DataFrame, *, table_id: str | None = None, caption: str | None = None,
          empty: str = "No rows.") -> str:
    """A DataFrame as an escaped HTML table inside a horizontally scrolling box (or a note if empty)."""
    if df is None or df.empty:
        return missing(empty)
    body = df.map(_format_cell) if hasattr(df, "map") else df.applymap(_format_cell)
    out = body.to_html(index=False, escape=True, border=0, classes="report-table", table_id=table_id)
    cap = f'<p class="caption">{html.escape(caption)}</p>' if caption else ""
    return f'{cap}<div class="table-scroll">{out}</div>'


def figure(fig, alt: str, caption: str | None = None) -> str:
    """A matplotlib figure as an inline PNG (closed afterwards, so nothing else displays it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure class="report-figure"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(alt, quote=True)}">{cap}</figure>')


def verdict_table(verdicts: pd.DataFrame) -> str:
    """Claims with their verdicts; each verdict links to the figure or table that carries it."""
    rows = []
    for i, v in enumerate(verdicts.itertuples(index=False), start=1):
        css = "verdict-" + re.sub(r"[^a-z]+", "-", v.verdict.lower()).strip("-")
        evidence = "<br>".join(html.escape(line) for line in str(v.evidence).splitlines())
        rows.append(
            f"<tr><td>{i}</td><td>{html.escape(v.claim)}</td>"
            f'<td class="{css}"><a href="#{html.escape(v.anchor, quote=True)}">{html.escape(v.verdict)}</a></td>'
            f"<td>{evidence}</td></tr>"
        )
    head = "<tr><th>#</th><th>claim</th><th>verdict</th><th>evidence</th></tr>"
    return (f'<div class="table-scroll"><table class="report-table" id="verdict-table">'
            f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>")


# --------------------------------------------------------------------------- report sections
# Each returns HTML for one section of notebooks/report.ipynb and says in a
# sentence what is missing when the data cannot fill it.

def _budget(setup_runs: pd.DataFrame) -> str:
    return str(setup_runs["setup_description"].iloc[0])


def trend_section(runs: pd.DataFrame, reference: dict, axis: str) -> str:
    """Accuracy against ``axis`` per comparable setup (figure + numbers), or why there is none."""
    from . import analysis, plots

    other, short = analysis.other_axis(axis), analysis.short_axis
    setups = analysis.trend_setups(runs, axis)
    if not setups:
        return missing(f"No {short(axis)}-size trend to show: {analysis.no_trend_reason(runs, axis)}.")
    stats = analysis.trend(runs, axis)
    parts = []
    for label, sub in setups.items():
        paper = analysis.paper_points(sub, reference)
        fig = plots.trend_figure(sub, axis, other, paper=None if paper.empty else paper,
                                 title=f"Setup {label}: {_budget(sub)}")
        if paper.empty:
            paper_text = "The paper reports no values for this width and depth."
        else:
            epochs = ", ".join(str(e) for e in sorted(paper["paper_epochs"].unique()))
            paper_text = (f"Open diamonds (dotted): the paper's values ({epochs} epochs) for the same "
                          f"{short(other)} size; compare shapes, not levels.")
        caption = (f"Setup {label}: test accuracy against {short(axis)} size, one line per {short(other)} size. "
                   "Small points are single seeds; lines are mean ± std over seeds; the shaded band is the test-set "
                   f"noise floor (± one binomial standard error of a single run's accuracy). {paper_text}")
        numbers = stats[stats["setup"] == label][["other_value", "value", "n", "mean_pct", "std_pct", "sem_pct",
                                                  "binomial_se_pct"]]
        numbers = numbers.set_axis([short(other), short(axis), "n", "mean (%)", "std over seeds (%)",
                                    "std. error (%)", "test-set SE (%)"], axis=1)
        parts += [figure(fig, alt=f"Accuracy versus {short(axis)} size, setup {label}", caption=caption),
                  table(numbers, table_id=f"trend-{short(axis)}-{label}")]
    return "\n".join(parts)


def learning_curves_section(runs: pd.DataFrame) -> str:
    """Held-out and train accuracy per epoch: one small-multiples figure per setup, a panel per configuration."""
    from . import analysis, plots

    done = analysis.prepare(runs)
    if done.empty:
        return missing("No completed runs, so there are no learning curves.")
    parts = []
    for label, setup_runs in done.groupby("setup", sort=True):
        cells, problems = [], []
        for (p, k), sub in setup_runs.groupby(["patch_size", "kernel_size"], sort=True):
            histories = []
            for run in sub.itertuples():
                try:
                    histories.append((f"seed {run.seed}", plots.read_history(run.path)))
                except (OSError, ValueError, KeyError) as exc:
                    problems.append(f"{run.run_id}: history unreadable ({exc})")
            if histories:
                cells.append((f"patch {p}, kernel {k}", histories))
        if cells:
            parts.append(figure(plots.learning_curves_grid(cells, f"Setup {label}: {_budget(setup_runs)}"),
                                alt=f"Learning curves of setup {label}"))
        parts.append(note(f"Setup {label}: {analysis.convergence(setup_runs)['text']}."))
        parts += [missing(text) for text in problems]
    return "\n".join(parts)


def architectures_section(runs: pd.DataFrame) -> str:
    """Claim 1: ConvMixer against size-matched baselines trained the same way (table, figure, contrasts)."""
    from . import analysis, plots

    regimes = analysis.architecture_regimes(runs)
    if not regimes:
        return missing("No baseline (ResNet, ViT, MLP-Mixer) shares a training regime with a ConvMixer here, so "
                       "claim 1 is not tested. Run grids/cpu-architectures.yaml (and the ConvMixer it compares "
                       "with, in grids/cpu-converged.yaml) to test it.")
    parts = [table(analysis.architectures_table(runs), table_id="architectures-table", caption=(
        "Models compared for claim 1. Baselines were matched to the ConvMixer's parameter count within ±15% by "
        "convmixer/baselines.py (one fixed family per architecture, one size knob, no per-architecture tuning); "
        "every model trains with the same recipe, budget, data, seeds and training loop."))]
    for regime in regimes:
        cells = regime["runs"]
        names = {j: analysis.cell_name(r) for j, r in cells.iterrows()}
        params = {j: analysis.parameter_count(r) for j, r in cells.iterrows()}
        parts.append(figure(plots.architecture_figure(cells, params, names), alt="Accuracy against size and time",
                            caption=f"{regime['regime']}: test accuracy against parameters and seconds per epoch, "
                                    "one point per run (seed)."))
    parts.append(note(analysis.CLAIM1_SCOPE))
    return "\n".join(parts)


def published_trends_section(runs: pd.DataFrame, reference: dict) -> str:
    """This project's kernel and patch trends beside the paper's and the reference report's."""
    from . import analysis, plots

    series = analysis.published_trend_series(runs, reference)
    return figure(plots.published_trends_figure(series), alt="Trends here and as published", caption=(
        "Accuracy change from each line's smallest kernel (left) or patch (right) size, in points: this project's "
        "setups (solid), the paper's values (dotted, 200 epochs) and the reference report's (dashed, its own "
        "epochs), all as published in convmixer/reference.yaml. Levels differ with the budget, so each line "
        "starts at 0 and only the shapes compare."))


def cost_section(runs: pd.DataFrame, reference: dict) -> str:
    """Throughput by configuration and device against the reference report's marks, and compute vs accuracy."""
    from . import analysis, plots

    marks = analysis.reference_marks(reference)
    parts = [table(marks[["device_kind", "device_name", "seconds_per_epoch"]].set_axis(
        ["device", "as named there", "seconds per epoch"], axis=1), table_id="reference-timings",
        caption="The reference report's timings (published, not measured here).")]
    cost = analysis.cost_table(runs)
    if cost.empty:
        parts.append(missing("No completed runs, so nothing was timed yet; only the reference report's marks "
                             "are shown."))
        return "\n".join(parts)
    projected = [c for c in cost.columns if c.startswith("projected")][0]
    w, d = analysis.PAPER_WIDTH_DEPTH
    parts.append(table(cost, table_id="cost-table", caption=(
        "Measured here: seconds per epoch (epochs that include graph tracing excluded) and training images per "
        "second of the fastest run of each configuration, since other work on a shared machine can only slow a "
        "run down; the slowest run shows the spread. "
        f"The projection is {analysis.FULL_EPOCH_IMAGES:,} / images per second. "
        "Load avg: the machine's 1-minute load average when training started / ended (mean over runs).")))
    parts.append(note(analysis.load_sentence(runs)))
    parts.append(figure(plots.cost_figure(cost, marks, projected), alt="Cost by configuration and device", caption=(
        f"Top: projected seconds for a {analysis.FULL_EPOCH_IMAGES:,}-image epoch (log scale) with the reference "
        f"report's marks as dashed lines; the marks are for ConvMixer-{w}/{d}, so only rows marked "
        "like-for-like compare directly. Bottom: measured training images per second.")))
    done = analysis.prepare(runs)
    parts.append('<a id="compute"></a>')
    parts.append(figure(plots.compute_accuracy_figure(done), alt="Training compute versus accuracy", caption=(
        "Compute versus accuracy: total training seconds of each run (all epochs) against its test accuracy.")))
    return "\n".join(parts)


def provenance_section(runs: pd.DataFrame) -> str:
    """Recipes, differences from the originals, data sources (JPEG flagged), versions, devices, commits."""
    from . import analysis
    from .training.recipes import DIFFERENCES

    tables = analysis.provenance(runs)
    empty = "No completed runs, so there is nothing to list."
    parts = [
        '<h3 id="recipes">Recipes</h3>', table(analysis.recipes_table(), table_id="recipes-table"),
        '<h3 id="differences">Differences from the original</h3>',
        table(pd.DataFrame(DIFFERENCES), table_id="differences-table"),
        '<h3 id="data-sources">Data sources</h3>',
    ]
    sentence = analysis.jpeg_sentence(runs)
    if sentence:
        parts.append(note(sentence, "warning jpeg"))
    parts += [
        table(tables["data"], table_id="data-table", empty=empty),
        '<h3 id="versions">Library versions</h3>', table(tables["versions"], table_id="versions-table", empty=empty),
        '<h3 id="devices">Devices</h3>', table(tables["devices"], table_id="devices-table", empty=empty),
        '<h3 id="commits">Code (git commits)</h3>',
        note(analysis.dirty_sentence(runs), "warning dirty") if analysis.dirty_sentence(runs) else "",
        table(tables["commits"], table_id="commits-table", empty=empty),
    ]
    return "\n".join(parts)


def lessons_section(runs: pd.DataFrame, grids_dir) -> str:
    """Section 7's generated statements and what the shipped grids would add."""
    from . import analysis

    grids = analysis.grid_coverage(runs, grids_dir)
    return "\n".join([
        bullets(analysis.lessons(runs, grids)),
        table(grids, table_id="grids-table", caption="Shipped grids and how much of each has results here.",
              empty="No grid files were found."),
    ])


# --------------------------------------------------------------------------- HTML rendering

REPORT_CSS = """
main { max-width: 1100px; margin: 0 auto; padding: 0 12px 48px; }
.jp-Cell { padding-left: 0; padding-right: 0; }
img, svg, video { max-width: 100%; height: auto; }
.table-scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; margin: 0.5em 0 1em; }
.jp-RenderedHTMLCommon table.report-table { table-layout: auto; margin: 0; border-collapse: collapse;
  font-size: 13px; }
.jp-RenderedHTMLCommon table.report-table th, .jp-RenderedHTMLCommon table.report-table td {
  text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #ddd; max-width: 36em;
  overflow-wrap: anywhere; }
.jp-RenderedHTMLCommon table.report-table thead th { background: #f3f3f3; }
.jp-RenderedHTMLCommon table.report-table tbody tr:nth-child(odd) { background: #fafafa; }
figure.report-figure { margin: 0.5em 0 1.5em; }
figure.report-figure figcaption, p.caption { font-size: 0.9em; color: #444; }
p.note.missing { background: #fff6e0; border-left: 4px solid #e0a000; padding: 6px 10px; }
#verdict-table td:nth-child(3) { min-width: 8.5em; }
td.verdict-consistent-with-the-claim a { color: #176f2c; font-weight: 600; }
td.verdict-contradicts-the-claim a { color: #a51d2d; font-weight: 600; }
td.verdict-inconclusive a, td.verdict-not-tested a { color: #555; font-weight: 600; }
@media (max-width: 600px) {
  main { padding: 0 6px 32px; }
  .jp-RenderedHTMLCommon { font-size: 15px; }
  .jp-RenderedHTMLCommon table.report-table { font-size: 12px; }
}
"""

# The lab template minus everything that would fetch code from a CDN: require.js,
# MathJax, mermaid and the widget manager (the report has no code, math, diagrams
# or widgets), plus the report's own CSS.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">""" + REPORT_CSS + """</style>{%- endblock extra_css -%}
"""


def html_exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"convmixer_report.html.j2": TEMPLATE})],
        template_file="convmixer_report.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )


class _ResourceFinder(HTMLParser):
    """Collects references to remote resources: src/href of anything but <a>, and URLs in scripts/styles."""

    URL = re.compile(r"""^\s*(https?:)?//""", re.I)

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._in = tag
        if tag == "a":
            return
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and value and self.URL.match(value):
                self.found.append(f"<{tag} {name}={value}>")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in is None:
            return
        code = re.sub(r"/\*.*?\*/", "", data, flags=re.S)  # comments mention URLs harmlessly
        for m in re.finditer(r"""(?:url\(\s*['"]?|import\s*\(?\s*['"]|@import\s+['"]?)\s*((?:https?:)?//[^'")\s]+)""",
                             code, re.I):
            self.found.append(f"<{self._in}> {m.group(1)}")


def external_resources(page: str) -> list[str]:
    """Everything in ``page`` a browser would fetch from the network (plain links excluded)."""
    finder = _ResourceFinder()
    finder.feed(page)
    return finder.found


def render_html(notebook_path) -> str:
    """The executed notebook as one self-contained HTML page: no code, no network, phone-friendly."""
    import nbformat

    nb = nbformat.read(str(notebook_path), as_version=4)
    for i, cell in enumerate(nb.cells):  # papermill gives its injected cell a random id: the page must not change
        cell["id"] = f"cell-{i:02d}"
    page, _ = html_exporter().from_notebook_node(nb)
    if re.search(r'<meta name="viewport"[^>]*>', page):
        page = re.sub(r'<meta name="viewport"[^>]*>', VIEWPORT, page, count=1)
    else:
        page = page.replace("<head>", "<head>\n" + VIEWPORT, 1)
    remote = external_resources(page)
    if remote:
        raise ReportError("the rendered report would load remote resources: " + "; ".join(remote[:5]))
    return page


# --------------------------------------------------------------------------- build

CLAIMS_FILE = "claims.json"


def claims_payload(runs: pd.DataFrame) -> dict:
    """What claims.json holds: the verdicts (``analysis.claims_json``) and the like-for-like reproductions."""
    import math

    from . import analysis
    from .results import load_reference

    def finite(v):
        return round(float(v), 6) if isinstance(v, (int, float)) and math.isfinite(v) else None

    payload = analysis.claims_json(runs)
    payload["reproductions"] = [{k: (finite(v) if isinstance(v, float) else v) for k, v in r.items()}
                                for r in analysis.reproductions(runs, load_reference())]
    return payload


def build_report(results="results", out="report/index.html", *, notebook=None, executed_copy=False,
                 readme=None) -> Path:
    """Execute the report notebook on ``results`` and write the HTML report to ``out``.

    ``claims.json`` (``analysis.claims_json``: the verdicts as data) is written
    next to ``out``. The executed notebook is kept as ``report.ipynb`` next to
    ``out`` only when ``executed_copy`` (it is not committed). If execution or rendering fails, ``out`` and the previous
    executed copy are left untouched; the failed notebook is kept as
    ``report.failed.ipynb`` for inspection, and ReportError says where.

    After the HTML is written, the results block of ``readme`` is refreshed
    (``convmixer.readme``), so README.md never shows numbers the report does not.
    ``readme="auto"`` means README.md next to the results folder
    (``results/../README.md``), refreshed only if it exists and has the block's
    markers (a results folder elsewhere, e.g. on Drive, has no project README);
    a path given explicitly must have them. ``None`` leaves every README alone.
    """
    import papermill as pm

    from .readme import START, results_markdown, update_readme
    from .results import load_reference, load_runs

    results = Path(results).resolve()
    if readme is not None:
        auto = readme == "auto"
        readme = results.parent / "README.md" if auto else Path(readme).resolve()
        if START not in (readme.read_text(encoding="utf-8") if readme.is_file() else ""):
            if not auto:  # checked before the (slow) notebook runs, not after
                raise ReportError(f"{readme} has no {START} block to refresh; nothing was built")
            readme = None
    # Loaded now, just before the notebook loads the same folder, so both see the same runs
    # (a run finishing in between is picked up by the next build).
    runs = load_runs(results)
    claims = claims_payload(runs)
    out = Path(out).resolve()
    nb_path = Path(notebook).resolve() if notebook else NOTEBOOK
    if not nb_path.exists():
        raise ReportError(f"report notebook {nb_path} not found (write it from notebooks/report.py: python tools/sync_notebooks.py)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".report.", suffix=".ipynb")
    os.close(fd)
    tmp = Path(tmp)
    try:
        try:
            pm.execute_notebook(
                str(nb_path), str(tmp), parameters={"results_dir": str(results)}, kernel_name="python3",
                cwd=str(nb_path.parent), progress_bar=False, log_output=False,
            )
        except Exception as exc:  # papermill's execution error, a dead kernel, ...: keep the old report
            failed = out.parent / "report.failed.ipynb"
            if tmp.exists() and tmp.stat().st_size:
                os.replace(tmp, failed)
            raise ReportError(f"executing {nb_path.name} failed ({type(exc).__name__}: {str(exc)[:500]}); "
                              f"see {failed}; {out} was left unchanged") from exc
        page = render_html(tmp)
        records.atomic_write_text(out, page)
        records.atomic_write_json(out.parent / CLAIMS_FILE, claims)
        if executed_copy:  # through records, so it gets the same atomic write and permissions as the HTML
            records.atomic_write_bytes(out.parent / "report.ipynb", tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    if readme is not None:  # only once the HTML exists: a failed build changes nothing
        try:
            update_readme(readme, results_markdown(runs, load_reference()))
        except (OSError, ValueError) as exc:
            raise ReportError(f"{out} was written, but README results block was not refreshed: {exc}") from exc
    return out
