"""A DepthwiseConv2D whose kernel gradient is computed with TensorFlow's fast forward kernel.

On CPU, TensorFlow's ``DepthwiseConv2dNativeBackpropFilter`` is the slowest
part of a ConvMixer training step by far: for ConvMixer-256/8 at patch 4,
kernel 9, one layer's kernel gradient takes ~345 ms where the forward pass
takes ~11 ms (python -m convmixer bench and benchmarks/bench_layers.py).

The kernel gradient is itself a depthwise correlation, with the roles swapped::

    dK[i, j, c] = sum_{n, h, w} x_padded[n, h + i, w + j, c] * dy[n, h, w, c]

Folding the batch into the channels -- input ``x_padded`` as one image with
N*C channels, ``dy`` as an (H, W) filter per channel -- turns it into one
*forward* depthwise convolution with VALID padding (output K x K per channel),
summed over the batch. It is the same arithmetic, so the result agrees with
TensorFlow's own to float32 rounding (a test checks it), and it is 2-4x faster
when the token grid is small (32 / patch <= 8). On larger grids the forward
kernel's cost grows with the (H, W) "filter" and TensorFlow's own gradient is
faster, so the layer keeps it there (``SWAPPED_GRADIENT_MAX_TOKENS``). The
speed-up was measured on CPUs only, so on a machine where TensorFlow sees a GPU
(or TPU) the layer uses TensorFlow's own gradient (``tensorflow_runs_on_cpu``).

Weights, names and outputs are those of ``keras.layers.DepthwiseConv2D``; on
other backends (or other strides, dilations, data formats) the layer is that
class unchanged.
"""

from __future__ import annotations

import functools

import keras

# Token grids up to this side use the swapped kernel gradient: above it TensorFlow's own is faster
# (benchmarks/README.md has the measurements).
SWAPPED_GRADIENT_MAX_TOKENS = 8


@functools.lru_cache(maxsize=None)
def tensorflow_runs_on_cpu() -> bool:
    """True when TensorFlow places ops on the CPU: it sees no GPU or TPU."""
    import tensorflow as tf

    return not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def swapped_kernel_gradient(x, dy, kernel_size):
    """dK of a stride-1, SAME-padded depthwise convolution, as one forward depthwise convolution."""
    import tensorflow as tf

    n, h, w, c = tf.unstack(tf.shape(x))
    pad = kernel_size // 2
    x_padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    # (N, Hp, Wp, C) -> (1, Hp, Wp, N*C): the batch becomes channels of one image
    image = tf.reshape(tf.transpose(x_padded, [1, 2, 0, 3]), [1, h + 2 * pad, w + 2 * pad, n * c])
    # (N, H, W, C) -> (H, W, N*C, 1): each channel's output gradient is its filter
    filters = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [h, w, n * c, 1])
    per_image = tf.nn.depthwise_conv2d(image, filters, [1, 1, 1, 1], "VALID")  # (1, K, K, N*C)
    per_image = tf.reshape(per_image, [kernel_size, kernel_size, n, c])
    return tf.reduce_sum(per_image, axis=2)[..., None]  # (K, K, C, 1), the kernel's shape


# Same class name as Keras' on purpose: Keras names a layer's weights in a .weights.h5 file
# after its class ("depthwise_conv2d_3"), so records saved with the plain layer load into this one.
@keras.saving.register_keras_serializable(package="convmixer")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    def _fast_path(self, inputs):
        return (
            keras.backend.backend() == "tensorflow"
            and tensorflow_runs_on_cpu()
            and self.data_format == "channels_last"
            and self.padding == "same"
            and self.strides == (1, 1)
            and self.dilation_rate == (1, 1)
            and self.depth_multiplier == 1
            and self.kernel_size[0] == self.kernel_size[1]
            and self.kernel_size[0] % 2 == 1
            and inputs.shape[1] is not None
            and max(inputs.shape[1], inputs.shape[2]) <= SWAPPED_GRADIENT_MAX_TOKENS
        )

    def call(self, inputs):
        if not self._fast_path(inputs):
            return super().call(inputs)
        import tensorflow as tf

        k = self.kernel_size[0]

        @tf.custom_gradient
        def depthwise(x, kernel):
            def gradient(dy):
                dx = tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
                    input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME")
                return dx, tf.cast(swapped_kernel_gradient(x, dy, k), kernel.dtype)

            return tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME"), gradient

        outputs = depthwise(inputs, tf.cast(self.kernel, inputs.dtype))
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, outputs.dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs
