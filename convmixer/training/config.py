"""One typed dataclass that holds a run's whole configuration, and the run id derived from it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field

from ..models.convmixer import validate_architecture
from .recipes import get_recipe, normalize_overrides
from .speed import validate_speed_options

BACKENDS = ("tensorflow", "jax", "torch")
# keras.utils.set_random_seed seeds numpy's legacy generator, which takes 32-bit seeds only.
MAX_SEED = 2**32 - 1
# The paper trains 200 epochs (ImageNet, 150); 10,000 is far beyond any recipe, and more is a slip.
MAX_EPOCHS = 10_000
# CIFAR-10's sizes: a batch or a subset larger than its training set (or a test subset larger than
# its test set) cannot be drawn from it.
CIFAR10_TRAIN_IMAGES, CIFAR10_TEST_IMAGES = 50_000, 10_000
# A training set must show the model every class at least once: CIFAR-10 has 10.
NUM_CLASSES = 10


def _field(default, help, **kwargs):
    """A config field whose help text the CLI and the notebook's parameters cell show."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


# ConvMixer's size when a config does not give one (the paper's CIFAR-10 ConvMixer-256/8).
CONVMIXER_DEFAULTS = {"width": 256, "depth": 8, "patch_size": 2, "kernel_size": 5}


@dataclass
class RunConfig:
    architecture: str = _field("convmixer", "model family: convmixer, resnet, vit or mlp_mixer")
    width: typing.Optional[int] = _field(None, "ConvMixer width (channels); None: 256")
    depth: typing.Optional[int] = _field(None, "ConvMixer depth (blocks); None: 8")
    patch_size: typing.Optional[int] = _field(None, "patch size (ConvMixer, ViT, MLP-Mixer); None: 2 for ConvMixer")
    kernel_size: typing.Optional[int] = _field(None, "ConvMixer depthwise kernel size; None: 5")
    hyperparameters: dict = _field({}, "a baseline's size, e.g. {\"dim\": 32, \"depth\": 4, \"heads\": 4, "
                                       "\"mlp_ratio\": 2} for vit (see convmixer/models/baselines.py)")
    activation: str = _field("gelu", "ConvMixer activation: gelu or relu")
    recipe: str = _field("seed", "training recipe: seed, official or official-logged (see convmixer/training/recipes.py)")
    recipe_overrides: dict = _field({}, "recipe fields to change, e.g. {\"lr\": 0.005}")
    epochs: typing.Optional[int] = _field(None, "epochs; None: the recipe's default")
    batch_size: typing.Optional[int] = _field(None, "batch size; None: the recipe's default")
    seed: int = _field(0, "random seed (initialisation, data order, augmentation)")
    data: typing.Optional[str] = _field(None, "data source; None: $CONVMIXER_DATA, else canonical CIFAR-10")
    train_subset: typing.Optional[int] = _field(None, "train on this many (stratified) images; None: all")
    test_subset: typing.Optional[int] = _field(None, "test on this many images; None: all")
    backend: str = _field("tensorflow", "Keras backend: tensorflow, jax or torch")
    # "auto" lets speed.settings_for_device pick per device (CPU: float32, no XLA; GPU:
    # mixed precision and XLA); other values override it.
    precision: str = _field("auto", "auto, float32, mixed_float16 or mixed_bfloat16")
    jit_compile: str = _field("auto", "XLA: auto (on GPU/TPU only), on or off")

    def __post_init__(self):
        self._check_types()
        self._check_model()
        recipe = get_recipe(self.recipe, self.recipe_overrides)  # raises on bad names/values
        if recipe.initialisation == "pytorch" and self.architecture != "convmixer":
            raise ValueError(f"recipe_overrides.initialisation 'pytorch' applies to convmixer only (PyTorch's "
                             f"nn.Conv2d/nn.Linear defaults), not to {self.architecture}")
        # An override that restates the recipe's own value trains the same run: dropped, so the run keeps its id
        # and setup (e.g. {initialisation: keras} is the default, not a diagnostic).
        own = get_recipe(self.recipe)
        self.recipe_overrides = {key: value for key, value in normalize_overrides(self.recipe_overrides).items()
                                 if getattr(own, key) != value}
        if self.epochs is None:
            self.epochs = recipe.epochs
        if self.batch_size is None:
            self.batch_size = recipe.batch_size
        for name, most in (("epochs", MAX_EPOCHS), ("batch_size", CIFAR10_TRAIN_IMAGES)):
            if not 1 <= getattr(self, name) <= most:
                raise ValueError(f"{name} must be an integer from 1 to {most:,}, got {getattr(self, name)!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED} (2**32 - 1), got {self.seed!r}")
        self._check_data()
        for name, least, most, why in (
                ("train_subset", NUM_CLASSES, CIFAR10_TRAIN_IMAGES, f"at least one image of each of the {NUM_CLASSES} "
                                                                    "classes, at most CIFAR-10's training set"),
                ("test_subset", 1, CIFAR10_TEST_IMAGES, "at most CIFAR-10's test set")):
            value = getattr(self, name)
            if value is not None and not least <= value <= most:
                raise ValueError(f"{name} must be None or an integer from {least} to {most:,} ({why}), got {value!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        validate_speed_options(self.precision, self.jit_compile)

    def _check_data(self):
        """A synthetic source's sizes are checked here, before anything is generated or written; a path is
        checked when the run opens it (it may exist only on the machine that trains)."""
        from ..data import DataError, check_synthetic

        if self.data is not None:
            try:
                check_synthetic(self.data)
            except DataError as exc:
                raise ValueError(f"data: {exc}") from None

    def _check_model(self):
        """Fill ConvMixer's size defaults, or check that a baseline names only what applies to it."""
        from ..models.baselines import ARCHITECTURES, HYPERPARAMETERS, count_model_parameters

        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}, got {self.architecture!r}")
        if self.architecture == "convmixer":
            if self.hyperparameters:
                raise ValueError("hyperparameters apply to the baselines only; a ConvMixer's size is given by "
                                 "width, depth, patch_size and kernel_size")
            for name, default in CONVMIXER_DEFAULTS.items():
                if getattr(self, name) is None:
                    setattr(self, name, default)
            validate_architecture(self.width, self.depth, self.patch_size, self.kernel_size,
                                  activation=self.activation)
            return
        names = HYPERPARAMETERS[self.architecture]
        for name in ("width", "depth", "kernel_size") + (() if "patch_size" in names else ("patch_size",)):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} does not apply to {self.architecture}; give its size in hyperparameters "
                                 f"({[n for n in names if n != 'patch_size']})")
        if self.activation != "gelu":
            raise ValueError(f"activation applies to convmixer only; {self.architecture} uses its own")
        # 2 and 2.0 are one model: whole numbers are stored as ints, so they share a run id.
        self.hyperparameters = {k: int(v) if isinstance(v, float) and v.is_integer() else v
                                for k, v in self.hyperparameters.items()}
        if "patch_size" in self.hyperparameters:
            raise ValueError("patch_size is a field of its own, not a key of hyperparameters")
        if "patch_size" in names and self.patch_size is None:
            raise ValueError(f"{self.architecture} needs patch_size")
        count_model_parameters(self.architecture, self.model_hyperparameters)  # names a bad or missing one

    @property
    def model_hyperparameters(self) -> dict:
        """Everything the model builder needs (``baselines.build_model``)."""
        if self.architecture == "convmixer":
            return {"width": self.width, "depth": self.depth, "patch_size": self.patch_size,
                    "kernel_size": self.kernel_size, "activation": self.activation}
        patch = {"patch_size": self.patch_size} if self.patch_size is not None else {}
        return {**self.hyperparameters, **patch}

    def _check_types(self):
        hints = typing.get_type_hints(RunConfig)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            wanted = hints[f.name]
            optional = typing.get_origin(wanted) is typing.Union
            base = [a for a in typing.get_args(wanted) if a is not type(None)][0] if optional else wanted
            if value is None and optional:
                continue
            ok = isinstance(value, base) and not (base is int and isinstance(value, bool))
            if not ok:
                kind = base.__name__ + (" or None" if optional else "")
                raise TypeError(f"{f.name} must be {kind}, got {type(value).__name__} {value!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """Build from a plain mapping; unknown keys are an error that lists the known ones."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown configuration key(s) {unknown}; allowed keys are {known}")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_params(self) -> dict:
        """The run folder's params.json: every field, the run id and the configuration hash (the one place
        it is built, for the training loop and for the sweep's record of a run refused before it started)."""
        return self.to_dict() | {"run_id": self.run_id, "config_hash": self.config_hash}

    @property
    def recipe_obj(self):
        return get_recipe(self.recipe, self.recipe_overrides)

    @property
    def config_hash(self) -> str:
        """Short hash of every field: two runs share an id only if they share a configuration.

        Fields added after the first records (``HASHED_WHEN_SET``) enter the hash only
        when they differ from their default, so records made before they existed
        keep their ids.
        """
        return configuration_hash(self.to_dict())

    @property
    def run_id(self) -> str:
        """Readable, timm-style id plus the configuration hash.

        e.g. ``convmixer_256_8_k9_p2_seed-recipe_e40_s0-1a2b3c4d``; subsets are
        named too (``_n10000``) because they change what a number means.
        """
        if self.architecture == "convmixer":
            parts = [f"convmixer_{self.width}_{self.depth}", f"k{self.kernel_size}", f"p{self.patch_size}"]
        else:
            parts = [self.architecture] + [f"{k}{v}" for k, v in sorted(self.hyperparameters.items())]
            parts += [f"p{self.patch_size}"] if self.patch_size is not None else []
        parts += [f"{self.recipe}-recipe", f"e{self.epochs}", f"s{self.seed}"]
        if self.train_subset is not None:
            parts.append(f"n{self.train_subset}")
        return "_".join(parts) + "-" + self.config_hash


HASHED_WHEN_SET = {"precision": "auto", "jit_compile": "auto", "architecture": "convmixer", "hyperparameters": {}}


def configuration_hash(values: dict) -> str:
    """``RunConfig.config_hash`` of a configuration's fields as ``to_dict`` gives them (or as params.json
    stores them): a record's params.json hashes to its own ``config_hash`` unless a field was changed."""
    values = {name: value for name, value in values.items()
              if name not in HASHED_WHEN_SET or value != HASHED_WHEN_SET[name]}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]

# The notebook's parameters cell must list exactly these names (a test checks it).
PARAMETER_NAMES = [f.name for f in dataclasses.fields(RunConfig)]
