"""Forward+backward time of each ConvMixer layer type on one CPU batch.

Usage: python benchmarks/bench_layers.py [--width 64 --tokens 8 --batch-size 128]
(Whole training steps: ``python -m convmixer bench``.)
Shows where a training step's time goes at small widths (elementwise ops and the
depthwise convolution's gradient, not the 1x1 convolution's FLOPs).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import convmixer  # noqa: F401  (first: turns oneDNN on before TensorFlow is imported)
from convmixer.models.layers import DepthwiseConv2D  # the project's depthwise layer (fast kernel gradient)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--tokens", type=int, default=8, help="token grid side: 32 / patch size")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()

    import keras
    import tensorflow as tf
    from keras import layers

    x = tf.random.normal((a.batch_size, a.tokens, a.tokens, a.width))

    def bench(name, layer):
        layer.build(x.shape)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                s = tf.reduce_sum(y * y)
            return tape.gradient(s, [x] + layer.trainable_variables)

        step(x)
        t0 = time.perf_counter()
        for _ in range(a.repeats):
            step(x)
        print(f"{name:28s} {(time.perf_counter() - t0) / a.repeats * 1000:7.2f} ms/step", flush=True)

    bench("depthwise k3", layers.DepthwiseConv2D(3, padding="same"))
    bench("depthwise k9", layers.DepthwiseConv2D(9, padding="same"))
    bench("depthwise k9 (convmixer)", DepthwiseConv2D(9, padding="same"))
    bench("conv 1x1", layers.Conv2D(a.width, 1))
    bench("batchnorm", layers.BatchNormalization(epsilon=1e-5, momentum=0.9))
    bench("gelu (exact)", layers.Activation("gelu"))
    bench("gelu (tanh)", layers.Activation(lambda v: keras.activations.gelu(v, approximate=True)))
    bench("relu", layers.Activation("relu"))


if __name__ == "__main__":
    main()
