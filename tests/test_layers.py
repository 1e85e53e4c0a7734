import keras
import numpy as np
import pytest
import tensorflow as tf

from convmixer import layers as convmixer_layers
from convmixer.layers import DepthwiseConv2DFastGrad, swapped_kernel_gradient


@pytest.mark.parametrize("tokens,channels,kernel", [(8, 16, 9), (4, 8, 3), (8, 32, 5), (5, 3, 7)])
def test_swapped_kernel_gradient_equals_tensorflows(tokens, channels, kernel):
    rng = np.random.default_rng(tokens + kernel)
    x = tf.constant(rng.normal(size=(6, tokens, tokens, channels)), tf.float32)
    dy = tf.constant(rng.normal(size=(6, tokens, tokens, channels)), tf.float32)
    reference = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
        input=x, filter_sizes=[kernel, kernel, channels, 1], out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME")
    np.testing.assert_allclose(swapped_kernel_gradient(x, dy, kernel), reference, rtol=1e-4, atol=1e-4)


def _outputs_and_gradients(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.sin(layer(x)))
    return layer(x), tape.gradient(loss, [x] + layer.trainable_weights)


@pytest.mark.parametrize("tokens", [8, 16])  # the swapped gradient, and TensorFlow's own above the threshold
def test_layer_matches_keras_depthwise_conv_forward_and_backward(tokens):
    x = tf.random.stateless_normal((4, tokens, tokens, 12), seed=[1, 2])
    plain = keras.layers.DepthwiseConv2D(9, padding="same")
    fast = DepthwiseConv2DFastGrad(9, padding="same")
    plain.build(x.shape)
    fast.build(x.shape)
    fast.set_weights([w + 0.1 for w in plain.get_weights()])  # a nonzero bias, so its gradient is exercised
    plain.set_weights(fast.get_weights())
    assert fast._fast_path(x) == (tokens <= convmixer_layers.SWAPPED_GRADIENT_MAX_TOKENS)
    y_plain, g_plain = _outputs_and_gradients(plain, x)
    y_fast, g_fast = _outputs_and_gradients(fast, x)
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_weights_load_from_a_plain_keras_depthwise_layer():
    # Records trained before this layer existed hold plain DepthwiseConv2D weights under the same names.
    fast = DepthwiseConv2DFastGrad(3, padding="same")
    fast.build((None, 8, 8, 4))
    assert [w.path.split("/")[-1] for w in fast.weights] == ["kernel", "bias"]
    assert tuple(fast.kernel.shape) == (3, 3, 4, 1)
