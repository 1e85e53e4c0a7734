"""The reproducibility report, from the run records to ``report/index.html``, ``claims.json`` and README's block.

One module per job, in the order the data flows:

* ``runs``: load the run folders (``load_runs``) and the published values
  (``load_reference``); ``prepare`` types the completed runs and labels setups.
* ``stats``: the statistical tests (statsmodels, scipy).
* ``verdicts``: the paper's claims, their verdicts and ``claims.json``.
* ``anchors``: like for like with each published single run (verdicts, costs, the summary's reading);
  ``curves``: ours per epoch against a published log; ``diagnostics``: where a gap to one comes from,
  one recipe override at a time, and the known differences.
* ``tables``, ``cost``, ``provenance``: the report's tables.
* ``names``, ``text``: the words: model and setup names, generated sentences.
* ``plots``, ``html``, ``sections``: figures, HTML fragments, the report's composite sections.
* ``build``: execute ``notebooks/report.ipynb`` and render it; ``readme``: README.md's results block.
"""

from .build import ReportError, build_report
from .runs import load_reference, load_runs

__all__ = ["ReportError", "build_report", "load_reference", "load_runs"]
