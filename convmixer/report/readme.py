"""README.md's "Results" block: the report's headline, as markdown, from the same run records.

The block sits between ``START`` and ``END`` in README.md. ``build_report``
rewrites it after every successful build and a test compares it with
``results_markdown(load_runs("results"), load_reference())``, so nobody edits
it by hand and it cannot drift from ``report/index.html``. Every number comes
from the functions the report uses (``tables``, ``text``, ``verdicts``); nothing
is computed here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import records
from .runs import as_table, prepare
from .tables import comparison_display, comparison_table, like_for_like_table
from .anchors import like_for_like, planned_settings, summary_sentences
from .curves import curve_sentences, logged_curves
from .diagnostics import diagnostic_sentences, diagnostics, gap_sources, source_line, unfinished
from .provenance import GRIDS_DIR
from .text import reference_differences, reproduction_sentences, setup_facts
from .verdicts import verdicts

START, END = "<!-- results:start -->", "<!-- results:end -->"
REPORT_LINK = "[full report](report/index.html)"


def _cell(value) -> str:
    """A markdown table cell: blank values as "—", pipes escaped so they cannot split the row."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    return str(value).replace("|", "\\|")


def results_markdown(runs: pd.DataFrame, reference: dict, bench_folder=None) -> str:
    """The README's results block: the setups, what the paper-scale runs show (first, as in the report's
    summary), the headline accuracy table, the claims' verdicts, the per-epoch comparisons, a link.

    Only completed runs are measured (``report.runs.prepare``); an unfinished one is at most named. The table
    is ``tables.comparison_table`` without the published rows nobody ran here. ``bench_folder``: the bench
    records that cost the published settings not run (``anchors.like_for_like``), as in the report.
    """
    runs = as_table(runs)
    done = prepare(runs)
    lines = []
    if done.empty:
        lines.append("No completed runs yet, so nothing has been measured; every claim below is untested.")
    else:
        n_setups = done["setup"].nunique()
        others = len(prepare(runs, architecture=None)) - len(done)
        lines.append(f"{len(done)} completed ConvMixer run{'s' if len(done) != 1 else ''} in {n_setups} "
                     f"setup{'s' if n_setups != 1 else ''}"
                     + (f" (and {others} run{'s' if others != 1 else ''} of the baselines for claim 1)" if others
                        else "")
                     + "; the claims' tests and trends use runs of one setup only:")
        lines.append("")
        lines += [f"- **{label}**: {facts}" for label, facts in setup_facts(runs)]
    rows = like_for_like(runs, reference, bench_folder, planned=planned_settings(GRIDS_DIR))
    lines += ["", "At the paper's model size (ConvMixer-256/8), like for like with the published logged runs:", ""]
    lines += [f"- {s}" for s in summary_sentences(rows) + unfinished(runs, reference)]
    found = diagnostics(runs, reference)
    if found:
        lines += ["", "One known difference at a time (runs of a published setting with one recipe field changed, "
                  "each paired with the setting's own run of its seed and setup):", ""]
        lines += [f"- {' '.join(diagnostic_sentences(d))}" for d in found]
    sources = gap_sources(runs, reference, rows)
    if not sources.empty:
        lines += ["", "Where the gap to the official log can come from, and what these runs and tests show about each:", ""]
        lines += [f"- {source_line(r)}" for r in sources.to_dict("records")]
    reproduced = reproduction_sentences(rows) + reference_differences(rows)
    not_run = [f"{r['setting']}: {r['verdict']}." for r in like_for_like_table(
        [r for r in rows if r["source"] == "reference_report"]).to_dict("records") if r["n"] == 0]
    if reproduced or not_run:
        lines += ["", "Like for like with the reference report's rows:", ""] + [f"- {r}" for r in reproduced + not_run]
    if not done.empty:
        table = comparison_display(comparison_table(runs, reference))
        table = table[table["n"] > 0]  # our cells only; the report lists published rows never run
        lines += ["", "Test accuracy (%), mean ± std over seeds, with the test-set noise floor (binomial standard "
                  "error of one run); published values at their own epochs:", "",
                  "| setup | patch | kernel | epochs | ours | n | test-set SE | paper | reference report |",
                  "|---|---|---|---|---|---|---|---|---|"]
        columns = ["setup", "patch", "kernel", "epochs", "our accuracy (%)", "n", "test-set SE (%)", "paper (%)",
                   "reference report (%)"]
        lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in table[columns].itertuples(index=False)]
    lines += ["", "Claims (verdicts as in the report and claims.json):", ""]
    for i, v in enumerate(verdicts(runs).itertuples(index=False), start=1):
        # The evidence's first line is its summary: the verdict with its regime and effect, or why not tested.
        head = str(v.evidence).splitlines()[0]
        if head.startswith(v.verdict):
            lines.append(f"{i}. {v.claim} **{v.verdict}**{head[len(v.verdict):]}")
        else:
            lines.append(f"{i}. {v.claim} **{v.verdict}**: {head.removeprefix('Not tested: ')}")
    curves = logged_curves(runs, reference)
    if curves:
        lines += ["", "Per epoch against the published logs:", ""]
        lines += [f"- {' '.join(curve_sentences(curve))}" for curve in curves]
    lines += ["", f"Figures, per-comparison evidence, cost and provenance: {REPORT_LINK}."]
    return "\n".join(lines) + "\n"


def update_readme(readme_path, markdown: str) -> bool:
    """Replace the text between ``START`` and ``END`` in ``readme_path`` (markers kept); True if it changed.

    Written atomically (temporary file in the same folder, then os.replace) so a
    crash never leaves a half-written README. Raises ValueError naming the file
    when the markers are missing, repeated or out of order, rather than guessing
    where the block belongs.
    """
    path = Path(readme_path)
    text = path.read_text(encoding="utf-8")
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{path}: needs exactly one {START} followed by one {END} around the results block")
    before, rest = text.split(START)
    _, after = rest.split(END)
    new = f"{before}{START}\n{markdown.strip()}\n{END}{after}"
    if new == text:
        return False
    records.atomic_write_text(path, new)
    return True

