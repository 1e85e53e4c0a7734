"""What an install gets: the license, the pinned versions of the committed results, and which backend."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from constraints import constraints_text  # noqa: E402

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_license_is_an_spdx_expression_with_its_file():
    assert PYPROJECT["license"] == "MIT" and PYPROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "THE SOFTWARE IS PROVIDED \"AS IS\"" in text


def test_constraints_pin_the_versions_the_committed_results_were_produced_with():
    pinned = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    assert pinned == constraints_text(), "constraints.txt is stale: run python tools/constraints.py"
    assert "keras==" in pinned and "numpy==" in pinned and "python==" not in pinned
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install -q -c constraints.txt -e '.[tensorflow,test]'" in makefile
    assert "$(VENV)/.installed: pyproject.toml constraints.txt" in makefile  # a new pin reinstalls


def test_tensorflow_is_an_extra_not_a_dependency():
    assert not any(d.startswith("tensorflow") for d in PYPROJECT["dependencies"])
    extras = PYPROJECT["optional-dependencies"]
    assert extras["tensorflow"] == ["tensorflow>=2.16"] and extras["jax"] == ["jax>=0.4.30"]
    assert {"tensorflow>=2.16", "jax>=0.4.30"} <= set(extras["test"])


# Makes `import tensorflow` fail, as in an install made with the jax extra only.
WITHOUT_TENSORFLOW = """
import importlib.util, sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTensorFlow())
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name.split(".")[0] == "tensorflow" else real_find_spec(name, *a)
from convmixer.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_the_canonical_download_imports_keras_with_an_installed_backend_when_tensorflow_is_missing():
    pytest.importorskip("jax")
    code = WITHOUT_TENSORFLOW.replace(
        "from convmixer.__main__ import main\nsys.exit(main(sys.argv[1:]))",
        "import os\nfrom convmixer.data.canonical import _installed_backend_for_keras\n"
        "_installed_backend_for_keras()\nimport keras\nprint(keras.backend.backend())")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "jax", proc.stderr[-2000:]


@pytest.mark.slow
def test_the_jax_backend_trains_without_tensorflow(tmp_path):
    pytest.importorskip("jax")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    tiny = ["--width", "8", "--depth", "1", "--patch-size", "4", "--kernel-size", "3", "--epochs", "1",
            "--batch-size", "50", "--data", "synthetic:200:50"]
    proc = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, "train", *tiny, "--backend", "jax",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done: test accuracy" in proc.stdout
    # and the default backend, missing, is refused in one line naming what to install
    proc = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, "train", *tiny, "--out", str(tmp_path / "t")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "backend 'tensorflow' needs the tensorflow package" in proc.stderr and not (tmp_path / "t").exists()
