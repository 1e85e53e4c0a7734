"""Where a ConvMixer training step's time goes, op type by op type (TensorFlow's profiler).

Usage:
    python benchmarks/profile_step.py --width 64 --depth 4 --patch-size 2 --kernel-size 9 --batch-size 128

Traces ``--steps`` steps of the project's compiled training step (the ``memory``
case of ``python -m convmixer bench``: batches already in memory) with
``tf.profiler``, reads the trace's host plane and prints, per TensorFlow op type,
the milliseconds per step and the share of all op time. Op time can exceed wall
time when the two inter-op threads run ops side by side; the last lines print
both. Code that XLA compiled (the GELU of ``convmixer/models/layers.py``) runs
on Eigen's threads and leaves no op events in the trace, so it is missing from
the table (``--plain-keras`` shows Keras' own GELU ops). Needs only TensorFlow
(the trace is parsed with its own protobufs).
"""

import argparse
import collections
import contextlib
import glob
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import convmixer  # noqa: F401  (first: turns oneDNN on before TensorFlow is imported)


def op_times(logdir):
    """{op type: total microseconds} over the trace's TensorFlow op events."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        names = {k: m.name for k, m in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads; "python" holds the caller
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                # an op's event reads "scope/name:OpType"; executor bookkeeping reads "Class::method",
                # and the step function's own call op ("__inference_...") encloses the ops it runs
                if ":" not in name or "::" in name:
                    continue
                op_type = name.rsplit(":", 1)[1].strip()
                if op_type.startswith("__") or op_type in ("Run", "PartitionedCall", "StatefulPartitionedCall"):
                    continue
                totals[op_type] += event.duration_ps / 1e6
    return totals


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--patch-size", type=int, default=2)
    p.add_argument("--kernel-size", type=int, default=9)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--recipe", default="official")
    p.add_argument("--inter-op", type=int, default=0, help="TensorFlow inter-op threads (0: its default)")
    p.add_argument("--intra-op", type=int, default=0, help="TensorFlow intra-op threads (0: its default)")
    p.add_argument("--swapped-min-kernel", type=int, default=None,
                   help="override layers.SWAPPED_GRADIENT_MIN_KERNEL (to time the depthwise gradient choice; at 32x32 grids the dense blocks take kernels of 5 and more, see layers.DENSE_BLOCK_GRADIENT_MIN_TOKENS)")
    p.add_argument("--plain-keras", action="store_true", help="time the model built from plain Keras layers")
    a = p.parse_args()

    import tensorflow as tf

    from convmixer.models import layers

    tf.config.threading.set_inter_op_parallelism_threads(a.inter_op)
    tf.config.threading.set_intra_op_parallelism_threads(a.intra_op)
    if a.swapped_min_kernel is not None:
        layers.SWAPPED_GRADIENT_MIN_KERNEL = a.swapped_min_kernel

    from convmixer.bench import BenchSpec, _build, _random_data
    from convmixer.training.config import RunConfig
    from convmixer.training.steps import make_epoch_trainer

    spec = BenchSpec(RunConfig(width=a.width, depth=a.depth, patch_size=a.patch_size, kernel_size=a.kernel_size,
                               batch_size=a.batch_size, recipe=a.recipe))
    with layers.plain_keras_layers() if a.plain_keras else contextlib.nullcontext():
        model, loss_fn = _build(spec, {"precision": "float32", "jit_compile": False})
    train_epoch = make_epoch_trainer(model, model.optimizer, loss_fn)
    x, y = _random_data(spec, a.batch_size)
    batches = [(tf.constant(x), tf.constant(y))] * a.steps
    train_epoch(batches[:3], None, a.batch_size)  # trace and warm up

    start = time.perf_counter()
    train_epoch(batches, None, a.batch_size)
    wall = (time.perf_counter() - start) / a.steps * 1000

    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    train_epoch(batches, None, a.batch_size)
    tf.profiler.experimental.stop()
    totals = op_times(logdir)

    total = sum(totals.values())
    print("| op type | ms per step | share of op time |\n|---|---|---|")
    for name, us in totals.most_common(20):
        print(f"| {name} | {us / a.steps / 1000:.1f} | {us / total:.0%} |")
    print(f"\nop time {total / a.steps / 1000:.1f} ms per step; wall time (untraced) {wall:.1f} ms per step "
          f"= {a.batch_size / wall * 1000:.0f} images/s")


if __name__ == "__main__":
    main()
