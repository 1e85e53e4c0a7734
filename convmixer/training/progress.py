"""A progress bar within each epoch, where there is a terminal or a notebook widget to show it."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import time

def _in_notebook_with_widgets() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return False
    return (shell is not None and "IPKernelApp" in getattr(shell, "config", {})
            and importlib.util.find_spec("ipywidgets") is not None)


def progress_wanted(progress) -> bool:
    """Show the within-epoch bar? ``None``: in a terminal, or in a notebook that can show a widget.

    Not in logs, pipes or notebooks without ipywidgets: a text bar there would
    append a line per update (papermill logs every output of the kernel).
    """
    if progress is not None:
        return bool(progress)
    if os.environ.get("CONVMIXER_PROGRESS") in ("0", "1"):
        return os.environ["CONVMIXER_PROGRESS"] == "1"
    return sys.stderr.isatty() or _in_notebook_with_widgets()


def batches_with_progress(xe, ye, batch_size, *, epoch, epochs, n_images, stream=None):
    """The epoch's batches (the same slices the step takes) behind a tqdm bar: batches, images/s, time left.

    Updated at most twice a second; the bar is removed at the end of the epoch,
    whose one summary line stays.
    """
    from tqdm.auto import tqdm

    steps = math.ceil(n_images / batch_size)
    if ye is None:
        batches = xe  # already (images, labels) batches
    else:
        images, labels = xe, ye
        batches = ((images[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(labels), batch_size))
    bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False, mininterval=0.5,
               file=stream or sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def generate():
        start = shown = time.perf_counter()
        try:
            for done, batch in enumerate(batches, start=1):
                yield batch
                now = time.perf_counter()
                if now - shown >= 0.5:  # the images/s text only when the bar is about to redraw
                    bar.set_postfix_str(f"{done * batch_size / (now - start):,.0f} img/s", refresh=False)
                    shown = now
                bar.update(1)
        finally:
            bar.close()

    return generate()
