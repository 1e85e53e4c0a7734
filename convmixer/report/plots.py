"""The report's figures (a run's own curves and metrics, for the train notebook, are in training/show.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..training.show import eval_columns


def _plt():
    # Imported lazily: matplotlib picks a headless backend itself when there is no display.
    import matplotlib.pyplot as plt

    return plt


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


# Report figures are drawn at the width the page shows them: html.figure saves them at html.FIGURE_DPI (110)
# and never wider than the content column, so the browser does not scale them and a font of N points is
# N * 110 / 72 pixels on screen (7 points: 10.7 px). REPORT_RC sets every text of a report figure to at
# least MIN_FONT_PT; tests walk each figure's texts to check it.
REPORT_WIDTH_IN = 9.6  # 1,056 px at 110 dpi: the content column of a 1280 px window
MIN_FONT_PT = 7
REPORT_RC = {"font.size": 8.5, "axes.titlesize": 9, "axes.labelsize": 8.5, "xtick.labelsize": 8,
             "ytick.labelsize": 8, "legend.fontsize": 7.5, "legend.title_fontsize": 8, "figure.titlesize": 9.5}
VERDICT_COLORS = {"consistent with the claim": "#1a7f37", "contradicts the claim": "#b42318",
                  "inconclusive": "#6e7781", "not tested": "#6e7781"}


def report_style(func):
    """Draw ``func``'s figure with REPORT_RC (the sizes are fixed when a text is created)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _plt().rc_context(REPORT_RC):
            return func(*args, **kwargs)

    return wrapper


def _integer_epochs(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


@report_style
def forest_figure(panels: list[dict]):
    """Every claim's effects with their 95% intervals: a panel per claim, a row per contrast, a zero line.

    ``panels`` holds, per claim: ``title``, ``xlabel``, ``sign`` (+1 when the claim predicts a positive
    effect, -1 a negative one: that side of zero is shaded), ``empty`` (said when there is no row) and
    ``rows``: dicts with label, effect, ci_low, ci_high (None when not estimable), verdict, ``lead`` (the
    contrast the verdict rests on: bold) and ``published`` (a published value without an interval: an open
    diamond). Panels stand side by side, their rows from the top.
    """
    plt = _plt()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    rows_max = max(max(len(p["rows"]), 1) for p in panels)
    # A row per contrast, 0.19 in (21 px) each, panels side by side; the first (claim 1, longer labels) wider.
    fig, axes = plt.subplots(1, len(panels), figsize=(REPORT_WIDTH_IN, 0.19 * rows_max + 1.0), layout="constrained",
                             width_ratios=[1.3] + [1] * (len(panels) - 1), squeeze=False)
    axes = list(axes[0])
    verdicts_shown, published_shown = set(), False
    for ax, panel in zip(axes, panels):
        rows = panel["rows"]
        ax.set_title(panel["title"], loc="left")
        ax.axvline(0, color="black", lw=0.9)
        if not rows:
            ax.text(0.5, 0.5, panel.get("empty", "not tested"), transform=ax.transAxes, ha="center", va="center",
                    wrap=True)
            ax.set_yticks([])
            ax.set_xticks([])
            continue
        y = rows_max - 1 - np.arange(len(rows))
        for yi, r in zip(y, rows):
            color = VERDICT_COLORS.get(r["verdict"], "#6e7781")
            if r["effect"] is None:
                ax.text(0, yi, " not estimable", va="center", color=color)
                continue
            if r.get("published"):
                ax.plot(r["effect"], yi, marker="D", mfc="white", mec="black", ms=6, ls="none")
                published_shown = True
                continue
            verdicts_shown.add(r["verdict"])
            if r["ci_low"] is None:
                ax.plot(r["effect"], yi, "o", color=color, ms=5)
            else:
                ax.errorbar(r["effect"], yi, xerr=[[r["effect"] - r["ci_low"]], [r["ci_high"] - r["effect"]]],
                            fmt="o", color=color, ms=5.5 if r.get("lead") else 4.5, capsize=2.5,
                            lw=2 if r.get("lead") else 1.2)
        ax.set_yticks(y)
        ax.set_yticklabels([r["label"] for r in rows])
        for tick, r in zip(ax.get_yticklabels(), rows):
            if r.get("lead"):
                tick.set_fontweight("bold")
        ax.set_ylim(-0.6, rows_max - 0.4)  # rows of every panel the same height, from the top
        low, high = ax.get_xlim()
        span = high - low
        low, high = min(low, -0.06 * span), max(high, 0.06 * span)  # zero always inside, with room
        ax.axvspan(0, high if panel.get("sign", 1) > 0 else low, color="#1a7f37", alpha=0.07, lw=0)
        ax.set_xlim(low, high)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.set_xlabel(panel["xlabel"])
        ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], marker="o", ls="-", color=VERDICT_COLORS[v], label=v)
               for v in VERDICT_COLORS if v in verdicts_shown]
    if published_shown:
        handles.append(Line2D([], [], marker="D", mfc="white", mec="black", ls="none",
                              label="the paper's 200-epoch effect (one run per cell)"))
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#1a7f37", alpha=0.15, label="the direction the claim predicts"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=8)
    return fig


@report_style
def trend_grid(panels, x: str, group: str, columns: int = 4):
    """Accuracy against ``x`` for several setups side by side: a panel per setup (``panels``: (title,
    runs, paper or None)), drawn by ``trend_plot``; levels differ by setup, so each panel has its own scale."""
    plt = _plt()
    cols = min(columns, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(min(REPORT_WIDTH_IN, 2.45 * cols + 0.4), 2.7 * rows + 0.1),
                             squeeze=False)
    for ax, (title, runs, paper) in zip(axes.ravel(), panels):
        trend_plot(runs, x, group, paper=paper, ax=ax)
        ax.set_title(_wrap(title, 40), fontsize=8)
        ax.legend(fontsize=7)
        ax.set_xlabel(x.replace("_", " "))
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax in axes.ravel()[1:]:
        if ax not in axes[:, 0]:
            ax.set_ylabel("")
    fig.tight_layout()
    return fig


@report_style
def learning_overview(setups, columns: int = 3):
    """Every setup's learning at a glance: a panel per setup, a line per configuration (held-out accuracy
    per epoch, mean over seeds), colour by kernel size, line style by patch size.

    ``setups``: list of (panel title, [(patch, kernel, [history, ...])]).
    """
    plt = _plt()
    from matplotlib.lines import Line2D

    kernels = sorted({k for _, cells in setups for _, k, _ in cells})
    patches = sorted({p for _, cells in setups for p, _, _ in cells})
    cmap = plt.get_cmap("viridis")
    colors = {k: cmap(0.85 * i / max(len(kernels) - 1, 1)) for i, k in enumerate(kernels)}
    styles = dict(zip(patches, ["-", "--", ":", "-."] * 4))
    cols = min(columns, len(setups))
    rows = -(-len(setups) // cols)
    height = 2.45 * rows + 0.45
    fig, axes = plt.subplots(rows, cols, figsize=(min(REPORT_WIDTH_IN, 3.2 * cols + 0.4), height), squeeze=False)
    for ax, (title, cells) in zip(axes.ravel(), setups):
        held = set()
        for p, k, histories in cells:
            frames = []
            for h in histories:
                acc, _ = eval_columns(h)
                held.add(acc.split("_")[0])
                frames.append(pd.DataFrame({"epoch": h["epoch"].astype(int), "acc": 100 * h[acc].astype(float)}))
            mean = pd.concat(frames).groupby("epoch")["acc"].mean()
            ax.plot(mean.index, mean.to_numpy(), color=colors[k], ls=styles[p], lw=1.4, marker="o", ms=2.5)
        ax.set_title(_wrap(title, 48), fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{' / '.join(sorted(held))} accuracy (%)")
        ax.grid(alpha=0.3)
        _integer_epochs(ax)
    for ax in axes.ravel()[len(setups):]:
        ax.axis("off")
    handles = ([Line2D([], [], color=colors[k], lw=2, label=f"kernel {k}") for k in kernels]
               + [Line2D([], [], color="black", ls=styles[p], label=f"patch {p}") for p in patches])
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.32 / height, 1, 1))
    return fig


@report_style
def learning_curves_grid(cells, title=None, columns=4):
    """Small multiples for one setup: a panel per configuration, held-out (solid) and train (dashed)
    accuracy per epoch, one colour per seed. ``cells`` is a list of (panel title, [(seed label, history)])."""
    plt = _plt()
    rows = -(-len(cells) // columns)
    cols = min(columns, len(cells))
    fig, axes = plt.subplots(rows, cols, figsize=(min(REPORT_WIDTH_IN, 2.4 * cols + 0.6), 2.2 * rows + 0.8),
                             sharey=True, squeeze=False)
    held_out = set()
    for ax, (panel, histories) in zip(axes.ravel(), cells):
        for i, (label, h) in enumerate(histories):
            acc, _ = eval_columns(h)
            held_out.add(acc.split("_")[0])
            ax.plot(h["epoch"], 100 * h[acc], "-", color=f"C{i % 10}", lw=1.2, label=label)
            ax.plot(h["epoch"], 100 * h["accuracy"], "--", color=f"C{i % 10}", lw=0.8, alpha=0.6)
        ax.set_title(panel, fontsize=8)
        ax.grid(alpha=0.3)
        _integer_epochs(ax)
    for ax in axes.ravel()[len(cells):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7)
    head = f"solid: {' / '.join(sorted(held_out))}, dashed: train"
    fig.suptitle(_wrap(f"{title}\n{head}" if title else head, 110), fontsize=8.5)
    fig.tight_layout()
    return fig


@report_style
def logged_curve_figure(curve: dict):
    """Ours per epoch (a line per seed) against a logged run's printed accuracies (black, dashed): held-out
    (test or validation) accuracy on the left, on the augmented training images on the right
    (``curves.logged_curves``); runs with one recipe field changed dotted, in their seed's colour."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(REPORT_WIDTH_IN, 3.3), sharey=True, layout="constrained")
    log_epochs = range(1, len(curve["log_held_out"]) + 1)
    for ax, ours_key, log_key, title in ((axes[0], "held_out", "log_held_out", f"{curve['held_out']} accuracy"),
                                         (axes[1], "train", "log_train", "accuracy on the augmented training images")):
        ax.plot(log_epochs, curve[log_key], "--", color="black", lw=1.4, label=f"{curve['source_name']} (one run)")
        for run in curve["ours"]:  # coloured by seed, so a seed's run with one change has its colour
            ax.plot(range(1, len(run[ours_key]) + 1), run[ours_key], "-", marker="o", ms=2.5, lw=1.2,
                    color=f"C{run['seed'] % 10}", label=f"ours, seed {run['seed']}")
        for run in curve.get("variants", []):
            ax.plot(range(1, len(run[ours_key]) + 1), run[ours_key], ":", marker="^", ms=2.5, lw=1.2,
                    color=f"C{run['seed'] % 10}", label=f"with {run['words']}, seed {run['seed']}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        _integer_epochs(ax)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(loc="lower right")
    fig.suptitle(_wrap(curve["setting"], 110))
    return fig


@report_style
def published_trends_figure(series):
    """This project's trends beside the published ones, as accuracy change from each series' first point.

    ``series`` is a list of dicts with keys axis ("kernel_size"/"patch_size"), label,
    x (values), y (accuracy, %), kind ("ours", "paper", "reference report").
    Levels differ by budget, so each line starts at 0: the shapes are what compare.
    """
    plt = _plt()
    most = max([sum(s["axis"] == a for s in series) for a in ("kernel_size", "patch_size")] + [0])
    legend_in = 0.19 * -(-most // 2)  # two columns of legend entries below each panel
    fig, axes = plt.subplots(1, 2, figsize=(REPORT_WIDTH_IN, 3.0 + legend_in), layout="constrained")
    styles = {"ours": dict(marker="o", linestyle="-"), "paper": dict(marker="D", linestyle=":", mfc="none"),
              "reference report": dict(marker="s", linestyle="--", mfc="none")}
    for ax, axis in zip(axes, ("kernel_size", "patch_size")):
        lines = [s for s in series if s["axis"] == axis]
        for i, s in enumerate(lines):
            order = np.argsort(s["x"])
            x, y = np.asarray(s["x"])[order], np.asarray(s["y"], dtype=float)[order]
            ax.plot(x, y - y[0], color=f"C{i % 10}", label=f"{s['kind']}: {s['label']}", **styles[s["kind"]])
        ax.axhline(0, color="k", lw=0.6)
        if lines:
            ax.set_xticks(sorted({int(v) for s in lines for v in s["x"]}))
        ax.set_xlabel(axis.replace("_", " "))
        ax.set_ylabel("change from the first point (points)")
        ax.grid(alpha=0.3)
        if lines:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    return fig


@report_style
def timing_figure(bars: pd.DataFrame, groups: dict):
    """Seconds per training epoch, a horizontal bar each (log scale), like the reference report's Figure 3.

    ``bars`` (``cost.timing_bars``): label, seconds, slowest (NaN unless measured here over several runs:
    drawn as a whisker), published (hatched), group (a key of ``groups``, whose value is the legend's text
    for that setting; bars of one colour trained the same model and settings; grey: another setting).
    """
    plt = _plt()
    from matplotlib.patches import Patch

    keys = list(groups)
    fig, ax = plt.subplots(figsize=(REPORT_WIDTH_IN, 0.4 * len(bars) + 0.6 + 0.22 * (len(groups) + 1)))
    y = np.arange(len(bars))[::-1]
    top = float(np.nanmax(np.r_[bars["seconds"].to_numpy(float), bars["slowest"].to_numpy(float)]))
    for yi, b in zip(y, bars.itertuples(index=False)):
        color = f"C{keys.index(b.group)}" if b.group in keys else "#9aa0a6"
        if b.published:
            ax.barh(yi, b.seconds, height=0.62, facecolor="white", edgecolor=color, hatch="///", lw=1.2)
        else:
            ax.barh(yi, b.seconds, height=0.62, color=color)
        end, value = b.seconds, f"{b.seconds:,.1f} s" if b.seconds < 100 else f"{b.seconds:,.0f} s"
        if not b.published and np.isfinite(b.slowest) and b.slowest > b.seconds:
            ax.plot([b.seconds, b.slowest], [yi, yi], color="black", lw=1)
            ax.plot([b.slowest], [yi], marker="|", color="black", ms=8)
            end, value = b.slowest, value + f" (slowest run {b.slowest:,.0f} s)"
        ax.text(end * 1.12, yi, value, va="center")
    ax.set_xscale("log")
    low = float(np.nanmin(bars["seconds"].to_numpy(float)))
    ax.set_xlim(low / 2, top * 5)  # room for the values right of the bars
    ax.set_yticks(y)
    ax.set_yticklabels([_wrap(label, 48) for label in bars["label"]])
    ax.set_ylim(-0.6, len(bars) - 0.4)
    ax.set_xlabel("seconds per training epoch (log scale)")
    ax.grid(axis="x", alpha=0.3, which="both")
    handles = [Patch(color=f"C{i}", label=_wrap(text, 120)) for i, text in enumerate(groups.values())]
    if any(b not in keys for b in bars["group"]):
        handles.append(Patch(color="#9aa0a6", label="another model or setting"))
    handles += [Patch(facecolor="white", edgecolor="black", hatch="///", label="published, not measured here"),
                Patch(facecolor="#555",
                      label="measured here: solid (the fastest run; the whisker reaches the slowest)")]
    fig.legend(handles=handles, loc="lower left", ncol=1, frameon=False, bbox_to_anchor=(0.0, 0.0))
    fig.tight_layout(rect=(0, 0.22 * len(handles) / fig.get_size_inches()[1], 1, 1))
    return fig


@report_style
def compute_accuracy_figure(runs: pd.DataFrame):
    """Total training seconds (log) against test accuracy, one colour per setup, marker per device kind."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.2, 3.6))
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
        ax.tick_params(axis="x", which="minor", labelsize=7.5)
    ax.set_xlabel("total training seconds per run (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


@report_style
def architecture_figure(runs: pd.DataFrame, parameters: dict, names: dict, macs: dict):
    """Claim 1: test accuracy against parameter count, multiply-adds per image and seconds per epoch, a point
    per run.

    ``runs`` are completed runs; ``parameters``, ``macs`` and ``names`` map a run's index to its parameter
    count, its multiply-adds per image and its model name (one marker and colour per model).
    """
    plt = _plt()
    models = sorted(set(names.values()))
    rows = -(-len(models) // 2)
    height = 3.0 + 0.2 * rows
    fig, axes = plt.subplots(1, 3, figsize=(REPORT_WIDTH_IN, height), sharey=True)
    for i, model in enumerate(models):
        part = runs[[names[j] == model for j in runs.index]]
        acc = 100 * part["test_accuracy"].astype(float)
        style = dict(color=f"C{i % 10}", marker="osD^vP*X"[i % 8], alpha=0.8, label=model)
        axes[0].scatter([parameters[j] for j in part.index], acc, **style)
        axes[1].scatter([macs[j] / 1e6 if macs[j] else np.nan for j in part.index], acc, **style)
        axes[2].scatter(part["seconds_per_epoch"].astype(float), acc, **style)
    axes[0].set_xlabel("trainable parameters")
    axes[1].set_xlabel("multiply-adds per image, millions")
    axes[2].set_xlabel("seconds per training epoch (here)")
    axes[0].set_ylabel("test accuracy (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
    # Below the panels, not inside one: any corner of a panel may hold points.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, (0.2 * rows + 0.1) / height, 1, 1))
    return fig
