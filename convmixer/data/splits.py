"""Seeded, class-balanced subsets and stratified validation splits."""

from __future__ import annotations

import numpy as np

from .core import DataError


def validation_split(x, y, fraction: float = 0.1, seed: int = 0):
    """Split (x, y) into (x_train, y_train, x_val, y_val), stratified by class.

    Each class contributes ``fraction`` of its examples to validation (largest
    remainder rounding, so the total is exactly round(fraction * N)).  Both parts
    are shuffled with ``np.random.default_rng(seed)``: sources such as the JPEG
    copy are grouped by class, so taking a contiguous tail would be wrong.
    """
    given = fraction
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        fraction = float("nan")  # rejected just below
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction must be in (0, 1), got fraction={given!r}")
    labels = _labels_1d(x, y)
    n = len(labels)
    n_val = int(np.floor(fraction * n + 0.5))
    if not 0 < n_val < n:
        raise DataError(f"validation fraction={fraction} of {n} examples leaves an empty split")

    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    val_counts = _largest_remainder(sizes * fraction, n_val)
    val_parts, train_parts = [], []
    for cls, k in zip(classes, val_counts):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        val_parts.append(idx[:k])
        train_parts.append(idx[k:])
    train_idx = rng.permutation(np.concatenate(train_parts))
    val_idx = rng.permutation(np.concatenate(val_parts))
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def take_subset(x, y, n: int | None, seed: int = 0, *, name: str = "n"):
    """A seeded, class-balanced, shuffled subset of exactly ``n`` examples.

    ``n=None`` returns the inputs unchanged.  Classes get equal shares; a class
    with too few examples gives all it has and the rest is spread over others.
    ``name`` is the parameter the caller exposes (e.g. "train_subset"), for errors.
    """
    if n is None:
        return x, y
    labels = _labels_1d(x, y)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"{name} must be a positive integer, got {n!r}")
    if n > len(labels):
        raise DataError(f"{name}={n} exceeds the {len(labels)} available examples")

    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    counts = _balanced_counts(sizes, int(n), rng)
    parts = [
        rng.permutation(np.flatnonzero(labels == cls))[:k]
        for cls, k in zip(classes, counts)
    ]
    idx = rng.permutation(np.concatenate(parts))
    return x[idx], y[idx]


def _labels_1d(x, y) -> np.ndarray:
    """Labels as a 1-D integer array; accepts (N,) or keras-style (N, 1)."""
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"labels must have shape (N,) or (N, 1), got {np.shape(y)}")
    if len(x) != len(labels):
        raise DataError(f"x has {len(x)} examples but y has {len(labels)} labels")
    return labels


def _largest_remainder(quotas: np.ndarray, total: int) -> np.ndarray:
    """Integer counts close to ``quotas`` that sum to ``total`` (Hamilton's method)."""
    counts = np.floor(quotas).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        order = np.argsort(-(quotas - counts), kind="stable")  # biggest remainders first, ties by class
        counts[order[:short]] += 1
    return counts


def _balanced_counts(sizes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-class counts summing to ``n``, as equal as the class sizes allow (water filling)."""
    counts = np.zeros(len(sizes), dtype=np.int64)
    remaining = n
    while remaining > 0:
        open_classes = np.flatnonzero(counts < sizes)
        share = remaining // len(open_classes)
        if share == 0:
            # Fewer leftovers than classes: a seeded choice of who gets one more.
            counts[rng.permutation(open_classes)[:remaining]] += 1
            break
        for c in open_classes:
            add = min(share, int(sizes[c] - counts[c]))
            counts[c] += add
            remaining -= add
    return counts
