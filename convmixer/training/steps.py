"""One training epoch: a compiled custom step on TensorFlow, ``model.fit`` on other backends.

``model.fit`` wraps every step in machinery this project does not use (callbacks,
metric objects, its data adapter, distribution strategies). On TensorFlow a plain
``tf.function`` step -- forward, loss, gradient, ``optimizer.apply`` -- does the
same arithmetic with less around it (``python -m convmixer bench`` measures
both). Both paths report the sample-weighted mean loss and accuracy of the epoch,
and a test checks that they train to the same weights.
"""

from __future__ import annotations


def make_epoch_trainer(model, optimizer, loss_fn, *, jit_compile=False, use_fit=None):
    """Return ``train_epoch(inputs, labels, batch_size) -> (loss, accuracy)``.

    ``inputs`` are numpy images with ``labels``, or a batched ``tf.data.Dataset``
    of (images, labels) with ``labels=None``. ``use_fit`` forces one path
    (default: the custom step on TensorFlow, ``model.fit`` elsewhere).
    """
    import keras

    if use_fit is None:
        use_fit = keras.backend.backend() != "tensorflow"
    if use_fit:
        return _fit_trainer(model)
    return _step_trainer(model, optimizer, loss_fn, jit_compile)


def _fit_trainer(model):
    def train_epoch(inputs, labels, batch_size):
        history = model.fit(inputs, labels, batch_size=batch_size if labels is not None else None,
                            epochs=1, shuffle=False, verbose=0).history
        return float(history["loss"][-1]), float(history["accuracy"][-1])

    train_epoch.kind = "model.fit"
    return train_epoch


def _step_trainer(model, optimizer, loss_fn, jit_compile):
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def step(images, labels):
        labels = tf.cast(labels, tf.int64)
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = loss_fn(labels, logits)  # mean over the batch, as fit computes it
            # Under mixed_float16 the optimizer is Keras' LossScaleOptimizer: it scales the
            # loss here and unscales (and skips non-finite steps) in apply(); otherwise a no-op.
            scaled_loss = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        n = tf.cast(tf.shape(labels)[0], tf.float32)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=-1), labels), tf.float32))
        return loss * n, correct, n

    def train_epoch(inputs, labels, batch_size):
        if labels is not None:
            # Plain slices of the epoch's arrays: a tf.data pipeline around in-memory arrays
            # only adds per-step overhead (python -m convmixer bench, cases project vs memory).
            images, all_labels = inputs, labels
            inputs = ((images[i:i + batch_size], all_labels[i:i + batch_size])
                      for i in range(0, len(all_labels), batch_size))
        totals = [step(batch_images, batch_labels) for batch_images, batch_labels in inputs]
        loss_sum, correct, count = (float(tf.add_n(list(column))) for column in zip(*totals))
        return loss_sum / count, correct / count

    train_epoch.kind = "compiled custom step" + (" (XLA)" if jit_compile else "")
    return train_epoch
