"""Tests for convmixer.data: every source format, safety, errors, cache, splits.

All fixtures are tiny (20 train / 10 test images) and built in tmp_path; nothing
touches the network, the home directory or the full 60,000-image dataset.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import shutil
import sys
import tarfile
import types
import zipfile

import numpy as np
import pytest
from PIL import Image

from convmixer import data
from convmixer.data import CIFAR10_CLASSES, DataError, load_cifar10, loading, unpickle

N_TRAIN, N_TEST = 20, 10


# --------------------------------------------------------------------------
# Fixture builders
# --------------------------------------------------------------------------

def make_arrays(seed=0, smooth=False):
    """(x_train, y_train, x_test, y_test): random pixels, 2/1 images per class, shuffled."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (N_TRAIN, N_TEST):
        y = rng.permutation(np.arange(n) % 10).astype(np.int64)
        if smooth:  # JPEG-friendly: a flat colour plus a gentle gradient
            base = rng.integers(40, 200, size=(n, 1, 1, 3))
            ramp = np.linspace(0, 30, 32)[None, None, :, None]
            x = np.broadcast_to(base + ramp, (n, 32, 32, 3)).astype(np.uint8)
        else:
            x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        out += [x, y]
    return tuple(out)


def chw_rows(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))


def write_python(folder, arrays, *, protocol=3, str_keys=False, rename_core=False):
    """The python release layout: 5 train batches, test_batch, batches.meta."""
    x_tr, y_tr, x_te, y_te = arrays
    os.makedirs(folder, exist_ok=True)
    key = (lambda k: k) if str_keys else (lambda k: k.encode())

    def dump(name, obj):
        blob = pickle.dumps(obj, protocol=protocol)
        if rename_core:  # what numpy 1 / the original Python 2 pickles call the module
            blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(blob)

    for i, idx in enumerate(np.array_split(np.arange(len(y_tr)), 5), start=1):
        dump(f"data_batch_{i}", {key("batch_label"): b"x", key("labels"): y_tr[idx].tolist(),
                                 key("data"): chw_rows(x_tr[idx])})
    dump("test_batch", {key("labels"): y_te.tolist(), key("data"): chw_rows(x_te)})
    dump("batches.meta", {key("label_names"): [c.encode() for c in CIFAR10_CLASSES],
                          key("num_vis"): 3072})
    return folder


def write_binary(folder, arrays):
    """The binary release layout: records of 1 label byte + 3072 CHW bytes."""
    x_tr, y_tr, x_te, y_te = arrays
    os.makedirs(folder, exist_ok=True)

    def records(x, y):
        return np.concatenate([y.astype(np.uint8)[:, None], chw_rows(x)], axis=1).tobytes()

    for i, idx in enumerate(np.array_split(np.arange(len(y_tr)), 5), start=1):
        with open(os.path.join(folder, f"data_batch_{i}.bin"), "wb") as fh:
            fh.write(records(x_tr[idx], y_tr[idx]))
    with open(os.path.join(folder, "test_batch.bin"), "wb") as fh:
        fh.write(records(x_te, y_te))
    with open(os.path.join(folder, "batches.meta.txt"), "w") as fh:
        fh.write("\n".join(CIFAR10_CLASSES) + "\n\n")  # the real file ends in blank lines
    return folder


def write_images(root, arrays, ext="png", classes=CIFAR10_CLASSES):
    x_tr, y_tr, x_te, y_te = arrays
    for split, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        for i, (img, label) in enumerate(zip(x, y)):
            folder = os.path.join(root, split, classes[label])
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(img).save(os.path.join(folder, f"{i:04d}.{ext}"), quality=95)
    return root


def make_tar(src, dest, arcname):
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src, arcname=arcname)
    return str(dest)


def make_zip(src, dest, top=""):
    with zipfile.ZipFile(dest, "w") as zf:
        for root, _, files in os.walk(src):
            for f in sorted(files):
                full = os.path.join(root, f)
                zf.write(full, top + os.path.relpath(full, src).replace(os.sep, "/"))
    return str(dest)


def expected_order(arrays):
    """Image folders are read class by class, files sorted: the order to compare against."""
    x_tr, y_tr, x_te, y_te = arrays
    out = []
    for x, y in ((x_tr, y_tr), (x_te, y_te)):
        # write_images names files by original index, so sorting by (label, index) reproduces it
        order = np.lexsort((np.arange(len(y)), y))
        out += [x[order], y[order]]
    return out


def truncate(path, keep=0.5):
    with open(path, "rb") as fh:
        blob = fh.read()
    with open(path, "wb") as fh:
        fh.write(blob[: int(len(blob) * keep)])


@pytest.fixture
def arrays():
    return make_arrays()


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")


def assert_same_arrays(ds, arrays):
    x_tr, y_tr, x_te, y_te = arrays
    np.testing.assert_array_equal(ds.x_train, x_tr)
    np.testing.assert_array_equal(ds.y_train, y_tr)
    np.testing.assert_array_equal(ds.x_test, x_te)
    np.testing.assert_array_equal(ds.y_test, y_te)


def assert_well_formed(ds, n_train=N_TRAIN, n_test=N_TEST):
    assert ds.x_train.shape == (n_train, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (n_test, 32, 32, 3) and ds.x_test.dtype == np.uint8
    assert ds.y_train.shape == (n_train,) and ds.y_train.dtype == np.int64
    assert ds.y_test.shape == (n_test,) and ds.y_test.dtype == np.int64
    assert ds.fingerprint.startswith("sha256:") and len(ds.fingerprint) == 7 + 64


# --------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------

def test_python_tarball_exact(tmp_path, arrays, cache):
    src = write_python(tmp_path / "src" / "cifar-10-batches-py", arrays)
    tgz = make_tar(src, tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py")
    ds = load_cifar10(tgz, cache_dir=cache)
    assert_well_formed(ds)
    assert_same_arrays(ds, arrays)
    assert ds.class_names == CIFAR10_CLASSES
    assert ds.source == tgz and not ds.lossy_jpeg
    assert "python" in ds.description and os.path.basename(tgz) in ds.description  # records name files portably


@pytest.mark.parametrize(
    "variant",
    [dict(protocol=3), dict(protocol=5, str_keys=True), dict(protocol=3, rename_core=True)],
    ids=["bytes-keys", "numpy2-frombuffer-str-keys", "numpy.core-names"],
)
def test_python_folder_pickle_variants(tmp_path, arrays, cache, variant):
    src = write_python(tmp_path / "cifar-10-batches-py", arrays, **variant)
    ds = load_cifar10(src, cache_dir=cache)
    assert_same_arrays(ds, arrays)
    assert ds.class_names == CIFAR10_CLASSES


def test_python_folder_found_inside_parent_folder(tmp_path, arrays, cache):
    write_python(tmp_path / "parent" / "cifar-10-batches-py", arrays)
    ds = load_cifar10(tmp_path / "parent", cache_dir=cache)
    assert_same_arrays(ds, arrays)


def test_binary_formats_match_python_fingerprint(tmp_path, arrays, cache):
    py = load_cifar10(write_python(tmp_path / "py", arrays), cache_dir=cache)
    bin_dir = write_binary(tmp_path / "bin" / "cifar-10-batches-bin", arrays)
    from_dir = load_cifar10(bin_dir, cache_dir=cache)
    tgz = make_tar(bin_dir, tmp_path / "cifar-10-binary.tar.gz", "cifar-10-batches-bin")
    from_tar = load_cifar10(tgz, cache_dir=cache)
    for ds in (from_dir, from_tar):
        assert_same_arrays(ds, arrays)
        assert ds.class_names == CIFAR10_CLASSES
        assert "binary" in ds.description
        assert ds.fingerprint == py.fingerprint


def test_format_detected_from_content_not_name(tmp_path, arrays, cache):
    src = write_python(tmp_path / "cifar-10-batches-py", arrays)
    misnamed = make_tar(src, tmp_path / "looks-like.zip", "cifar-10-batches-py")
    assert_same_arrays(load_cifar10(misnamed, cache_dir=cache), arrays)


def test_png_tree_is_lossless(tmp_path, arrays, cache):
    root = write_images(tmp_path / "imgs", arrays)
    ds = load_cifar10(root, cache_dir=cache)
    assert_well_formed(ds)
    assert_same_arrays(ds, expected_order(arrays))
    assert ds.class_names == CIFAR10_CLASSES
    assert not ds.lossy_jpeg and "JPEG" not in ds.description
    assert ds.description.startswith("image-folder folder")


def test_jpeg_zip_is_flagged_lossy(tmp_path, cache):
    arrays = make_arrays(smooth=True)
    zpath = make_zip(write_images(tmp_path / "imgs", arrays, ext="jpg"), tmp_path / "cifar10-jpeg.zip")
    ds = load_cifar10(zpath, cache_dir=cache)
    assert_well_formed(ds)
    x_tr, y_tr, x_te, y_te = expected_order(arrays)
    np.testing.assert_array_equal(ds.y_train, y_tr)
    np.testing.assert_array_equal(ds.y_test, y_te)
    assert np.abs(ds.x_train.astype(int) - x_tr).mean() < 4  # close, not exact
    assert ds.lossy_jpeg
    assert "JPEG" in ds.description and "lossy" in ds.description and os.path.basename(zpath) in ds.description
    assert data.describe_source(zpath) == ds.description


def test_zip_with_top_level_folder_and_mac_debris(tmp_path, arrays, cache):
    root = write_images(tmp_path / "imgs", arrays)
    zpath = make_zip(root, tmp_path / "nested.zip", top="cifar10/")
    with zipfile.ZipFile(zpath, "a") as zf:  # junk a Mac adds; must be ignored
        zf.writestr("__MACOSX/cifar10/train/cat/._0000.png", b"not an image")
        zf.writestr("cifar10/train/cat/.DS_Store", b"junk")
    ds = load_cifar10(zpath, cache_dir=cache)
    assert_same_arrays(ds, expected_order(arrays))
    assert ds.description.startswith("image-folder zip")


def test_image_tar_and_custom_class_names_sorted(tmp_path, cache):
    classes = ("zebra", "ant", "moose")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    root = write_images(tmp_path / "imgs", (x, y, x[:3], y[:3]), classes=classes)
    ds = load_cifar10(make_tar(root, tmp_path / "imgs.tar.gz", "data"), cache_dir=cache)
    assert ds.class_names == ("ant", "moose", "zebra")
    # every image keeps its class, under the new (alphabetical) label numbering
    for img, label in zip(ds.x_train, ds.y_train):
        original = y[[np.array_equal(img, xi) for xi in x].index(True)]
        assert ds.class_names[label] == classes[original]


def test_grayscale_image_becomes_rgb(tmp_path, arrays, cache):
    root = write_images(tmp_path / "imgs", arrays)
    gray = np.arange(1024, dtype=np.uint8).reshape(32, 32)
    Image.fromarray(gray, mode="L").save(os.path.join(root, "train", "cat", "9999.png"))
    ds = load_cifar10(root, cache_dir=cache)
    assert len(ds.x_train) == N_TRAIN + 1
    last_cat = np.flatnonzero(ds.y_train == CIFAR10_CLASSES.index("cat"))[-1]  # sorted last
    np.testing.assert_array_equal(ds.x_train[last_cat], np.stack([gray] * 3, axis=-1))


# --------------------------------------------------------------------------
# Safety and errors
# --------------------------------------------------------------------------

class _Payload:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval"])
def test_malicious_pickle_refused_and_not_executed(tmp_path, arrays, cache, kind):
    marker = tmp_path / "pwned"
    if kind == "os.system":
        payload = _Payload(os.system, f"touch {marker}")
    else:
        payload = _Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()")
    src = write_python(tmp_path / "cifar-10-batches-py", arrays)
    with open(os.path.join(src, "data_batch_1"), "wb") as fh:
        pickle.dump({b"data": payload, b"labels": [0]}, fh, protocol=3)
    tgz = make_tar(src, tmp_path / "evil.tar.gz", "cifar-10-batches-py")

    for path in (src, tgz):
        with pytest.raises(DataError, match=r"refuses to load .*(system|eval).*data_batch_1.*not a plain CIFAR-10 pickle"):
            load_cifar10(path, cache_dir=cache)
    assert not marker.exists()


def test_malicious_fixture_is_really_live(tmp_path):
    """Control for the test above: an ordinary pickle.loads does run the payload."""
    marker = tmp_path / "ran"
    blob = pickle.dumps(_Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"))
    pickle.loads(blob)
    assert marker.exists()


def test_truncated_tarball(tmp_path, arrays, cache):
    src = write_python(tmp_path / "cifar-10-batches-py", arrays)
    tgz = make_tar(src, tmp_path / "cut.tar.gz", "cifar-10-batches-py")
    truncate(tgz)
    with pytest.raises(DataError) as err:
        load_cifar10(tgz, cache_dir=cache)
    assert tgz in str(err.value)


def test_truncated_zip(tmp_path, arrays, cache):
    zpath = make_zip(write_images(tmp_path / "imgs", arrays), tmp_path / "cut.zip")
    truncate(zpath)
    with pytest.raises(DataError, match="zip") as err:
        load_cifar10(zpath, cache_dir=cache)
    assert zpath in str(err.value)


def test_corrupt_zip_member_is_named(tmp_path, arrays, cache):
    zpath = make_zip(write_images(tmp_path / "imgs", arrays), tmp_path / "crc.zip")
    with zipfile.ZipFile(zpath) as zf:
        info = zf.infolist()[-1]
    with open(zpath, "r+b") as fh:  # flip one byte of the stored member's data -> CRC error
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        fh.seek(start + info.compress_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DataError) as err:
        load_cifar10(zpath, cache_dir=cache)
    assert f"{zpath}:{info.filename}" in str(err.value)


def test_truncated_pickle(tmp_path, arrays, cache):
    src = write_python(tmp_path / "cifar-10-batches-py", arrays)
    truncate(os.path.join(src, "data_batch_3"))
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(src, cache_dir=cache)


def test_missing_member_is_named(tmp_path, arrays, cache):
    src = write_python(tmp_path / "cifar-10-batches-py", arrays)
    os.remove(os.path.join(src, "test_batch"))
    tgz = make_tar(src, tmp_path / "no-test.tar.gz", "cifar-10-batches-py")
    for path in (src, tgz):
        with pytest.raises(DataError, match="missing test_batch"):
            load_cifar10(path, cache_dir=cache)


def test_binary_truncated_record_and_bad_label(tmp_path, arrays, cache):
    src = write_binary(tmp_path / "bin", arrays)
    batch = os.path.join(src, "test_batch.bin")
    with open(batch, "ab") as fh:
        fh.write(b"\x00" * 100)
    with pytest.raises(DataError, match="test_batch.bin"):
        load_cifar10(src, cache_dir=cache)
    src = write_binary(tmp_path / "bin2", arrays)
    with open(os.path.join(src, "data_batch_2.bin"), "r+b") as fh:
        fh.write(bytes([12]))  # first record's label: class 12 of 10
    with pytest.raises(DataError, match="labels"):
        load_cifar10(src, cache_dir=cache)


def test_wrong_size_and_corrupt_images_are_named(tmp_path, arrays, cache):
    root = write_images(tmp_path / "imgs", arrays)
    bad = os.path.join(root, "train", "dog", "0500.png")
    Image.new("RGB", (33, 32)).save(bad)
    with pytest.raises(DataError, match=r"0500\.png.*33x32"):
        load_cifar10(root, cache_dir=cache)
    os.remove(bad)
    with open(os.path.join(root, "test", "ship", "0700.png"), "wb") as fh:
        fh.write(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"0700\.png"):
        load_cifar10(root, cache_dir=cache)


def test_train_test_class_mismatch(tmp_path, arrays, cache):
    root = write_images(tmp_path / "imgs", arrays)
    os.rename(os.path.join(root, "test", "frog"), os.path.join(root, "test", "toad"))
    with pytest.raises(DataError, match="toad"):
        load_cifar10(root, cache_dir=cache)


def test_image_folder_without_test_split(tmp_path, arrays, cache):
    root = write_images(tmp_path / "imgs", arrays)
    shutil.rmtree(os.path.join(root, "test"))
    with pytest.raises(DataError, match="test"):
        load_cifar10(root, cache_dir=cache)


def test_nonexistent_path(tmp_path, cache):
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(tmp_path / "nope.tar.gz", cache_dir=cache)


def test_unrecognised_sources_list_accepted_formats(tmp_path, cache):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("readme.md", "nothing here")
    for path in (text, empty, other_zip):
        with pytest.raises(DataError, match="cifar-10-python.tar.gz") as err:
            load_cifar10(path, cache_dir=cache)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


# --------------------------------------------------------------------------
# Source resolution and the canonical download
# --------------------------------------------------------------------------

def test_resolve_source(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVMIXER_DATA", raising=False)
    assert data.resolve_source(None) == "cifar10"
    assert data.resolve_source("default") == "cifar10"
    monkeypatch.setenv("CONVMIXER_DATA", "")
    assert data.resolve_source(None) == "cifar10"
    monkeypatch.setenv("CONVMIXER_DATA", str(tmp_path / "x.zip"))
    assert data.resolve_source(None) == str(tmp_path / "x.zip")
    assert data.resolve_source("default") == str(tmp_path / "x.zip")
    assert data.resolve_source("synthetic") == "synthetic"
    assert data.resolve_source("synthetic:30:10") == "synthetic:30:10"
    assert data.resolve_source("cifar10") == "cifar10"
    monkeypatch.chdir(tmp_path)
    assert data.resolve_source("rel/data.zip") == str(tmp_path / "rel" / "data.zip")
    assert data.resolve_source(tmp_path / "p") == str(tmp_path / "p")  # PathLike
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.resolve_source("~/d.zip") == str(tmp_path / "d.zip")
    assert not (tmp_path / "rel").exists()  # did not touch the disk


def test_default_source_comes_from_env(tmp_path, arrays, cache, monkeypatch):
    src = write_python(tmp_path / "cifar-10-batches-py", arrays)
    monkeypatch.setenv("CONVMIXER_DATA", str(src))
    ds = load_cifar10(cache_dir=cache)
    assert ds.source == str(src)
    assert_same_arrays(ds, arrays)


def _fake_keras(monkeypatch, get_file):
    """Stand-in keras module: importing the real one costs seconds and it must not download."""
    fake = types.ModuleType("keras")
    fake.utils = types.SimpleNamespace(get_file=get_file)
    monkeypatch.setitem(sys.modules, "keras", fake)


def test_cifar10_download_failure_mentions_env(monkeypatch):
    calls = []

    def offline(*args, **kwargs):
        calls.append(kwargs)
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    _fake_keras(monkeypatch, offline)
    with pytest.raises(DataError, match="CONVMIXER_DATA") as err:
        load_cifar10("cifar10")
    assert "download" in str(err.value) and "cifar-10-python.tar.gz" in str(err.value)
    assert calls[0]["origin"] == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert calls[0]["file_hash"] == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


def test_cifar10_uses_keras_extraction_folder(tmp_path, arrays, monkeypatch):
    extracted = tmp_path / "keras" / "datasets" / "cifar-10-batches-py-target"
    write_python(extracted / "cifar-10-batches-py", arrays)
    _fake_keras(monkeypatch, lambda **kwargs: str(extracted))
    ds = load_cifar10("cifar10")
    assert ds.source == "cifar10"
    assert ds.description == "CIFAR-10, canonical python archive (checksum verified)"
    assert_same_arrays(ds, arrays)
    assert data.describe_source("cifar10") == ds.description


# --------------------------------------------------------------------------
# Synthetic
# --------------------------------------------------------------------------

def test_synthetic_deterministic_balanced_learnable():
    a, b = load_cifar10("synthetic"), load_cifar10("synthetic")
    assert a.fingerprint == b.fingerprint
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert_well_formed(a, 2000, 500)
    assert a.class_names == tuple(f"class{i}" for i in range(10))
    assert (np.bincount(a.y_train) == 200).all() and (np.bincount(a.y_test) == 50).all()
    # learnable: a nearest-class-mean classifier on raw pixels beats chance by far
    flat = lambda x: x.reshape(len(x), -1).astype(np.float32)  # noqa: E731
    means = np.stack([flat(a.x_train)[a.y_train == c].mean(0) for c in range(10)])
    dists = ((flat(a.x_test)[:, None, :] - means[None]) ** 2).sum(-1)
    assert (dists.argmin(1) == a.y_test).mean() > 0.5
    assert not a.lossy_jpeg and a.source == "synthetic"


def test_synthetic_sizes_and_bad_spec():
    ds = load_cifar10("synthetic:30:20")
    assert_well_formed(ds, 30, 20)
    assert ds.fingerprint != load_cifar10("synthetic:30:21").fingerprint
    for bad in ("synthetic:abc", "synthetic:0:5", "synthetic:5"):
        with pytest.raises(DataError, match="synthetic"):
            load_cifar10(bad)


# --------------------------------------------------------------------------
# Fingerprint and cache
# --------------------------------------------------------------------------

def test_fingerprint_changes_with_one_pixel_or_label(tmp_path, arrays, cache):
    base = load_cifar10(write_python(tmp_path / "a", arrays), cache_dir=cache).fingerprint
    x_tr, y_tr, x_te, y_te = (a.copy() for a in arrays)
    x_te[3, 4, 5, 1] ^= 1
    assert load_cifar10(write_python(tmp_path / "b", (x_tr, y_tr, x_te, y_te)), cache_dir=cache).fingerprint != base
    x_te[3, 4, 5, 1] ^= 1
    y_tr[0] = (y_tr[0] + 1) % 10
    assert load_cifar10(write_python(tmp_path / "c", (x_tr, y_tr, x_te, y_te)), cache_dir=cache).fingerprint != base


def test_cache_hit_skips_decoding(tmp_path, arrays, cache, monkeypatch):
    zpath = make_zip(write_images(tmp_path / "imgs", arrays, ext="jpg"), tmp_path / "c.zip")
    first = load_cifar10(zpath, cache_dir=cache)
    assert len([f for f in os.listdir(cache) if f.endswith(".npz")]) == 1
    assert not [f for f in os.listdir(cache) if f.startswith(".tmp")]  # atomic write cleaned up

    def must_not_decode(path):
        raise AssertionError("decoded again despite a cache")

    monkeypatch.setattr(loading, "_decode_local", must_not_decode)
    second = load_cifar10(zpath, cache_dir=cache)
    assert second.fingerprint == first.fingerprint
    assert second.description == first.description and second.lossy_jpeg
    np.testing.assert_array_equal(second.x_train, first.x_train)


def test_corrupt_cache_is_rebuilt(tmp_path, arrays, cache, monkeypatch):
    src = write_python(tmp_path / "py", arrays)
    first = load_cifar10(src, cache_dir=cache)
    (cache_file,) = [os.path.join(cache, f) for f in os.listdir(cache)]
    with open(cache_file, "wb") as fh:
        fh.write(b"PK\x03\x04 definitely not an npz")

    calls = []
    real = loading._decode_local
    monkeypatch.setattr(loading, "_decode_local", lambda p: calls.append(p) or real(p))
    second = load_cifar10(src, cache_dir=cache)
    assert calls == [str(src)]
    assert second.fingerprint == first.fingerprint
    with np.load(cache_file, allow_pickle=False) as npz:  # rewritten, valid again
        np.testing.assert_array_equal(npz["x_train"], first.x_train)


def test_changed_source_misses_cache(tmp_path, cache):
    zpath = tmp_path / "d.zip"
    make_zip(write_images(tmp_path / "a", make_arrays(seed=1)), zpath)
    one = load_cifar10(zpath, cache_dir=cache)
    make_zip(write_images(tmp_path / "b", make_arrays(seed=2)), zpath)
    two = load_cifar10(zpath, cache_dir=cache)
    assert one.fingerprint != two.fingerprint
    assert len(os.listdir(cache)) == 2


def test_default_cache_dir_from_env(tmp_path, arrays, monkeypatch):
    monkeypatch.setenv("CONVMIXER_CACHE", str(tmp_path / "envcache"))
    load_cifar10(write_binary(tmp_path / "bin", arrays))
    assert len(os.listdir(tmp_path / "envcache")) == 1


# --------------------------------------------------------------------------
# validation_split
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_cifar_train():
    """50,000 'images' that are just their own index, grouped by class like the JPEG copy."""
    x = np.arange(50_000).reshape(50_000, 1, 1, 1)
    y = np.repeat(np.arange(10), 5_000)
    return x, y


def test_validation_split_sizes_and_strata(fake_cifar_train):
    x, y = fake_cifar_train
    x_tr, y_tr, x_val, y_val = data.validation_split(x, y, 0.1, seed=0)
    assert (len(x_tr), len(y_tr), len(x_val), len(y_val)) == (45_000, 45_000, 5_000, 5_000)
    assert (np.bincount(y_val) == 500).all() and (np.bincount(y_tr) == 4_500).all()
    ids_tr, ids_val = x_tr.ravel(), x_val.ravel()
    assert len(np.intersect1d(ids_tr, ids_val)) == 0
    assert len(np.union1d(ids_tr, ids_val)) == 50_000
    np.testing.assert_array_equal(y[ids_tr], y_tr)  # pairs stay together
    np.testing.assert_array_equal(y[ids_val], y_val)
    assert (np.diff(y_val) != 0).sum() > 1_000  # shuffled, not class blocks
    assert (np.diff(y_tr) != 0).sum() > 10_000


def test_validation_split_seeded(fake_cifar_train):
    x, y = fake_cifar_train
    a = data.validation_split(x, y, seed=3)
    b = data.validation_split(x, y, seed=3)
    c = data.validation_split(x, y, seed=4)
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(np.sort(a[2].ravel()), np.sort(c[2].ravel()))


def test_validation_split_uneven_total_is_exact():
    y = np.array([0] * 37 + [1] * 41 + [2] * 25)  # 103 examples
    x = np.arange(103)
    x_tr, _, x_val, y_val = data.validation_split(x, y, 0.1)
    assert len(x_val) == 10 and len(x_tr) == 93
    assert list(np.bincount(y_val)) == [4, 4, 2]  # quotas 3.7, 4.1, 2.5: largest remainder


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, 0.001])
def test_validation_split_bad_fraction(fraction):
    with pytest.raises(DataError, match="fraction"):
        data.validation_split(np.zeros((100, 1)), np.arange(100) % 10, fraction)


# --------------------------------------------------------------------------
# take_subset
# --------------------------------------------------------------------------

def test_take_subset_none_is_identity():
    x, y = np.zeros((5, 1)), np.arange(5)
    xs, ys = data.take_subset(x, y, None)
    assert xs is x and ys is y


def test_take_subset_balanced_shuffled_seeded():
    y = np.repeat(np.arange(10), 10)
    x = np.arange(100)
    xs, ys = data.take_subset(x, y, 25, seed=1)
    assert len(xs) == 25 and len(np.unique(xs)) == 25
    np.testing.assert_array_equal(y[xs], ys)
    assert set(np.bincount(ys, minlength=10)) <= {2, 3}
    xs2, _ = data.take_subset(x, y, 25, seed=1)
    np.testing.assert_array_equal(xs, xs2)
    assert not np.array_equal(np.sort(data.take_subset(x, y, 25, seed=2)[0]), np.sort(xs))
    _, all_y = data.take_subset(x, y, 100, seed=0)
    assert (np.diff(all_y) != 0).sum() > 20  # order shuffled


def test_take_subset_small_class_gives_all_it_has():
    y = np.array([0] + [1] * 10 + [2] * 10)
    x = np.arange(len(y))
    _, ys = data.take_subset(x, y, 9)
    assert list(np.bincount(ys)) == [1, 4, 4]


def test_take_subset_errors():
    x, y = np.arange(100), np.arange(100) % 10
    with pytest.raises(DataError, match=r"n=101.*100 available"):
        data.take_subset(x, y, 101)
    for bad in (0, -3):
        with pytest.raises(DataError, match="n must be a positive integer"):
            data.take_subset(x, y, bad)
    with pytest.raises(DataError, match=r"^train_subset=101 exceeds the 100 available"):
        data.take_subset(x, y, 101, name="train_subset")


# --------------------------------------------------------------------------
# Forged array sizes and protocol-2 pickles (issue 13)
# --------------------------------------------------------------------------

class _Declared:
    """Pickles as numpy's ``_reconstruct(ndarray, shape, dtype)`` alone: an array declared, no data sent."""

    def __init__(self, shape, code):
        self.shape, self.code = shape, code

    def __reduce__(self):
        return (unpickle._numpy_attr(unpickle._MULTIARRAY, "_reconstruct"), (np.ndarray, self.shape, self.code))


def _forged_batch(rows):
    """About 150 bytes declaring a full batch: once loaded as all-zero images, all labelled 0."""
    return pickle.dumps({b"data": _Declared((rows, 3072), b"B"), b"labels": _Declared((rows,), b"q")}, protocol=3)


@pytest.mark.parametrize("rows", [10_000, 1_000_000])
def test_declared_array_sizes_are_bounded_by_the_payload(tmp_path, arrays, cache, rows):
    src = write_python(tmp_path / "cifar-10-batches-py", arrays)
    blob = _forged_batch(rows)
    assert len(blob) < 200
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(os.path.join(src, name), "wb") as fh:
            fh.write(blob)
    with pytest.raises(DataError, match=rf"declares an array of shape \({rows}, 3072\) .* in a {len(blob)}-byte file"):
        load_cifar10(src, cache_dir=cache)
    assert not os.listdir(cache) if os.path.isdir(cache) else True  # nothing cached


def test_more_rows_than_a_cifar_batch_are_refused(tmp_path, arrays, cache):
    src = write_python(tmp_path / "cifar-10-batches-py", arrays)
    with open(os.path.join(src, "data_batch_1"), "wb") as fh:
        pickle.dump({b"data": np.zeros((10_001, 3072), np.uint8), b"labels": [0] * 10_001}, fh, protocol=3)
    with pytest.raises(DataError, match=r"data_batch_1: 'data' must be a uint8 array .* N <= 10,000"):
        load_cifar10(src, cache_dir=cache)


def test_protocol_2_pickles_load_and_codecs_stays_narrow(tmp_path, arrays, cache):
    src = write_python(tmp_path / "cifar-10-batches-py", arrays, protocol=2)
    assert b"_codecs" in open(os.path.join(src, "data_batch_1"), "rb").read()  # how Python 3 writes bytes at 2
    ds = load_cifar10(src, cache_dir=cache)
    np.testing.assert_array_equal(ds.x_train, arrays[0])
    np.testing.assert_array_equal(ds.y_test, arrays[3])
    # the same callable with anything but latin-1 text is refused
    evil = b"\x80\x02}q\x00(C\x04dataq\x01c_codecs\nencode\nq\x02C\x03abcq\x03X\x06\x00\x00\x00base64q\x04\x86q\x05Rq\x06u."
    with open(os.path.join(src, "data_batch_1"), "wb") as fh:
        fh.write(evil)
    with pytest.raises(DataError, match=r"refuses _codecs.encode"):
        load_cifar10(src, cache_dir=tmp_path / "other-cache")


# --------------------------------------------------------------------------
# Archive bombs (issue 26): every member bounded by what a CIFAR-10 file can be
# --------------------------------------------------------------------------

class _Zeros:
    """A file object of ``n`` zero bytes that never holds them all (how a bomb is built cheaply)."""

    def __init__(self, n):
        self.left = n

    def read(self, size=-1):
        size = self.left if size is None or size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)


def _archive(dest, files: dict, bombs: dict):
    """A .zip or .tar.gz of ``files`` (name -> bytes) and ``bombs`` (name -> a number of zero bytes)."""
    if dest.suffix == ".zip":
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, blob in files.items():
                zf.writestr(name, blob)
            for name, size in bombs.items():
                with zf.open(name, "w", force_zip64=True) as fh:
                    zeros = _Zeros(size)
                    while chunk := zeros.read(1 << 22):
                        fh.write(chunk)
    else:
        with tarfile.open(dest, "w:gz", compresslevel=1) as tar:
            for name, blob in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
            for name, size in bombs.items():
                info = tarfile.TarInfo(name)
                info.size = size
                tar.addfile(info, _Zeros(size))
    return dest


def _files_of(folder, prefix=""):
    return {prefix + os.path.relpath(os.path.join(root, f), folder).replace(os.sep, "/"):
            open(os.path.join(root, f), "rb").read() for root, _, names in os.walk(folder) for f in names}


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
@pytest.mark.parametrize("layout", ["python", "images"])
def test_archive_bombs_are_refused_before_a_member_is_decompressed(tmp_path, arrays, cache, suffix, layout):
    import tracemalloc

    from convmixer.data.formats import BATCH_MEMBER_LIMIT, IMAGE_MEMBER_LIMIT

    if layout == "python":
        files = _files_of(write_python(tmp_path / "src", arrays), "cifar-10-batches-py/")
        bomb, size, what = "cifar-10-batches-py/data_batch_1", BATCH_MEMBER_LIMIT + 1, "python-format batch file"
    else:
        files = _files_of(write_images(tmp_path / "src", arrays))
        bomb, size, what = sorted(n for n in files if n.startswith("train/"))[0], 16 * IMAGE_MEMBER_LIMIT, "32x32 image"
    del files[bomb]
    archive = _archive(tmp_path / f"bomb{suffix}", files, {bomb: size})
    assert os.path.getsize(archive) < size // 10  # the whole archive is a fraction of what one member expands to
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            load_cifar10(str(archive), cache_dir=cache)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{archive}:{bomb} is {size:,} bytes, more than any CIFAR-10 "
                                                      f"{what} can be")
    assert peak < size // 2  # the member was never held in memory (the cache key hashes the archive in 1 MiB reads)


def test_an_archive_with_more_entries_than_cifar10_has_is_refused_while_listing(tmp_path, arrays, monkeypatch, cache):
    from convmixer.data import archives

    files = _files_of(write_python(tmp_path / "src", arrays), "cifar-10-batches-py/")
    for suffix in (".zip", ".tar.gz"):
        archive = _archive(tmp_path / f"many{suffix}", files | {f"pad/{i}": b"" for i in range(5)}, {})
        assert load_cifar10(str(archive), cache_dir=cache).x_train.shape[0] == N_TRAIN
        monkeypatch.setattr(archives, "MAX_MEMBERS", len(files) + 4)  # one entry too many
        with pytest.raises(DataError, match=rf"^{archive} has .*more than any copy of CIFAR-10"):
            load_cifar10(str(archive), cache_dir=tmp_path / "other")
        monkeypatch.undo()


# --------------------------------------------------------------------------
# Arrays without their bytes (issue 26): numpy would hand back uninitialised memory
# --------------------------------------------------------------------------

class _Called:
    """Pickles as a call ``func(*args)`` (and then ``__setstate__(state)`` when a state is given)."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


_RECONSTRUCT = unpickle._numpy_attr(unpickle._MULTIARRAY, "_reconstruct")


@pytest.mark.parametrize("case,match", [
    # numpy.ndarray(shape, dtype): the 123-byte pickle that trained on 10,000 images of leftover memory
    ("ndarray called", r"refuses to call numpy.ndarray from .*data_batch_1: it makes an array without its bytes"),
    # _reconstruct alone, in a file padded to hold the array it declares
    ("declared, never filled", r"declares an array of shape \(100, 3072\) without its bytes"),
    # _reconstruct then a state whose bytes are fewer than the shape needs
    ("bytes short", r"an array of shape \(100, 3072\) uint8 needs 307,200 bytes, the pickle sends 10"),
])
def test_an_array_is_accepted_only_with_its_bytes(tmp_path, arrays, cache, case, match):
    rows = 100
    if case == "ndarray called":
        batch = {b"data": _Called(np.ndarray, ((10_000, 3072), "u1")), b"labels": _Called(np.ndarray, ((10_000,), "i8"))}
    elif case == "declared, never filled":
        batch = {b"data": _Called(_RECONSTRUCT, (np.ndarray, (rows, 3072), b"B")), b"labels": [0] * rows,
                 b"padding": bytes(rows * 3072 + 1000)}
    else:
        state = (1, (rows, 3072), np.dtype(np.uint8), False, bytes(10))
        batch = {b"data": _Called(_RECONSTRUCT, (np.ndarray, (0,), b"b"), state), b"labels": [0] * rows}
    blob = pickle.dumps(batch, protocol=3)
    if case == "ndarray called":
        assert len(blob) < 200 and pickle.loads(blob)[b"data"].shape == (10_000, 3072)  # what numpy alone accepts
    src = write_python(tmp_path / "cifar-10-batches-py", arrays)
    with open(os.path.join(src, "data_batch_1"), "wb") as fh:
        fh.write(blob)
    with pytest.raises(DataError, match=match) as info:
        load_cifar10(src, cache_dir=cache)
    assert "data_batch_1" in str(info.value) and "\n" not in str(info.value)


def test_a_cache_written_before_payload_less_arrays_were_refused_is_not_reused(tmp_path, arrays, cache, monkeypatch):
    from convmixer.data import cache as cache_module

    src = write_python(tmp_path / "cifar-10-batches-py", arrays)
    with open(os.path.join(src, "data_batch_1"), "wb") as fh:
        pickle.dump({b"data": _Called(np.ndarray, ((4, 3072), "u1")), b"labels": [0, 1, 2, 3]}, fh, protocol=3)
    with monkeypatch.context() as m:  # what the loader of version 1 cached for this folder: 4 images of any bytes
        m.setattr(cache_module, "_CACHE_VERSION", "1")
        key = cache_module._source_key(src)
        x_train, y_train, x_test, y_test = arrays
        decoded = cache_module._Decoded((np.concatenate([x_train, x_train[:4]]), np.concatenate([y_train, y_train[:4]]),
                                         x_test, y_test), CIFAR10_CLASSES, "folder", "python", False)
        cache_module._write_cache(os.path.join(cache, f"cifar10-{key}.npz"), decoded)
        assert load_cifar10(src, cache_dir=cache).x_train.shape[0] == N_TRAIN + 4  # served from that cache
    with pytest.raises(DataError, match=r"refuses to call numpy.ndarray from .*data_batch_1"):
        load_cifar10(src, cache_dir=cache)
