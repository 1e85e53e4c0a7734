"""Write each notebooks/NAME.ipynb from its jupytext source notebooks/NAME.py (percent format).

The .py files are what people edit and review; the .ipynb files exist for
papermill and Colab. Cell ids are numbered, not random, so syncing twice gives
the same bytes; tests/test_notebooks.py fails when a committed .ipynb differs
from its source. Run it after editing a source: ``python tools/sync_notebooks.py``.

The train notebook's parameters cell is not edited by hand: it is written here
from ``RunConfig``'s fields (name, default, help text), so the notebook, the CLI
and a grid describe one schema; tests/test_notebooks.py fails when it differs.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jupytext
import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PARAMETERS_MARKER = '# %% tags=["parameters"]\n'
# The train notebook's parameters that are not RunConfig fields: where the run is written, and the
# sweep's lock (sweep/execute.py's notebook_parameters passes both).
NOTEBOOK_ONLY = {
    "out_dir": "None: results/runs/<run id> in the repository's checkout (./results where installed without one)",
    "run_lock": "set by the sweep: the token of the run's lock it holds for this notebook",
}


def train_parameters_cell() -> str:
    """The train notebook's parameters cell (its lines after the cell marker): every RunConfig field with
    its default and help text, then NOTEBOOK_ONLY."""
    from convmixer.training.config import RunConfig

    lines = ["# Parameters (papermill overrides these; plain literals only): every RunConfig field with its help text."]
    for f in dataclasses.fields(RunConfig):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        lines.append(f"{f.name} = {default!r}  # {f.metadata['help']}")
    lines += [f"{name} = None  # {text}" for name, text in NOTEBOOK_ONLY.items()]
    return "\n".join(lines) + "\n"


# Sources whose parameters cell is generated, and what generates it.
GENERATED_PARAMETERS = {"train": train_parameters_cell}


def with_generated_parameters(source: Path, text: str) -> str:
    """``text`` (the source ``source``) with its parameters cell replaced by the generated one, if it has one."""
    generate = GENERATED_PARAMETERS.get(source.stem)
    if generate is None:
        return text
    start = text.index(PARAMETERS_MARKER) + len(PARAMETERS_MARKER)
    end = text.index("\n# %%", start) + 1  # the cell, and the blank line that ends it
    return text[:start] + generate() + "\n" + text[end:]


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
        text = source.read_text(encoding="utf-8")
        generated = with_generated_parameters(source, text)
        if generated != text:
            source.write_text(generated, encoding="utf-8")
            print(f"wrote the parameters cell of {source.relative_to(NOTEBOOKS.parent)}")
        target = source.with_suffix(".ipynb")
        nbformat.write(notebook_from_source(source), str(target))
        print(f"wrote {target.relative_to(NOTEBOOKS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
