"""CIFAR-10 loading for the ConvMixer reproducibility study.

One entry point, :func:`load_cifar10`, turns a *source* into a :class:`Dataset`
of uint8 NHWC images and int64 labels.  Sources:

* ``"cifar10"``: the canonical python archive, downloaded by Keras with its
  sha256 verified (needs network, or a pre-filled ``~/.keras/datasets``).
* ``"synthetic"`` / ``"synthetic:N_TRAIN:N_TEST"``: a small generated,
  learnable stand-in for tests and smoke runs.
* a local path: the python or binary CIFAR-10 release (tarball or extracted
  folder), or an image folder ``train/<class>/*``, ``test/<class>/*`` (folder,
  .zip or tar, possibly under one top-level folder).

Every failure is a :class:`DataError` naming the file.  Every dataset carries a
fingerprint (sha256 of its decoded arrays), so it does not depend on the
container, the format or the cache.  :func:`take_subset` and
:func:`validation_split` cut seeded, class-balanced parts of the arrays.

Modules, one job each (their docstrings explain the design):

* ``core``: :class:`Dataset`, :class:`DataError`, source names, validation and fingerprint;
* ``loading``: :func:`load_cifar10` / :func:`describe_source`, local paths through the cache;
* ``canonical``: the ``"cifar10"`` download; ``synthetic``: the generated stand-in;
* ``archives``: folders, tar and zip read in place, never extracted;
* ``formats``: which layout a container holds, and decoding the binary and image-folder ones;
* ``unpickle``: the python batches, through a restricted, bounded unpickler;
* ``cache``: the ``.npz`` cache of decoded local sources;
* ``splits``: subsets and validation splits.
"""

from __future__ import annotations

from .canonical import CIFAR10_ORIGIN, CIFAR10_SHA256
from .core import ACCEPTED_SOURCES, CIFAR10_CLASSES, IMAGE_SIZE, Dataset, DataError, resolve_source
from .loading import describe_source, load_cifar10
from .splits import take_subset, validation_split
from .synthetic import check_synthetic

__all__ = [
    "CIFAR10_CLASSES",
    "DataError",
    "Dataset",
    "resolve_source",
    "check_synthetic",
    "load_cifar10",
    "describe_source",
    "validation_split",
    "take_subset",
]
