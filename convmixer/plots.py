"""Figures and small tables shared by the training and report notebooks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import records


def _plt():
    # Imported lazily: matplotlib picks a headless backend itself when there is no display.
    import matplotlib.pyplot as plt

    return plt


def read_history(run_dir) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / records.HISTORY)


def eval_columns(history: pd.DataFrame) -> tuple[str, str]:
    """The held-out columns a run monitored: validation, or test for recipes without a split."""
    prefix = "val" if "val_accuracy" in history else "test"
    return f"{prefix}_accuracy", f"{prefix}_loss"


def plot_history(run_dir_or_history, title=None, axes=None):
    """Train and held-out accuracy and loss per epoch for one run."""
    plt = _plt()
    h = run_dir_or_history if isinstance(run_dir_or_history, pd.DataFrame) else read_history(run_dir_or_history)
    acc, loss = eval_columns(h)
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    else:
        fig = axes[0].figure
    axes[0].plot(h["epoch"], h["accuracy"], "o-", label="train")
    axes[0].plot(h["epoch"], h[acc], "s-", label=acc.split("_")[0])
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("accuracy")
    axes[1].plot(h["epoch"], h["loss"], "o-", label="train")
    axes[1].plot(h["epoch"], h[loss], "s-", label=loss.split("_")[0])
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def metrics_table(metrics: dict) -> pd.DataFrame:
    """A one-column table of a run's headline metrics, for display in a notebook."""
    keys = ["run_id", "test_accuracy", "selected_epoch", "best_val_accuracy", "trainable_parameters",
            "epochs", "train_images", "seconds_per_epoch", "images_per_second", "git_commit"]
    rows = {k: metrics.get(k) for k in keys}
    rows["device"] = f"{metrics['device']['kind']}: {metrics['device']['name']}" if "device" in metrics else None
    rows["dataset"] = metrics.get("dataset", {}).get("description")
    return pd.DataFrame({"value": pd.Series(rows, dtype=object)})


def trend_plot(runs: pd.DataFrame, x: str, group: str, paper: pd.DataFrame | None = None, ax=None):
    """Test accuracy against ``x`` with one line per ``group``: every seed a point, mean +- std a line.

    ``paper`` (optional) holds the paper's accuracies with the same columns, drawn
    as open markers so that readers can compare shapes, not levels.
    """
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, (g, sub) in enumerate(sorted(runs.groupby(group), key=lambda t: t[0])):
        color = f"C{i}"
        ax.scatter(sub[x], 100 * sub["test_accuracy"], color=color, alpha=0.45, s=18)
        stats = sub.groupby(x)["test_accuracy"].agg(["mean", "std"]).reset_index()
        ax.errorbar(stats[x], 100 * stats["mean"], yerr=100 * stats["std"].fillna(0), color=color,
                    marker="o", capsize=3, label=f"{group.replace('_size', '')} {g}")
        if paper is not None and not paper.empty:
            ref = paper[paper[group] == g].sort_values(x)
            if not ref.empty:
                ax.plot(ref[x], ref["paper_accuracy"], linestyle=":", marker="D", mfc="none", color=color,
                        label=f"paper, {group.replace('_size', '')} {g}")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(sorted(runs[x].unique()))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def mean_std(values) -> str:
    values = np.asarray(values, dtype=float) * 100
    if len(values) == 0:
        return ""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"
