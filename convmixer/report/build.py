"""Build the HTML report: execute ``notebooks/report.ipynb``, render it without code, write it atomically.

``build_report`` runs the notebook with papermill (the notebook only calls this
package's functions and displays what they return), converts it with nbconvert's
lab template minus every script that would load something from a CDN, and
writes one self-contained HTML file, with ``claims.json`` (the verdicts as data)
beside it and, optionally, README.md's results block refreshed.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from .. import records
from .readme import START, results_markdown, update_readme
from .runs import duplicate_lines, load_reference, load_runs, prepare_table
from .anchors import like_for_like
from .verdicts import claims_json


NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "report.ipynb"
VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'


class ReportError(RuntimeError):
    """The report could not be built; any previous report was left as it was."""


REPORT_CSS = """
main { max-width: 1100px; margin: 0 auto; padding: 0 12px 48px; }
.jp-Cell { padding-left: 0; padding-right: 0; }
.jp-CodeCell.jp-mod-noOutputs { display: none; }
.jp-RenderedHTMLCommon h1 { margin-top: 0.5em; }
.jp-RenderedHTMLCommon { overflow-wrap: break-word; }
img, svg, video { max-width: 100%; height: auto; }
.table-scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; margin: 0.5em 0 1em; }
.jp-RenderedHTMLCommon table.report-table { table-layout: auto; margin: 0; border-collapse: collapse;
  font-size: 13px; }
.jp-RenderedHTMLCommon table.report-table th, .jp-RenderedHTMLCommon table.report-table td {
  text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #ddd; max-width: 36em; }
.jp-RenderedHTMLCommon table.report-table th { overflow-wrap: normal; word-break: normal; hyphens: manual; }
.jp-RenderedHTMLCommon table.report-table td { overflow-wrap: break-word; }
.nw { white-space: nowrap; }
.jp-RenderedHTMLCommon table.report-table thead th { background: #f3f3f3; }
.jp-RenderedHTMLCommon table.report-table tbody tr:nth-child(odd) { background: #fafafa; }
figure.report-figure { margin: 0.5em 0 1.2em; }
figure.report-figure figcaption, p.caption { font-size: 0.9em; color: #444; }
p.note.missing { background: #fff6e0; border-left: 4px solid #e0a000; padding: 6px 10px; }
details.fold { margin: 0.35em 0; border-left: 3px solid #d0d7de; padding: 1px 0 1px 10px; }
details.fold > summary { cursor: pointer; font-weight: 600; }
details.fold[open] > summary { margin-bottom: 0.4em; }
ol.verdict-lines { margin: 0.2em 0 0.5em; padding-left: 1.6em; }
ol.verdict-lines > li { margin: 0.2em 0; line-height: 1.45; }
.jp-RenderedHTMLCommon ol.verdict-lines a.verdict-word { font-weight: 700; color: #fff; padding: 0 5px; border-radius: 3px; text-decoration: none;
  background: #6e7781; white-space: nowrap; }
.jp-RenderedHTMLCommon ol.verdict-lines li.verdict-consistent-with-the-claim a.verdict-word { background: #1a7f37; }
.jp-RenderedHTMLCommon ol.verdict-lines li.verdict-contradicts-the-claim a.verdict-word { background: #b42318; }
.verdict-lines .claim-text { font-weight: 600; }
.verdict-lines .regime { color: #555; }
div.headline { margin: 0.3em 0; }
div.headline ul { margin: 0.2em 0 0.6em; }
p.claims-lead { margin: 0.3em 0 0; }
@media (max-width: 600px) {
  main { padding: 0 6px 32px; }
  .jp-RenderedHTMLCommon { font-size: 15px; }
  .jp-RenderedHTMLCommon table.report-table { font-size: 12px; width: max-content; }
  .jp-RenderedHTMLCommon table.report-table th, .jp-RenderedHTMLCommon table.report-table td { max-width: 15em; }
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


CLAIMS_FILE = "claims.json"
REPORT_FILE = "index.html"


def report_path(results, out=None) -> Path:
    """Where a report on ``results`` goes: ``out`` (a folder gets ``index.html`` inside it), else the
    committed ``report/index.html`` for the repository's own ``results/`` and ``RESULTS/report/index.html``
    for any other results folder, so a scratch or downloaded folder never overwrites the committed
    report and claims.json, which README.md quotes."""
    if out is None:
        results = Path(results).resolve()
        if results == (records.REPOSITORY / "results").resolve():
            return records.REPOSITORY / "report" / REPORT_FILE
        return results / "report" / REPORT_FILE
    out = Path(out)
    if out.is_dir() or out.suffix.lower() not in (".html", ".htm"):
        out = out / REPORT_FILE
    return out.resolve()


def claims_payload(runs: pd.DataFrame) -> dict:
    """What claims.json holds: the verdicts (``verdicts.claims_json``) and the like-for-like reproductions."""

    def finite(v):
        return float(f"{float(v):.6g}") if isinstance(v, (int, float)) and math.isfinite(v) else None

    payload = claims_json(runs)
    # Every published single run, like for like (anchors.like_for_like); a cost is not a claim, so it stays out.
    payload["reproductions"] = [{k: (finite(v) if isinstance(v, float) else v) for k, v in r.items()
                                 if k not in ("cost", "planned", "seeds_planned")}
                                for r in like_for_like(runs, load_reference())]
    return payload


def build_report(results=None, out=None, *, notebook=None, executed_copy=False,
                 readme=None, log=None) -> Path:
    """Execute the report notebook on ``results`` (default: ``records.default_results_dir()``) and write the HTML
    report to ``report_path(results, out)``.

    ``claims.json`` (``verdicts.claims_json``: the verdicts as data) is written
    next to the HTML; the HTML's path is returned. The executed notebook is
    kept as ``report.ipynb`` beside them only when ``executed_copy`` (it is not
    committed). A record left out as a copy of another
    (``runs.mark_duplicates``) is named on ``log`` (default stderr), one line
    each. If execution or rendering fails, the HTML and the previous
    executed copy are left untouched; the failed notebook is kept as
    ``report.failed.ipynb`` for inspection, and ReportError says where.

    After the HTML is written, the results block of ``readme`` is refreshed
    (``readme.update_readme``), so README.md never shows numbers the report does not.
    ``readme="auto"`` means README.md next to the results folder
    (``results/../README.md``), refreshed only if it exists and has the block's
    markers (a results folder elsewhere, e.g. on Drive, has no project README);
    a path given explicitly must have them. ``None`` leaves every README alone.
    """
    import papermill as pm

    results = Path(results or records.default_results_dir()).resolve()
    if readme is not None:
        auto = readme == "auto"
        readme = results.parent / "README.md" if auto else Path(readme).resolve()
        if START not in (readme.read_text(encoding="utf-8") if readme.is_file() else ""):
            if not auto:  # checked before the (slow) notebook runs, not after
                raise ReportError(f"{readme} has no {START} block to refresh; nothing was built")
            readme = None
    # Loaded now, just before the notebook loads the same folder, so both see the same runs
    # (a run finishing in between is picked up by the next build).
    runs = prepare_table(load_runs(results))
    for line in duplicate_lines(runs):
        print(line, file=log or sys.stderr)
    claims = claims_payload(runs)
    out = report_path(results, out)
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
            update_readme(readme, results_markdown(runs, load_reference(), results / "bench"))
        except (OSError, ValueError) as exc:
            raise ReportError(f"{out} was written, but README results block was not refreshed: {exc}") from exc
    return out


