"""How a model is named in words: the report's tables and the bench's output name a model the same way."""

from __future__ import annotations

import json


ARCHITECTURE_NAMES = {"convmixer": "ConvMixer", "resnet": "ResNet", "vit": "ViT", "mlp_mixer": "MLP-Mixer"}


def hyperparameters(row) -> dict:
    """A baseline's size hyperparameters (stored as JSON text by load_runs); {} when none or unreadable."""
    value = row.get("hyperparameters")
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value) if isinstance(value, str) and value else {}
    except ValueError:
        return {}


def model_name(row) -> str:
    """ConvMixer-64/4, or a baseline with the hyperparameters that set its size."""
    arch = row.get("architecture") or "convmixer"
    if arch == "convmixer":
        return f"ConvMixer-{row['width']}/{row['depth']}"
    from pandas import isna  # a run table's missing patch is NaN or pandas' NA

    hp = hyperparameters(row)
    patch = f", patch {row['patch_size']}" if not isna(row.get("patch_size")) else ""
    if arch == "resnet":
        return f"ResNet-{6 * hp.get('blocks_per_stage', 0) + 2} (width {hp.get('width')})"
    if arch == "vit":
        return (f"ViT-{hp.get('dim')}/{hp.get('depth')} ({hp.get('heads')} heads, MLP ratio "
                f"{hp.get('mlp_ratio')}{patch})")
    return (f"MLP-Mixer-{hp.get('dim')}/{hp.get('depth')} (token MLP {hp.get('token_mlp_dim')}, channel MLP "
            f"{hp.get('channel_mlp_dim')}{patch})")


def cell_name(row) -> str:
    """A model as one cell of a comparison: ConvMixer-64/4 p2 k9, or the baseline's name."""
    if (row.get("architecture") or "convmixer") == "convmixer":
        activation = "" if row.get("activation") in (None, "gelu") else f" {row['activation']}"
        return f"{model_name(row)} p{row['patch_size']} k{row['kernel_size']}{activation}"
    return model_name(row)
