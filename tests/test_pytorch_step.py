"""The port's training step against the official script's PyTorch arithmetic, where PyTorch is installed.

The official script trains ``nn.Sequential`` ConvMixer with ``nn.CrossEntropyLoss`` and
``torch.optim.AdamW``. Given the same weights, images and labels, this project's
model (with its CPU fast-path layers) and its training step (``steps``, the
official-logged recipe's ``optim.make_optimizer``) must give the same logits,
loss and weights after a few steps, and the same evaluation-mode logits from the
BatchNorm statistics they accumulated.

Adam's epsilon is set equal here, because it is the one known difference of the
update: Keras adds its 1e-7 to sqrt(v) before the bias correction, PyTorch its
1e-8 after it, so early in training Keras' is effectively hundreds of times
larger and slows weights with small gradients. On this small model and batch, 3
steps with the recipes' own epsilons leave weights up to 0.9 x lr apart, against
about 0.001 x lr with equal ones (float32 summation order, amplified by Adam's
normalisation). The tolerance, 0.01 x lr, tells the two apart. BatchNorm's running
variance differs by design too (PyTorch keeps the unbiased estimate, n/(n-1)
larger; n is batch x height x width), hence the evaluation logits' looser tolerance.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not a dependency; install it to compare with it")

from convmixer.cifar10 import CIFAR10_MEAN, CIFAR10_STD  # noqa: E402
from convmixer.models.convmixer import build_convmixer  # noqa: E402
from convmixer.training.optim import make_optimizer  # noqa: E402
from convmixer.training.recipes import get_recipe  # noqa: E402
from convmixer.training.steps import make_epoch_trainer  # noqa: E402

WIDTH, DEPTH, PATCH, KERNEL, BATCH, STEPS = 32, 2, 2, 5, 16, 3
EPSILON = 1e-12
TOL = 1e-2  # x lr: see the module docstring




def official_convmixer():
    """locuslab/convmixer-cifar10's ConvMixer definition, as its train.py builds it."""
    nn = torch.nn

    class Residual(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x) + x

    return nn.Sequential(
        nn.Conv2d(3, WIDTH, kernel_size=PATCH, stride=PATCH), nn.GELU(), nn.BatchNorm2d(WIDTH),
        *[nn.Sequential(
            Residual(nn.Sequential(nn.Conv2d(WIDTH, WIDTH, KERNEL, groups=WIDTH, padding="same"), nn.GELU(),
                                   nn.BatchNorm2d(WIDTH))),
            nn.Conv2d(WIDTH, WIDTH, kernel_size=1), nn.GELU(), nn.BatchNorm2d(WIDTH)) for _ in range(DEPTH)],
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(WIDTH, 10))


def copy_weights(keras_model, torch_model):
    """Keras' (NHWC) weights into the PyTorch model (NCHW), layer by layer in the same order."""
    from keras import layers

    convs = [m for m in torch_model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    norms = [m for m in torch_model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    kernels = [layer for layer in keras_model.layers
               if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense))]
    bns = [layer for layer in keras_model.layers if isinstance(layer, layers.BatchNormalization)]
    assert len(convs) == len(kernels) and len(norms) == len(bns)
    with torch.no_grad():
        for target, layer in zip(convs, kernels):
            kernel = np.asarray(layer.kernel)
            if isinstance(layer, layers.DepthwiseConv2D):  # (k, k, dim, 1) -> (dim, 1, k, k)
                kernel = kernel.transpose(2, 3, 0, 1)
            elif isinstance(layer, layers.Dense):  # (in, out) -> (out, in)
                kernel = kernel.T
            else:  # (k, k, in, out) -> (out, in, k, k)
                kernel = kernel.transpose(3, 2, 0, 1)
            target.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
            target.bias.copy_(torch.from_numpy(np.asarray(layer.bias)))
        for target, layer in zip(norms, bns):
            for name, variable in (("weight", layer.gamma), ("bias", layer.beta), ("running_mean", layer.moving_mean),
                                   ("running_var", layer.moving_variance)):
                getattr(target, name).copy_(torch.from_numpy(np.asarray(variable)))


def test_one_official_logged_training_step_equals_pytorchs():
    import keras

    keras.utils.set_random_seed(0)
    recipe = get_recipe("official-logged")
    lr = 1e-3  # one fixed rate: the schedule is checked against the log's printed rates elsewhere
    model = build_convmixer(WIDTH, DEPTH, PATCH, KERNEL, normalization=recipe.normalization)
    reference = official_convmixer()
    copy_weights(model, reference)
    initial = {name: p.detach().numpy().copy() for name, p in reference.named_parameters()}

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (STEPS * BATCH, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, STEPS * BATCH).astype("int64")
    normalised = (images / 255.0 - np.array(CIFAR10_MEAN, "float32")) / np.array(CIFAR10_STD, "float32")
    torch_images = torch.from_numpy(np.ascontiguousarray(normalised.transpose(0, 3, 1, 2)))

    reference.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(images, training=False), reference(torch_images).numpy(), atol=2e-5)

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = make_optimizer(recipe, lr)
    optimizer.epsilon = EPSILON  # as PyTorch's below (see the module docstring): the rest must then agree
    model.compile(optimizer=optimizer, loss=loss_fn)
    train_epoch = make_epoch_trainer(model, optimizer, loss_fn)
    ours_loss, _ = train_epoch(images, labels, BATCH)  # STEPS steps, the batches in order

    reference.train()
    torch_optimizer = torch.optim.AdamW(reference.parameters(), lr=lr, weight_decay=recipe.weight_decay, eps=EPSILON)
    losses = []
    for i in range(0, STEPS * BATCH, BATCH):
        torch_optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(reference(torch_images[i:i + BATCH]),
                                                 torch.from_numpy(labels[i:i + BATCH]))
        loss.backward()
        torch_optimizer.step()
        losses.append(loss.item())
    assert ours_loss == pytest.approx(np.mean(losses), rel=1e-5)

    # Every weight after the steps: each moved by about lr per step, and both moved it alike.
    after = official_convmixer()
    copy_weights(model, after)
    for (name, theirs), ours in zip(reference.named_parameters(), after.parameters()):
        moved = np.abs(theirs.detach().numpy() - initial[name]).max()
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), atol=TOL * lr, err_msg=name)
        assert moved > 0.5 * lr, name  # the comparison is finer than one step's move
    reference.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(images, training=False), reference(torch_images).numpy(), rtol=1e-3,
                                   atol=1e-3)
