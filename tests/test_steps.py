import numpy as np
import pytest

from convmixer.training.steps import make_epoch_trainer


def _train(use_fit, x, y, epochs=2):
    import keras

    from convmixer.models.convmixer import build_convmixer

    keras.utils.set_random_seed(0)
    model = build_convmixer(16, 1, 4, 3)
    optimizer = keras.optimizers.AdamW(1e-2, weight_decay=0.1)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss_fn, metrics=["accuracy"], jit_compile=False)
    train_epoch = make_epoch_trainer(model, optimizer, loss_fn, use_fit=use_fit)
    curve = [train_epoch(x, y, 64) for _ in range(epochs)]
    return model, optimizer, curve


@pytest.mark.slow
def test_custom_step_trains_exactly_like_fit():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 32, 32, 3)).astype("uint8")  # 200 = 3 full batches + one of 8
    y = rng.integers(0, 10, 200)
    step_model, step_opt, step_curve = _train(False, x, y)
    fit_model, fit_opt, fit_curve = _train(True, x, y)
    assert int(np.asarray(step_opt.iterations)) == int(np.asarray(fit_opt.iterations)) == 8
    for a, b in zip(step_model.get_weights(), fit_model.get_weights()):  # BatchNorm statistics included
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.array(step_curve), np.array(fit_curve), rtol=1e-4, atol=1e-6)
    assert step_curve[1][0] < step_curve[0][0]  # it learns: loss falls


@pytest.mark.slow
def test_custom_step_accepts_a_batched_dataset():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (70, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 70)
    _, _, expected = _train(False, x, y, epochs=1)

    import keras

    from convmixer.models.convmixer import build_convmixer

    keras.utils.set_random_seed(0)
    model = build_convmixer(16, 1, 4, 3)
    optimizer = keras.optimizers.AdamW(1e-2, weight_decay=0.1)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    train_epoch = make_epoch_trainer(model, optimizer, loss_fn, use_fit=False)
    got = train_epoch(tf.data.Dataset.from_tensor_slices((x, y)).batch(64), None, None)
    assert got == pytest.approx(expected[0], rel=1e-5)
