"""Uniform, read-only access to a folder, tar or zip as ``relative posix name -> bytes``.

Archives are read in place (tarfile/zipfile), never extracted, so a hostile
archive cannot write outside a temp dir and nothing needs cleaning up.  The
container type is sniffed from magic bytes, not guessed from the file name.
Hidden files and macOS debris are dropped from every listing.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import tarfile
import zipfile
import zlib

from .core import ACCEPTED_SOURCES, DataError, _why


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

    def read(self, names) -> dict[str, bytes]:
        raise NotImplementedError

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

    def read(self, names) -> dict[str, bytes]:
        out = {}
        for name in names:
            try:
                with open(self.where(name), "rb") as fh:
                    out[name] = fh.read()
            except OSError as err:
                raise DataError(f"cannot read {self.where(name)}: {err.strerror or err}") from err
        return out


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
            members = [m for m in self._tar.getmembers() if m.isfile()]
        except _ARCHIVE_ERRORS as err:
            raise DataError(f"cannot read tar archive {path}: {_why(err)} (truncated or corrupt?)") from err
        self._by_name = {}
        for m in members:
            name = m.name[2:] if m.name.startswith("./") else m.name
            if not _is_junk(name):
                self._by_name[name] = m
        self.names = sorted(self._by_name)

    def read(self, names) -> dict[str, bytes]:
        # Read in archive order: seeking backwards in a .tar.gz restarts decompression.
        wanted = sorted(((n, self._by_name[n]) for n in names), key=lambda item: item[1].offset_data)
        out = {}
        for name, m in wanted:
            try:
                out[name] = self._tar.extractfile(m).read()
            except _ARCHIVE_ERRORS as err:
                raise DataError(f"cannot read {self.where(name)}: {_why(err)} (truncated or corrupt archive?)") from err
        return out

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
        self.names = sorted(i.filename for i in infos if not _is_junk(i.filename))

    def read(self, names) -> dict[str, bytes]:
        out = {}
        for name in names:
            try:
                out[name] = self._zip.read(name)
            except _ARCHIVE_ERRORS as err:
                raise DataError(f"cannot read {self.where(name)}: {_why(err)} (truncated or corrupt archive?)") from err
        return out

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
