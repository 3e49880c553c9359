"""The one interface every bucket backend implements.

Key order: every source yields keys in UTF-8 byte order (S3's order). For valid Unicode keys that
is the order of Python's ``str`` comparison, so ``sorted(keys)`` and ``a < b`` agree with every
backend and with the bounds below.

Bounds: ``iter_objects(prefix, start_after, end_before, start_at=...)`` yields keys that start
with ``prefix``, are ``> start_after``, ``>= start_at`` and ``< end_before`` (each optional).
Backends push the bounds to the server where it can (S3 ``StartAfter``, GCS ``start_offset`` /
``end_offset``) and always check them client-side too (the GCS emulator ignores the offsets).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

DELIMITER = "/"
MAX_CHAR = "\U0010ffff"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One listed object. ``version`` is the S3 ETag (quotes stripped), the GCS generation, or
    ``<mtime_ns hex>-<size hex>`` for a local file. A plain dataclass: one is built per listed
    object, from values the listing already typed."""

    key: str
    size: int
    version: str
    last_modified: datetime | None = None


_SETTERS = tuple(ObjectInfo.__dict__[name].__set__ for name in ("key", "size", "version", "last_modified"))


def object_info(key: str, size: int, version: str, last_modified: datetime | None = None) -> ObjectInfo:
    """``ObjectInfo(key, size, version, last_modified)``, built without the frozen dataclass's
    ``__init__`` (an ``object.__setattr__`` call per field): the same object for half the CPU,
    for listings that build one per object. Values are not checked (as ``__init__`` does not)."""
    info = object.__new__(ObjectInfo)
    set_key, set_size, set_version, set_modified = _SETTERS
    set_key(info, key)
    set_size(info, size)
    set_version(info, version)
    set_modified(info, last_modified)
    return info


LevelEntry = ObjectInfo | str
"""One entry of a folder level: a file directly in it, or a sub-folder prefix ending in ``/``."""


@runtime_checkable
class Source(Protocol):
    """A bucket (or local directory) that can be listed page by page and read."""

    scheme: str
    bucket: str

    def iter_objects(
        self,
        prefix: str = "",
        start_after: str | None = None,
        end_before: str | None = None,
        *,
        start_at: str | None = None,
    ) -> Iterator[ObjectInfo]:
        """Yield objects under ``prefix`` within the bounds, in key order, one page in memory."""
        ...

    def iter_level(self, prefix: str = "") -> Iterator[LevelEntry]:
        """Yield one folder level under ``prefix`` (delimiter ``/``) in key order: files as
        :class:`ObjectInfo`, sub-folders as their prefix string (ending in ``/``)."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object ``key``, or ``None`` if it does not exist."""
        ...

    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """Read an object, or only its first ``max_bytes`` (a ranged read).

        Raises :class:`FileNotFoundError` (naming the object's URI) if it does not exist."""
        ...

    def object_url(self, key: str) -> str:
        """The canonical object URL registered in Encord for ``key``."""
        ...

    def key_from_url(self, url: str) -> str | None:
        """The key whose canonical URL is ``url``, or ``None`` if it is not one of this source's."""
        ...


@dataclass(frozen=True, slots=True)
class KeyBounds:
    """The bounds of one listing, checked client-side by every backend."""

    prefix: str = ""
    start_after: str | None = None
    end_before: str | None = None
    start_at: str | None = None

    def below_start(self, key: str) -> bool:
        """``key`` sorts before the lower bounds."""
        return (self.start_after is not None and key <= self.start_after) or (
            self.start_at is not None and key < self.start_at
        )

    def past_end(self, key: str) -> bool:
        """``key`` (and every later key) is at or after ``end_before`` or beyond the prefix."""
        return (self.end_before is not None and key >= self.end_before) or (
            not key.startswith(self.prefix) and key > self.prefix
        )

    def __contains__(self, key: object) -> bool:
        return (
            isinstance(key, str)
            and key.startswith(self.prefix)
            and not self.below_start(key)
            and not self.past_end(key)
        )

    def exclusive_lower(self) -> str | None:
        """An exclusive lower bound (S3 ``StartAfter``) at or below both lower bounds.

        ``start_at`` has no exact exclusive equivalent; the string just below it (its last
        character decremented, then padded with the largest code point) is used and the exact
        bound is checked client-side."""
        candidates = [b for b in (self.start_after, _just_below(self.start_at)) if b]
        return max(candidates) if candidates else None

    def inclusive_lower(self) -> str | None:
        """An inclusive lower bound (GCS ``start_offset``) at or below both lower bounds."""
        candidates = [b for b in (self.start_after, self.start_at) if b]
        return max(candidates) if candidates else None

    def filter(self, objects: Iterable[ObjectInfo]) -> Iterator[ObjectInfo]:
        """Apply the bounds to a stream in key order, stopping at the first key past the end."""
        for info in objects:
            if self.past_end(info.key):
                return
            if not self.below_start(info.key) and info.key.startswith(self.prefix):
                yield info


class BoundedListing:
    """``iter_objects`` for a backend: it lists within :class:`KeyBounds` via ``_listed`` (pushing
    what it can to the server) and the bounds are then checked client-side here, in one place."""

    def _listed(self, bounds: KeyBounds) -> Iterator[ObjectInfo]:
        """The backend's listing in key order, at least covering ``bounds`` (may yield more)."""
        raise NotImplementedError

    def iter_objects(
        self,
        prefix: str = "",
        start_after: str | None = None,
        end_before: str | None = None,
        *,
        start_at: str | None = None,
    ) -> Iterator[ObjectInfo]:
        """Yield objects under ``prefix`` within the bounds, in key order, one page at a time."""
        bounds = KeyBounds(prefix, start_after, end_before, start_at)
        return bounds.filter(self._listed(bounds))


def _just_below(key: str | None) -> str | None:
    if not key:
        return None
    last = ord(key[-1])
    if last == 0:
        return key[:-1] or None
    below = last - 1
    if 0xD800 <= below <= 0xDFFF:  # surrogates are not valid in keys
        below = 0xD7FF
    return key[:-1] + chr(below) + MAX_CHAR


def folder_of(key: str) -> str:
    """The folder prefix containing ``key`` (``""`` at the bucket root)."""
    return key[: key.rfind(DELIMITER) + 1]


def folder_chain(key: str) -> list[str]:
    """Every folder prefix above ``key``, from the bucket root ``""`` down to ``folder_of(key)``."""
    chain = [""]
    index = key.find(DELIMITER)
    while index >= 0:
        chain.append(key[: index + 1])
        index = key.find(DELIMITER, index + 1)
    return chain
