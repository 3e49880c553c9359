"""A local directory as a source (``file://``), for the demo and for tests that need scale.

Keys are paths relative to the root with ``/`` separators. Listing walks the tree with
``os.scandir``, one directory at a time: the names of one directory are sorted (a sub-directory
sorts as ``name/``, so the walk yields keys in the same UTF-8 byte order as S3 and GCS), files are
``stat``-ed as they are yielded (relative to their open directory), and sub-trees outside the
prefix or the bounds are never opened. Memory is one sorted name list (and one open descriptor)
per open directory level.

``version`` is ``<st_mtime_ns hex>-<st_size hex>``: it changes when a file is rewritten.
Symbolic links to files are followed; links to directories are not (no cycles). Names that are
not valid UTF-8 cannot be object keys: they are left out and logged as a warning.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from encord_ingest.sources.base import (
    DELIMITER,
    BoundedListing,
    KeyBounds,
    LevelEntry,
    ObjectInfo,
    folder_of,
    object_info,
)
from encord_ingest.sources.urls import UrlBuilder

log = logging.getLogger(__name__)
_Open = tuple[str, int | None, Iterator[str], bool]
"""An open directory of a walk: folder prefix, descriptor, names left, whether it is inside the bounds."""
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_DIR_FD = os.stat in os.supports_dir_fd and os.scandir in os.supports_fd
"""Files are ``stat``-ed relative to their open directory (no path lookup from the root)."""
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)


def _inside(folder: str, bounds: KeyBounds) -> bool:
    """Every key under ``folder`` (they all sort after it) lies within ``bounds``."""
    end = bounds.end_before
    return (
        folder.startswith(bounds.prefix)
        and not bounds.below_start(folder)
        and (end is None or (end > folder and not end.startswith(folder)))
    )


def _info(key: str, result: os.stat_result) -> ObjectInfo | None:
    """The object of a file's ``stat`` result (``None``: not a regular file)."""
    if not stat.S_ISREG(result.st_mode):
        return None
    return object_info(
        key,
        result.st_size,
        f"{result.st_mtime_ns:x}-{result.st_size:x}",
        datetime.fromtimestamp(result.st_mtime_ns / 1e9, UTC),
    )


def _subtree_below(folder: str, lower: str | None) -> bool:
    """Every key under ``folder`` sorts below the lower bound ``lower``."""
    return lower is not None and lower > folder and not lower.startswith(folder)


def _subtree_outside_prefix(folder: str, prefix: str) -> bool:
    return not folder.startswith(prefix) and not prefix.startswith(folder)


class LocalSource(BoundedListing):
    """A directory tree; ``bucket`` is the absolute root path."""

    scheme = "file"

    def __init__(self, root: str | os.PathLike[str], *, url_style: str | None = None):
        self.root = Path(root).resolve()
        self.bucket = self.root.as_posix()
        self._root_dir = os.fspath(self.root) + os.sep
        self.urls = UrlBuilder.for_source(self.scheme, self.bucket, url_style)

    def uri(self, key: str = "") -> str:
        """``file:///root/key`` without encoding (for messages; not the canonical object URL)."""
        return f"file://{self.bucket}/{key}"

    def path(self, key: str) -> Path:
        """The file path of ``key``; a key that would leave the root is a ``ValueError``."""
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        """The file path of ``key`` as a string (string checks only: this runs for every read)."""
        wrapped = f"/{key}/"
        if not key or key[0] == DELIMITER or "\x00" in key or "/./" in wrapped or "/../" in wrapped:
            raise ValueError(f"{key!r} is not a valid key under {self.uri()}")
        return self._root_dir + key

    def _names(self, folder: str, directory: int | None = None) -> list[str]:
        """The sorted entry names of directory ``folder`` (sub-directories as ``name/``), read
        through the open descriptor ``directory`` when given."""
        names: list[str] = []
        try:
            with os.scandir(self._root_dir + folder if directory is None else directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        names.append(entry.name + DELIMITER)
                    elif entry.is_file():
                        names.append(entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        if not _is_utf8("".join(names)):  # one check for the whole directory, names only if it fails
            valid = [name for name in names if _is_utf8(name)]
            for name in set(names) - set(valid):
                log.warning("skipping %r in %s: the name is not valid UTF-8", name, self.uri(folder))
            names = valid
        names.sort()
        return names

    def _stat(self, key: str) -> ObjectInfo | None:
        try:
            result = os.stat(self._root_dir + key)
        except (FileNotFoundError, NotADirectoryError):
            return None  # removed since it was listed
        return _info(key, result)

    def iter_objects(
        self,
        prefix: str = "",
        start_after: str | None = None,
        end_before: str | None = None,
        *,
        start_at: str | None = None,
    ) -> Iterator[ObjectInfo]:
        """Yield files under ``prefix`` within the bounds, in key order. The walk checks the
        bounds exactly (per key only in the directories the bounds cut), so the generic
        client-side filter of :class:`BoundedListing` is not needed here."""
        return self._listed(KeyBounds(prefix, start_after, end_before, start_at))

    def _listed(self, bounds: KeyBounds) -> Iterator[ObjectInfo]:
        """One directory at a time, skipping subtrees outside the bounds."""
        return self._walk(folder_of(bounds.prefix), bounds, bounds.inclusive_lower())

    def _walk(self, top: str, bounds: KeyBounds, lower: str | None) -> Iterator[ObjectInfo]:
        """Depth first in key order, one generator for the whole tree: a stack of open
        directories (descriptor, sorted names left). Files are ``stat``-ed relative to their
        directory's descriptor as they are yielded; in a directory whose whole subtree lies
        within the bounds (:func:`_inside`), keys are not checked one by one."""
        stack: list[_Open] = []
        stat_in, root = os.stat, self._root_dir
        try:
            self._enter(stack, top, bounds)
            while stack:
                folder, directory, names, inside = stack[-1]
                for name in names:
                    key = folder + name
                    if not inside and bounds.past_end(key):
                        return  # and so is every later key
                    if name[-1] == DELIMITER:
                        if inside or not (
                            _subtree_outside_prefix(key, bounds.prefix) or _subtree_below(key, lower)
                        ):
                            self._enter(stack, key, bounds)
                            break
                        continue
                    if not inside and (not key.startswith(bounds.prefix) or bounds.below_start(key)):
                        continue
                    try:
                        result = (
                            stat_in(name, dir_fd=directory) if directory is not None else stat_in(root + key)
                        )
                    except (FileNotFoundError, NotADirectoryError):
                        continue  # removed since it was listed
                    info = _info(key, result)
                    if info is not None:
                        yield info
                else:
                    stack.pop()
                    if directory is not None:
                        os.close(directory)
        finally:
            for _, directory, _, _ in stack:
                if directory is not None:
                    os.close(directory)

    def _enter(self, stack: list[_Open], folder: str, bounds: KeyBounds) -> None:
        """Open directory ``folder`` on top of ``stack`` (nothing when it is gone)."""
        directory = None
        if _DIR_FD:
            try:
                directory = os.open(self._root_dir + folder, _DIR_FLAGS)
            except (FileNotFoundError, NotADirectoryError):
                return
        try:
            names = self._names(folder, directory)
        except BaseException:
            if directory is not None:
                os.close(directory)
            raise
        stack.append((folder, directory, iter(names), _inside(folder, bounds)))

    def iter_level(self, prefix: str = "") -> Iterator[LevelEntry]:
        """Yield the files directly under ``prefix`` and its sub-folder prefixes, in key order."""
        folder = folder_of(prefix)
        for name in self._names(folder):
            key = folder + name
            if not key.startswith(prefix):
                continue
            if name.endswith(DELIMITER):
                yield key
            else:
                info = self._stat(key)
                if info is not None:
                    yield info

    def head(self, key: str) -> ObjectInfo | None:
        """The file ``key``, or ``None`` if it does not exist."""
        try:
            self.path(key)
        except ValueError:
            return None
        return self._stat(key)

    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes (its first ``max_bytes``)."""
        try:
            descriptor = os.open(self._file(key), _READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise FileNotFoundError(f"{self.uri(key)} does not exist") from None
        try:  # plain descriptor reads: a buffered file object costs more than a small sidecar's read
            return _read_up_to(descriptor, max_bytes)
        except IsADirectoryError:
            raise FileNotFoundError(f"{self.uri(key)} does not exist") from None
        finally:
            os.close(descriptor)

    def object_url(self, key: str) -> str:
        """The canonical object URL of ``key``."""
        return self.urls.url(key)

    def key_from_url(self, url: str) -> str | None:
        """The key whose canonical URL is ``url`` (``None``: not an object of this source)."""
        return self.urls.key_from_url(url)


def _read_up_to(descriptor: int, max_bytes: int | None) -> bytes:
    """The first ``max_bytes`` of ``descriptor`` (``None``: all of it), looping over short reads
    as a buffered ``read`` does. It asks for no more than the file holds (+1 to reach its end: a
    read of a large limit would allocate the whole limit first) and stops at the end ``fstat``
    saw without one more call."""
    end = os.fstat(descriptor).st_size
    whole = max_bytes is None
    size = end + 1 if max_bytes is None else min(max(max_bytes, 0), end + 1)
    parts: list[bytes] = []
    got = 0
    while whole or got < size:
        chunk = os.read(descriptor, max(size - got, 1 << 16) if whole else size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
        if got >= end and not whole:
            break
    return b"".join(parts)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
