"""Plan one shard: list, classify, pair, group, type metadata, diff against the ledger, write.

:func:`scan_shard` streams a shard's listing folder by folder (:class:`~.grouping.FolderWalker`)
and writes into the run's folder (a :class:`~encord_ingest.storage.BlobStore`)::

    manifests/shard-<i>-<n>.json    items to register (Encord's documented import JSON)
    metadata/shard-<i>-<n>.jsonl    metadata changes (:class:`~encord_ingest.sync.MetadataChange`)
    outcomes/shard-<i>-<n>.parquet  one row per object: the outcome table (:data:`OUTCOME_SCHEMA`)
    summaries/shard-<i>.json        the :class:`ShardSummary`, written last

Chunks are written as they fill, so memory holds one folder chain, one chunk of each kind and the
ledger rows of the shard (plus DICOM files waiting for their series with ``series_uid``). Names
are deterministic: a retried scan rewrites the same files and deletes its own leftovers.

Accounting: every listed object gets exactly one row and one outcome (:class:`~.ledger.Outcome`):

- data files: the outcome of their item (``new``, ``data_changed``, ``metadata_changed``,
  ``unchanged``) or ``failed`` with the item's error (every member of a failed group fails);
- sidecars are objects too: ``sidecar`` when they are an input of some item (a per-file sidecar
  paired with its data file, a folder defaults file or table), ``failed`` when they cannot be
  parsed (the items they feed fail too), ``skipped`` when nothing uses them (code
  ``orphan_sidecar`` for a per-file sidecar without its data file; per-frame sidecars of groups
  and DICOM files, and sidecars of data files skipped by a glob, with the reason);
- ``skipped`` by rule (hidden, temporary, folder marker, empty, excluded, not included, unknown
  kind) with the rule as its code;
- ``gone``: rows of the ledger in this shard's ranges that the listing did not return. They are
  not part of the objects seen, so ``sum(counts) - gone == objects``.

Decisions:

- ``data_changed``: Encord skips URLs it already has (``skip_duplicate_urls``), so a rewritten
  file is not registered again; the plan syncs its metadata only (when it differs) and says so
  in the row's ``warning``. Re-registering needs a new URL (or a manual delete in Encord).
- New items carry their ``clientMetadata`` in the manifest and, by default
  (``sync_new_items``), also get a metadata-change row: if a run registered an item and crashed
  before committing the ledger, the rerun sees it as new again, registration skips the duplicate
  URL and keeps the old metadata (``upsert_metadata`` is off); the sync row makes it converge,
  and the sync compares with what Encord holds, so it writes nothing in the common case.
- Titles: the object key for files, the folder path for groups and folder series (see
  :mod:`.grouping`). Independent of the run prefix, so they never change between runs.
- A metadata change's ``object_url`` is the item's key URL (its first object URL).
- Groups and series: a frame added, removed or rewritten makes the whole item ``data_changed``
  (Encord does not change the frames of an existing item); a removed frame's row is ``gone``.
- ``dicom_series: series_uid`` reads each DICOM header on every run (the UID is not in the
  listing) and joins series within one shard only: keep a series inside one shard (shard by
  study folder), or two items with one title result.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from encord_ingest.classify import SNIFF_BYTES, Classified, Classifier, ClassifyConfig, sniff_content_type
from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.grouping import (
    Draft,
    FolderBatch,
    FolderPlan,
    FolderWalker,
    GroupingConfig,
    SeriesCollector,
    order_frames,
    plan_folder,
    read_dicom_header,
)
from encord_ingest.ledger import (
    LEDGER_SCHEMA,
    OVER_LIMIT_CODE,
    Ledger,
    LedgerRow,
    LedgerSnapshot,
    ObjectState,
    Outcome,
    diff_item,
    metadata_outcome,
    sidecar_versions_json,
)
from encord_ingest.manifest import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_URLS,
    AudioItem,
    DicomSeriesItem,
    GroupFrame,
    ImageGroupItem,
    ImageItem,
    Item,
    Manifest,
    NiftiItem,
    PdfItem,
    TextItem,
    VideoItem,
    check_item_limits,
    check_object_url,
)
from encord_ingest.manifest.model import compact_json_bytes
from encord_ingest.metadata import (
    MetadataMapping,
    TypedMetadata,
    UnknownKeyPolicy,
    map_and_type,
    metadata_fingerprint,
    validate_reserved,
)
from encord_ingest.probe import ProbeConfig, probe_image, probe_video
from encord_ingest.schema import MetadataSchema, key_problem
from encord_ingest.sidecars import (
    MetadataLayer,
    ParsedSidecar,
    ParsedTable,
    SidecarConventions,
    SidecarRole,
    collect_layers,
    merge_layers,
)
from encord_ingest.sources.base import ObjectInfo, Source, folder_of
from encord_ingest.sources.filters import FilterConfig, KeyFilter
from encord_ingest.sources.sharding import Shard, find_folder_files, iter_shard
from encord_ingest.sync import MetadataChange, write_changes

log = logging.getLogger(__name__)

Parsed = ParsedSidecar | ParsedTable | ItemError
STATIC_FILE = "planning config: mapping.static"
RESULTS_FOLDER = "results"
"""Where the Encord operators write per-chunk results in the run folder (``encord_provider.run_io``)."""
OVER_LIMIT = OVER_LIMIT_CODE
DATA_CHANGED_WARNING = (
    "the object changed under the same URL; Encord keeps the registered media "
    "(skip_duplicate_urls), only the metadata is synced"
)

OUTCOME_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("url", pa.string()),
        ("item_url", pa.string()),
        ("kind", pa.string()),
        ("outcome", pa.string()),
        ("code", pa.string()),
        ("message", pa.string()),
        ("title", pa.string()),
        ("version", pa.string()),
        ("size", pa.int64()),
        ("sidecars", pa.string()),
        ("input_fingerprint", pa.string()),
        ("metadata_hash", pa.string()),
        ("item_uuid", pa.string()),
        ("warning", pa.string()),
    ]
)
"""The per-object outcome table; its ledger columns feed :func:`~.ledger.commit_run`."""
OUTCOME_COLUMNS: tuple[str, ...] = tuple(OUTCOME_SCHEMA.names)
COMMIT_COLUMNS: tuple[str, ...] = tuple(
    name for name in OUTCOME_COLUMNS if name in LEDGER_SCHEMA.names or name in ("outcome", "title", "code")
)
"""The outcome columns a ledger commit reads."""


class PlanningConfig(BaseModel):
    """Everything that decides how a source's objects become items (one per source)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classify: ClassifyConfig = Field(default_factory=ClassifyConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    sidecars: SidecarConventions = Field(default_factory=SidecarConventions)
    mapping: MetadataMapping = Field(default_factory=MetadataMapping)
    grouping: GroupingConfig = Field(default_factory=GroupingConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    unknown_keys: UnknownKeyPolicy = "warn"
    metadata_root: str = ""
    """Folder defaults and tables apply from this folder down (``""``: the bucket root)."""
    provenance_key: str | None = None
    """When set, ``clientMetadata[<key>]`` = ``{source, version, sidecars}`` (off by default)."""
    sync_new_items: bool = True
    manifest_max_items: int = Field(default=DEFAULT_MAX_ITEMS, ge=1)
    manifest_max_urls: int = Field(default=DEFAULT_MAX_URLS, ge=1)
    manifest_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024)
    metadata_chunk_rows: int = Field(default=10_000, ge=1)
    outcome_chunk_rows: int = Field(default=50_000, ge=1)
    progress_every: int = Field(default=10_000, ge=1)
    """A progress line goes to the task log every this many listed objects."""

    @field_validator("metadata_root")
    @classmethod
    def _folder(cls, root: str) -> str:
        if root and not root.endswith("/"):
            raise ValueError(f"metadata_root {root!r}: expected '' or a folder ending in '/'")
        return root

    @field_validator("provenance_key")
    @classmethod
    def _valid_key(cls, key: str | None) -> str | None:
        if key is not None and key_problem(key):
            raise ValueError(f"provenance_key {key!r}: {key_problem(key)}")
        return key


def config_fingerprint(config: PlanningConfig, schema: MetadataSchema) -> str:
    """A hash of everything besides the sidecars that decides an item's metadata and shape."""
    relevant = {
        "schema": schema.to_dict(),
        "mapping": config.mapping.model_dump(mode="json"),
        "sidecars": config.sidecars.model_dump(mode="json"),
        "grouping": config.grouping.model_dump(mode="json"),
        "unknown_keys": config.unknown_keys,
        "metadata_root": config.metadata_root,
        "provenance_key": config.provenance_key,
    }
    return hashlib.sha256(compact_json_bytes(relevant)).hexdigest()


class ShardSummary(BaseModel):
    """What one shard's plan produced; small enough for XCom (URIs and counts only)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    shard: int
    shards: int
    source: str
    full_rescan: bool
    objects: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    items: dict[str, int] = Field(default_factory=dict)
    errors: dict[str, int] = Field(default_factory=dict)
    warnings: int = 0
    manifest_items: int = 0
    manifest_urls: int = 0
    metadata_changes: int = 0
    manifest_uris: list[str] = Field(default_factory=list)
    metadata_uris: list[str] = Field(default_factory=list)
    outcome_uris: list[str] = Field(default_factory=list)
    summary_uri: str = ""

    @property
    def accounted(self) -> bool:
        """Every object seen has exactly one outcome (``gone`` rows are extra)."""
        return sum(self.counts.values()) - self.counts.get(Outcome.GONE, 0) == self.objects


# --- writers --------------------------------------------------------------------------------------


class BlobWriter:
    """Writes numbered chunk files ``<folder>/<stem>-<n><suffix>`` and remembers their URIs."""

    def __init__(self, store: Any, folder: str, stem: str, suffix: str):
        self.store, self.folder, self.stem, self.suffix = store, folder, stem, suffix
        self.uris: list[str] = []

    def write(self, data: bytes) -> None:
        key = f"{self.folder}/{self.stem}-{len(self.uris):05d}{self.suffix}"
        self.uris.append(self.store.write_bytes(key, data))

    def remove_leftovers(self) -> None:
        """Delete chunks of an earlier attempt numbered past the ones written now."""
        mine = {uri.rsplit("/", 1)[-1] for uri in self.uris}
        for key in list(self.store.list(f"{self.folder}/{self.stem}-")):
            if key.rsplit("/", 1)[-1] not in mine and key.endswith(self.suffix):
                self.store.delete(key)


class ManifestWriter:
    """Streams items into manifest chunks under Encord's item, URL and byte limits."""

    def __init__(self, writer: BlobWriter, *, max_items: int, max_urls: int, max_bytes: int):
        self.writer = writer
        self.max_items, self.max_urls, self.max_bytes = max_items, max_urls, max_bytes
        self.envelope = len(Manifest([]).to_bytes())
        self.items: list[Item] = []
        self.kinds: set[str] = set()
        self.urls = 0
        self.size = self.envelope
        self.total_items = 0
        self.total_urls = 0

    def add(self, item: Item) -> ItemError | None:
        """Queue ``item``; an item that fits in no chunk is returned as its error instead."""
        urls = len(item.object_urls())
        entry = len(compact_json_bytes(item.to_docs()))
        section = len(compact_json_bytes(item.DOCS_KEY)) + 4
        if urls > self.max_urls or self.envelope + section + entry > self.max_bytes:
            return check_item_limits(item, max_urls=self.max_urls, max_bytes=self.max_bytes)
        added = entry + (1 if item.DOCS_KEY in self.kinds else section)
        if self.items and (
            len(self.items) >= self.max_items
            or self.urls + urls > self.max_urls
            or self.size + added > self.max_bytes
        ):
            self.flush()
            added = entry + section
        self.items.append(item)
        self.kinds.add(item.DOCS_KEY)
        self.urls += urls
        self.size += added
        self.total_items += 1
        self.total_urls += urls
        return None

    def flush(self) -> None:
        if self.items:
            self.writer.write(Manifest(self.items).to_bytes())
        self.items, self.kinds, self.urls, self.size = [], set(), 0, self.envelope


class RowsWriter:
    """Buffers rows and writes them ``rows`` at a time with ``encode``."""

    def __init__(self, writer: BlobWriter, rows: int, encode: Any):
        self.writer, self.limit, self.encode = writer, rows, encode
        self.rows: list[Any] = []
        self.total = 0

    def add(self, row: Any) -> None:
        self.rows.append(row)
        self.total += 1
        if len(self.rows) >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write(self.encode(self.rows))
        self.rows = []


def outcome_table_bytes(rows: list[tuple[Any, ...]]) -> bytes:
    """Outcome rows (tuples in :data:`OUTCOME_COLUMNS` order) as Parquet bytes."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(OUTCOME_COLUMNS)
    table = pa.Table.from_arrays(
        [pa.array(column, type=OUTCOME_SCHEMA.field(i).type) for i, column in enumerate(columns)],
        schema=OUTCOME_SCHEMA,
    )
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression="zstd")
    return bytes(buffer.getvalue().to_pybytes())


def read_outcomes(data: bytes, columns: Sequence[str] | None = None) -> Any:
    """An outcome chunk as a pandas DataFrame (all columns, or ``columns``)."""
    return pq.read_table(pa.BufferReader(data), columns=list(columns) if columns else None).to_pandas()


# --- folder inputs ------------------------------------------------------------------------------


class FolderInputs:
    """Folder defaults and tables along the walk: which exist (with versions) and their parse.

    A folder's own batch is exact once complete. Before that (a sub-folder is planned first) a
    name is known from the partial batch when the folder is still open, the name sorts below the
    walk position and lies in the shard; otherwise (and for folders already closed, say for a
    UID series planned at the end) it is looked up with one HEAD. Folders outside the shard come from the
    shard's ``context_folders`` at or below ``root``. Entries are dropped when their folder closes.
    """

    def __init__(
        self,
        source: Source,
        conventions: SidecarConventions,
        shard: Shard,
        walker: FolderWalker,
        root: str = "",
    ):
        self.source, self.conventions, self.shard, self.walker = source, conventions, shard, walker
        self.names = (*conventions.defaults_names, *conventions.table_names)
        self.context = {folder for folder in shard.context_folders if folder.startswith(root)}
        self._infos: dict[str, dict[str, ObjectInfo]] = {folder: {} for folder in self.context}
        for info in find_folder_files(source, sorted(self.context), self.names):
            self._infos.setdefault(folder_of(info.key), {})[info.key] = info
        self._parsed: dict[str, Parsed] = {}

    def of(self, folder: str) -> dict[str, ObjectInfo]:
        """``{key: info}`` of the folder-level files of ``folder``."""
        known = self._infos.get(folder)
        if known is not None:
            return known
        batch = self.walker.open_batch(folder)
        position = self.walker.position
        open_now = self.walker.is_open(folder)
        found: dict[str, ObjectInfo] = {}
        for name in self.names:
            key = folder + name
            if open_now and self.shard.contains(key) and (position is None or key < position):
                info = _find(batch.objects, key) if batch is not None else None
            else:
                info = self.source.head(key)
            if info is not None:
                found[key] = info
        self._infos[folder] = found
        return found

    def complete(self, batch: FolderBatch, folder_inputs: Iterable[ObjectInfo]) -> None:
        """The folder's batch is final: its own folder-level files are exactly those listed."""
        found = {info.key: info for info in folder_inputs}
        if batch.folder in self.context:
            for key, info in self._infos.get(batch.folder, {}).items():
                found.setdefault(key, info)
        self._infos[batch.folder] = found

    def release(self, folder: str) -> None:
        """Forget a closed folder (context folders stay for the whole shard)."""
        if folder in self.context:
            return
        for key in self._infos.pop(folder, {}):
            self._parsed.pop(key, None)

    def parsed(self, key: str) -> Parsed:
        """The parse of a folder-level file (read once while its folder is open)."""
        if key not in self._parsed:
            self._parsed[key] = read_and_parse(self.source, self.conventions, key)
        return self._parsed[key]

    def parse_error(self, key: str) -> ItemError | None:
        """The error of a folder-level file parsed earlier, if any."""
        parsed = self._parsed.get(key)
        return parsed if isinstance(parsed, ItemError) else None


def _find(objects: Sequence[ObjectInfo], key: str) -> ObjectInfo | None:
    index = bisect.bisect_left(objects, key, key=lambda info: info.key)
    return objects[index] if index < len(objects) and objects[index].key == key else None


def read_and_parse(source: Source, conventions: SidecarConventions, key: str) -> Parsed:
    """Read a sidecar (one byte past its limit, so "too large" is detected) and parse it."""
    try:
        data = source.read_bytes(key, conventions.max_bytes(key) + 1)
    except Exception as exc:
        return ItemError.of(ErrorCode.READ_FAILED, key, detail=f"{type(exc).__name__}: {exc}")
    return conventions.parse(key, data)


# --- metadata -------------------------------------------------------------------------------------


@dataclass(slots=True)
class ItemMetadata:
    """The typed, merged ``clientMetadata`` of one item, or why it has none."""

    values: dict[str, Any] = field(default_factory=dict)
    error: ItemError | None = None
    warnings: list[ItemError] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _typed_layers(
    layers: Sequence[MetadataLayer], config: PlanningConfig, schema: MetadataSchema, static: TypedMetadata
) -> tuple[list[TypedMetadata], list[str]]:
    typed = [static]
    files = []
    for layer in layers:
        typed.append(
            map_and_type(
                layer.values,
                schema,
                config.mapping,
                file=layer.file,
                untyped=layer.untyped,
                unknown_keys=config.unknown_keys,
            )
        )
        files.append(layer.file)
    return typed, files


def _reserved_file(typed: Sequence[TypedMetadata], files: Sequence[str], fallback: str) -> str:
    """The highest layer that set a reserved key, to name in its error."""
    for layer, file in zip(reversed(typed[1:]), reversed(files), strict=True):
        if "keyframes" in layer.values or "config" in layer.values:
            return file
    return fallback


def build_metadata(
    layers: Sequence[MetadataLayer],
    kind: str,
    *,
    item_file: str,
    config: PlanningConfig,
    schema: MetadataSchema,
    static: TypedMetadata | None = None,
) -> ItemMetadata:
    """Type each layer (``static``: the typed static config), merge them lowest first, and check
    the reserved keys for ``kind``."""
    if static is None:
        static = config.mapping.static_layer(schema, file=STATIC_FILE, unknown_keys=config.unknown_keys)
    typed, files = _typed_layers(layers, config, schema, static)
    warnings = [warning for layer in typed for warning in layer.warnings]
    errors = [error for layer in typed for error in layer.errors]
    if errors:
        return ItemMetadata(error=errors[0], warnings=warnings, files=files)
    merged = merge_layers([layer.values for layer in typed])
    final, reserved_errors = validate_reserved(
        merged, kind=kind, file=_reserved_file(typed, files, item_file)
    )
    if reserved_errors:
        return ItemMetadata(error=reserved_errors[0], warnings=warnings, files=files)
    return ItemMetadata(values=final, warnings=warnings, files=files)


# --- the scanner -----------------------------------------------------------------------------------


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(compact_json_bytes(list(parts))).hexdigest()


class ShardScanner:
    """One shard's planning state. Use :func:`scan_shard`."""

    def __init__(
        self,
        source: Source,
        shard: Shard,
        config: PlanningConfig,
        *,
        schema: MetadataSchema,
        ledger: LedgerSnapshot,
        run_store: Any,
        run_id: str,
        full_rescan: bool,
        new_item_limit: int | None = None,
    ):
        self.source, self.shard, self.config, self.schema = source, shard, config, schema
        self.new_item_limit, self.new_items = new_item_limit, 0
        self.ledger, self.run_store, self.full_rescan = ledger, run_store, full_rescan
        self.conventions = config.sidecars
        self.classifier = Classifier(config.classify, is_sidecar=self.conventions.is_sidecar)
        self.key_filter = KeyFilter(config.filters, roots=[part.prefix for part in shard.parts])
        self.config_fp = config_fingerprint(config, schema)
        stem = f"shard-{shard.index:04d}"
        self.manifests = ManifestWriter(
            BlobWriter(run_store, "manifests", stem, ".json"),
            max_items=config.manifest_max_items,
            max_urls=config.manifest_max_urls,
            max_bytes=config.manifest_max_bytes,
        )
        self.changes = RowsWriter(
            BlobWriter(run_store, "metadata", stem, ".jsonl"), config.metadata_chunk_rows, write_changes
        )
        self.outcomes = RowsWriter(
            BlobWriter(run_store, "outcomes", stem, ".parquet"),
            config.outcome_chunk_rows,
            outcome_table_bytes,
        )
        self.summary = ShardSummary(
            run_id=run_id,
            shard=shard.index,
            shards=shard.count,
            source=_source_uri(source),
            full_rescan=full_rescan,
        )
        self.counts: Counter[str] = Counter()
        self.item_counts: Counter[str] = Counter()
        self.error_counts: Counter[str] = Counter()
        self.unseen = set(ledger.rows)
        self.static = config.mapping.static_layer(schema, file=STATIC_FILE, unknown_keys=config.unknown_keys)
        self.claimed_outside: set[str] = set()
        self.parse_errors: dict[str, ItemError] = {}
        self.series = SeriesCollector()
        self.walker = FolderWalker(self._listing())
        self.inputs = FolderInputs(source, self.conventions, shard, self.walker, config.metadata_root)

    # -- rows -------------------------------------------------------------------------------------

    def _row(self, info: ObjectInfo, outcome: Outcome, url: str, **fields: Any) -> None:
        row = {
            "key": info.key,
            "url": url,
            "outcome": outcome.value,
            "version": info.version,
            "size": info.size,
        }
        row.update(fields)
        error = fields.get("code")
        if outcome is Outcome.FAILED and error:
            self.error_counts[error] += 1
        if fields.get("warning"):
            self.summary.warnings += 1
        self.counts[outcome.value] += 1
        self.outcomes.add(tuple(row.get(name) for name in OUTCOME_COLUMNS))

    def _skip(self, info: ObjectInfo, code: str, message: str | None = None) -> None:
        self._row(info, Outcome.SKIPPED, self.source.object_url(info.key), code=code, message=message)

    def _sidecar_row(self, info: ObjectInfo, error: ItemError | None) -> None:
        url = self.source.object_url(info.key)
        if error is not None and error.file == info.key:
            self._row(info, Outcome.FAILED, url, code=error.code.value, message=error.message)
        else:
            self._row(info, Outcome.SIDECAR, url)

    # -- listing ------------------------------------------------------------------------------------

    def _listing(self) -> Iterator[ObjectInfo]:
        """The shard's objects; rule-skipped ones get their row here and go no further."""
        for info in iter_shard(self.source, self.shard):
            self.summary.objects += 1
            if self.summary.objects % self.config.progress_every == 0:
                log.info(
                    "shard %s/%s: %s objects listed so far, outcomes %s",
                    self.shard.index + 1,
                    self.shard.count,
                    self.summary.objects,
                    dict(self.counts),
                )
            url = self.source.object_url(info.key)
            self.unseen.discard(url)
            reason = self.key_filter.rule_reason(info)
            if reason is not None:
                self._row(info, Outcome.SKIPPED, url, code=reason.value)
                continue
            yield info

    def _classify(self, info: ObjectInfo) -> Classified:
        verdict = self.classifier.classify(info.key)
        if self.classifier.needs_content(verdict):
            try:
                head = self.source.read_bytes(info.key, SNIFF_BYTES)
            except Exception:
                return verdict
            verdict = self.classifier.resolve(verdict, sniff_content_type(head))
        return verdict

    # -- folders ------------------------------------------------------------------------------------

    def run(self) -> ShardSummary:
        self._forget_results()
        for batch in self.walker:
            self._folder(batch)
        for draft in self.series.drafts():
            self._evaluate(draft, {})
        self._gone()
        return self._finish()

    def _forget_results(self) -> None:
        """Delete register/sync results of an earlier attempt of this run (a cleared or re-run DAG
        run reuses the run folder and the chunk names): they describe other chunk contents."""
        for key in list(self.run_store.list(f"{RESULTS_FOLDER}/shard-{self.shard.index:04d}-")):
            self.run_store.delete(key)

    def _folder(self, batch: FolderBatch) -> None:
        verdicts = {info.key: self._classify(info) for info in batch.objects}
        plan = plan_folder(
            batch,
            verdicts,
            self.config.grouping,
            sidecar_candidates=self.conventions.per_file_sidecar_keys,
            is_folder_input=self._is_folder_input,
            glob_skip=lambda key: _value(self.key_filter.glob_reason(key)),
        )
        self.inputs.complete(batch, plan.folder_inputs)
        index = {info.key: info for info in batch.objects}
        for draft in plan.drafts:
            self._evaluate(draft, index)
        self._uid_dicom(plan.uid_dicom)
        self._side_rows(plan)
        self.inputs.release(batch.folder)

    def _is_folder_input(self, key: str) -> bool:
        return self.conventions.sidecar_role(key) in (SidecarRole.FOLDER_DEFAULTS, SidecarRole.FOLDER_TABLE)

    def _side_rows(self, plan: FolderPlan) -> None:
        for info in plan.folder_inputs:
            self._sidecar_row(info, self.inputs.parse_error(info.key))
        for info in plan.paired:
            self.claimed_outside.discard(info.key)
            self._sidecar_row(info, self.parse_errors.pop(info.key, None))
        for info, reason in plan.unused:
            self._skip(info, "unused_sidecar", reason)
        for info in plan.orphans:
            if info.key in self.claimed_outside:
                self.claimed_outside.discard(info.key)
                self._sidecar_row(info, self.parse_errors.pop(info.key, None))
            else:
                error = ItemError.of(
                    ErrorCode.ORPHAN_SIDECAR, info.key, detail="no data file of that name here"
                )
                self._skip(info, ErrorCode.ORPHAN_SIDECAR.value, error.message)
        for info, reason in plan.not_data:
            self._skip(info, reason)

    def _uid_dicom(self, files: Sequence[ObjectInfo]) -> None:
        grouping = self.config.grouping
        for info in files:
            header = read_dicom_header(
                self.source.read_bytes,
                info,
                first_bytes=grouping.dicom_header_bytes,
                max_bytes=grouping.dicom_max_header_bytes,
            )
            if isinstance(header, ItemError):
                self._fail_members(
                    [info], [self.source.object_url(info.key)], header, "dicom_series", info.key
                )
            else:
                self.series.add(info, header)

    # -- items ----------------------------------------------------------------------------------------

    def _chain(self, metadata_key: str) -> list[str]:
        root = self.config.metadata_root
        if not metadata_key.startswith(root):
            return []
        return self.conventions.folder_chain(metadata_key, root)

    def _inputs(self, draft: Draft, index: Mapping[str, ObjectInfo]) -> dict[str, ObjectInfo]:
        """Every sidecar that may feed ``draft``: per-file ones, chain folder files, own folder files."""
        found: dict[str, ObjectInfo] = {}
        for key in draft.sidecars:
            info = index.get(key)
            if info is not None:
                found[key] = info
        for folder in self._chain(draft.metadata_key):
            found.update(self.inputs.of(folder))
        if draft.own_folder is not None:
            found.update(self.inputs.of(draft.own_folder))
        return found

    def _group_sidecars(self, draft: Draft) -> dict[str, ObjectInfo]:
        """Per-file sidecars of a group or folder series: in the parent folder, listed already
        (``a/seq.json`` sorts before ``a/seq/...``), which is still open."""
        parent = self.walker.open_batch(folder_of(draft.metadata_key))
        if parent is None:
            return {}
        found = {
            key: info
            for key in self.conventions.per_file_sidecar_keys(draft.metadata_key)
            if (info := _find(parent.objects, key)) is not None
        }
        draft.sidecars = list(reversed(found))
        self.claimed_outside.update(found)
        return found

    def _evaluate(self, draft: Draft, index: Mapping[str, ObjectInfo]) -> None:
        """Plan one item: diff, read and type its metadata when needed, queue its outputs, rows."""
        if draft.own_folder is not None:
            index = self._group_sidecars(draft)
        if draft.order_column is not None:
            ordered = self._ordered(draft)
            if isinstance(ordered, ItemError):
                self._fail(draft, ordered)
                return
            draft.members = ordered
        urls = [self.source.object_url(member.key) for member in draft.members]
        for member, url in zip(draft.members, urls, strict=True):
            bad_url = check_object_url(url, member.key)
            if bad_url is not None:
                self._fail(draft, bad_url, urls)
                return
        inputs = self._inputs(draft, index)
        versions = {key: info.version for key, info in inputs.items()}
        input_fp = _fingerprint(
            self.config_fp, draft.kind, draft.title, draft.create_video, sorted(versions.items())
        )
        states = [ObjectState(url, m.version, m.size) for url, m in zip(urls, draft.members, strict=True)]
        outcome, row = diff_item(states, urls[0], input_fp, self.ledger, full_rescan=self.full_rescan)
        base = {"sidecars": sidecar_versions_json(versions), "input_fingerprint": input_fp}
        if outcome is Outcome.UNCHANGED and row is not None:
            self._member_rows(draft, urls, outcome, base | {"metadata_hash": row.metadata_hash}, row)
            return
        metadata = self._metadata(draft, inputs)
        if metadata.error is not None:
            self._fail(draft, metadata.error, urls)
            return
        if self.config.provenance_key:
            metadata.values[self.config.provenance_key] = self._provenance(draft, urls[0], versions)
        metadata_hash = metadata_fingerprint(metadata.values)
        if outcome is None:
            assert row is not None
            outcome = metadata_outcome(row, metadata_hash)
        warning = "; ".join(w.message for w in metadata.warnings) or None
        if outcome is Outcome.DATA_CHANGED:
            warning = "; ".join(filter(None, [DATA_CHANGED_WARNING, warning]))
        if outcome is Outcome.NEW:
            if self.new_item_limit is not None and self.new_items >= self.new_item_limit:
                self._over_limit(draft, urls)
                return
            error = self._register(draft, urls, metadata.values)
            if error is not None:
                self._fail(draft, error, urls)
                return
            self.new_items += 1
        if self._needs_sync(outcome, row, metadata_hash):
            uuid = row.item_uuid if row is not None else None
            self.changes.add(
                MetadataChange(
                    object_url=urls[0], item_uuid=uuid, metadata=metadata.values, source_files=metadata.files
                )
            )
        fields = base | {"metadata_hash": metadata_hash, "warning": warning}
        self._member_rows(draft, urls, outcome, fields, row)

    def _over_limit(self, draft: Draft, urls: Sequence[str]) -> None:
        """A new item past the run's ``limit``: skipped now (no ledger row), planned again next run."""
        message = (
            f"not registered: the run's limit on new items was reached ({self.new_item_limit} for this "
            "shard); a later run registers it"
        )
        for member, url in zip(draft.members, urls, strict=True):
            self._row(
                member,
                Outcome.SKIPPED,
                url,
                item_url=urls[0],
                kind=draft.kind,
                title=draft.title,
                code=OVER_LIMIT,
                message=message,
            )

    def _needs_sync(self, outcome: Outcome, row: LedgerRow | None, metadata_hash: str) -> bool:
        if outcome is Outcome.NEW:
            return self.config.sync_new_items
        if outcome in (Outcome.DATA_CHANGED, Outcome.METADATA_CHANGED):
            return row is None or row.metadata_hash != metadata_hash
        return False

    def _ordered(self, draft: Draft) -> list[ObjectInfo] | ItemError:
        """Frames in the order of the group folder's table column."""
        assert draft.own_folder is not None
        tables = [
            k for k in self.conventions.table_keys(draft.own_folder) if k in self.inputs.of(draft.own_folder)
        ]
        column = draft.order_column
        if not tables:
            return ItemError.of(
                ErrorCode.INVALID_ORDER,
                draft.title,
                key=column,
                expected="a folder table with the order column",
            )
        parsed = self.inputs.parsed(tables[0])
        if isinstance(parsed, ItemError):
            return parsed
        assert isinstance(parsed, ParsedTable)
        order = {name: row.get(column or "") for name, row in parsed.rows.items()}
        return order_frames(draft.members, order, table_file=parsed.file, column=column)

    def _metadata(self, draft: Draft, inputs: Mapping[str, ObjectInfo]) -> ItemMetadata:
        parsed: dict[str, Parsed] = {}
        for key in inputs:
            if self._is_folder_input(key):
                parsed[key] = self.inputs.parsed(key)
            else:
                document = read_and_parse(self.source, self.conventions, key)
                if isinstance(document, ItemError):
                    self.parse_errors[key] = document
                parsed[key] = document
        own = {}
        if draft.own_folder is not None:
            own_keys = self.conventions.defaults_keys(draft.own_folder)
            own = {key: parsed.pop(key) for key in own_keys if key in parsed}
            for key in self.conventions.table_keys(draft.own_folder):
                parsed.pop(key, None)
        layers = collect_layers(
            draft.metadata_key, parsed, conventions=self.conventions, root=self.config.metadata_root
        )
        if isinstance(layers, ItemError):
            return ItemMetadata(error=layers)
        own_layers = _own_defaults(own, self.conventions.defaults_keys(draft.own_folder or ""))
        if isinstance(own_layers, ItemError):
            return ItemMetadata(error=own_layers)
        if own_layers:
            cut = max(
                (i + 1 for i, layer in enumerate(layers) if layer.role == SidecarRole.FOLDER_DEFAULTS),
                default=0,
            )
            layers = [*layers[:cut], *own_layers, *layers[cut:]]
        return build_metadata(
            layers,
            draft.kind,
            item_file=draft.title,
            config=self.config,
            schema=self.schema,
            static=self.static,
        )

    def _provenance(self, draft: Draft, item_url: str, versions: Mapping[str, str]) -> dict[str, Any]:
        members = draft.members
        version = members[0].version if len(members) == 1 else _fingerprint([m.version for m in members])
        return {"source": item_url, "version": version, "sidecars": dict(sorted(versions.items()))}

    def _register(self, draft: Draft, urls: list[str], metadata: dict[str, Any]) -> ItemError | None:
        item = self._item(draft, urls, metadata)
        if isinstance(item, ItemError):
            return item
        return self.manifests.add(item)

    def _item(self, draft: Draft, urls: list[str], metadata: dict[str, Any]) -> Item | ItemError:
        probe = self.config.probe
        common: dict[str, Any] = {"title": draft.title, "client_metadata": metadata}
        member = draft.members[0]
        if draft.kind == "image_group":
            frames = []
            for info, url in zip(draft.members, urls, strict=True):
                media = (
                    probe_image(self.source.read_bytes, info.key, info.size, probe) if probe.images else None
                )
                if isinstance(media, ItemError):
                    return media
                frames.append(GroupFrame(url=url, image_metadata=media))
            return ImageGroupItem(frames=frames, create_video=draft.create_video, **common)
        if draft.kind == "dicom_series":
            return DicomSeriesItem(files=urls, **common)
        if draft.kind == "image":
            media = (
                probe_image(self.source.read_bytes, member.key, member.size, probe) if probe.images else None
            )
            if isinstance(media, ItemError):
                return media
            return ImageItem(object_url=urls[0], image_metadata=media, **common)
        if draft.kind == "video":
            video = None
            if probe.videos:
                local = getattr(self.source, "path", None)
                video = probe_video(
                    self.source.read_bytes,
                    member.key,
                    member.size,
                    probe,
                    str(local(member.key)) if local else None,
                )
                if isinstance(video, ItemError):
                    return video
            return VideoItem(object_url=urls[0], video_metadata=video, **common)
        single = {"audio": AudioItem, "text": TextItem, "pdf": PdfItem, "nifti": NiftiItem}[draft.kind]
        return single(object_url=urls[0], **common)

    def _member_rows(
        self,
        draft: Draft,
        urls: Sequence[str],
        outcome: Outcome,
        fields: dict[str, Any],
        row: LedgerRow | None,
    ) -> None:
        self.item_counts[outcome.value] += 1
        uuid = row.item_uuid if row is not None else None
        for info, url in zip(draft.members, urls, strict=True):
            self._row(
                info,
                outcome,
                url,
                item_url=urls[0],
                kind=draft.kind,
                title=draft.title,
                item_uuid=uuid,
                **fields,
            )

    def _fail(self, draft: Draft, error: ItemError, urls: Sequence[str] | None = None) -> None:
        urls = list(urls) if urls is not None else [self.source.object_url(m.key) for m in draft.members]
        self._fail_members(draft.members, urls, error, draft.kind, draft.title)

    def _fail_members(
        self, members: Sequence[ObjectInfo], urls: Sequence[str], error: ItemError, kind: str, title: str
    ) -> None:
        self.item_counts[Outcome.FAILED.value] += 1
        for info, url in zip(members, urls, strict=True):
            self._row(
                info,
                Outcome.FAILED,
                url,
                item_url=urls[0],
                kind=kind,
                title=title,
                code=error.code.value,
                message=error.message,
            )

    # -- end ------------------------------------------------------------------------------------------

    def _gone(self) -> None:
        for url in sorted(self.unseen):
            row = self.ledger.rows[url]
            self.counts[Outcome.GONE.value] += 1
            fields = {
                "key": row.key,
                "url": url,
                "item_url": row.item_url,
                "kind": row.kind,
                "outcome": Outcome.GONE.value,
                "version": row.version,
                "size": row.size,
                "item_uuid": row.item_uuid,
            }
            self.outcomes.add(tuple(fields.get(name) for name in OUTCOME_COLUMNS))

    def _finish(self) -> ShardSummary:
        self.manifests.flush()
        self.changes.flush()
        self.outcomes.flush()
        for writer in (self.manifests.writer, self.changes.writer, self.outcomes.writer):
            writer.remove_leftovers()
        summary = self.summary
        summary.counts = dict(sorted(self.counts.items()))
        summary.items = dict(sorted(self.item_counts.items()))
        summary.errors = dict(sorted(self.error_counts.items()))
        summary.manifest_items = self.manifests.total_items
        summary.manifest_urls = self.manifests.total_urls
        summary.metadata_changes = self.changes.total
        summary.manifest_uris = self.manifests.writer.uris
        summary.metadata_uris = self.changes.writer.uris
        summary.outcome_uris = self.outcomes.writer.uris
        key = f"summaries/shard-{self.shard.index:04d}.json"
        summary.summary_uri = self.run_store.uri(key)
        self.run_store.write_bytes(key, summary.model_dump_json(indent=1).encode("utf-8"))
        if not summary.accounted:
            raise RuntimeError(
                f"shard {self.shard.index}: {summary.objects} objects but outcomes {summary.counts}"
            )
        return summary


def _own_defaults(parsed: Mapping[str, Parsed], order: Sequence[str]) -> list[MetadataLayer] | ItemError:
    """Layers of a group folder's own defaults, lowest precedence first."""
    layers: list[MetadataLayer] = []
    for key in reversed(order):
        if key not in parsed:
            continue
        doc = parsed[key]
        if isinstance(doc, ItemError):
            return doc
        assert isinstance(doc, ParsedSidecar)
        layers.append(
            MetadataLayer(
                file=doc.file,
                role=SidecarRole.FOLDER_DEFAULTS.value,
                fingerprint=doc.fingerprint,
                untyped=False,
                values=doc.values,
            )
        )
    return layers


def _value(reason: Any) -> str | None:
    return None if reason is None else str(reason.value)


def _source_uri(source: Source) -> str:
    uri = getattr(source, "uri", None)
    return str(uri()) if callable(uri) else f"{source.scheme}://{source.bucket}"


def scan_shard(
    source: Source,
    shard: Shard,
    config: PlanningConfig,
    ledger: Ledger | None,
    run_store: Any,
    *,
    run_id: str,
    schema: MetadataSchema | None = None,
    full_rescan: bool = False,
    new_item_limit: int | None = None,
) -> dict[str, Any]:
    """Plan one shard into ``run_store`` (the run's folder); returns the summary as JSON data.

    ``ledger`` is the source's ledger (``None``: no ledger yet); only the rows in the shard's
    ranges are read. ``full_rescan`` ignores the ledger: every item is planned as new
    (registration skips known URLs) and gets a metadata-change row. ``new_item_limit`` caps the
    new items planned for registration; the rest are ``skipped`` with code ``over_limit``.
    """
    snapshot = ledger.snapshot(shard.parts) if ledger is not None and not full_rescan else LedgerSnapshot()
    scanner = ShardScanner(
        source,
        shard,
        config,
        schema=schema or MetadataSchema(keys={}),
        ledger=snapshot,
        run_store=run_store,
        run_id=run_id,
        full_rescan=full_rescan,
        new_item_limit=new_item_limit,
    )
    summary = scanner.run()
    log.info(
        "shard %s/%s: %s objects, outcomes %s, %s items to register, %s metadata changes",
        shard.index + 1,
        shard.count,
        summary.objects,
        summary.counts,
        summary.manifest_items,
        summary.metadata_changes,
    )
    return summary.model_dump(mode="json")


def load_outcomes(
    run_store: Any, summaries: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = COMMIT_COLUMNS
) -> Iterator[Any]:
    """The outcome tables of the given shard summaries (``run_store``: the run's folder), one
    DataFrame per chunk; by default only the columns :func:`~.ledger.commit_run` needs."""
    for summary in summaries:
        for uri in summary.get("outcome_uris", []):
            name = uri.split("/outcomes/", 1)[1]
            yield read_outcomes(run_store.read_bytes(f"outcomes/{name}"), columns)


def summary_json(summary: Mapping[str, Any]) -> str:
    """Compact JSON of a summary (for logs)."""
    return json.dumps(summary, separators=(",", ":"), sort_keys=True)
