"""Uniform, read-only access to a folder, tar or zip as ``relative posix name -> bytes``.

Archives are read in place (tarfile/zipfile), never extracted, so a hostile
archive cannot write outside a temp dir and nothing needs cleaning up.  The
container type is sniffed from magic bytes, not guessed from the file name.
Hidden files and macOS debris are dropped from every listing.

Every read is bounded: the caller gives the largest size a member may have
(``formats`` knows what a CIFAR-10 file can be), a member declared larger is
refused before a byte of it is decompressed, and no member yields more than
that bound whatever its header says, so a few compressed bytes cannot
expand into gigabytes of memory (an archive bomb).  A tar archive is listed
header by header and refused beyond ``MAX_MEMBERS`` entries.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import tarfile
import zipfile
import zlib
from contextlib import contextmanager

from .core import ACCEPTED_SOURCES, DataError, _why

# CIFAR-10 holds 60,000 images (plus a few batch files); a macOS zip doubles that with a ._ twin per
# file. More entries than this are not a CIFAR-10 copy, and listing them would only fill memory.
MAX_MEMBERS = 200_000


def _is_junk(name: str) -> bool:
    """Hidden files and macOS zip debris (__MACOSX/, ._foo.jpg) are not data."""
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


class _Members:
    """Read-only view of a folder/tar/zip as relative posix names -> bytes."""

    container = ""  # "folder", "tar" or "zip": used in descriptions

    def __init__(self, path: str):
        self.path = path
        self.names: list[str] = []

    def where(self, name: str) -> str:
        """How to name a member in an error message."""
        return f"{self.path}:{name}"

    @contextmanager
    def _reading(self, name: str):
        """The archive library's errors while ``name`` is read, as one DataError naming the member."""
        try:
            yield
        except DataError:
            raise
        except _ARCHIVE_ERRORS as err:
            raise DataError(f"cannot read {self.where(name)}: {_why(err)} (truncated or corrupt archive?)") from err

    def iter_read(self, names, limit: int, what: str):
        """(name, bytes) of each of ``names``, in the order the container reads fastest; a member larger
        than ``limit`` bytes (a CIFAR-10 ``what`` never is) is a DataError before it is read."""
        raise NotImplementedError

    def read(self, names, limit: int, what: str) -> dict[str, bytes]:
        return dict(self.iter_read(names, limit, what))

    def _too_large(self, name: str, size, limit: int, what: str) -> DataError:
        size = f"{size:,} bytes" if isinstance(size, int) else size
        return DataError(f"{self.where(name)} is {size}, more than any CIFAR-10 {what} can be ({limit:,} bytes): "
                         "refused without reading it (an archive bomb, or not CIFAR-10)")

    def _bounded(self, name: str, fh, size: int, limit: int, what: str) -> bytes:
        """The member's bytes from ``fh``: ``size``, as its header or the file system declares it, is
        refused above ``limit``, and so is a member that turns out longer than declared."""
        if size > limit:
            raise self._too_large(name, size, limit, what)
        blob = fh.read(size + 1)  # not limit + 1: a buffered read allocates what it is asked for
        if len(blob) > size:
            raise self._too_large(name, "longer than it declares", limit, what)
        return blob

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _FolderMembers(_Members):
    container = "folder"

    def __init__(self, path: str):
        super().__init__(path)
        for root, dirs, files in os.walk(path):
            dirs.sort()
            rel_root = os.path.relpath(root, path)
            for fname in sorted(files):
                rel = fname if rel_root == "." else posixpath.join(rel_root.replace(os.sep, "/"), fname)
                if not _is_junk(rel):
                    self.names.append(rel)

    def where(self, name: str) -> str:
        return os.path.join(self.path, *name.split("/"))

    def iter_read(self, names, limit: int, what: str):
        for name in names:
            try:
                with open(self.where(name), "rb") as fh:
                    blob = self._bounded(name, fh, os.fstat(fh.fileno()).st_size, limit, what)
            except OSError as err:
                raise DataError(f"cannot read {self.where(name)}: {err.strerror or err}") from err
            yield name, blob


# Exceptions the stdlib archive readers raise on truncated/corrupt input.
_ARCHIVE_ERRORS = (
    tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError,
    ValueError, NotImplementedError, RuntimeError,
)


class _TarMembers(_Members):
    container = "tar"

    def __init__(self, path: str):
        super().__init__(path)
        try:
            self._tar = tarfile.open(path, mode="r:*")
            members = []
            for i, m in enumerate(self._tar, start=1):  # header by header: a listing bomb stops at MAX_MEMBERS
                if i > MAX_MEMBERS:
                    self._tar.close()
                    raise DataError(f"{path} has more than {MAX_MEMBERS:,} entries, more than any copy of CIFAR-10 "
                                    "(60,000 images): refused (an archive bomb, or not CIFAR-10)")
                if m.isfile():
                    members.append(m)
        except DataError:
            raise
        except _ARCHIVE_ERRORS as err:
            raise DataError(f"cannot read tar archive {path}: {_why(err)} (truncated or corrupt?)") from err
        self._by_name = {}
        for m in members:
            name = m.name[2:] if m.name.startswith("./") else m.name
            if not _is_junk(name):
                self._by_name[name] = m
        self.names = sorted(self._by_name)

    def iter_read(self, names, limit: int, what: str):
        # Read in archive order: seeking backwards in a .tar.gz restarts decompression.
        wanted = sorted(((n, self._by_name[n]) for n in names), key=lambda item: item[1].offset_data)
        for name, m in wanted:
            with self._reading(name):
                blob = self._bounded(name, self._tar.extractfile(m), m.size, limit, what)
            yield name, blob

    def close(self) -> None:
        self._tar.close()


class _ZipMembers(_Members):
    container = "zip"

    def __init__(self, path: str):
        super().__init__(path)
        try:
            self._zip = zipfile.ZipFile(path)
            infos = [i for i in self._zip.infolist() if not i.is_dir()]
        except _ARCHIVE_ERRORS as err:
            raise DataError(f"cannot read zip archive {path}: {_why(err)} (truncated or corrupt?)") from err
        if len(infos) > MAX_MEMBERS:
            self._zip.close()
            raise DataError(f"{path} has {len(infos):,} entries, more than any copy of CIFAR-10 (60,000 images, "
                            f"at most {MAX_MEMBERS:,} with debris): refused (an archive bomb, or not CIFAR-10)")
        self.names = sorted(i.filename for i in infos if not _is_junk(i.filename))

    def iter_read(self, names, limit: int, what: str):
        for name in names:
            with self._reading(name):
                info = self._zip.getinfo(name)
                if info.file_size > limit:  # before opening: nothing is decompressed
                    raise self._too_large(name, info.file_size, limit, what)
                with self._zip.open(info) as fh:  # decompresses as it is read
                    blob = self._bounded(name, fh, info.file_size, limit, what)
            yield name, blob

    def close(self) -> None:
        self._zip.close()


def _sniff(path: str) -> str | None:
    """Archive type from magic bytes (content, not file name): 'zip', 'tar' or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from err
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    compressed = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
    if head.startswith(compressed) or head[257:262] == b"ustar":
        return "tar"
    return None


def _open_members(path: str) -> _Members:
    if os.path.isdir(path):
        return _FolderMembers(path)
    kind = _sniff(path)
    if kind == "zip":
        return _ZipMembers(path)
    if kind == "tar":
        return _TarMembers(path)
    raise DataError(f"{path} is not a recognised CIFAR-10 source (not a folder, tar or zip); accepted: {ACCEPTED_SOURCES}")
