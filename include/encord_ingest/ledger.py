"""The ledger: what the pipeline last planned for each object of one source, and the diff.

One Parquet file per version plus a small JSON pointer, both in a :class:`BlobStore` (object
storage or a local directory)::

    <prefix>/versions/<utc-time>-<run-id>-<token>.parquet             immutable: a version's first part
    <prefix>/versions/<utc-time>-<run-id>-<token>.part-NNNNN.parquet  its further parts
    <prefix>/CURRENT.json                                    {"version_key", "sha256", "rows", "parts"}

A version is split into parts of at most ``PART_ROWS`` rows in key order; the pointer lists each
part with its SHA-256 and first and last key, so a shard reads only the parts its key ranges
meet and a commit (:func:`commit_run`) merges and writes one key range at a time. Pointers of
format 1 (one file) are still read.

A commit writes a new version first and then replaces the pointer (one PUT, atomic on S3, GCS
and, via rename, on a local disk). A crash in between leaves the old pointer, so readers keep
seeing the old, complete ledger; the orphan version is never read. The pointer carries the
SHA-256 of the version it names, so a torn or foreign version is refused, never half-read.
Concurrent commits to one ledger are not merged: the last pointer wins. Run commits of one
source one at a time (the DAG's ``max_active_runs=1`` or a pool of one slot).

Recovery: when a part of the version the pointer names is missing, torn or not Parquet, that
version is broken and the reader falls back to the pointer's previous version (its parts are
listed in the pointer with their SHA-256) and says so in :attr:`Ledger.warning`; the run goes
on and re-plans what the lost commit recorded (Encord skips URLs it has; metadata is compared,
not rewritten). When there is no intact previous version, or the pointer itself cannot be read,
:class:`LedgerError` says how to recover: the source's reconcile DAG rebuilds the ledger from
Encord's folder listing.

One row per data object (``url`` is the canonical object URL, the key). Rows of a group or
series share ``item_url`` (the item's key URL, its first object URL). ``sidecars`` is a JSON
object ``{sidecar key: version}`` of every metadata input that fed the item (per-file sidecars,
folder defaults, tables), ``input_fingerprint`` a hash of those versions plus the planning
configuration, ``metadata_hash`` the fingerprint of the typed ``clientMetadata``.

Change detection (:func:`diff_item`), per item, ``full_rescan`` aside:

- none of its URLs in the ledger -> ``new``;
- a URL missing, a version or size different, or the membership of a group changed ->
  ``data_changed`` (Encord will not re-register a URL it has: ``skip_duplicate_urls``; the plan
  syncs metadata only and says so in a warning);
- same data and same ``input_fingerprint`` -> ``unchanged`` without reading any sidecar;
- same data, inputs changed -> the sidecars are read and typed: a different ``metadata_hash``
  is ``metadata_changed``, an equal one (say a reformatted sidecar) ``unchanged``.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from encord_ingest.fastjson import compact
from encord_ingest.results import ItemResults, ResultMaps
from encord_ingest.sources.base import MAX_CHAR

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)
_T = TypeVar("_T")

POINTER_NAME = "CURRENT.json"
OVER_LIMIT_CODE = "over_limit"
"""Skip code of new items a run's ``limit`` left out (see :mod:`encord_ingest.scan.scanner`)."""
OUTSIDE_PREFIX_CODE = "outside_prefix"
"""Skip code of keys an event run listed under the static prefix that lie under no rendering of
the source's prefix template: no scheduled run plans them (``Shard.renderings_only``)."""
ROW_KEEPING_CODES = (OVER_LIMIT_CODE, OUTSIDE_PREFIX_CODE)
"""Skip codes of objects the run did not re-plan: their ledger rows stay as they are."""
VERSIONS_FOLDER = "versions"
ROW_GROUP_SIZE = 10_000
PART_ROWS = 20_000
"""Rows per Parquet part of a version: what a commit or a shard's read holds at once."""
FORMAT_VERSION = 2


class Outcome(StrEnum):
    """The one outcome of every object a scan saw (``gone``: in the ledger, not in the bucket)."""

    NEW = "new"
    DATA_CHANGED = "data_changed"
    METADATA_CHANGED = "metadata_changed"
    UNCHANGED = "unchanged"
    SIDECAR = "sidecar"
    SKIPPED = "skipped"
    FAILED = "failed"
    GONE = "gone"


DATA_OUTCOMES = frozenset({Outcome.NEW, Outcome.DATA_CHANGED, Outcome.METADATA_CHANGED, Outcome.UNCHANGED})
"""Outcomes of data objects whose item was planned; they become ledger rows on commit."""

LEDGER_COLUMNS: tuple[str, ...] = (
    "url",
    "key",
    "item_url",
    "kind",
    "version",
    "size",
    "sidecars",
    "input_fingerprint",
    "metadata_hash",
    "item_uuid",
    "last_run_id",
    "last_outcome",
)
"""The ledger's columns, in order: ``size`` is an int64, the others strings (:func:`ledger_schema`)."""


@functools.cache
def ledger_schema() -> pa.Schema:
    """The Arrow schema of the ledger (built on first use: importing this module imports no pyarrow)."""
    import pyarrow as pa

    return pa.schema([(name, pa.int64() if name == "size" else pa.string()) for name in LEDGER_COLUMNS])


class LedgerError(RuntimeError):
    """The ledger cannot be read (a version missing or not matching its pointer)."""


class BlobStoreLike(Protocol):
    """What the ledger needs of :class:`encord_ingest.storage.BlobStore` (keys relative to it)."""

    def read_bytes(self, key: str) -> bytes: ...

    def write_bytes(self, key: str, data: bytes) -> Any: ...

    def exists(self, key: str) -> bool: ...


class KeyRangeLike(Protocol):
    """Keys under ``prefix``, ``>= start_at`` and ``< end_before`` (a ``sources.sharding.ShardPart``)."""

    @property
    def prefix(self) -> str: ...

    @property
    def start_at(self) -> str | None: ...

    @property
    def end_before(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class KeyRange:
    """A plain :class:`KeyRangeLike` (shard parts work the same)."""

    prefix: str = ""
    start_at: str | None = None
    end_before: str | None = None


def in_range(key: str, key_range: KeyRangeLike) -> bool:
    """Whether ``key`` lies in ``key_range``."""
    if not key.startswith(key_range.prefix):
        return False
    if key_range.start_at is not None and key < key_range.start_at:
        return False
    return key_range.end_before is None or key < key_range.end_before


class LedgerRow(NamedTuple):
    """One object as the ledger remembers it (a named tuple: a shard's snapshot builds one per
    row, and a tuple is built in C)."""

    url: str
    key: str
    item_url: str
    kind: str
    version: str
    size: int
    sidecars: str
    input_fingerprint: str
    metadata_hash: str
    item_uuid: str | None
    last_run_id: str
    last_outcome: str


class LedgerPart(BaseModel):
    """One Parquet file of a version: at most :data:`PART_ROWS` rows, keys ``first``..``last``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    sha256: str | None = None
    """``None`` only for the previous version of an old format-1 pointer (then a footer check)."""
    rows: int = 0
    first: str | None = None
    last: str | None = None

    def overlaps(self, ranges: Sequence[KeyRangeLike] | None) -> bool:
        """Whether any of ``ranges`` (``None``: everything) may hold a key of this part."""
        if ranges is None or self.first is None or self.last is None:
            return True
        return any(_range_overlaps(r, self.first, self.last) for r in ranges)


def _range_overlaps(key_range: KeyRangeLike, first: str, last: str) -> bool:
    lower = max(key_range.prefix, key_range.start_at or "")
    if lower > last:
        return False
    upper = key_range.end_before
    if key_range.prefix and (upper is None or key_range.prefix + MAX_CHAR < upper):
        upper = key_range.prefix + MAX_CHAR
    return upper is None or first < upper


class LedgerPointer(BaseModel):
    """The small object that names the current version."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: int = FORMAT_VERSION
    version_key: str
    """The version's first part (a version of format 1 is that one file)."""
    sha256: str
    rows: int
    run_id: str
    written_at: datetime
    previous_version_key: str | None = None
    previous_sha256: str | None = None
    parts: list[LedgerPart] = Field(default_factory=list)
    """Every part in key order, the first one included (empty for format 1)."""
    previous_parts: list[LedgerPart] = Field(default_factory=list)
    """The previous version's parts, to fall back to when a part of this one is broken."""

    def all_parts(self) -> list[LedgerPart]:
        """The version's parts. A format-1 pointer, or one whose ``version_key`` was rewritten by
        hand (so ``parts`` no longer start with it), names that one file."""
        if self.parts and self.parts[0].key == self.version_key:
            return self.parts
        return [LedgerPart(key=self.version_key, sha256=self.sha256, rows=self.rows)]

    def previous(self) -> list[LedgerPart] | None:
        """The previous version's parts (the same rules as :meth:`all_parts`), ``None`` if none."""
        if self.previous_version_key is None:
            return None
        if self.previous_parts and self.previous_parts[0].key == self.previous_version_key:
            return self.previous_parts
        return [LedgerPart(key=self.previous_version_key, sha256=self.previous_sha256)]


RECOVER_HINT = (
    "to recover, trigger the source's encord_reconcile__<source> DAG (it rebuilds the ledger from "
    "Encord's folder listing), or write CURRENT.json naming an intact file under versions/"
)


class _BrokenPart(Exception):
    """A part of the version being read is missing, torn or not Parquet."""

    def __init__(self, version: list[LedgerPart], part: LedgerPart, problem: str):
        super().__init__(problem)
        self.version, self.part, self.problem = version, part, problem

    def says(self, lead: str) -> str:
        """``<lead><problem>`` for the version's first part (its own file), else names the part."""
        if self.part.key == self.version[0].key:
            return f"{lead}{self.problem}"
        return f", whose part {self.part.key} {self.problem}"


class LedgerSnapshot:
    """The ledger rows of one key range, for lookups while a shard is planned.

    Kept small, as a shard holds it whole: a single-object item (its ``item_url`` is its own
    ``url``) has no entry in ``_grouped``, only the members of other items do."""

    def __init__(self, rows: Iterable[LedgerRow] = ()):
        listed = list(rows)
        self.rows: dict[str, LedgerRow] = {row.url: row for row in listed}
        self._grouped: dict[str, list[str]] = {}
        for row in listed:
            if row.item_url != row.url:
                self._grouped.setdefault(row.item_url, []).append(row.url)

    @classmethod
    def of_columns(cls, columns: Mapping[str, list[Any]]) -> LedgerSnapshot:
        """The snapshot of ledger columns (:data:`LEDGER_COLUMNS`, equal lists), built in bulk."""
        snapshot = cls()
        urls, items = columns["url"], columns["item_url"]
        make = functools.partial(tuple.__new__, LedgerRow)
        snapshot.rows = dict(
            zip(urls, map(make, zip(*(columns[name] for name in LEDGER_COLUMNS), strict=True)), strict=True)
        )
        grouped = snapshot._grouped
        for url, item in zip(urls, items, strict=True):
            if item != url:
                grouped.setdefault(item, []).append(url)
        return snapshot

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, url: str) -> LedgerRow | None:
        return self.rows.get(url)

    def has_members(self, item_url: str) -> bool:
        """Whether rows other than its own name ``item_url`` as their item (a group's members)."""
        return item_url in self._grouped

    def members(self, item_url: str) -> list[str]:
        """The URLs of the rows of item ``item_url``."""
        head = self.rows.get(item_url)
        own = [item_url] if head is not None and head.item_url == item_url else []
        return own + self._grouped.get(item_url, [])


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


def _in_ranges(keys: pa.ChunkedArray, ranges: Sequence[KeyRangeLike]) -> pa.ChunkedArray:
    """Which of ``keys`` lie in any of ``ranges`` (:func:`in_range` over the whole column: Arrow
    compares strings as UTF-8 bytes, the key order)."""
    import pyarrow.compute as pc

    inside = pc.less(keys, "")  # all false
    for key_range in ranges:
        match = pc.starts_with(keys, pattern=key_range.prefix)
        if key_range.start_at is not None:
            match = pc.and_(match, pc.greater_equal(keys, key_range.start_at))
        if key_range.end_before is not None:
            match = pc.and_(match, pc.less(keys, key_range.end_before))
        inside = pc.or_(inside, match)
    return inside


class Ledger:
    """The versions and pointer of one source's ledger under ``prefix`` in ``store``."""

    def __init__(self, store: BlobStoreLike, prefix: str):
        self.store = store
        self.prefix = prefix.strip("/")
        self.warning: str | None = None
        """Set when a read fell back to the previous version (for the run report)."""
        self._in_use: list[LedgerPart] | None = None
        """The parts of the version reads use, once pinned (:meth:`check`, a fallback) and until
        this object writes a new version."""
        self._fell_back_from: str | None = None
        """What was wrong with the current version, once reads fell back to the previous one."""
        self._checked = False
        """Every part of the pinned version was verified (:meth:`check` does it once)."""

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def pointer_key(self) -> str:
        return self._key(POINTER_NAME)

    def pointer(self) -> LedgerPointer | None:
        """The current pointer, or ``None`` for a ledger never committed."""
        if not self.store.exists(self.pointer_key):
            return None
        try:
            return LedgerPointer.model_validate_json(self.store.read_bytes(self.pointer_key))
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise LedgerError(f"{self.pointer_key} cannot be read ({problem}); {RECOVER_HINT}") from None

    def _part_bytes(self, version: list[LedgerPart], part: LedgerPart) -> bytes:
        """The bytes of ``part`` if intact (SHA-256, and a Parquet footer), else :class:`_BrokenPart`."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            data = self.store.read_bytes(part.key)
        except FileNotFoundError:
            raise _BrokenPart(version, part, "is missing") from None
        except Exception as exc:  # noqa: BLE001 (any read failure breaks this part; reads fall back)
            raise _BrokenPart(version, part, f"cannot be read ({type(exc).__name__}: {exc})") from None
        digest = hashlib.sha256(data).hexdigest()
        if part.sha256 is not None and digest != part.sha256:
            problem = f"has sha256 {digest}, the pointer expects {part.sha256} (truncated or replaced)"
            raise _BrokenPart(version, part, problem)
        try:
            pq.ParquetFile(io.BytesIO(data)).schema_arrow  # noqa: B018 - reads the footer
        except (pa.ArrowException, OSError) as exc:
            raise _BrokenPart(version, part, f"is not a Parquet file ({exc})") from None
        return data

    def _fall_back(self, pointer: LedgerPointer, broken: _BrokenPart) -> list[LedgerPart]:
        """Pin the previous version after ``broken`` (a part of the current one); say so."""
        what = f"{self.pointer_key} names version {pointer.version_key}{broken.says(', which ')}"
        previous = pointer.previous()
        if previous is None:
            raise LedgerError(f"{what}; there is no previous version to fall back to; {RECOVER_HINT}")
        self._in_use, self._fell_back_from = previous, what
        self.warning = (
            f"LEDGER RECOVERED: {what}. Read the previous version {previous[0].key} instead: what run "
            f"{pointer.run_id!r} committed is planned again (Encord skips URLs it has, metadata is "
            "compared, not rewritten). To check the ledger against Encord, trigger the source's "
            "encord_reconcile__<source> DAG."
        )
        log.warning("%s", self.warning)
        return previous

    def _read_parts(self, version: list[LedgerPart], ranges: Sequence[KeyRangeLike] | None) -> pa.Table:
        import pyarrow as pa

        tables = [
            self._part_table(self._part_bytes(version, part), ranges)
            for part in version
            if part.overlaps(ranges)
        ]
        return pa.concat_tables(tables) if tables else ledger_schema().empty_table()

    def _reading(self, action: Callable[[list[LedgerPart]], _T]) -> _T | None:
        """``action`` on the version reads use (``None`` for a ledger never committed): the pinned
        one, else the pointer's, else (pinned from then on) its previous one."""
        if self._in_use is not None:
            return self._pinned(action)
        pointer = self.pointer()
        if pointer is None:
            return None
        try:
            return action(pointer.all_parts())
        except _BrokenPart as broken:
            self._fall_back(pointer, broken)
        return self._pinned(action)

    def _pinned(self, action: Callable[[list[LedgerPart]], _T]) -> _T:
        assert self._in_use is not None
        try:
            return action(self._in_use)
        except _BrokenPart as broken:
            version = broken.version[0].key
            if self._fell_back_from is None:  # pinned intact, broken since
                what = f"{self.pointer_key} names version {version}{broken.says(', which ')}"
            else:
                what = f"{self._fell_back_from}; its previous version {version}{broken.says(' ')}"
            self._in_use = self._fell_back_from = None  # nothing usable is pinned
            self._checked = False
            raise LedgerError(f"{what}; {RECOVER_HINT}") from None

    def check(self) -> str | None:
        """Verify every part of the version reads use, one at a time: ``None`` if the current one
        is intact, the warning if reads fall back to the previous version; :class:`LedgerError`
        (saying how to recover) if neither is usable. Pins the version for later reads."""

        def verify(version: list[LedgerPart]) -> list[LedgerPart]:
            for part in version:
                self._part_bytes(version, part)
            return version

        if not self._checked:
            pinned = self._reading(verify)
            if pinned is not None:
                self._in_use, self._checked = pinned, True
        return self.warning

    def read_table(self, ranges: Sequence[KeyRangeLike] | None = None) -> pa.Table:
        """The current rows (all, or those in any of ``ranges``) as an Arrow table. Only the
        parts whose key span meets ``ranges`` are read."""
        table = self._reading(lambda version: self._read_parts(version, ranges))
        return table if table is not None else ledger_schema().empty_table()

    def iter_parts(self) -> Iterator[LedgerPart]:
        """The parts of the version reads use, in key order (none for a ledger never committed)."""
        if self._in_use is not None:
            return iter(self._in_use)
        pointer = self.pointer()
        return iter(pointer.all_parts() if pointer is not None else [])

    @staticmethod
    def _part_table(data: bytes, ranges: Sequence[KeyRangeLike] | None) -> pa.Table:
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data), schema=ledger_schema())
        if ranges is not None:
            table = table.filter(_in_ranges(table["key"], ranges))
        return table

    def read_frame(self, ranges: Sequence[KeyRangeLike] | None = None) -> pd.DataFrame:
        """The current rows (all, or those in any of ``ranges``) as a DataFrame."""
        frame: pd.DataFrame = self.read_table(ranges).to_pandas()
        return frame

    def snapshot(self, ranges: Sequence[KeyRangeLike] | None = None) -> LedgerSnapshot:
        """The rows in ``ranges`` (all rows for ``None``), ready for :func:`diff_item` lookups.
        Arrow's buffers go back to the system once the rows are Python objects: a shard's scan
        holds the snapshot, not both."""
        paused = gc.isenabled()
        gc.disable()  # a row per object, no cycles: collections while they are built only cost time
        try:
            return self._snapshot_of(self.read_table(ranges))
        finally:
            if paused:
                gc.enable()

    @staticmethod
    def _snapshot_of(table: pa.Table) -> LedgerSnapshot:
        import pyarrow as pa

        columns = {name: table[name].to_pylist() for name in LEDGER_COLUMNS}
        del table
        pa.default_memory_pool().release_unused()
        urls = columns["url"]  # a single object's item_url is its url: one string, not two
        columns["item_url"] = [
            url if url == item else item for url, item in zip(urls, columns["item_url"], strict=True)
        ]
        for name in ("kind", "last_run_id", "last_outcome"):  # a few values each
            shared: dict[str, str] = {}
            columns[name] = [shared.setdefault(value, value) for value in columns[name]]
        return LedgerSnapshot.of_columns(columns)

    def version_in_use(self) -> list[LedgerPart] | None:
        """The parts of the version reads use (checked first if not yet pinned), ``None`` for a
        ledger never committed or one that cannot be read (a reconcile rebuilds over it)."""
        if self._in_use is None:
            try:
                self.check()
            except LedgerError:
                return None
        return self._in_use

    def unpin(self) -> None:
        """Reads follow the pointer again (after this object wrote a new version)."""
        self._in_use = self._fell_back_from = None
        self._checked = False

    def write(self, frame: pd.DataFrame, run_id: str) -> LedgerPointer:
        """Write ``frame`` as a new version, then point to it. Returns the new pointer (whose
        previous version is the one reads used: after a fallback, the intact one)."""
        writer = self.writer(run_id)
        ordered = frame[list(LEDGER_COLUMNS)].sort_values("key", kind="stable")
        writer.add(ordered)
        return writer.finish()

    def writer(self, run_id: str) -> LedgerWriter:
        """A :class:`LedgerWriter` for a new version (rows added in key order)."""
        return LedgerWriter(self, run_id)


class LedgerWriter:
    """Writes a version part by part as sorted rows arrive; :meth:`finish` writes the pointer.

    Holds at most :data:`PART_ROWS` rows besides the frame being added. Parts are immutable
    objects next to each other; until the pointer names them, readers see the old version."""

    def __init__(self, ledger: Ledger, run_id: str):
        self.ledger, self.run_id = ledger, run_id
        self.previous = ledger.version_in_use()
        self.stamp = datetime.now(UTC)
        self.base = f"{self.stamp:%Y%m%dT%H%M%S%fZ}-{_safe(run_id)}-{uuid.uuid4().hex[:8]}"
        self.parts: list[LedgerPart] = []
        self.pending: list[pd.DataFrame] = []
        self.pending_rows = 0

    def add(self, frame: pd.DataFrame) -> None:
        """Queue ledger rows sorted by key, all after the rows added before."""
        if len(frame):
            self.pending.append(frame[list(LEDGER_COLUMNS)])
            self.pending_rows += len(frame)
        while self.pending_rows >= PART_ROWS:
            self._flush(PART_ROWS)

    def _flush(self, rows: int) -> None:
        import pandas as pd

        queued = pd.concat(self.pending, ignore_index=True) if len(self.pending) > 1 else self.pending[0]
        part, rest = queued.iloc[:rows], queued.iloc[rows:]
        self.pending = [rest] if len(rest) else []
        self.pending_rows = len(rest)
        data = frame_to_parquet(part, sort=False)
        name = self.base if not self.parts else f"{self.base}.part-{len(self.parts):05d}"
        key = self.ledger._key(f"{VERSIONS_FOLDER}/{name}.parquet")
        self.ledger.store.write_bytes(key, data)
        keys = part["key"]
        self.parts.append(
            LedgerPart(
                key=key,
                sha256=hashlib.sha256(data).hexdigest(),
                rows=len(part),
                first=str(keys.iloc[0]) if len(part) else None,
                last=str(keys.iloc[-1]) if len(part) else None,
            )
        )

    def finish(self) -> LedgerPointer:
        """Write what is queued, then the pointer naming every part."""
        if self.pending_rows or not self.parts:
            if not self.pending:
                import pandas as pd

                self.pending = [pd.DataFrame({name: pd.Series(dtype=object) for name in LEDGER_COLUMNS})]
            self._flush(max(self.pending_rows, 0))
        pointer = LedgerPointer(
            version_key=self.parts[0].key,
            sha256=self.parts[0].sha256,
            rows=sum(part.rows for part in self.parts),
            run_id=self.run_id,
            written_at=self.stamp,
            previous_version_key=self.previous[0].key if self.previous else None,
            previous_sha256=self.previous[0].sha256 if self.previous else None,
            parts=self.parts,
            previous_parts=self.previous or [],
        )
        self.ledger.store.write_bytes(self.ledger.pointer_key, pointer.model_dump_json().encode("utf-8"))
        self.ledger.unpin()
        return pointer


def frame_to_parquet(frame: pd.DataFrame, *, sort: bool = True) -> bytes:
    """Ledger rows as Parquet bytes, sorted by key (so range reads skip row groups)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ordered = frame[list(LEDGER_COLUMNS)]
    if sort:
        ordered = ordered.sort_values("key", kind="stable")
    ordered = ordered.astype({"size": "int64"})
    table = pa.Table.from_pandas(ordered, schema=ledger_schema(), preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=ROW_GROUP_SIZE, compression="zstd")
    return buffer.getvalue()


# --- change detection ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectState:
    """A data object as listed now: its URL, version (ETag or generation) and size."""

    url: str
    version: str
    size: int


def data_changed(members: Sequence[ObjectState], item_url: str, ledger: LedgerSnapshot) -> bool:
    """True when any member is new to or different from the ledger, or the membership changed."""
    urls = {member.url for member in members}
    for member in members:
        row = ledger.get(member.url)
        if row is None or row.version != member.version or row.size != member.size:
            return True
        if row.item_url != item_url:
            return True
    return set(ledger.members(item_url)) != urls


def known_item(members: Sequence[ObjectState], ledger: LedgerSnapshot) -> LedgerRow | None:
    """The ledger row of the first member the ledger knows, or ``None`` for a new item."""
    for member in members:
        row = ledger.get(member.url)
        if row is not None:
            return row
    return None


def diff_item(
    members: Sequence[ObjectState],
    item_url: str,
    input_fingerprint: str,
    ledger: LedgerSnapshot,
    *,
    full_rescan: bool = False,
) -> tuple[Outcome | None, LedgerRow | None]:
    """The item's outcome before its metadata is read, and the ledger row it was compared with.

    Returns ``(None, row)`` when only the typed metadata can tell (inputs changed, data did not):
    call :func:`metadata_outcome` once the metadata is typed. ``full_rescan`` ignores the
    ledger: every item is ``new`` (registration skips URLs Encord has; the sync diffs).
    """
    if full_rescan:
        return Outcome.NEW, None
    row = known_item(members, ledger)
    if row is None:
        return Outcome.NEW, None
    if data_changed(members, item_url, ledger):
        return Outcome.DATA_CHANGED, row
    if row.input_fingerprint == input_fingerprint:
        return Outcome.UNCHANGED, row
    return None, row


def metadata_outcome(row: LedgerRow, metadata_hash: str) -> Outcome:
    """``metadata_changed`` when the typed metadata differs from what the ledger recorded."""
    return Outcome.UNCHANGED if row.metadata_hash == metadata_hash else Outcome.METADATA_CHANGED


# --- commit --------------------------------------------------------------------------------------


def merge_outcomes(
    previous: pd.DataFrame,
    outcomes: pd.DataFrame,
    run_id: str,
    *,
    item_uuids: Mapping[str, str] | None = None,
    failed_item_urls: Collection[str] = (),
) -> pd.DataFrame:
    """The next ledger: ``previous`` updated by one run's per-object outcome rows.

    - planned objects (new, data/metadata changed, unchanged) take their new state, unless their
      item is in ``failed_item_urls`` (registration or metadata sync failed): then the old row
      (or no row, for a new item) stays, so the next run tries again;
    - ``failed`` objects keep their old row;
    - ``skipped``, ``sidecar`` and ``gone`` objects lose their row, except objects the run did
      not re-plan (:data:`ROW_KEEPING_CODES`: items a run's ``limit`` left out, keys an event run
      saw outside the template's renderings), which keep theirs;
    - rows the run did not see (other prefixes, other days) are kept as they are.

    ``item_uuids`` maps object URLs to Encord item UUIDs learnt this run (from the upload job's
    results or a folder listing), ``failed_item_urls`` lists object URLs whose item failed; for a
    group or series any of its URLs names the whole item. Known UUIDs are otherwise carried over.
    """
    outcomes = outcomes.drop_duplicates("url", keep="last")
    failed = _item_urls_named(outcomes, set(failed_item_urls))
    planned_mask = _planned_mask(outcomes, failed)
    replaced_mask = _replaced_mask(outcomes, failed)
    kept = previous[~previous["url"].isin(outcomes.loc[replaced_mask, "url"])]
    updated = outcomes.loc[planned_mask, [c for c in LEDGER_COLUMNS if c in outcomes.columns]]
    uuids = dict(item_uuids or {})
    by_member = outcomes.loc[outcomes["url"].isin(list(uuids)), ["url", "item_url"]]
    uuids.update(
        {item: uuids[url] for url, item in zip(by_member["url"], by_member["item_url"], strict=True)}
    )
    learnt = updated["item_url"].map(uuids)
    updated = updated.assign(
        item_uuid=learnt.where(learnt.notna(), updated["item_uuid"]),
        last_run_id=run_id,
        last_outcome=outcomes.loc[planned_mask, "outcome"],
    )
    import pandas as pd

    merged = pd.concat([kept[list(LEDGER_COLUMNS)], updated[list(LEDGER_COLUMNS)]], ignore_index=True)
    return merged.astype({"size": "int64"})


def _planned_mask(outcomes: pd.DataFrame, failed: Collection[str]) -> pd.Series:
    """Rows whose object takes its new state (planned, and its item did not fail)."""
    kinds = outcomes["outcome"]
    return kinds.isin([str(o) for o in DATA_OUTCOMES]) & ~outcomes["item_url"].isin(list(failed))


def _replaced_mask(outcomes: pd.DataFrame, failed: Collection[str]) -> pd.Series:
    """Rows whose object's old ledger row goes (replaced by its new state, or dropped)."""
    replaced = _planned_mask(outcomes, failed) | outcomes["outcome"].isin(
        [Outcome.SKIPPED.value, Outcome.SIDECAR.value, Outcome.GONE.value]
    )
    if "code" in outcomes:  # objects the run did not re-plan keep their rows
        replaced &= ~outcomes["code"].isin(ROW_KEEPING_CODES)
    return replaced


def _item_urls_named(outcomes: pd.DataFrame, urls: set[str]) -> set[str]:
    """The item URLs of the items any of ``urls`` belongs to (plus ``urls`` themselves)."""
    if not urls:
        return set()
    members = outcomes.loc[outcomes["url"].isin(list(urls)), "item_url"].dropna()
    return urls | set(members)


def commit_run(
    ledger: Ledger,
    run_id: str,
    outcome_frames: Iterable[pd.DataFrame],
    *,
    results: ItemResults | None = None,
) -> LedgerPointer:
    """Merge one run's outcome tables into the ledger and write it atomically, range by range.

    The same ledger as :func:`merge_outcomes` over everything at once with the run's whole
    ``item_uuids`` and ``failed_item_urls``, in bounded memory: ``results`` (what Encord answered
    per object URL) are looked up one outcome frame at a time and each row keeps its item's facts
    (failed, UUID learnt); the frames are sorted and spilled to a temporary directory one at a
    time, then each key range (about :data:`PART_ROWS` rows of the old ledger and of the outcomes)
    is merged and written as the new version's next part. Only what crosses rows is held whole:
    items whose failure or UUID only a member URL names (not their own URL), none in practice."""
    import tempfile

    ledger.check()  # one version for every range: the current one or, if broken, the previous one
    with tempfile.TemporaryDirectory(prefix="ledger-commit-") as spill:
        runs = _SpilledOutcomes(spill, results or ResultMaps())
        keyless = ledger.read_frame([KeyRange(end_before="\x00")])  # rows a reconcile added
        runs.keyless = set(keyless["url"])
        for frame in outcome_frames:
            runs.add(frame)
        writer = ledger.writer(run_id)
        bounds = runs.boundaries([part.first for part in ledger.iter_parts() if part.first])
        for lower, upper in zip([None, *bounds], [*bounds, None], strict=True):
            key_range = KeyRange(start_at=lower, end_before=upper)
            previous = ledger.read_frame([key_range])
            if lower is None and len(keyless):
                previous = previous[~previous["url"].isin(runs.replaced_keyless())]
            outcomes = runs.read(lower, upper)
            if outcomes is None:
                writer.add(previous)
                continue
            uuids, failed = runs.item_facts(outcomes)
            merged = merge_outcomes(previous, outcomes, run_id, item_uuids=uuids, failed_item_urls=failed)
            writer.add(merged.sort_values("key", kind="stable"))
        return writer.finish()


_FAILED, _LEARNT = "_item_failed", "_item_uuid_learnt"
"""Columns the commit adds to spilled outcome rows: their item failed; the UUID its URL got."""


class _SpilledOutcomes:
    """A run's outcome frames on local disk, each sorted by key and carrying its rows' item
    results, plus the item facts that cross rows."""

    def __init__(self, folder: str, results: ItemResults):
        self.folder, self.results = folder, results
        self.failed: set[str] = set()
        """Items failed through a member URL while their own URL did not fail."""
        self.uuids: dict[str, str] = {}
        """Items whose UUID a member URL gives, where their own URL gives another or none."""
        self.files: list[tuple[str, str, str]] = []  # (path, first key, last key)
        self.samples: list[str] = []
        self._rows = 0
        self.keyless: set[str] = set()
        self._keyless_rows: list[pd.DataFrame] = []

    def add(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if frame.empty:
            return
        frame = self._with_item_results(frame)
        if self.keyless:
            self._keyless_rows.append(frame[frame["url"].isin(list(self.keyless))])
        ordered = frame.sort_values("key", kind="stable")
        path = f"{self.folder}/run-{len(self.files):05d}.parquet"
        table = pa.Table.from_pandas(ordered, preserve_index=False)
        pq.write_table(table, path, row_group_size=ROW_GROUP_SIZE)
        keys = ordered["key"]
        self.files.append((path, str(keys.iloc[0]), str(keys.iloc[-1])))
        step = PART_ROWS // 2  # a bound every `step` outcome rows, counted across frames of any size
        first = step - 1 - self._rows % step
        self.samples.extend(str(key) for key in keys.iloc[first::step])
        self._rows += len(keys)

    def _with_item_results(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with :data:`_FAILED` and :data:`_LEARNT` looked up by item URL; a member URL
        that names its item (failed, or another UUID) is remembered across rows (in run order,
        the last one wins, as dicts updated row by row)."""
        urls, items = frame["url"], frame["item_url"]
        found = self.results.lookup([*urls.dropna().unique(), *items.dropna().unique()])
        item_failed, item_uuid = items.map(found["failure"]).notna(), items.map(found["item_uuid"])
        url_failed, url_uuid = urls.map(found["failure"]).notna(), urls.map(found["item_uuid"])
        self.failed.update(items[url_failed & ~item_failed & items.notna()])
        named = url_uuid.notna() & items.notna()
        named &= url_uuid.ne(item_uuid) | items.isin(list(self.uuids))
        self.uuids.update(zip(items[named], url_uuid[named], strict=True))
        return frame.assign(**{_FAILED: item_failed, _LEARNT: item_uuid})

    def item_facts(self, outcomes: pd.DataFrame) -> tuple[dict[str, str], set[str]]:
        """The learnt UUIDs and failed items of these (spilled) rows, for :func:`merge_outcomes`."""
        learnt = outcomes[outcomes[_LEARNT].notna()]
        uuids = dict(zip(learnt["item_url"], learnt[_LEARNT], strict=True))
        items = set(outcomes["item_url"].dropna())
        uuids.update((item, self.uuids[item]) for item in items & set(self.uuids))
        failed = set(outcomes.loc[outcomes[_FAILED], "item_url"].dropna())
        return uuids, failed | (items & self.failed)

    def boundaries(self, part_firsts: Sequence[str]) -> list[str]:
        """Range bounds: every old part's first key and a key every ``PART_ROWS / 2`` outcomes."""
        return sorted({key for key in [*part_firsts, *self.samples] if key})

    def read(self, lower: str | None, upper: str | None) -> pd.DataFrame | None:
        """The outcome rows with ``lower <= key < upper`` in spill order, or ``None``."""
        import pandas as pd
        import pyarrow.parquet as pq

        filters = [("key", ">=", lower)] if lower is not None else []
        if upper is not None:
            filters.append(("key", "<", upper))
        frames = []
        for path, first, last in self.files:
            if (lower is not None and last < lower) or (upper is not None and first >= upper):
                continue
            frame = pq.read_table(path, filters=filters or None).to_pandas()
            if len(frame):
                frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else None

    def replaced_keyless(self) -> set[str]:
        """URLs of key-less ledger rows (added by a reconcile) that the run's outcomes replace."""
        import pandas as pd

        if not self._keyless_rows:
            return set()
        outcomes = pd.concat(self._keyless_rows, ignore_index=True)
        return set(outcomes.loc[_replaced_mask(outcomes, self.item_facts(outcomes)[1]), "url"])


def item_urls_by_title(outcome_frames: Iterable[pd.DataFrame]) -> dict[str, str]:
    """``{title: item_url}`` of the planned items, to map an upload job's ``items_with_names``
    (UUID and title) to the item URLs :func:`commit_run` takes. Titles are unique per source."""
    mapping: dict[str, str] = {}
    for frame in outcome_frames:
        planned = frame[frame["title"].notna() & frame["item_url"].notna()]
        mapping.update(zip(planned["title"], planned["item_url"], strict=True))
    return mapping


_VERSIONS_JSON = compact()


def sidecar_versions_json(versions: Mapping[str, str]) -> str:
    """The ``sidecars`` column: ``{key: version}`` as compact, sorted JSON."""
    return _VERSIONS_JSON(dict(sorted(versions.items()))).decode("utf-8")


def recorded_sidecars(sidecars_column: Iterable[str | None]) -> dict[str, str]:
    """``{sidecar key: version}`` over a ``sidecars`` column (each JSON text parsed once)."""
    versions: dict[str, str] = {}
    for text in set(sidecars_column):
        if text:
            versions.update(json.loads(text))
    return versions
