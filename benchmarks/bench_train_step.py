"""Training throughput of ConvMixer on this machine: model.fit versus the compiled custom step.

Usage: python benchmarks/bench_train_step.py [--width 256 --depth 8 --patch-size 2 --kernel-size 5]
                                             [--images 1024] [--batch-size 128] [--modes fit,step]
Prints one JSON line per mode: steady-state training images/second (first pass,
which traces the graph, excluded). Results go in benchmarks/README.md by hand
with the date and machine; this is a measurement, not a test.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import convmixer  # noqa: F401  (first: turns on oneDNN before TensorFlow is imported)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=2)
    p.add_argument("--kernel-size", type=int, default=5)
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--modes", default="fit,step")
    a = p.parse_args()

    import keras
    import tensorflow as tf

    from convmixer.model import build_convmixer
    from convmixer.records import cpu_name

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (a.images, 32, 32, 3)).astype("uint8")
    y = rng.integers(0, 10, a.images)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    from convmixer.steps import make_epoch_trainer

    for mode in a.modes.split(","):
        if mode not in ("fit", "fit_xla", "step"):
            raise SystemExit(f"--modes: unknown mode {mode!r}; allowed fit, fit_xla, step")
        keras.utils.set_random_seed(0)
        model = build_convmixer(a.width, a.depth, a.patch_size, a.kernel_size)
        opt = keras.optimizers.AdamW(1e-3, weight_decay=0.1)
        model.compile(opt, loss_fn, metrics=["accuracy"], jit_compile=(mode == "fit_xla"))
        # The project's own epoch trainers: "fit" is model.fit (the path before), "step" the
        # compiled custom step convmixer.train uses on TensorFlow (the path after).
        train_epoch = make_epoch_trainer(model, opt, loss_fn, use_fit=(mode != "step"))
        times = []
        for _ in range(a.repeats + 1):
            t0 = time.perf_counter()
            train_epoch(x, y, a.batch_size)
            times.append(time.perf_counter() - t0)
        steady = float(np.mean(times[1:]))
        print(json.dumps({
            "mode": mode, "width": a.width, "depth": a.depth, "patch_size": a.patch_size,
            "kernel_size": a.kernel_size, "batch_size": a.batch_size, "images": a.images,
            "first_pass_s": round(times[0], 2), "images_per_second": round(a.images / steady, 1),
            "cpu": cpu_name(), "cores": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__,
        }), flush=True)


if __name__ == "__main__":
    main()
