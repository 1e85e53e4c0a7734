"""What the train notebook shows of its run: the learning curves and the headline metrics."""

from __future__ import annotations

import pandas as pd

from .. import records


def _plt():
    # Imported lazily: matplotlib picks a headless backend itself when there is no display.
    import matplotlib.pyplot as plt

    return plt


def read_history(run_dir) -> pd.DataFrame:
    return records.RunRecord(run_dir).history()


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
