"""Keras layers with faster CPU arithmetic for ConvMixer's training step, same weights and results.

Each class below has the name, weights and outputs of the Keras layer it
extends, and takes its faster path only where TensorFlow runs on the CPU
(``tensorflow_runs_on_cpu``); on a GPU, on other backends or with settings the
fast path does not cover, it is the Keras layer unchanged. The fast paths are
the same arithmetic in another order, so results agree with the plain layers to
float32 rounding (tests/test_layers.py checks outputs, gradients and moving
statistics; tests/test_steps.py a whole training step). Where a step's time
went before and after: benchmarks/README.md (``benchmarks/profile_step.py``).

* ``DepthwiseConv2D``: the kernel gradient as one forward depthwise convolution.
  TensorFlow's ``DepthwiseConv2dNativeBackpropFilter`` is the slowest op of a
  CPU step. The kernel gradient is itself a depthwise correlation, with the
  roles swapped::

      dK[i, j, c] = sum_{n, h, w} x_padded[n, h + i, w + j, c] * dy[n, h, w, c]

  Folding the batch into the channels -- input ``x_padded`` as one image with
  N*C channels, ``dy`` as an (H, W) filter per channel -- turns it into one
  *forward* depthwise convolution with VALID padding (output K x K per
  channel), summed over the batch. For kernels of 5 and more it is 1.1-2.6x
  faster than TensorFlow's op on 4x4 to 32x32 token grids; TensorFlow's
  specialised 3x3 kernel is faster, so it is kept there
  (``SWAPPED_GRADIENT_MIN_KERNEL``). On grids of 32x32 tokens (patch 1) both
  forms run at a tenth of the forward convolution's rate, and the kernel
  gradient is taken instead from oneDNN's *dense* filter gradient of 16-channel
  blocks, keeping each block's diagonal (``dense_block_kernel_gradient``): 16
  times the arithmetic, in oneDNN's best-tuned kernel, 1.3-1.7x faster than
  the swapped form there. The input gradient is the forward
  convolution of dy with the kernel turned by 180 degrees, 1.4-2x faster than
  TensorFlow's ``DepthwiseConv2dNativeBackpropInput``.
* ``Conv2D``: a convolution whose kernel equals its stride (the patch embedding,
  and the 1x1 pointwise convolutions) reads non-overlapping patches, so it is
  one matrix product of the flattened patches with the reshaped kernel. oneDNN's
  convolution gradients are slower than the matmul's for these shapes.
* ``BatchNormalization``: in training, TensorFlow's fused kernel
  (``FusedBatchNormV3``: one pass for the statistics, one for the output, and a
  fused gradient) instead of Keras' moments + normalise graph of ~10 separate
  elementwise ops. The moving statistics are updated exactly as Keras does,
  with the biased batch variance.
* ``Activation``: the exact GELU with its gradient written out
  (``Phi(x) + x * phi(x)``), forward and gradient each compiled by XLA into one
  elementwise loop: TensorFlow differentiates its erfc formula op by op, a
  dozen passes over memory.
"""

from __future__ import annotations

import contextlib
import functools

import keras

# Kernels from this size up use the swapped kernel gradient: at 3x3 TensorFlow's own is faster
# (benchmarks/README.md has the measurements).
SWAPPED_GRADIENT_MIN_KERNEL = 5
# From this many tokens per side (patch 1 on CIFAR-10) the kernel gradient of kernels of 5 and more comes
# from dense filter gradients of DENSE_BLOCK_CHANNELS-channel blocks (benchmarks/README.md; at 16x16 the
# blocks are no faster than TensorFlow's op).
DENSE_BLOCK_GRADIENT_MIN_TOKENS = 32
DENSE_BLOCK_CHANNELS = 16


@functools.lru_cache(maxsize=None)
def tensorflow_runs_on_cpu() -> bool:
    """True when TensorFlow places ops on the CPU: it sees no GPU or TPU."""
    import tensorflow as tf

    return not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def _tensorflow_on_cpu() -> bool:
    return keras.backend.backend() == "tensorflow" and tensorflow_runs_on_cpu()


def _bias_and_activation(layer, outputs):
    """The end of a Keras convolution's call: its bias and activation."""
    import tensorflow as tf

    if layer.use_bias:
        # bias_add, as Keras adds it: its gradient is BiasAddGrad's reduction, which matters in float16
        outputs = tf.nn.bias_add(outputs, tf.cast(layer.bias, outputs.dtype))
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs


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


def dense_block_kernel_gradient(x, dy, kernel_size, block=DENSE_BLOCK_CHANNELS):
    """dK of a stride-1, SAME-padded depthwise convolution from dense filter gradients of ``block``-channel
    blocks: each block's (K, K, block, block) gradient pairs every channel with every other, and its
    diagonal (a channel with itself) is the depthwise kernel's gradient. The channels must divide into blocks."""
    import tensorflow as tf

    channels = x.shape[-1]
    parts = []
    for start in range(0, channels, block):
        full = tf.raw_ops.Conv2DBackpropFilter(
            input=x[..., start:start + block], filter_sizes=[kernel_size, kernel_size, block, block],
            out_backprop=dy[..., start:start + block], strides=[1, 1, 1, 1], padding="SAME")
        parts.append(tf.linalg.diag_part(full))  # (K, K, block)
    return tf.concat(parts, axis=2)[..., None]  # (K, K, C, 1), the kernel's shape


# Same class name as Keras' on purpose: Keras names a layer's weights in a .weights.h5 file
# after its class ("depthwise_conv2d_3"), so records saved with the plain layer load into this one.
@keras.saving.register_keras_serializable(package="convmixer")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    def _fast_path(self, inputs):
        return (
            _tensorflow_on_cpu()
            and self.data_format == "channels_last"
            and self.padding == "same"
            and self.strides == (1, 1)
            and self.dilation_rate == (1, 1)
            and self.depth_multiplier == 1
            and self.kernel_size[0] == self.kernel_size[1]
            and self.kernel_size[0] % 2 == 1
            and inputs.shape[1] is not None
        )

    def _kernel_gradient(self, tokens: int, channels: int, dtype="float32") -> str:
        """How the fast path takes the kernel gradient on a grid of ``tokens`` per side: "tensorflow" (its
        own op, fastest at 3x3), "dense blocks" (32x32 grids, float32: where it was measured) or "swapped"
        (one forward convolution)."""
        if self.kernel_size[0] < SWAPPED_GRADIENT_MIN_KERNEL:
            return "tensorflow"
        if tokens >= DENSE_BLOCK_GRADIENT_MIN_TOKENS and channels % DENSE_BLOCK_CHANNELS == 0 and dtype == "float32":
            return "dense blocks"
        return "swapped"

    def call(self, inputs):
        if not self._fast_path(inputs):
            return super().call(inputs)
        import tensorflow as tf

        k = self.kernel_size[0]
        method = self._kernel_gradient(inputs.shape[1], inputs.shape[-1], inputs.dtype)

        @tf.custom_gradient
        def depthwise(x, kernel):
            def gradient(dy):
                # The input gradient of a stride-1 SAME correlation with an odd kernel is the same
                # correlation of dy with the kernel turned by 180 degrees: the fast forward kernel.
                dx = tf.nn.depthwise_conv2d(dy, tf.reverse(kernel, [0, 1]), [1, 1, 1, 1], "SAME")
                if method == "dense blocks":
                    dkernel = tf.cast(dense_block_kernel_gradient(x, dy, k), kernel.dtype)
                elif method == "swapped":
                    dkernel = tf.cast(swapped_kernel_gradient(x, dy, k), kernel.dtype)
                else:
                    dkernel = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
                        input=x, filter_sizes=tf.shape(kernel), out_backprop=dy, strides=[1, 1, 1, 1],
                        padding="SAME")
                return dx, dkernel

            return tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME"), gradient

        return _bias_and_activation(self, depthwise(inputs, tf.cast(self.kernel, inputs.dtype)))


@keras.saving.register_keras_serializable(package="convmixer")
class Conv2D(keras.layers.Conv2D):
    def _fast_path(self, inputs):
        kh, kw = self.kernel_size
        return (
            _tensorflow_on_cpu()
            and self.data_format == "channels_last"
            and self.padding == "valid"
            and tuple(self.strides) == (kh, kw)
            and self.dilation_rate == (1, 1)
            and self.groups == 1
            and inputs.shape[1] is not None and inputs.shape[2] is not None
            and inputs.shape[1] % kh == 0 and inputs.shape[2] % kw == 0
        )

    def call(self, inputs):
        if not self._fast_path(inputs):
            return super().call(inputs)
        import tensorflow as tf

        (kh, kw), (h, w, c) = self.kernel_size, inputs.shape[1:]
        n = tf.shape(inputs)[0]
        if (kh, kw) == (1, 1):
            patches = tf.reshape(inputs, [-1, c])
        else:  # (N, H, W, C) -> (N, H/kh, W/kw, kh, kw, C): the kernel's (kh, kw, C) order
            patches = tf.reshape(inputs, [n, h // kh, kh, w // kw, kw, c])
            patches = tf.reshape(tf.transpose(patches, [0, 1, 3, 2, 4, 5]), [-1, kh * kw * c])
        kernel = tf.reshape(tf.cast(self.kernel, inputs.dtype), [kh * kw * c, self.filters])
        return _bias_and_activation(self, tf.reshape(tf.matmul(patches, kernel), [n, h // kh, w // kw, self.filters]))


@keras.saving.register_keras_serializable(package="convmixer")
class BatchNormalization(keras.layers.BatchNormalization):
    def _fast_path(self, inputs, training, mask):
        return (
            training and self.trainable and mask is None
            and _tensorflow_on_cpu()
            and inputs.shape.rank == 4 and self.axis in (-1, 3)
            and inputs.dtype == "float32" and self.scale and self.center
            and not self.renorm and not self.synchronized
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fast_path(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        empty = tf.constant([], tf.float32)
        outputs, mean, corrected_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=self.gamma, offset=self.beta, mean=empty, variance=empty,
            epsilon=self.epsilon, data_format="NHWC", is_training=True)
        # The kernel normalises with the biased variance but returns the Bessel-corrected one;
        # Keras' moving variance averages the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), tf.float32)
        variance = corrected_variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs


@functools.lru_cache(maxsize=None)
def _compiled_gelu():
    """The exact GELU and its gradient, each compiled by XLA into one loop over memory.

    XLA is slow for this model's convolutions on the CPU, but for elementwise
    code it fuses what TensorFlow runs as 5 (forward) and 8 (gradient) separate
    passes over memory: 2.3x faster at ConvMixer-256/8's size (benchmarks/README.md).
    """
    import tensorflow as tf

    def cdf(x):  # Phi(x), as tf.nn.gelu computes it
        return 0.5 * tf.math.erfc(-x * 0.7071067811865476)

    forward = tf.function(lambda x: x * cdf(x), jit_compile=True)
    # Phi(x) + x phi(x); recomputing Phi is cheaper than storing it and reading it back.
    gradient = tf.function(lambda dy, x: dy * (cdf(x) + x * (0.3989422804014327 * tf.exp(-0.5 * x * x))),
                           jit_compile=True)
    return forward, gradient


def _gelu_with_gradient(x):
    import tensorflow as tf

    forward, gradient = _compiled_gelu()

    @tf.custom_gradient
    def gelu(x):
        return forward(x), lambda dy: gradient(dy, x)

    return gelu(x)


@keras.saving.register_keras_serializable(package="convmixer")
class Activation(keras.layers.Activation):
    def _fast_path(self, inputs):
        return self.activation is keras.activations.gelu and inputs.dtype == "float32" and _tensorflow_on_cpu()

    def call(self, inputs):
        if self._fast_path(inputs):
            return _gelu_with_gradient(inputs)
        return super().call(inputs)


# What each layer class does faster on the CPU, for the run's record (metrics.json: speed.cpu_layers).
FAST_PATHS = {
    DepthwiseConv2D: "depthwise gradients as forward depthwise convolutions",
    Conv2D: "patch and 1x1 convolutions as matmul",
    BatchNormalization: "fused BatchNorm in training",
    Activation: "exact GELU with a written gradient, XLA-fused",
}


def fast_paths_in(model) -> list[str]:
    """The CPU fast paths ``model``'s layers take here (none off the CPU or on other backends)."""
    if not _tensorflow_on_cpu():
        return []
    # BatchNorm's and GELU's fast paths are float32 code: under a mixed policy their inputs are 16-bit
    float32_only = (BatchNormalization, Activation)
    taken = {FAST_PATHS[type(layer)] for layer in model.layers if type(layer) in FAST_PATHS
             and (type(layer) not in float32_only or layer.compute_dtype == "float32")}
    for layer in model.layers:
        if type(layer) is DepthwiseConv2D and _dense_blocks_in(layer):
            taken.add(DENSE_BLOCKS_PATH)
    return sorted(taken)


DENSE_BLOCKS_PATH = f"depthwise kernel gradient from dense {DENSE_BLOCK_CHANNELS}-channel blocks at 32x32 tokens"


def _dense_blocks_in(layer) -> bool:
    """Whether a built DepthwiseConv2D of a functional model takes the dense-block kernel gradient."""
    try:
        shape = layer.input.shape
    except (AttributeError, ValueError):  # not called on a symbolic input: the grid is unknown
        return False
    return (shape[1] is not None and layer._fast_path(layer.input)
            and layer._kernel_gradient(shape[1], shape[-1], layer.compute_dtype) == "dense blocks")


@contextlib.contextmanager
def plain_keras_layers():
    """Models built inside use Keras' own layers: the baseline that benchmarks and tests compare with."""
    saved = {name: globals()[name] for name in ("Activation", "BatchNormalization", "Conv2D", "DepthwiseConv2D")}
    globals().update({name: getattr(keras.layers, name) for name in saved})
    try:
        yield
    finally:
        globals().update(saved)
