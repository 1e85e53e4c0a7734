import keras
import numpy as np
import pytest
import tensorflow as tf

from convmixer.models import layers as convmixer_layers
from convmixer.models.layers import DepthwiseConv2D, dense_block_kernel_gradient, swapped_kernel_gradient


@pytest.mark.parametrize("tokens,channels,kernel", [(8, 16, 9), (4, 8, 3), (8, 32, 5), (5, 3, 7)])
def test_swapped_kernel_gradient_equals_tensorflows(tokens, channels, kernel):
    rng = np.random.default_rng(tokens + kernel)
    x = tf.constant(rng.normal(size=(6, tokens, tokens, channels)), tf.float32)
    dy = tf.constant(rng.normal(size=(6, tokens, tokens, channels)), tf.float32)
    reference = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
        input=x, filter_sizes=[kernel, kernel, channels, 1], out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME")
    np.testing.assert_allclose(swapped_kernel_gradient(x, dy, kernel), reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tokens,channels,kernel,block", [(8, 32, 9, 16), (6, 48, 5, 16), (5, 8, 7, 4), (4, 6, 3, 1)])
def test_dense_block_kernel_gradient_equals_tensorflows(tokens, channels, kernel, block):
    rng = np.random.default_rng(tokens + kernel)
    x = tf.constant(rng.normal(size=(6, tokens, tokens, channels)), tf.float32)
    dy = tf.constant(rng.normal(size=(6, tokens, tokens, channels)), tf.float32)
    reference = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
        input=x, filter_sizes=[kernel, kernel, channels, 1], out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME")
    np.testing.assert_allclose(dense_block_kernel_gradient(x, dy, kernel, block), reference, rtol=1e-4, atol=1e-4)


def _outputs_and_gradients(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.sin(layer(x)))
    return layer(x), tape.gradient(loss, [x] + layer.trainable_weights)


# the swapped kernel gradient (k >= 5), the dense blocks at 32x32 (k >= 5), TensorFlow's own at k = 3; the
# flipped-kernel input gradient in all
@pytest.mark.parametrize("tokens,kernel,channels,method", [
    (8, 9, 12, "swapped"), (16, 9, 12, "swapped"), (16, 5, 12, "swapped"), (16, 3, 12, "tensorflow"),
    (4, 3, 12, "tensorflow"), (32, 5, 32, "dense blocks"), (32, 9, 12, "swapped"), (32, 3, 32, "tensorflow")])
def test_layer_matches_keras_depthwise_conv_forward_and_backward(tokens, kernel, channels, method):
    x = tf.random.stateless_normal((2, tokens, tokens, channels), seed=[1, 2])
    plain = keras.layers.DepthwiseConv2D(kernel, padding="same")
    fast = DepthwiseConv2D(kernel, padding="same")
    plain.build(x.shape)
    fast.build(x.shape)
    fast.set_weights([w + 0.1 for w in plain.get_weights()])  # a nonzero bias, so its gradient is exercised
    plain.set_weights(fast.get_weights())
    assert fast._fast_path(x)
    assert fast._kernel_gradient(tokens, channels) == method  # 12 channels do not divide into 16-channel blocks
    y_plain, g_plain = _outputs_and_gradients(plain, x)
    y_fast, g_fast = _outputs_and_gradients(fast, x)
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_records_saved_with_plain_keras_layers_load(tmp_path):
    # Records trained before these layers existed hold plain Keras layers' weights.
    from convmixer.models.convmixer import build_convmixer

    with convmixer_layers.plain_keras_layers():
        old = build_convmixer(8, 2, 4, 3)
    assert type(old.get_layer("block0_depthwise")) is keras.layers.DepthwiseConv2D
    assert type(old.get_layer("stem_bn")) is keras.layers.BatchNormalization
    old.save_weights(tmp_path / "old.weights.h5")
    new = build_convmixer(8, 2, 4, 3)
    assert type(new.get_layer("block0_depthwise")) is DepthwiseConv2D
    assert type(new.get_layer("block0_pointwise_bn")) is convmixer_layers.BatchNormalization
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


def _same_weights(plain, fast, x):
    plain.build(x.shape)
    fast.build(x.shape)
    rng = np.random.default_rng(3)
    fast.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in plain.get_weights()])
    plain.set_weights(fast.get_weights())


@pytest.mark.parametrize("kernel,size,channels", [(1, 16, 12), (2, 32, 3), (4, 32, 3), (7, 28, 3)])
def test_conv_as_matmul_matches_keras_conv(kernel, size, channels):
    x = tf.random.stateless_normal((5, size, size, channels), seed=[4, kernel])
    plain = keras.layers.Conv2D(8, kernel, strides=kernel)
    fast = convmixer_layers.Conv2D(8, kernel, strides=kernel)
    _same_weights(plain, fast, x)
    assert fast._fast_path(x)
    y_plain, g_plain = _outputs_and_gradients(plain, x)
    y_fast, g_fast = _outputs_and_gradients(fast, x)
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_keeps_keras_arithmetic_where_patches_overlap_or_pad():
    x = tf.zeros((2, 10, 10, 3))
    for layer in (convmixer_layers.Conv2D(4, 3), convmixer_layers.Conv2D(4, 2, strides=2, padding="same"),
                  convmixer_layers.Conv2D(4, 4, strides=4)):  # 10 is not a multiple of 4
        layer.build(x.shape)
        assert not layer._fast_path(x)


def test_fused_batch_norm_matches_keras_in_training_and_inference():
    x = tf.random.stateless_normal((6, 8, 8, 5), seed=[5, 6]) * 3.0 + 1.0
    plain = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)
    fast = convmixer_layers.BatchNormalization(epsilon=1e-5, momentum=0.9)
    _same_weights(plain, fast, x)
    assert fast._fast_path(x, True, None) and not fast._fast_path(x, False, None)
    for _ in range(3):  # three updates of the moving statistics
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            losses = [tf.reduce_sum(tf.sin(layer(x, training=True))) for layer in (plain, fast)]
        grads = [tape.gradient(loss, [x] + layer.trainable_weights) for loss, layer in zip(losses, (plain, fast))]
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5, atol=1e-4)  # a sum of 1920 terms
        for a, b in zip(*grads):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    for a, b in zip(plain.get_weights(), fast.get_weights()):  # gamma, beta, moving mean and variance
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast(x, training=False), plain(x, training=False), rtol=1e-5, atol=1e-5)


def test_gelu_with_written_gradient_matches_keras_exact_gelu():
    x = tf.constant(np.linspace(-8, 8, 1001), tf.float32)
    plain, fast = keras.layers.Activation("gelu"), convmixer_layers.Activation("gelu")
    assert fast._fast_path(x)
    y_plain, (g_plain,) = _outputs_and_gradients(plain, x)
    y_fast, (g_fast,) = _outputs_and_gradients(fast, x)
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-6, atol=1e-7)  # XLA's erfc, to float32 rounding
    np.testing.assert_allclose(g_fast, g_plain, rtol=1e-5, atol=1e-6)
    relu = convmixer_layers.Activation("relu")
    np.testing.assert_array_equal(relu(x), tf.nn.relu(x))


def test_fast_paths_are_off_where_tensorflow_does_not_run_on_the_cpu(monkeypatch):
    x = tf.zeros((2, 8, 8, 4))
    conv, bn = convmixer_layers.Conv2D(4, 1), convmixer_layers.BatchNormalization()
    conv.build(x.shape)
    bn.build(x.shape)
    assert conv._fast_path(x) and bn._fast_path(x, True, None)
    monkeypatch.setattr(convmixer_layers, "tensorflow_runs_on_cpu", lambda: False)
    assert not conv._fast_path(x) and not bn._fast_path(x, True, None)


@pytest.mark.slow
@pytest.mark.parametrize("patch,kernel", [(2, 9), (4, 5), (1, 5)])  # the 16x16, 8x8 and 32x32 token grids
def test_training_steps_match_a_convmixer_of_plain_keras_layers(patch, kernel):
    """Loss and every weight (BatchNorm statistics too) after a few steps of the project's step."""
    from convmixer.models.convmixer import build_convmixer
    from convmixer.training.steps import make_epoch_trainer

    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (96, 32, 32, 3)).astype("uint8")
    y = rng.integers(0, 10, 96)

    def train(plain):
        keras.utils.set_random_seed(0)
        if plain:
            with convmixer_layers.plain_keras_layers():
                model = build_convmixer(16, 2, patch, kernel)
        else:
            model = build_convmixer(16, 2, patch, kernel)
        # Plain SGD: each weight moves by lr x its gradient, so a weight difference is a gradient
        # difference (Adam divides tiny gradients by their own size, amplifying rounding).
        optimizer = keras.optimizers.SGD(0.05)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        train_epoch = make_epoch_trainer(model, optimizer, loss_fn)
        curve = [train_epoch(x, y, 32) for _ in range(2)]  # 6 steps
        return model, curve

    fast_model, fast_curve = train(plain=False)
    plain_model, plain_curve = train(plain=True)
    assert (convmixer_layers.DENSE_BLOCKS_PATH in convmixer_layers.fast_paths_in(fast_model)) == (patch == 1)
    assert type(fast_model.get_layer("block0_pointwise")) is convmixer_layers.Conv2D
    assert type(plain_model.get_layer("block0_pointwise")) is keras.layers.Conv2D
    np.testing.assert_allclose(fast_curve, plain_curve, rtol=1e-5, atol=1e-6)
    for a, b in zip(fast_model.get_weights(), plain_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert fast_curve[1][0] < fast_curve[0][0]  # it learns


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_bias_gradient_under_mixed_precision_is_keras_own(policy):
    # Keras adds a bias with bias_add; its gradient's reduction (BiasAddGrad) decides 16-bit rounding.
    x = tf.random.stateless_normal((8, 16, 16, 8), seed=[8, 9])
    keras.config.set_dtype_policy(policy)
    try:
        for plain, fast in [(keras.layers.DepthwiseConv2D(9, padding="same"), DepthwiseConv2D(9, padding="same")),
                            (keras.layers.Conv2D(8, 1), convmixer_layers.Conv2D(8, 1))]:
            _same_weights(plain, fast, x)
            assert fast._fast_path(x)
            (_, g_plain), (_, g_fast) = _outputs_and_gradients(plain, x), _outputs_and_gradients(fast, x)
            np.testing.assert_array_equal(np.asarray(g_fast[-1], "float32"), np.asarray(g_plain[-1], "float32"))
    finally:
        keras.config.set_dtype_policy("float32")


def test_fast_paths_listed_for_a_run_are_the_ones_taken():
    from convmixer.models.convmixer import build_convmixer

    assert convmixer_layers.fast_paths_in(build_convmixer(8, 1, 4, 3)) == sorted(convmixer_layers.FAST_PATHS.values())
    assert convmixer_layers.fast_paths_in(build_convmixer(16, 1, 1, 5)) == sorted(
        [*convmixer_layers.FAST_PATHS.values(), convmixer_layers.DENSE_BLOCKS_PATH])  # patch 1: 32x32 tokens
    assert convmixer_layers.DENSE_BLOCKS_PATH not in convmixer_layers.fast_paths_in(build_convmixer(16, 1, 1, 3))
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:  # 16-bit inputs: BatchNorm and GELU take Keras' own code
        assert convmixer_layers.fast_paths_in(build_convmixer(8, 1, 4, 3)) == [
            "depthwise gradients as forward depthwise convolutions", "patch and 1x1 convolutions as matmul"]
    finally:
        keras.config.set_dtype_policy("float32")
