"""README.md's results block: generated from the run records, refreshed by the report build, never hand-typed.

Run folders here are written by hand (params.json, metrics.json, history.csv:
what ``report.runs.load_runs`` reads), so nothing trains.
"""

import json
import re
from pathlib import Path

import nbformat
import pytest

from convmixer import report
from convmixer.training.config import RunConfig
from convmixer.report.readme import END, REPORT_LINK, START, results_markdown, update_readme
from convmixer.report.runs import load_reference, load_runs
from fakes import write_weights

ROOT = Path(__file__).resolve().parent.parent


def block_of(text: str) -> str:
    return text.split(START)[1].split(END)[0].strip()


def write_run(results: Path, kernel, patch, seed, accuracy, *, width=16, depth=1, lossy=False, completed=True):
    """A run folder as training leaves it (completed) or as an unfinished one (params.json only)."""
    config = RunConfig(width=width, depth=depth, patch_size=patch, kernel_size=kernel, epochs=2, batch_size=64,
                       seed=seed, data="synthetic:200:100")
    folder = results / "runs" / config.run_id
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps({**config.to_dict(), "run_id": config.run_id,
                                                    "config_hash": config.config_hash}), encoding="utf-8")
    if completed:
        metrics = {"status": "completed", "test_accuracy": accuracy, "train_images": 180, "test_images": 10_000,
                   "device": {"kind": "CPU", "name": "test cpu"},
                   "dataset": {"description": "synthetic", "fingerprint": "sha256:x", "lossy_jpeg": lossy}}
        (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
        (folder / "history.csv").write_text("epoch,accuracy\n1,0.5\n", encoding="utf-8")
        write_weights(folder / "model.weights.h5")


def table_rows(markdown: str) -> dict:
    """{(setup, patch, kernel): row cells} of the headline table."""
    rows = [line.strip("| ").split(" | ") for line in markdown.splitlines() if re.match(r"\| [A-Z]+ \|", line)]
    return {(r[0], r[1], r[2]): r for r in rows}


# --------------------------------------------------------------------------- the real README

def test_readme_results_block_is_generated_from_the_run_records():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(START) == 1 and readme.count(END) == 1
    expected = results_markdown(load_runs(ROOT / "results"), load_reference(), ROOT / "results" / "bench").strip()
    assert block_of(readme) == expected, (
        "README.md's results block is stale or was edited by hand: rebuild it with `python -m convmixer report`")
    assert REPORT_LINK in block_of(readme)


# --------------------------------------------------------------------------- the markdown

def test_adding_a_run_changes_the_table(tmp_path):
    results = tmp_path / "results"
    for kernel, seed, accuracy in [(3, 0, 0.50), (3, 1, 0.52), (5, 0, 0.60)]:
        write_run(results, kernel, 2, seed, accuracy)
    before = results_markdown(load_runs(results), load_reference())
    assert table_rows(before)[("A", "2", "3")][4:6] == ["51.00 ± 1.41", "2"]
    assert table_rows(before)[("A", "2", "5")][4:6] == ["60.00", "1"]

    write_run(results, 7, 2, 0, 0.9, completed=False)  # still training: does not count
    assert results_markdown(load_runs(results), load_reference()) == before

    write_run(results, 5, 2, 1, 0.62)  # a second seed for kernel 5
    after = results_markdown(load_runs(results), load_reference())
    assert table_rows(after)[("A", "2", "5")][4:6] == ["61.00 ± 1.41", "2"]
    assert table_rows(after)[("A", "2", "3")] == table_rows(before)[("A", "2", "3")]
    assert "4 completed ConvMixer runs in 1 setup" in after and "3 completed ConvMixer runs in 1 setup" in before
    assert "data: synthetic; device: CPU (test cpu)" in after and REPORT_LINK in after


def test_markdown_names_the_jpeg_copy_published_values_and_verdicts(tmp_path):
    ref = load_reference()
    paper = ref["accuracy"].iloc[0]  # a published configuration, run here at 2 epochs
    w, d, p, k = (int(paper[c]) for c in ("width", "depth", "patch_size", "kernel_size"))
    write_run(tmp_path, k, p, 0, 0.1, width=w, depth=d, lossy=True)
    text = results_markdown(load_runs(tmp_path), ref)
    row = table_rows(text)[("A", str(p), str(k))]
    assert row[7] == f"{paper.paper_accuracy:.2f} ({int(paper.paper_epochs)} ep)"
    assert row[8] == f"{paper.reference_accuracy:.2f} ({int(paper.reference_epochs)} ep)"
    assert row[6] == "0.30"  # test-set noise floor: sqrt(0.1 * 0.9 / 10,000) in percent
    assert "JPEG copy of CIFAR-10" in text
    assert text.count("**not tested**") == 3  # one run: no trend, no other architecture


def test_no_runs_still_gives_verdicts_and_the_link(tmp_path):
    text = results_markdown(load_runs(tmp_path), load_reference())
    assert "No completed runs yet" in text and "| setup |" not in text
    assert text.count("**not tested") == 3 and REPORT_LINK in text


# --------------------------------------------------------------------------- update_readme

def test_update_readme_replaces_only_the_block(tmp_path):
    path = tmp_path / "README.md"
    head, tail = "# Title\n\nintro\n\n", "\n\n## Next\n\nmore text\n"
    path.write_text(f"{head}{START}\nold, typed by hand\n{END}{tail}", encoding="utf-8")
    assert update_readme(path, "new block\n") is True
    assert path.read_text(encoding="utf-8") == f"{head}{START}\nnew block\n{END}{tail}"
    assert update_readme(path, "new block") is False  # unchanged: nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # no temporary file left behind


@pytest.mark.parametrize("text", ["# no markers\n", f"{END}\nx\n{START}\n", f"{START}\n{START}\n{END}\n"])
def test_update_readme_needs_one_pair_of_markers(tmp_path, text):
    path = tmp_path / "README.md"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        update_readme(path, "block")
    assert path.read_text(encoding="utf-8") == text


# --------------------------------------------------------------------------- build_report refreshes it

def _notebook(path: Path, code: str) -> Path:
    """A stand-in for notebooks/report.ipynb: the hook does not depend on what the report shows."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('results_dir = "x"'),
                                         nbformat.v4.new_code_cell(code)])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_build_report_rejects_a_readme_without_the_block_before_running(tmp_path):
    (tmp_path / "README.md").write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(report.ReportError, match="no .*results:start"):
        report.build_report(results=tmp_path / "results", out=tmp_path / "out" / "index.html",
                            notebook=tmp_path / "missing.ipynb", readme=tmp_path / "README.md")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_build_report_refreshes_the_readme_only_after_the_html(tmp_path):
    results = tmp_path / "results"
    write_run(results, 3, 2, 0, 0.5)
    readme = tmp_path / "README.md"  # results/../README.md: the "auto" target
    readme.write_text(f"# x\n{START}\nstale\n{END}\n", encoding="utf-8")
    out = tmp_path / "out" / "index.html"

    bad = _notebook(tmp_path / "bad.ipynb", 'raise RuntimeError("boom")')
    with pytest.raises(report.ReportError, match="left unchanged"):
        report.build_report(results=results, out=out, notebook=bad, readme="auto")
    assert block_of(readme.read_text(encoding="utf-8")) == "stale"  # failed build: README untouched

    report.build_report(results=results, out=out, notebook=_notebook(tmp_path / "ok.ipynb", "1 + 1"), readme="auto")
    assert out.exists()
    expected = results_markdown(load_runs(results), load_reference()).strip()
    assert block_of(readme.read_text(encoding="utf-8")) == expected


def test_the_block_leads_with_the_paper_scale_then_the_table_and_the_claims(tmp_path):
    results = tmp_path / "results"
    write_run(results, 3, 2, 0, 0.50)
    block = results_markdown(load_runs(results), load_reference())
    assert block.startswith("1 completed ConvMixer run in 1 setup; the claims' tests and trends use runs of one setup only:")
    order = [block.index(s) for s in ("At the paper's model size", "| setup | patch |", "Claims (verdicts")]
    assert order == sorted(order)
