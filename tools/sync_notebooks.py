"""Write each notebooks/NAME.ipynb from its jupytext source notebooks/NAME.py (percent format).

The .py files are what people edit and review; the .ipynb files exist for
papermill and Colab. Cell ids are numbered, not random, so syncing twice gives
the same bytes; tests/test_notebooks.py fails when a committed .ipynb differs
from its source. Run it after editing a source: ``python tools/sync_notebooks.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook_from_source(source: Path) -> nbformat.NotebookNode:
    nb = jupytext.read(source, fmt="py:percent")
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{source.stem}-{i:02d}"
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nb


def main() -> int:
    for source in sorted(NOTEBOOKS.glob("*.py")):
        target = source.with_suffix(".ipynb")
        nbformat.write(notebook_from_source(source), str(target))
        print(f"wrote {target.relative_to(NOTEBOOKS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
