"""The architectures of claim 1, and baselines matched to a ConvMixer's parameter count.

``build_model``, ``count_model_parameters`` and ``count_model_macs`` (multiply-adds per image) dispatch
on the architecture name
and a dict of its hyperparameters (``HYPERPARAMETERS`` lists each one's names).

``matched_hyperparameters(architecture, target_params, patch_size)`` picks, from
one small fixed family per baseline, the member whose trainable-parameter count
is closest to the target (ties: the first in the order below), and refuses when
even that one is more than ``MATCH_TOLERANCE`` (15%) away. The families fix
everything but one size knob, so no baseline is tuned for the comparison:

* ``resnet``: pre-activation ResNet, ``blocks_per_stage`` in {1, 2, 3}
  (ResNet-8/14/20), ``width`` (first-stage channels) in 4..64. No patch.
* ``vit``: depth 4, mlp_ratio 2, 4 heads (1 below dim 16, where 4 heads would
  have under 4 channels each); ``dim`` in 4..256, a multiple of the heads.
* ``mlp_mixer``: depth 4, token_mlp_dim = dim / 2 (rounded down; the paper's
  ratio in every Mixer it lists, e.g. Mixer-B: dim 768, token MLP 384),
  channel_mlp_dim = 2 * dim (the ViT family's mlp_ratio; the paper uses 4);
  ``dim`` in 4..256.

Why token_mlp_dim follows dim and not the token count: the token-mixing MLP has
about 2 * tokens * token_mlp_dim parameters per block, so with tokens / 2 a
depth-4 Mixer at patch 2 (256 tokens) has over 260k parameters at any dim and
could never match a ConvMixer-64/4 (about 40k).
"""

from __future__ import annotations

from . import convmixer as model, mlp_mixer, resnet, vit

ARCHITECTURES = ("convmixer", "resnet", "vit", "mlp_mixer")
BASELINES = ARCHITECTURES[1:]
MATCH_TOLERANCE = 0.15
HYPERPARAMETERS = {
    "convmixer": ("width", "depth", "patch_size", "kernel_size", "activation"),
    "resnet": ("width", "blocks_per_stage"),
    "vit": ("dim", "depth", "heads", "mlp_ratio", "patch_size"),
    "mlp_mixer": ("dim", "depth", "patch_size", "token_mlp_dim", "channel_mlp_dim"),
}
OPTIONAL = {"convmixer": {"activation": "gelu"}}  # the rest have no defaults: records name every one


def _check_architecture(architecture):
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}, got {architecture!r}")


def _complete(architecture, hyperparameters):
    """The hyperparameters with defaults filled in; one line naming any that is unknown or missing."""
    _check_architecture(architecture)
    names = HYPERPARAMETERS[architecture]
    for key in hyperparameters:
        if key not in names:
            raise ValueError(f"{key} does not apply to {architecture}: its hyperparameters are {list(names)}")
    full = {**OPTIONAL.get(architecture, {}), **hyperparameters}
    for key in names:
        if key not in full:
            raise ValueError(f"{architecture} needs {key}: its hyperparameters are {list(names)}")
    return full


# Per architecture, the counters that work from the hyperparameters alone: (parameters, multiply-adds).
COUNTERS = {
    "convmixer": (model.count_parameters, model.count_macs),
    "resnet": (resnet.count_resnet_parameters, resnet.count_resnet_macs),
    "vit": (vit.count_vit_parameters, vit.count_vit_macs),
    "mlp_mixer": (mlp_mixer.count_mlp_mixer_parameters, mlp_mixer.count_mlp_mixer_macs),
}


def _count(which: int, architecture, hyperparameters, num_classes):
    hp = _complete(architecture, hyperparameters)
    counter = COUNTERS[architecture][which]
    if architecture == "convmixer":
        model.validate_architecture(hp["width"], hp["depth"], hp["patch_size"], hp["kernel_size"],
                                    num_classes=num_classes, activation=hp["activation"])
        return counter(hp["width"], hp["depth"], hp["patch_size"], hp["kernel_size"], num_classes)
    return counter(**hp, num_classes=num_classes)


def count_model_parameters(architecture, hyperparameters, num_classes=10):
    """Trainable parameters of the architecture, computed without building it."""
    return _count(0, architecture, hyperparameters, num_classes)


def count_model_macs(architecture, hyperparameters, num_classes=10):
    """Multiply-adds per image in the forward pass (convmixer.MACS_COVER), computed without building it."""
    return _count(1, architecture, hyperparameters, num_classes)


def build_model(architecture, hyperparameters, num_classes=10, normalization="rescale"):
    """A ``keras.Model`` mapping (N, 32, 32, 3) images in [0, 255] to float32 logits."""
    hp = _complete(architecture, hyperparameters)
    builder = {
        "convmixer": model.build_convmixer,
        "resnet": resnet.build_resnet,
        "vit": vit.build_vit,
        "mlp_mixer": mlp_mixer.build_mlp_mixer,
    }[architecture]
    return builder(**hp, num_classes=num_classes, normalization=normalization)


def vit_heads(dim):
    """Attention heads of the ViT family: 4, or 1 for dims too small to split into 4 heads of >= 4 channels."""
    return 4 if dim >= 16 else 1


def family(architecture, patch_size=None):
    """Every member of the architecture's matching family, in search order."""
    _check_architecture(architecture)
    if architecture == "convmixer":
        raise ValueError("architecture convmixer is the reference the baselines are matched to; "
                         f"matching applies to {list(BASELINES)}")
    if architecture == "resnet":
        if patch_size is not None:
            raise ValueError(f"patch_size does not apply to resnet (it has no patches), got {patch_size!r}")
        return [{"width": w, "blocks_per_stage": b} for b in (1, 2, 3) for w in range(4, 65)]
    if architecture == "vit":
        vit.validate_vit(4, 1, 1, 1, patch_size)  # a bad patch_size is named as such, not as a failed match
        return [
            {"dim": d, "depth": 4, "heads": vit_heads(d), "mlp_ratio": 2, "patch_size": patch_size}
            for d in range(4, 257)
            if d % vit_heads(d) == 0
        ]
    mlp_mixer.validate_mlp_mixer(4, 1, patch_size, 1, 1)
    return [
        {"dim": d, "depth": 4, "patch_size": patch_size, "token_mlp_dim": d // 2, "channel_mlp_dim": 2 * d}
        for d in range(4, 257)
    ]


def matched_hyperparameters(architecture, target_params, patch_size=None, num_classes=10):
    """The family member closest in trainable parameters to ``target_params``, within +-15%."""
    if not isinstance(target_params, int) or isinstance(target_params, bool) or target_params < 1:
        raise ValueError(f"target_params must be an integer >= 1, got {target_params!r}")
    members = family(architecture, patch_size)
    best = min(members, key=lambda hp: abs(count_model_parameters(architecture, hp, num_classes) - target_params))
    count = count_model_parameters(architecture, best, num_classes)
    if abs(count - target_params) > MATCH_TOLERANCE * target_params:
        where = "" if patch_size is None else f" at patch_size {patch_size}"
        raise ValueError(
            f"{architecture}{where} cannot match target_params={target_params} within "
            f"+-{MATCH_TOLERANCE:.0%}: its family's closest member, {best}, has {count}"
        )
    return best
