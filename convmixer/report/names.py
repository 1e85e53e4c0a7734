"""How the report names a model, a setup and a training regime in words (tables, captions, evidence)."""

from __future__ import annotations

import pandas as pd

# How a model is named is the models' fact (the bench names what it times the same way); the report's
# sections import these names from here.
from ..models.names import ARCHITECTURE_NAMES, cell_name, hyperparameters, model_name  # noqa: F401


# The report's name for a recipe. The code's "seed" (the reference report's starting point) would read as a random
# seed beside "3 seeds", so the report names it after its source, the Keras ConvMixer example.
RECIPE_NAMES = {"seed": "Keras-example"}


def recipe_name(recipe) -> str:
    """A recipe as the report names it ("Keras-example" for the code's "seed")."""
    return RECIPE_NAMES.get(recipe, recipe) if isinstance(recipe, str) else recipe


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
    parts = [model_name(row), f"{recipe_name(row['recipe'])} recipe"]
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


def trained_on_jpeg(runs: pd.DataFrame) -> bool:
    """Whether every run trained on the lossy JPEG copy of CIFAR-10 (missing or unknown counts as not)."""
    # Over the column (map hands Python bools), not one row: a row of a bool column holds numpy.bool_.
    return bool(runs["lossy_jpeg"].map(lambda v: v is True).all())


def _regime_facts(setup_runs: pd.DataFrame) -> tuple[int, int, str | None, str | None]:
    """What both regime texts say beyond model, epochs and recipe: the fewest and most seeds of a
    configuration, the training subset's size ("12,000", None for the full set) and the data when it is not
    canonical CIFAR-10 ("jpeg", "synthetic", None)."""
    first = setup_runs.iloc[0]
    per_cell = setup_runs.groupby(["patch_size", "kernel_size"], dropna=False)["seed"].nunique()
    low, high = (int(per_cell.min()), int(per_cell.max())) if len(per_cell) else (0, 0)
    images = first.get("train_images")
    subset = f"{int(images):,}" if not pd.isna(first.get("train_subset")) and not pd.isna(images) else None
    data = ("jpeg" if trained_on_jpeg(setup_runs) else
            "synthetic" if str(first.get("data") or "").startswith("synthetic") else None)
    return low, high, subset, data


def regime(setup_runs: pd.DataFrame) -> str:
    """The regime a verdict holds in, in words: model, epochs, recipe, data and seeds."""
    first = setup_runs.iloc[0]
    low, high, subset, data = _regime_facts(setup_runs)
    seeds = (f"{high} seed{'s' if high != 1 else ''}" if low == high
             else f"{low}-{high} seeds per configuration")
    where = f" on a {subset}-image training subset" if subset else ""
    data = {"jpeg": "the JPEG copy of CIFAR-10", "synthetic": "synthetic data"}.get(data, "CIFAR-10")
    recipe = recipe_name(first["recipe"])
    return f"{model_name(first)} after {first['epochs']} epochs of the {recipe} recipe{where} on {data} ({seeds})"


def short_regime(setup_runs: pd.DataFrame, model: str | None = None, seeds_word: str = "") -> str:
    """A regime in a few words (the report's first screen): model (``model`` overrides it; "" leaves it out),
    epochs and recipe, a training subset, the data when it is not canonical CIFAR-10, and the seeds.
    ``regime`` says the same at length."""
    first = setup_runs.iloc[0]
    low, high, subset, data = _regime_facts(setup_runs)
    seeds = f"{high} seed{'s' if high != 1 else ''}" if low == high else f"{low}-{high} seeds"
    parts = ([model_name(first)] if model is None else [model] if model else []) + [
        f"{first['epochs']} epochs of the {recipe_name(first['recipe'])} recipe"]
    if subset:
        parts.append(f"{subset} training images")
    if data:
        parts.append({"jpeg": "JPEG CIFAR-10", "synthetic": "synthetic data"}[data])
    return ", ".join(parts + [seeds + seeds_word])


