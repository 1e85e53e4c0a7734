"""The committed notebooks are exactly what their jupytext sources (notebooks/*.py) say."""

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from sync_notebooks import notebook_from_source  # noqa: E402

SOURCES = sorted((ROOT / "notebooks").glob("*.py"))


def test_every_notebook_has_a_source():
    assert {p.stem for p in SOURCES} == {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_committed_notebook_matches_its_source(source):
    committed = nbformat.read(str(source.with_suffix(".ipynb")), as_version=4)
    assert committed == notebook_from_source(source), (
        f"{source.with_suffix('.ipynb').name} differs from {source.name}: run python tools/sync_notebooks.py")
