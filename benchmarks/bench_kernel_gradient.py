"""The depthwise convolution's kernel gradient on the CPU, three ways, at the token grids the study trains.

At patch 1 (32x32 tokens) this gradient is most of a training step: TensorFlow's
``DepthwiseConv2dNativeBackpropFilter`` and the project's swapped form
(``layers.swapped_kernel_gradient``) both run at a tenth of the forward
convolution's rate there (benchmarks/README.md). The third way is a dense
convolution's filter gradient (oneDNN's ``Conv2DBackpropFilter``) per group of
``g`` channels, keeping the diagonal of each g x g result
(``layers.dense_block_kernel_gradient``, which the layer takes at 32x32 grids
with g = 16): g times the arithmetic, in the one kernel family oneDNN tunes
hardest.

Each case is traced once, then the cases are timed in turn, ``--repeats``
times, so that load changes hit all of them alike; the median milliseconds are
printed with the largest difference from TensorFlow's op (all three compute
the same sums in another order).

    python benchmarks/bench_kernel_gradient.py --batch 128 --width 256 --grid 32 --kernel 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--grid", type=int, default=32, help="tokens per side: 32 / patch size")
    p.add_argument("--kernel", type=int, default=9)
    p.add_argument("--groups", default="8,16", help="channels per dense block, comma-separated")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()

    import numpy as np
    import tensorflow as tf

    from convmixer.models.layers import dense_block_kernel_gradient, swapped_kernel_gradient

    shape = (a.batch, a.grid, a.grid, a.width)
    x, dy = tf.random.normal(shape, seed=1), tf.random.normal(shape, seed=2)
    k = a.kernel
    cases = {
        "tensorflow": tf.function(lambda: tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
            input=x, filter_sizes=[k, k, a.width, 1], out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME")),
        "swapped": tf.function(lambda: swapped_kernel_gradient(x, dy, k)),
    }
    for g in (int(v) for v in a.groups.split(",")):
        cases[f"dense blocks of {g}"] = tf.function(lambda g=g: dense_block_kernel_gradient(x, dy, k, g))
    reference = cases["tensorflow"]().numpy()
    errors = {name: float(np.abs(f().numpy() - reference).max() / np.abs(reference).max())
              for name, f in cases.items()}
    times = {name: [] for name in cases}
    for _ in range(a.repeats):
        for name, f in cases.items():
            start = time.perf_counter()
            f()
            times[name].append(1000 * (time.perf_counter() - start))
    flops = 2 * a.batch * a.grid * a.grid * a.width * k * k
    print(f"| batch {a.batch}, width {a.width}, {a.grid}x{a.grid} tokens, k{k} | ms (median) | range | GFLOP/s "
          "| x TensorFlow's op | max relative difference |\n|---|---|---|---|---|---|")
    base = statistics.median(times["tensorflow"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} | {min(values):.0f}-{max(values):.0f} | {flops / median / 1e6:.1f} | "
              f"{base / median:.2f}x | {errors[name]:.1e} |")


if __name__ == "__main__":
    main()
