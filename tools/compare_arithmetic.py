"""Does this checkout train a setting with another checkout's arithmetic, bit for bit?

    CONVMIXER_DATA=PATH python tools/compare_arithmetic.py OTHER_CHECKOUT [train options]

A grid runs from a clean checkout of one commit, so that every run of a row comes
from one code. Moving a grid that is under way to a newer commit is safe only if
the newer code trains its settings with the same arithmetic. This trains one
short run of the setting in each checkout (by default the paper-scale grid's
ConvMixer-256/8 p2 k5 with the official-logged recipe: one epoch on 1,024
training images, tested on 512) and compares the saved weights array by array
and the history's losses, accuracies and learning rates exactly. Exit status 0
when everything is identical, 1 when anything differs (what differs is named).
Extra options go to ``python -m convmixer train`` in both checkouts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_RUN = ["--width", "256", "--depth", "8", "--patch-size", "2", "--kernel-size", "5",
               "--recipe", "official-logged", "--epochs", "1", "--train-subset", "1024", "--test-subset", "512"]
COMPARED = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "lr")


def train_in(checkout: Path, out: Path, options: list[str]) -> None:
    # `python -m` puts the working directory first on sys.path: the checkout's own package trains.
    proc = subprocess.run([sys.executable, "-m", "convmixer", "train", *options, "--out", str(out)], cwd=checkout,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"compare_arithmetic: training in {checkout} failed: {proc.stderr.strip()[-2000:]}")


def weights(path: Path) -> dict:
    import h5py

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


def differences(a: Path, b: Path) -> list[str]:
    """What differs between two run folders' weights and histories (empty: identical)."""
    import numpy as np
    import pandas as pd

    wa, wb = weights(a / "model.weights.h5"), weights(b / "model.weights.h5")
    found = [f"weights: arrays only in one run: {sorted(set(wa) ^ set(wb))}"] if wa.keys() != wb.keys() else []
    differ = [name for name in sorted(set(wa) & set(wb)) if not np.array_equal(wa[name], wb[name])]
    if differ:
        largest = max(float(np.max(np.abs(wa[name] - wb[name]))) for name in differ)
        found.append(f"weights: {len(differ)} of {len(wa)} arrays differ (largest |difference| {largest:.3g}; "
                     f"first {', '.join(differ[:3])})")
    ha, hb = pd.read_csv(a / "history.csv"), pd.read_csv(b / "history.csv")
    for column in COMPARED:
        if (column in ha) != (column in hb):
            found.append(f"history: {column} only in one run")
        elif column in ha and not ha[column].equals(hb[column]):
            found.append(f"history: {column} differs ({ha[column].tolist()} against {hb[column].tolist()})")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (e.g. the grid's worktree)")
    args, options = parser.parse_known_args(argv)
    if not (args.other / "convmixer" / "__main__.py").is_file():
        parser.error(f"{args.other} is not a checkout of this project (no convmixer/__main__.py)")
    if not os.environ.get("CONVMIXER_DATA"):
        print("compare_arithmetic: CONVMIXER_DATA is not set: the default data source is used", file=sys.stderr)
    options = DEFAULT_RUN + options  # a later option wins
    with tempfile.TemporaryDirectory() as scratch:
        here, there = Path(scratch) / "here", Path(scratch) / "other"
        train_in(REPOSITORY, here, options)
        train_in(args.other.resolve(), there, options)
        found = differences(here, there)
    print("\n".join(found) if found else f"identical: {' '.join(options)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
