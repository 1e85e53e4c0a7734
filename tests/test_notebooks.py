"""The committed notebooks are exactly what their jupytext sources (notebooks/*.py) say."""

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from sync_notebooks import NOTEBOOK_ONLY, notebook_from_source, with_generated_parameters  # noqa: E402

SOURCES = sorted((ROOT / "notebooks").glob("*.py"))


def test_every_notebook_has_a_source():
    assert {p.stem for p in SOURCES} == {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_committed_notebook_matches_its_source(source):
    committed = nbformat.read(str(source.with_suffix(".ipynb")), as_version=4)
    assert committed == notebook_from_source(source), (
        f"{source.with_suffix('.ipynb').name} differs from {source.name}: run python tools/sync_notebooks.py")


def test_the_train_notebooks_parameters_cell_is_the_one_generated_from_runconfig():
    source = ROOT / "notebooks" / "train.py"
    text = source.read_text(encoding="utf-8")
    assert with_generated_parameters(source, text) == text, (
        "notebooks/train.py's parameters cell differs from RunConfig: run python tools/sync_notebooks.py")


def test_a_hand_edit_of_the_parameters_cell_is_replaced_by_runconfigs_fields():
    import dataclasses

    from convmixer.training.config import RunConfig

    source = ROOT / "notebooks" / "train.py"
    text = source.read_text(encoding="utf-8")
    recipe_help = {f.name: f.metadata["help"] for f in dataclasses.fields(RunConfig)}["recipe"]
    stale = text.replace(recipe_help, "training recipe (see convmixer/recipes.py)").replace("seed = 0 ", "seed = 1 ")
    assert stale != text and with_generated_parameters(source, stale) == text


def test_the_notebook_only_parameters_are_those_the_sweep_passes(tmp_path):
    from convmixer.sweep.execute import notebook_parameters
    from convmixer.training.config import PARAMETER_NAMES, RunConfig

    passed = notebook_parameters(RunConfig(), tmp_path, "token")
    assert list(passed) == PARAMETER_NAMES + list(NOTEBOOK_ONLY)


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
