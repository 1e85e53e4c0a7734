"""Where the repository is, and how a record names a local file, for the data sources and the records
alike (no imports from the package)."""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def portable_path(source) -> str:
    """How a record names a local file: relative to the repository when inside it, else by file name.

    Records never hold a machine's absolute paths; the data fingerprint, not the
    path, says which data a run used. Named sources ("cifar10", "synthetic:...") pass through.
    """
    text = str(source)
    if not os.path.isabs(text):
        return text
    try:
        return Path(text).resolve().relative_to(REPOSITORY).as_posix()
    except ValueError:
        return Path(text).name
