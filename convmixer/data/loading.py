"""Turning a source into a :class:`Dataset`: dispatch, and local paths through the cache."""

from __future__ import annotations

import os

from ..paths import portable_path
from .archives import _open_members
from .cache import _Decoded, _default_cache_dir, _read_cache, _source_key, _write_cache, log
from .canonical import _CANONICAL_DESCRIPTION, _load_canonical
from .core import CIFAR10_CLASSES, Dataset, DataError, _is_synthetic, _make_dataset, _require_exists, resolve_source
from .formats import _decode_binary, _decode_images, _decode_python, _detect_layout, _image_class_names, _is_jpeg
from .synthetic import _load_synthetic, _parse_synthetic, _synthetic_description


def load_cifar10(source: str | os.PathLike | None = None, *, cache_dir: str | None = None) -> Dataset:
    """Load CIFAR-10 (or a stand-in) from ``source``; see :mod:`convmixer.data` for the sources."""
    resolved = resolve_source(source)
    if resolved == "cifar10":
        return _load_canonical()
    if _is_synthetic(resolved):
        return _load_synthetic(resolved)
    return _load_local(resolved, cache_dir)


def describe_source(source: str | os.PathLike | None) -> str:
    """The description :func:`load_cifar10` would give, without decoding images.

    For local paths this lists the archive/folder (no pixel decoding); for
    "cifar10" it does not download anything.
    """
    resolved = resolve_source(source)
    if resolved == "cifar10":
        return _CANONICAL_DESCRIPTION
    if _is_synthetic(resolved):
        return _synthetic_description(*_parse_synthetic(resolved))
    _require_exists(resolved)
    with _open_members(resolved) as members:
        layout = _detect_layout(members)
        lossy = layout.kind == "images" and any(_is_jpeg(n) for n in layout.files)
        names = _image_class_names(layout, members) if layout.kind == "images" else ()
        return _describe_local(resolved, members.container, layout.kind, lossy, names)


def _decode_local(path: str) -> _Decoded:
    """Detect the layout of ``path`` and decode all of it (the slow step)."""
    decoders = {"python": _decode_python, "binary": _decode_binary, "images": _decode_images}
    with _open_members(path) as members:
        layout = _detect_layout(members)
        *arrays, names = decoders[layout.kind](members, layout)
        lossy = layout.kind == "images" and any(_is_jpeg(n) for n in layout.files)
        return _Decoded(tuple(arrays), tuple(names), members.container, layout.kind, lossy)


def _describe_local(path: str, container: str, layout: str, lossy: bool, class_names) -> str:
    path = portable_path(path)
    if layout in ("python", "binary"):
        return f"CIFAR-10 {layout}-format {container} {path}"
    text = f"image-folder {container} {path}"
    if lossy:  # results from a JPEG copy are not comparable pixel-for-pixel with CIFAR-10
        is_cifar = tuple(class_names) == CIFAR10_CLASSES
        text += " (JPEG re-encoding of CIFAR-10, lossy)" if is_cifar else " (JPEG images, lossy)"
    return text


def _load_local(path: str, cache_dir: str | None) -> Dataset:
    _require_exists(path)
    cache_file = os.path.join(cache_dir or _default_cache_dir(), f"cifar10-{_source_key(path)}.npz")
    decoded = _read_cache(cache_file)
    dataset = None
    if decoded is not None:
        try:
            dataset = _build_local(path, decoded)
        except DataError as err:  # a cache that decodes but fails validation is also rebuilt
            log.warning("ignoring invalid dataset cache %s (%s); rebuilding it", cache_file, err)
    if dataset is None:
        decoded = _decode_local(path)
        dataset = _build_local(path, decoded)  # validate before caching
        _write_cache(cache_file, decoded)
    return dataset


def _build_local(path: str, decoded: _Decoded) -> Dataset:
    description = _describe_local(path, decoded.container, decoded.layout, decoded.lossy_jpeg, decoded.class_names)
    return _make_dataset(
        *decoded.arrays, decoded.class_names,
        source=path, description=description, lossy_jpeg=decoded.lossy_jpeg,
    )
