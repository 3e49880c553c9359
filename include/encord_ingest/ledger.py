"""The ledger: what the pipeline last planned for each object of one source, and the diff.

One Parquet file per version plus a small JSON pointer, both in a :class:`BlobStore` (object
storage or a local directory)::

    <prefix>/versions/<utc-time>-<run-id>-<token>.parquet   immutable, one per commit
    <prefix>/CURRENT.json                                    {"version_key", "sha256", "rows", ...}

A commit writes a new version first and then replaces the pointer (one PUT, atomic on S3, GCS
and, via rename, on a local disk). A crash in between leaves the old pointer, so readers keep
seeing the old, complete ledger; the orphan version is never read. The pointer carries the
SHA-256 of the version it names, so a torn or foreign version is refused, never half-read.
Concurrent commits to one ledger are not merged: the last pointer wins. Run commits of one
source one at a time (the DAG's ``max_active_runs=1`` or a pool of one slot).

Recovery: when the version the pointer names is missing, torn or not Parquet, the reader falls
back to the pointer's previous version (checked against its SHA-256 when the pointer recorded
it) and says so in :attr:`Ledger.warning`; the run goes on and re-plans what the lost commit
recorded (Encord skips URLs it has; metadata is compared, not rewritten). When there is no
intact previous version, or the pointer itself cannot be read, :class:`LedgerError` says how to
recover: the source's reconcile DAG rebuilds the ledger from Encord's folder listing.

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

import contextlib
import functools
import hashlib
import io
import json
import logging
import re
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from encord_ingest.sources.base import MAX_CHAR

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

POINTER_NAME = "CURRENT.json"
OVER_LIMIT_CODE = "over_limit"
"""Skip code of new items a run's ``limit`` left out (see :mod:`encord_ingest.scan.scanner`)."""
VERSIONS_FOLDER = "versions"
ROW_GROUP_SIZE = 50_000
FORMAT_VERSION = 1


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


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One object as the ledger remembers it."""

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


class LedgerPointer(BaseModel):
    """The small object that names the current version."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: int = FORMAT_VERSION
    version_key: str
    sha256: str
    rows: int
    run_id: str
    written_at: datetime
    previous_version_key: str | None = None
    previous_sha256: str | None = None


RECOVER_HINT = (
    "to recover, trigger the source's encord_reconcile__<source> DAG (it rebuilds the ledger from "
    "Encord's folder listing), or write CURRENT.json naming an intact file under versions/"
)


class LedgerSnapshot:
    """The ledger rows of one key range, for lookups while a shard is planned."""

    def __init__(self, rows: Iterable[LedgerRow] = ()):
        self.rows: dict[str, LedgerRow] = {}
        self.members: dict[str, list[str]] = {}
        for row in rows:
            self.rows[row.url] = row
            self.members.setdefault(row.item_url, []).append(row.url)

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, url: str) -> LedgerRow | None:
        return self.rows.get(url)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


def _range_filters(ranges: Sequence[KeyRangeLike] | None) -> list[list[tuple[str, str, str]]] | None:
    """Parquet row-group filters (OR of ANDs) for key ranges; exact checks follow in pandas."""
    if ranges is None:
        return None
    filters = []
    for key_range in ranges:
        conditions = []
        if key_range.prefix:
            conditions.append(("key", ">=", key_range.prefix))
            conditions.append(("key", "<", key_range.prefix + MAX_CHAR))
        if key_range.start_at is not None:
            conditions.append(("key", ">=", key_range.start_at))
        if key_range.end_before is not None:
            conditions.append(("key", "<", key_range.end_before))
        if not conditions:
            return None
        filters.append(conditions)
    return filters or [[("key", "<", "")]]


class Ledger:
    """The versions and pointer of one source's ledger under ``prefix`` in ``store``."""

    def __init__(self, store: BlobStoreLike, prefix: str):
        self.store = store
        self.prefix = prefix.strip("/")
        self.warning: str | None = None
        """Set when a read fell back to the previous version (for the run report)."""
        self._read_from: tuple[str, str] | None = None
        """``(version key, sha256)`` of the version reads use, once known."""

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

    def _version(self, key: str, sha256: str | None) -> tuple[bytes | None, str]:
        """The bytes of version ``key`` if intact (SHA-256, else a Parquet footer check), or why not."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            data = self.store.read_bytes(key)
        except FileNotFoundError:
            return None, "is missing"
        except Exception as exc:
            return None, f"cannot be read ({type(exc).__name__}: {exc})"
        digest = hashlib.sha256(data).hexdigest()
        if sha256 is not None and digest != sha256:
            return None, f"has sha256 {digest}, the pointer expects {sha256} (truncated or replaced)"
        try:
            pq.ParquetFile(io.BytesIO(data)).schema_arrow  # noqa: B018 - reads the footer
        except (pa.ArrowException, OSError) as exc:
            return None, f"is not a Parquet file ({exc})"
        return data, ""

    def _current_bytes(self) -> bytes | None:
        """The bytes of the version reads use: the pointer's, else its intact previous version."""
        pointer = self.pointer()
        if pointer is None:
            return None
        data, problem = self._version(pointer.version_key, pointer.sha256)
        if data is not None:
            self._read_from = (pointer.version_key, pointer.sha256)
            return data
        what = f"{self.pointer_key} names version {pointer.version_key}, which {problem}"
        previous = pointer.previous_version_key
        if previous is None:
            raise LedgerError(f"{what}; there is no previous version to fall back to; {RECOVER_HINT}")
        data, previous_problem = self._version(previous, pointer.previous_sha256)
        if data is None:
            raise LedgerError(f"{what}; its previous version {previous} {previous_problem}; {RECOVER_HINT}")
        self._read_from = (previous, hashlib.sha256(data).hexdigest())
        self.warning = (
            f"LEDGER RECOVERED: {what}. Read the previous version {previous} instead: what run "
            f"{pointer.run_id!r} committed is planned again (Encord skips URLs it has, metadata is "
            "compared, not rewritten). To check the ledger against Encord, trigger the source's "
            "encord_reconcile__<source> DAG."
        )
        log.warning("%s", self.warning)
        return data

    def check(self) -> str | None:
        """Read the current version once: ``None`` if intact, the warning if reads fall back to
        the previous version; :class:`LedgerError` (saying how to recover) if neither is usable."""
        self._current_bytes()
        return self.warning

    def read_table(self, ranges: Sequence[KeyRangeLike] | None = None) -> pa.Table:
        """The current rows (all, or those in any of ``ranges``) as an Arrow table."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = self._current_bytes()
        if data is None:
            return ledger_schema().empty_table()
        table = pq.read_table(io.BytesIO(data), filters=_range_filters(ranges))
        if ranges is not None:
            keep = [any(in_range(key, key_range) for key_range in ranges) for key in table["key"].to_pylist()]
            table = table.filter(pa.array(keep, type=pa.bool_()))
        return table

    def read_frame(self, ranges: Sequence[KeyRangeLike] | None = None) -> pd.DataFrame:
        """The current rows (all, or those in any of ``ranges``) as a DataFrame."""
        frame: pd.DataFrame = self.read_table(ranges).to_pandas()
        return frame

    def snapshot(self, ranges: Sequence[KeyRangeLike] | None = None) -> LedgerSnapshot:
        """The rows in ``ranges`` (all rows for ``None``), ready for :func:`diff_item` lookups."""
        table = self.read_table(ranges)
        columns = [table[name].to_pylist() for name in LEDGER_COLUMNS]
        return LedgerSnapshot(LedgerRow(*values) for values in zip(*columns, strict=True))

    def write(self, frame: pd.DataFrame, run_id: str) -> LedgerPointer:
        """Write ``frame`` as a new version, then point to it. Returns the new pointer (whose
        previous version is the one reads used: after a fallback, the intact one)."""
        if self._read_from is None:
            with contextlib.suppress(LedgerError):  # a rebuild (reconcile) replaces an unreadable ledger
                self._current_bytes()
        previous = self._read_from
        data = frame_to_parquet(frame)
        stamp = datetime.now(UTC)
        name = f"{stamp:%Y%m%dT%H%M%S%fZ}-{_safe(run_id)}-{uuid.uuid4().hex[:8]}.parquet"
        version_key = self._key(f"{VERSIONS_FOLDER}/{name}")
        self.store.write_bytes(version_key, data)
        pointer = LedgerPointer(
            version_key=version_key,
            sha256=hashlib.sha256(data).hexdigest(),
            rows=len(frame),
            run_id=run_id,
            written_at=stamp,
            previous_version_key=previous[0] if previous else None,
            previous_sha256=previous[1] if previous else None,
        )
        self.store.write_bytes(self.pointer_key, pointer.model_dump_json().encode("utf-8"))
        self._read_from = (version_key, pointer.sha256)
        return pointer


def frame_to_parquet(frame: pd.DataFrame) -> bytes:
    """Ledger rows as Parquet bytes, sorted by key (so range reads skip row groups)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ordered = frame[list(LEDGER_COLUMNS)].sort_values("key", kind="stable")
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
    return set(ledger.members.get(item_url, ())) != urls


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
    - ``skipped``, ``sidecar`` and ``gone`` objects lose their row, except items a run's ``limit``
      left out (code ``over_limit``), which keep theirs;
    - rows the run did not see (other prefixes, other days) are kept as they are.

    ``item_uuids`` maps object URLs to Encord item UUIDs learnt this run (from the upload job's
    results or a folder listing), ``failed_item_urls`` lists object URLs whose item failed; for a
    group or series any of its URLs names the whole item. Known UUIDs are otherwise carried over.
    """
    outcomes = outcomes.drop_duplicates("url", keep="last")
    failed = _item_urls_named(outcomes, set(failed_item_urls))
    kinds = outcomes["outcome"]
    planned_mask = kinds.isin([str(o) for o in DATA_OUTCOMES]) & ~outcomes["item_url"].isin(list(failed))
    replaced_mask = planned_mask | kinds.isin(
        [Outcome.SKIPPED.value, Outcome.SIDECAR.value, Outcome.GONE.value]
    )
    if "code" in outcomes:  # an item a run's limit left out was not re-planned: it keeps its row
        replaced_mask &= outcomes["code"].ne(OVER_LIMIT_CODE)
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
    item_uuids: Mapping[str, str] | None = None,
    failed_item_urls: Collection[str] = (),
) -> LedgerPointer:
    """Merge one run's outcome tables into the ledger and write it atomically."""
    import pandas as pd

    frames = list(outcome_frames)
    outcomes = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["url", "outcome"])
    if outcomes.empty:
        outcomes = pd.DataFrame({name: pd.Series(dtype=object) for name in [*LEDGER_COLUMNS, "outcome"]})
    merged = merge_outcomes(
        ledger.read_frame(), outcomes, run_id, item_uuids=item_uuids, failed_item_urls=failed_item_urls
    )
    return ledger.write(merged, run_id)


def item_urls_by_title(outcome_frames: Iterable[pd.DataFrame]) -> dict[str, str]:
    """``{title: item_url}`` of the planned items, to map an upload job's ``items_with_names``
    (UUID and title) to the item URLs :func:`commit_run` takes. Titles are unique per source."""
    mapping: dict[str, str] = {}
    for frame in outcome_frames:
        planned = frame[frame["title"].notna() & frame["item_url"].notna()]
        mapping.update(zip(planned["title"], planned["item_url"], strict=True))
    return mapping


def sidecar_versions_json(versions: Mapping[str, str]) -> str:
    """The ``sidecars`` column: ``{key: version}`` as compact, sorted JSON."""
    return json.dumps(dict(sorted(versions.items())), separators=(",", ":"), ensure_ascii=False)


def recorded_sidecars(sidecars_column: Iterable[str | None]) -> dict[str, str]:
    """``{sidecar key: version}`` over a ``sidecars`` column (each JSON text parsed once)."""
    versions: dict[str, str] = {}
    for text in set(sidecars_column):
        if text:
            versions.update(json.loads(text))
    return versions
