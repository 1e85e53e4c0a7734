"""Each fact in its room: the modules named here take what they share from a module both sides may
import, not from a sibling stage's internals."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """The absolute names of the convmixer modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}
    return {n for n in names if n.startswith("convmixer")}


@pytest.mark.parametrize("module,not_from", [
    ("convmixer/bench.py", "convmixer.report"),
    ("convmixer/data/loading.py", "convmixer.records"),
    ("convmixer/training/augment.py", "convmixer.models"),
    ("convmixer/sweep/main.py", "convmixer.training.session"),
    ("convmixer/sweep/plan.py", "convmixer.training.session"),
    ("notebooks/train.py", "convmixer.report"),
])
def test_shared_facts_come_from_their_own_room(module, not_from):
    reached = {n for n in imported_modules(ROOT / module) if n == not_from or n.startswith(not_from + ".")}
    assert not reached, f"{module} imports {sorted(reached)}"


def test_the_helper_sees_relative_imports():
    assert {"convmixer.cifar10", "convmixer.cifar10.CIFAR10_MEAN"} <= imported_modules(
        ROOT / "convmixer" / "training" / "augment.py")
