"""How the report names a model, a setup and a training regime in words (tables, captions, evidence)."""

from __future__ import annotations

import json

import pandas as pd


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
    hp = hyperparameters(row)
    patch = f", patch {row['patch_size']}" if not pd.isna(row.get("patch_size")) else ""
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


def parameter_count(row) -> int | None:
    """The model's trainable parameters, computed from its architecture; None when it cannot be built."""
    from ..models.baselines import count_model_parameters

    arch = row.get("architecture") or "convmixer"
    if arch == "convmixer":
        hp = {k: int(row[k]) for k in ("width", "depth", "patch_size", "kernel_size")}
    else:
        hp = hyperparameters(row) | ({"patch_size": int(row["patch_size"])}
                                     if not pd.isna(row.get("patch_size")) else {})
    try:
        return count_model_parameters(arch, hp)
    except (ValueError, TypeError):
        return None


def describe_setup(row) -> str:
    """The budget a setup trains with, in words (used as figure titles and table captions)."""
    parts = [model_name(row), f"{row['recipe']} recipe"]
    overrides = row.get("recipe_overrides")
    if overrides not in (None, "", "{}"):
        parts.append(f"overrides {overrides}")
    parts.append(f"{row['epochs']} epochs")
    train_images = row.get("train_images")
    if not pd.isna(train_images):
        parts.append(f"{int(train_images):,} train images")
    if not pd.isna(row.get("test_subset")):  # a missing subset arrives as None or NaN from pandas
        parts.append(f"{int(row['test_subset']):,} test images")
    parts.append(f"batch {row['batch_size']}")
    if row.get("data"):
        parts.append(f"data {row['data']}")
    else:  # the default source differs per machine ($CONVMIXER_DATA): name it by its fingerprint
        parts.append(f"default data {str(row.get('dataset_fingerprint'))[:15]}…")
    if row.get("activation") not in (None, "gelu"):
        parts.append(str(row["activation"]))
    if row.get("backend") not in (None, "tensorflow"):
        parts.append(str(row["backend"]))
    return ", ".join(parts)


def regime(setup_runs: pd.DataFrame) -> str:
    """The regime a verdict holds in, in words: model, epochs, recipe, data and seeds."""
    first = setup_runs.iloc[0]
    per_cell = setup_runs.groupby(["patch_size", "kernel_size"], dropna=False)["seed"].nunique()
    low, high = (int(per_cell.min()), int(per_cell.max())) if len(per_cell) else (0, 0)
    seeds = (f"{high} seed{'s' if high != 1 else ''}" if low == high
             else f"{low}-{high} seeds per configuration")
    images = first.get("train_images")
    subset = (f" on a {int(images):,}-image training subset" if not pd.isna(first.get("train_subset"))
              and not pd.isna(images) else "")
    if setup_runs["lossy_jpeg"].map(lambda v: v is True).all():
        data = "the JPEG copy of CIFAR-10"
    elif str(first.get("data") or "").startswith("synthetic"):
        data = "synthetic data"
    else:
        data = "CIFAR-10"
    return f"{model_name(first)} after {first['epochs']} epochs of the {first['recipe']} recipe{subset} on {data} ({seeds})"


