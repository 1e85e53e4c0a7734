"""Per-epoch training inputs for each recipe.

Every random choice of epoch ``e`` (order, flips, augmentation) is drawn from
``(seed, e)`` (and the batch index) alone, never from a generator that lives
across epochs.
That is what lets an interrupted run resume at epoch ``e`` and produce exactly
the history an uninterrupted run would have produced.
"""

from __future__ import annotations

import numpy as np


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, 0xC0FFEE])


def flip_epoch(x, y, seed: int, epoch: int):
    """The ``seed`` recipe: a fresh shuffle and a random horizontal flip of half the images.

    The Keras example also applied ``RandomCrop(32, 32)``, which on 32x32 images
    returns them unchanged, so it is left out (see recipes.DIFFERENCES).
    """
    rng = epoch_rng(seed, epoch)
    order = rng.permutation(len(x))
    flip = rng.random(len(x)) < 0.5
    xe = x[order]  # fancy indexing copies: the caller's array is never modified
    xe[flip] = xe[flip][:, :, ::-1, :]  # NHWC: axis 2 is the width
    return xe, y[order]


def _prefetched(make_batch, count: int):
    """Yield ``make_batch(0..count-1)``, computing batch i+1 in a worker thread while batch i trains.

    numpy releases the GIL in its array loops, so augmentation overlaps the step.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment") as pool:
        pending = pool.submit(make_batch, 0) if count else None
        for i in range(count):
            batch = pending.result()
            pending = pool.submit(make_batch, i + 1) if i + 1 < count else None
            yield batch


def official_epoch(x, y, recipe, seed: int, epoch: int, batch_size: int):
    """The ``official`` recipe: shuffled batches through torchvision's augmentation (``augment.py``).

    Batch ``i`` of epoch ``e`` draws its augmentation from ``(seed, e, i)`` alone,
    so a batch is the same whether or not the run was resumed.
    """
    from .augment import official_augment

    order = epoch_rng(seed, epoch).permutation(len(x))
    starts = list(range(0, len(x), batch_size))

    def make_batch(i):
        index = order[starts[i]:starts[i] + batch_size]
        rng = np.random.default_rng([seed, epoch, i, 0xA06])
        return official_augment(x[index], rng, recipe), y[index]

    return _prefetched(make_batch, len(starts))
