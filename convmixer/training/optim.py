"""The recipe's optimizer and learning-rate schedule in Keras."""

from __future__ import annotations

import numpy as np

def make_schedule(recipe, epochs: int, steps_per_epoch: int):
    """The recipe's learning rate as a Keras schedule of the optimizer's step counter."""
    import keras
    from keras import ops

    if recipe.schedule == "constant":
        return recipe.lr

    class Triangular(keras.optimizers.schedules.LearningRateSchedule):
        # learning_rate_at(recipe, epoch + (step + 1) / steps, epochs), in graph ops.
        def __call__(self, step):
            t = (ops.cast(step, "float32") + 1.0) / steps_per_epoch
            knots = [0.0, float(epochs * 2 // 5), float(epochs * 4 // 5), float(epochs)]
            values = [0.0, recipe.lr, recipe.lr / 20.0, 0.0]
            lr = ops.zeros_like(t)
            for (x0, x1), (v0, v1) in zip(zip(knots, knots[1:]), zip(values, values[1:])):
                if x1 <= x0:
                    continue
                inside = ops.logical_and(t >= x0, t <= x1)
                lr = ops.where(inside, v0 + (v1 - v0) * (t - x0) / (x1 - x0), lr)
            return lr

        def get_config(self):
            return {}

    return Triangular()


PYTORCH_ADAM_EPSILON = 1e-8  # torch.optim.AdamW's default, which the official script keeps


def make_optimizer(recipe, schedule):
    import keras

    # global_clipnorm, like torch.nn.utils.clip_grad_norm_ (clipnorm would clip each tensor separately)
    settings = dict(learning_rate=schedule, weight_decay=recipe.keras_weight_decay, global_clipnorm=recipe.clipnorm)
    if recipe.adam_epsilon == "pytorch":
        return _pytorch_epsilon_adamw()(epsilon=PYTORCH_ADAM_EPSILON, **settings)
    return keras.optimizers.AdamW(**settings)


def _pytorch_epsilon_adamw():
    """keras.optimizers.AdamW with PyTorch's placement of epsilon.

    Keras' step is ``m * alpha / (sqrt(v) + eps)`` with ``alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)``;
    PyTorch's is ``lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``, the same with
    ``eps * sqrt(1 - b2^t)`` in Keras' place. So each step traces Keras' own update with that epsilon:
    nothing else of the update changes (tests/test_config_recipes.py compares it with torch.optim.AdamW's
    update written out; tests/test_pytorch_step.py with torch.optim.AdamW itself, where PyTorch is installed).
    """
    import keras
    from keras import ops

    class PyTorchEpsilonAdamW(keras.optimizers.AdamW):
        def update_step(self, gradient, variable, learning_rate):
            step = ops.cast(self.iterations + 1, variable.dtype)
            constant = self.epsilon
            self.epsilon = constant * ops.sqrt(1 - ops.power(ops.cast(self.beta_2, variable.dtype), step))
            try:
                super().update_step(gradient, variable, learning_rate)
            finally:
                self.epsilon = constant

    return PyTorchEpsilonAdamW


def last_step_lr(schedule, optimizer) -> float:
    """The learning rate the optimizer used for its latest step (not the next one)."""
    if not callable(schedule):
        return float(schedule)
    return float(np.asarray(schedule(int(np.asarray(optimizer.iterations)) - 1)))
