"""One typed dataclass that holds a run's whole configuration, and the run id derived from it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field

from .model import validate_architecture
from .recipes import get_recipe, normalize_overrides
from .speed import validate_speed_options

BACKENDS = ("tensorflow", "jax", "torch")


@dataclass
class RunConfig:
    width: int = 256
    depth: int = 8
    patch_size: int = 2
    kernel_size: int = 5
    activation: str = "gelu"
    recipe: str = "seed"
    recipe_overrides: dict = field(default_factory=dict)
    epochs: typing.Optional[int] = None  # None: the recipe's default
    batch_size: typing.Optional[int] = None  # None: the recipe's default
    seed: int = 0
    data: typing.Optional[str] = None  # None: $CONVMIXER_DATA, else canonical CIFAR-10
    train_subset: typing.Optional[int] = None  # train on this many (stratified) images
    test_subset: typing.Optional[int] = None  # test on this many
    backend: str = "tensorflow"
    # Speed settings: "auto" lets speed.choose_settings pick per device (CPU: float32,
    # no XLA; GPU: mixed precision and XLA); other values override it.
    precision: str = "auto"
    jit_compile: str = "auto"

    def __post_init__(self):
        self._check_types()
        validate_architecture(self.width, self.depth, self.patch_size, self.kernel_size, activation=self.activation)
        recipe = get_recipe(self.recipe, self.recipe_overrides)  # raises on bad names/values
        self.recipe_overrides = normalize_overrides(self.recipe_overrides)
        if self.epochs is None:
            self.epochs = recipe.epochs
        if self.batch_size is None:
            self.batch_size = recipe.batch_size
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in ("train_subset", "test_subset"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        validate_speed_options(self.precision, self.jit_compile)

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
        values = self.to_dict()
        for name, default in HASHED_WHEN_SET.items():
            if values[name] == default:
                del values[name]
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def run_id(self) -> str:
        """Readable, timm-style id plus the configuration hash.

        e.g. ``convmixer_256_8_k9_p2_seed-recipe_e40_s0-1a2b3c4d``; subsets are
        named too (``_n10000``) because they change what a number means.
        """
        parts = [f"convmixer_{self.width}_{self.depth}", f"k{self.kernel_size}", f"p{self.patch_size}"]
        parts += [f"{self.recipe}-recipe", f"e{self.epochs}", f"s{self.seed}"]
        if self.train_subset is not None:
            parts.append(f"n{self.train_subset}")
        return "_".join(parts) + "-" + self.config_hash


HASHED_WHEN_SET = {"precision": "auto", "jit_compile": "auto"}

# The notebook's parameters cell must list exactly these names (a test checks it).
PARAMETER_NAMES = [f.name for f in dataclasses.fields(RunConfig)]
