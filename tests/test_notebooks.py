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


def test_the_train_notebook_writes_into_the_checkouts_results_wherever_papermill_starts(tmp_path, monkeypatch):
    """Its default run folder was ``../results/...``, relative to the kernel's working directory: from the
    repository root, outside the repository."""
    from convmixer.records import REPOSITORY
    from convmixer.training.config import RunConfig

    nb = nbformat.read(str(ROOT / "notebooks" / "train.ipynb"), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    parameters = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    namespace = {}
    monkeypatch.chdir(tmp_path)  # papermill's kernels start in the directory it was started from
    for cell in cells[:parameters + 2]:  # the install check (a no-op here), the parameters, the run folder
        exec(cell.source, namespace)
    config = RunConfig()
    assert namespace["run_dir"] == REPOSITORY / "results" / "runs" / config.run_id
    assert namespace["run_dir"].is_absolute() and not (tmp_path / "results").exists()
