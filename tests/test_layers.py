import keras
import numpy as np
import pytest
import tensorflow as tf

from convmixer.models import layers as convmixer_layers
from convmixer.models.layers import DepthwiseConv2D, swapped_kernel_gradient


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
    fast = DepthwiseConv2D(9, padding="same")
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


def test_records_saved_with_plain_keras_layers_load(tmp_path, monkeypatch):
    # Records trained before this layer existed hold keras.layers.DepthwiseConv2D weights.
    from convmixer.models.convmixer import build_convmixer

    monkeypatch.setattr(convmixer_layers, "DepthwiseConv2D", keras.layers.DepthwiseConv2D)
    old = build_convmixer(8, 2, 4, 3)
    assert type(old.get_layer("block0_depthwise")) is keras.layers.DepthwiseConv2D
    old.save_weights(tmp_path / "old.weights.h5")
    monkeypatch.undo()
    new = build_convmixer(8, 2, 4, 3)
    assert type(new.get_layer("block0_depthwise")) is DepthwiseConv2D
    new.load_weights(tmp_path / "old.weights.h5")
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(new(x), old(x), rtol=1e-5, atol=1e-5)


def test_swapped_gradient_is_used_only_where_tensorflow_runs_on_the_cpu(monkeypatch):
    layer = DepthwiseConv2D(9, padding="same")
    x = tf.zeros((2, 8, 8, 4))
    layer.build(x.shape)
    assert convmixer_layers.tensorflow_runs_on_cpu()  # this test machine has no GPU
    assert layer._fast_path(x)
    monkeypatch.setattr(convmixer_layers, "tensorflow_runs_on_cpu", lambda: False)  # e.g. a CUDA machine
    assert not layer._fast_path(x)
