"""Figures and small tables shared by the training and report notebooks."""

from __future__ import annotations

import numpy as np
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
        stats = sub.groupby(x).agg(mean=("test_accuracy", "mean"), std=("test_accuracy", "std"),
                                   n_test=("test_images", "max")).reset_index()
        ax.errorbar(stats[x], 100 * stats["mean"], yerr=100 * stats["std"].fillna(0), color=color,
                    marker="o", capsize=3, label=f"{group.replace('_size', '')} {g}")
        # Test-set noise floor: one run's binomial standard error on its test set, around the mean.
        n_test = pd.to_numeric(stats["n_test"], errors="coerce").astype(float)
        se = 100 * np.sqrt(stats["mean"] * (1 - stats["mean"]) / n_test)
        if se.notna().all():
            ax.fill_between(stats[x].astype(float), 100 * stats["mean"] - se, 100 * stats["mean"] + se,
                            color=color, alpha=0.15, linewidth=0)
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


# --------------------------------------------------------------------------- report figures

def _wrap(text, width=60):
    import textwrap

    return "\n".join(textwrap.wrap(str(text), width)) if text else text


def plot_learning_curves(histories, title=None):
    """Overlay several runs of one configuration (e.g. its seeds): accuracy and loss per epoch.

    ``histories`` is a list of (label, history DataFrame). Train is solid, held-out
    (validation, or test for recipes without a split) dashed, one colour per run.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    held_out = set()
    for i, (label, h) in enumerate(histories):
        acc, loss = eval_columns(h)
        held_out.add(acc.split("_")[0])
        color = f"C{i % 10}"
        axes[0].plot(h["epoch"], 100 * h["accuracy"], "-", marker="o", ms=3, color=color, label=f"{label} train")
        axes[0].plot(h["epoch"], 100 * h[acc], "--", marker="s", ms=3, color=color,
                     label=f"{label} {acc.split('_')[0]}")
        axes[1].plot(h["epoch"], h["loss"], "-", marker="o", ms=3, color=color)
        axes[1].plot(h["epoch"], h[loss], "--", marker="s", ms=3, color=color)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].set_ylabel("loss")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        epochs = sorted({int(e) for _, h in histories for e in h["epoch"]})
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
    axes[0].legend(fontsize=7, ncol=1 if len(histories) <= 3 else 2)
    axes[1].set_title(f"solid: train, dashed: {' / '.join(sorted(held_out))}", fontsize=8)
    if title:
        fig.suptitle(_wrap(title, 90), fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves_grid(cells, title=None, columns=4):
    """Small multiples for one setup: a panel per configuration, held-out (solid) and train (dashed)
    accuracy per epoch, one colour per seed. ``cells`` is a list of (panel title, [(seed label, history)])."""
    plt = _plt()
    rows = -(-len(cells) // columns)
    cols = min(columns, len(cells))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 0.6, 2.3 * rows + 0.8), sharey=True, squeeze=False)
    held_out = set()
    for ax, (panel, histories) in zip(axes.ravel(), cells):
        for i, (label, h) in enumerate(histories):
            acc, _ = eval_columns(h)
            held_out.add(acc.split("_")[0])
            ax.plot(h["epoch"], 100 * h[acc], "-", color=f"C{i % 10}", lw=1.2, label=label)
            ax.plot(h["epoch"], 100 * h["accuracy"], "--", color=f"C{i % 10}", lw=0.8, alpha=0.6)
        ax.set_title(panel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(cells):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    head = f"solid: {' / '.join(sorted(held_out))}, dashed: train"
    fig.suptitle(_wrap(f"{title}\n{head}" if title else head, 110), fontsize=9)
    fig.tight_layout()
    return fig


def published_trends_figure(series):
    """This project's trends beside the published ones, as accuracy change from each series' first point.

    ``series`` is a list of dicts with keys axis ("kernel_size"/"patch_size"), label,
    x (values), y (accuracy, %), kind ("ours", "paper", "reference report").
    Levels differ by budget, so each line starts at 0: the shapes are what compare.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = {"ours": dict(marker="o", linestyle="-"), "paper": dict(marker="D", linestyle=":", mfc="none"),
              "reference report": dict(marker="s", linestyle="--", mfc="none")}
    for ax, axis in zip(axes, ("kernel_size", "patch_size")):
        lines = [s for s in series if s["axis"] == axis]
        for i, s in enumerate(lines):
            order = np.argsort(s["x"])
            x, y = np.asarray(s["x"])[order], np.asarray(s["y"], dtype=float)[order]
            ax.plot(x, y - y[0], color=f"C{i % 10}", label=f"{s['kind']}: {s['label']}", **styles[s["kind"]])
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel(axis.replace("_", " "))
        ax.set_ylabel("accuracy change from the first point (points)")
        ax.grid(alpha=0.3)
        if lines:
            ax.legend(fontsize=6.5)
    fig.tight_layout()
    return fig


def trend_figure(runs: pd.DataFrame, x: str, group: str, paper: pd.DataFrame | None = None, title=None):
    """One comparable setup's accuracy against ``x`` (one line per ``group`` value), as a figure."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    trend_plot(runs, x, group, paper=paper, ax=ax)
    if title:
        ax.set_title(_wrap(title, 70), fontsize=9)
    fig.tight_layout()
    return fig


def cost_figure(cost: pd.DataFrame, marks: pd.DataFrame | None, projected_column: str):
    """Projected seconds per full epoch (log scale, with the reference marks) and images/second.

    ``cost`` is ``cost.cost_table``; ``marks`` is ``cost.reference_marks``
    (columns seconds_per_epoch, label), drawn as labelled horizontal lines.
    """
    plt = _plt()
    labels = [f"{s}: {c.replace('ConvMixer-', '')}\n{d}" for s, c, d in
              zip(cost["setup"], cost["configuration"], cost["device"])]
    devices = sorted(cost["device"].unique())
    colors = [f"C{devices.index(d) % 10}" for d in cost["device"]]
    fig, axes = plt.subplots(2, 1, figsize=(max(6.4, 0.9 * len(cost) + 2), 7.2))
    pos = np.arange(len(cost))
    axes[0].bar(pos, cost[projected_column], color=colors, log=True)
    axes[0].set_ylabel(projected_column.replace("projected s per ", "seconds per\n") + " (projected)")
    if marks is not None:
        for j, (seconds, label) in enumerate(zip(marks["seconds_per_epoch"], marks["label"])):
            axes[0].axhline(seconds, color="k", linestyle=(0, (4, 2 + 2 * j)), linewidth=1)
            axes[0].annotate(label, (0, seconds), xycoords=("axes fraction", "data"), xytext=(4, 3),
                             textcoords="offset points", fontsize=8)
    top = max([float(np.nanmax(cost[projected_column]))] + ([] if marks is None else list(marks["seconds_per_epoch"])))
    axes[0].set_ylim(top=top * 3)  # room for the mark labels above the highest line
    axes[1].bar(pos, cost["images per second"], color=colors)
    axes[1].set_ylabel("training images / second")
    if len(devices) > 1:
        from matplotlib.patches import Patch

        axes[1].legend(handles=[Patch(color=f"C{i % 10}", label=d) for i, d in enumerate(devices)], fontsize=8)
    for ax in axes:
        ax.set_xticks(pos)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def compute_accuracy_figure(runs: pd.DataFrame):
    """Total training seconds (log) against test accuracy, one colour per setup, marker per device kind."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    # Marker per device and training loop, so runs of different loops are never drawn as one kind.
    kinds = sorted(set(runs["device_kind"].fillna("?").astype(str) + ", " + runs["train_loop"].fillna("?").astype(str)))
    markers = dict(zip(kinds, "osD^vP*X"))
    for i, (setup, sub) in enumerate(runs.groupby("setup", sort=True)):
        keys = sub["device_kind"].fillna("?").astype(str) + ", " + sub["train_loop"].fillna("?").astype(str)
        for kind, part in sub.groupby(keys):
            ax.scatter(part["total_train_seconds"].astype(float), 100 * part["test_accuracy"].astype(float),
                       color=f"C{i % 10}", marker=markers.get(kind, "x"), alpha=0.75, label=f"setup {setup}, {kind}")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    seconds = runs["total_train_seconds"].astype(float)
    if len(seconds) and seconds.max() < 20 * seconds.min():  # under ~a decade: label the minor ticks too
        ax.xaxis.set_minor_formatter(plain)
        ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("total training seconds per run (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def architecture_figure(runs: pd.DataFrame, parameters: dict, names: dict, macs: dict):
    """Claim 1: test accuracy against parameter count, multiply-adds per image and seconds per epoch, a point
    per run.

    ``runs`` are completed runs; ``parameters``, ``macs`` and ``names`` map a run's index to its parameter
    count, its multiply-adds per image and its model name (one marker and colour per model).
    """
    plt = _plt()
    models = sorted(set(names.values()))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6 + 0.3 * -(-len(models) // 3)), sharey=True)
    for i, model in enumerate(models):
        part = runs[[names[j] == model for j in runs.index]]
        acc = 100 * part["test_accuracy"].astype(float)
        style = dict(color=f"C{i % 10}", marker="osD^vP*X"[i % 8], alpha=0.8, label=_wrap(model, 40))
        axes[0].scatter([parameters[j] for j in part.index], acc, **style)
        axes[1].scatter([macs[j] / 1e6 if macs[j] else np.nan for j in part.index], acc, **style)
        axes[2].scatter(part["seconds_per_epoch"].astype(float), acc, **style)
    axes[0].set_xlabel("trainable parameters (computed here)")
    axes[1].set_xlabel("multiply-adds per image, millions (computed here)")
    axes[2].set_xlabel("seconds per training epoch (this machine)")
    axes[0].set_ylabel("test accuracy (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
    # Below the panels, not inside one: any corner of a panel may hold points.
    handles, labels = axes[0].get_legend_handles_labels()
    rows = -(-len(models) // 3)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.07 * rows, 1, 1))
    return fig
