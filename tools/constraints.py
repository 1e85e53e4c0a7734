"""Write constraints.txt: the exact library versions that produced the committed results.

Each completed record in results/runs/ names the versions it ran with (metrics.json "versions":
python, keras, numpy and its backend). ``make`` installs with ``pip install -c constraints.txt``, so
a fresh environment gets those versions. Run it after new results: ``python tools/constraints.py``
(``--check`` exits 1 when constraints.txt differs from what the records say, as a test does).
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convmixer import records  # noqa: E402

CONSTRAINTS = ROOT / "constraints.txt"
NOT_PACKAGES = ("python",)  # recorded, but not something pip installs


def recorded_versions(results=ROOT / "results") -> tuple[dict[str, set[str]], int]:
    """{package: {versions}} over every completed record, and how many records there were."""
    seen, n = defaultdict(set), 0
    for run_dir in sorted((Path(results) / "runs").glob("*")):
        check = records.validate_record(run_dir)
        if check.state != "completed":
            continue
        n += 1
        for package, version in (check.metrics.get("versions") or {}).items():
            seen[package].add(str(version))
    return seen, n


def constraints_text(results=ROOT / "results") -> str:
    seen, _ = recorded_versions(results)
    mixed = {p: sorted(v) for p, v in seen.items() if len(v) > 1}
    if mixed:
        raise SystemExit(f"the records ran with more than one version of {mixed}: one constraints file cannot "
                         "reproduce them all; say which in constraints.txt by hand")
    pythons = ", ".join(sorted(seen.get("python", {"unknown"})))
    lines = [
        "# The exact versions that produced the committed results: metrics.json \"versions\" of every "
        f"completed record in results/runs/ (Python {pythons}).",
        "# make installs with `pip install -c constraints.txt`; written by python tools/constraints.py.",
    ]
    lines += [f"{p}=={next(iter(v))}" for p, v in sorted(seen.items()) if p not in NOT_PACKAGES]
    return "\n".join(lines) + "\n"


def main(argv) -> int:
    text = constraints_text()
    if "--check" in argv:
        if CONSTRAINTS.read_text(encoding="utf-8") != text:
            print("constraints.txt differs from the records' versions: run python tools/constraints.py")
            return 1
        return 0
    CONSTRAINTS.write_text(text, encoding="utf-8")
    print(f"wrote {CONSTRAINTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
