"""The shard scanner: one shard's listing streamed folder by folder into the run folder's chunks."""

from __future__ import annotations

import gc
import hashlib
import logging
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from encord_ingest.classify import SNIFF_BYTES, Classified, Classifier, sniff_content_type
from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.grouping import (
    Draft,
    FolderBatch,
    FolderPlan,
    FolderWalker,
    SeriesCollector,
    order_frames,
    plan_folder,
    read_dicom_header,
)
from encord_ingest.ledger import (
    OUTSIDE_PREFIX_CODE,
    OVER_LIMIT_CODE,
    Ledger,
    LedgerRow,
    LedgerSnapshot,
    ObjectState,
    Outcome,
    diff_item,
    metadata_outcome,
    recorded_sidecars,
    sidecar_versions_json,
)
from encord_ingest.manifest import check_object_url
from encord_ingest.manifest.model import compact_json_bytes
from encord_ingest.metadata import metadata_fingerprint
from encord_ingest.run_folder import MANIFESTS, METADATA, OUTCOMES, RunFolder
from encord_ingest.scan.config import PlanningConfig, ShardSummary, config_fingerprint
from encord_ingest.scan.inputs import FolderInputs, Parsed, find_object, read_and_parse
from encord_ingest.scan.item_metadata import (
    STATIC_FILE,
    ItemMetadata,
    TypedCache,
    build_metadata,
    own_defaults,
)
from encord_ingest.scan.items import build_item, plain_entry
from encord_ingest.scan.lean import FolderLayers, LeanMetadata
from encord_ingest.scan.outcomes import OUTCOME_COLUMNS, outcome_table_bytes
from encord_ingest.scan.unchanged import UnchangedFolders
from encord_ingest.scan.writers import ManifestWriter, RowsWriter
from encord_ingest.schema import MetadataSchema
from encord_ingest.sidecars import ParsedTable, SidecarRole, collect_layers
from encord_ingest.sources.base import ObjectInfo, Source, folder_of
from encord_ingest.sources.readahead import ReadAhead
from encord_ingest.sources.sharding import Shard, iter_shard
from encord_ingest.sync import change_line, join_lines

log = logging.getLogger(__name__)

OVER_LIMIT = OVER_LIMIT_CODE
_BLANK_ROW: list[Any] = [None] * len(OUTCOME_COLUMNS)
_COLUMN = {name: index for index, name in enumerate(OUTCOME_COLUMNS)}
_OWN_COLUMNS = ("key", "url", "outcome", "version", "size")
_OWN_SET = frozenset(_OWN_COLUMNS)
_KEY, _URL, _OUTCOME, _VERSION, _SIZE = (_COLUMN[name] for name in _OWN_COLUMNS)
UNMATCHED_ROWS_SHOWN = 20
"""Unmatched table rows named in the table's warning; the rest are counted."""
DATA_CHANGED_WARNING = (
    "the object changed under the same URL; Encord keeps the registered media "
    "(skip_duplicate_urls), only the metadata is synced"
)


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(compact_json_bytes(list(parts))).hexdigest()


@dataclass(frozen=True)
class ScanContext:
    """What one shard scan works on: passed whole from the pipeline to the scanner."""

    source: Source
    shard: Shard
    config: PlanningConfig
    run: RunFolder
    run_id: str
    schema: MetadataSchema = field(default_factory=lambda: MetadataSchema(keys={}))
    ledger: Ledger | None = None
    """The source's ledger (``None``: no ledger yet); only the rows in the shard's ranges are read."""
    full_rescan: bool = False
    """Ignore the ledger: every item is planned as new (registration skips known URLs) and gets a
    metadata-change row."""
    new_item_limit: int | None = None
    """At most this many new items are planned for registration; the rest are ``skipped`` with
    code ``over_limit``."""
    replay_unchanged: bool = True
    """Folders in which nothing changed get their rows from the ledger (:mod:`.unchanged`); off:
    every folder is planned item by item (the same rows, slower)."""


class ShardScanner:
    """One shard's planning state. Use :func:`scan_shard`."""

    def __init__(self, context: ScanContext, ledger: LedgerSnapshot):
        self.ctx, self.ledger, self.new_items = context, ledger, 0
        source, shard, config, schema = context.source, context.shard, context.config, context.schema
        run = context.run
        self.conventions = config.sidecars
        self.classifier = Classifier(config.classify, is_sidecar=self.conventions.is_sidecar)
        self.key_filter = config.key_filter([part.prefix for part in shard.parts])
        self.config_fp = config_fingerprint(config, schema)
        self.manifests = ManifestWriter(
            run.chunk_writer(MANIFESTS, shard.index),
            max_items=config.manifest_max_items,
            max_urls=config.manifest_max_urls,
            max_bytes=config.manifest_max_bytes,
        )
        self.changes = RowsWriter(
            run.chunk_writer(METADATA, shard.index), config.metadata_chunk_rows, join_lines
        )
        self.outcomes = RowsWriter(
            run.chunk_writer(OUTCOMES, shard.index),
            config.outcome_chunk_rows,
            outcome_table_bytes,
        )
        self.summary = ShardSummary(
            run_id=context.run_id,
            shard=shard.index,
            shards=shard.count,
            source=_source_uri(source),
            full_rescan=context.full_rescan,
        )
        self.counts: Counter[str] = Counter()
        self.item_counts: Counter[str] = Counter()
        self.error_counts: Counter[str] = Counter()
        self.unseen = set(ledger.rows)
        self.urls: dict[str, str] = {}
        """Object URLs of the listed keys of the open folders (only while ledger rows are unseen)."""
        self.objects = 0
        self.ledger_empty = len(ledger) == 0
        self.static = config.mapping.static_layer(schema, file=STATIC_FILE, unknown_keys=config.unknown_keys)
        self.typed_defaults: TypedCache = {}
        self.claimed_outside: set[str] = set()
        self.parse_errors: dict[str, ItemError] = {}
        self.series = SeriesCollector()
        self.walker = FolderWalker(self._listing())
        self.inputs = FolderInputs(source, self.conventions, shard, self.walker, config.metadata_root)
        self.lean = LeanMetadata(
            source,
            self.inputs,
            config,
            schema,
            chain=self._chain,
            static=self.static,
            cache=self.typed_defaults,
            parse_errors=self.parse_errors,
        )
        self.unchanged = UnchangedFolders(self) if context.replay_unchanged else None

    # -- rows -------------------------------------------------------------------------------------

    def _row(self, info: ObjectInfo, outcome: Outcome, url: str, **fields: Any) -> None:
        self._add_row(info, outcome, url, fields)

    def _add_row(self, info: ObjectInfo, outcome: Outcome, url: str, fields: Mapping[str, Any]) -> None:
        """One outcome row: ``fields`` are its other columns (those not given are empty)."""
        self._add_rows(((info, url),), outcome, fields)

    def _add_rows(
        self, members: Iterable[tuple[ObjectInfo, str]], outcome: Outcome, fields: Mapping[str, Any]
    ) -> None:
        """A row per ``(info, url)`` of ``members``, each with the columns ``fields`` (which
        win over the object's own: key, url, outcome, version, size)."""
        template = _BLANK_ROW.copy()
        try:
            for name, value in fields.items():
                template[_COLUMN[name]] = value
        except KeyError:
            raise ValueError(f"not outcome columns: {sorted(set(fields) - set(OUTCOME_COLUMNS))}") from None
        value = outcome.value
        template[_OUTCOME] = value
        overrides = (
            ()
            if _OWN_SET.isdisjoint(fields)
            else [(_COLUMN[n], fields[n]) for n in _OWN_COLUMNS if n in fields]
        )
        built = []
        for info, url in members:
            row = template.copy()
            row[_KEY], row[_URL], row[_VERSION], row[_SIZE] = info.key, url, info.version, info.size
            for index, column_value in overrides:
                row[index] = column_value
            built.append(tuple(row))
        self.outcomes.extend(built)
        rows = len(built)
        error = fields.get("code")
        if outcome is Outcome.FAILED and error:
            self.error_counts[error] += rows
        if fields.get("warning"):
            self.summary.warnings += rows
        self.counts[value] += rows

    def _skip(self, info: ObjectInfo, code: str, message: str | None = None) -> None:
        self._row(info, Outcome.SKIPPED, self._url(info.key), code=code, message=message)

    def _sidecar_row(self, info: ObjectInfo, error: ItemError | None, warning: str | None = None) -> None:
        url = self._url(info.key)
        if error is not None and error.file == info.key:
            self._row(info, Outcome.FAILED, url, code=error.code.value, message=error.message)
        else:
            self._row(info, Outcome.SIDECAR, url, warning=warning)

    # -- listing ------------------------------------------------------------------------------------

    def _listing(self) -> Iterator[ObjectInfo]:
        """The shard's objects; rule-skipped ones get their row here and go no further. With
        ledger rows to tick off, each object's URL is computed once, here, and kept while its
        folder is open (:meth:`_url`)."""
        source, unseen, urls = self.ctx.source, self.unseen, self.urls
        rule_reason, every = self.key_filter.rule_reason, self.ctx.config.progress_every
        outside = self._outside_renderings()
        outside_message = outside_prefix_message(self.ctx.config.prefix_template)
        objects = 0
        for info in iter_shard(source, self.ctx.shard):
            objects += 1
            if objects % every == 0:
                log.info(
                    "shard %s/%s: %s objects listed so far, outcomes %s",
                    self.ctx.shard.index + 1,
                    self.ctx.shard.count,
                    objects,
                    dict(self.counts),
                )
            if unseen:
                url = urls[info.key] = source.object_url(info.key)
                unseen.discard(url)
            if outside is not None and outside(info.key):
                self._skip(info, OUTSIDE_PREFIX_CODE, outside_message)
                urls.pop(info.key, None)
                continue
            reason = rule_reason(info)
            if reason is not None:
                self._row(info, Outcome.SKIPPED, self._url(info.key), code=reason.value)
                urls.pop(info.key, None)
                continue
            yield info
        self.objects = objects

    def _outside_renderings(self) -> Callable[[str], bool] | None:
        """For an event run's shard (:attr:`Shard.renderings_only`): whether a key is one no
        scheduled run plans (under no rendering of the prefix template); else ``None``."""
        template = self.ctx.config.prefix_template
        if not self.ctx.shard.renderings_only or template is None:
            return None
        rendering, scheduled, is_input = (
            self.key_filter.rendering,
            self.key_filter.scheduled,
            self._is_folder_input,
        )
        return lambda key: rendering(key) is None and not scheduled(key, folder_input=is_input(key))

    def _url(self, key: str) -> str:
        """The object URL of ``key`` (listed in a folder still open: computed once)."""
        url = self.urls.get(key)
        return url if url is not None else self.ctx.source.object_url(key)

    def _forget_urls(self, batch: FolderBatch) -> None:
        if self.urls:
            for info in batch.objects:
                self.urls.pop(info.key, None)

    def _classify(self, info: ObjectInfo) -> Classified:
        verdict = self.classifier.classify(info.key)
        if self.classifier.needs_content(verdict):
            try:
                head = self.ctx.source.read_bytes(info.key, SNIFF_BYTES)
            except Exception:  # noqa: BLE001 (unreadable head: keep the name-based verdict)
                return verdict
            verdict = self.classifier.resolve(verdict, sniff_content_type(head))
        return verdict

    # -- folders ------------------------------------------------------------------------------------

    def run(self) -> ShardSummary:
        self.ctx.run.clear_results(self.ctx.shard.index)
        for batch in self.walker:
            self._folder(batch)
        for draft in self.series.drafts():
            self._evaluate(draft, {})
        self._gone()
        return self._finish()

    def _folder(self, batch: FolderBatch) -> None:
        replayed = self.unchanged is not None and self.unchanged.replay(batch)
        if not replayed:
            self._plan_folder(batch)
        self._forget_urls(batch)

    def _plan_folder(self, batch: FolderBatch) -> None:
        """The per-item path of one complete folder."""
        verdicts = {info.key: self._classify(info) for info in batch.objects}
        plan = plan_folder(
            batch,
            verdicts,
            self.ctx.config.grouping,
            sidecar_candidates=self.conventions.per_file_sidecar_keys,
            is_folder_input=self._is_folder_input,
            glob_skip=lambda key: _value(self.key_filter.glob_reason(key)),
        )
        self.inputs.complete(batch, plan.folder_inputs)
        index = {info.key: info for info in batch.objects}
        for draft in plan.drafts:
            self._evaluate(draft, index)
        self._uid_dicom(plan.uid_dicom)
        self._side_rows(plan, batch)
        self.inputs.release(batch.folder)

    def _is_folder_input(self, key: str) -> bool:
        return self.conventions.sidecar_role(key) in (SidecarRole.FOLDER_DEFAULTS, SidecarRole.FOLDER_TABLE)

    def _side_rows(self, plan: FolderPlan, batch: FolderBatch) -> None:
        for info in plan.folder_inputs:
            table = self.inputs.table_read(info.key)
            warning = self._unmatched_rows(table, batch) if table is not None else None
            self._sidecar_row(info, self.inputs.parse_error(info.key), warning)
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
        self._tables_owned_elsewhere(batch)

    def _tables_owned_elsewhere(self, batch: FolderBatch) -> None:
        """The folder's tables outside this shard that it read: the shard owning a table writes
        its row but, holding none of the items, may never read it, so their unmatched rows go in
        the summary (``table_warnings``) and commit_and_report puts them on the table's row."""
        for key in self.conventions.table_keys(batch.folder):
            table = None if self.ctx.shard.contains(key) else self.inputs.table_read(key)
            warning = self._unmatched_rows(table, batch) if table is not None else None
            if warning and key not in self.summary.table_warnings:
                self.summary.table_warnings[key] = warning
                self.summary.warnings += 1

    def _unmatched_rows(self, table: ParsedTable, batch: FolderBatch) -> str | None:
        """A warning naming every row of ``table`` (read this run) that matches no object: names
        are checked against the folder's listing, then with a HEAD (or a listing of the folder a
        row names), in NFC and NFD spelling."""
        listed = {unicodedata.normalize("NFC", info.key) for info in batch.objects}
        missing = [
            f"{where} names {path!r}"
            for path, where in table.row_names.items()
            if table.folder + path not in listed and not self._exists(table.folder + path)
        ]
        if not missing:
            return None
        shown = "; ".join(missing[:UNMATCHED_ROWS_SHOWN])
        more = (
            f"; and {len(missing) - UNMATCHED_ROWS_SHOWN} more" if len(missing) > UNMATCHED_ROWS_SHOWN else ""
        )
        return f"{len(missing)} row(s) of {table.file} match no object: {shown}{more}"

    def _spellings(self, key: str) -> list[str]:
        return list(
            dict.fromkeys([key, unicodedata.normalize("NFC", key), unicodedata.normalize("NFD", key)])
        )

    def _exists(self, key: str) -> bool:
        """An object ``key``, or a folder ``key/`` (a row may name a group folder), in any spelling."""
        source = self.ctx.source
        return any(
            source.head(spelling) is not None
            or next(iter(source.iter_objects(spelling + "/")), None) is not None
            for spelling in self._spellings(key)
        )

    def _uid_dicom(self, files: Sequence[ObjectInfo]) -> None:
        grouping = self.ctx.config.grouping
        for info in files:
            header = read_dicom_header(
                self.ctx.source.read_bytes,
                info,
                first_bytes=grouping.dicom_header_bytes,
                max_bytes=grouping.dicom_max_header_bytes,
            )
            if isinstance(header, ItemError):
                self._fail_members(
                    [info], [self.ctx.source.object_url(info.key)], header, "dicom_series", info.key
                )
            else:
                self.series.add(info, header)

    # -- items ----------------------------------------------------------------------------------------

    def _chain(self, metadata_key: str) -> list[str]:
        return self.conventions.applying_folders(metadata_key, self.ctx.config.metadata_root)

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
            if (info := find_object(parent.objects, key)) is not None
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
        urls = [self.ctx.source.object_url(member.key) for member in draft.members]
        unfit = _member_problem(draft, urls)
        if unfit is not None:
            self._fail(draft, unfit, urls)
            return
        layers = self.lean.layers(draft, index)
        inputs = self._inputs(draft, index) if layers is None else self.lean.inputs(draft, index, layers)
        versions = {key: info.version for key, info in inputs.items()}
        input_fp = _fingerprint(
            self.config_fp, draft.kind, draft.title, draft.create_video, sorted(versions.items())
        )
        outcome, row = self._diff(draft, urls, input_fp)
        base = {"sidecars": sidecar_versions_json(versions), "input_fingerprint": input_fp}
        if outcome is Outcome.UNCHANGED and row is not None:
            self._member_rows(draft, urls, outcome, base | {"metadata_hash": row.metadata_hash}, row)
            return
        metadata = self._item_metadata(draft, inputs, layers)
        if metadata.error is not None:
            self._fail(draft, metadata.error, urls)
            return
        if self.ctx.config.provenance_key:
            metadata.values[self.ctx.config.provenance_key] = self._provenance(draft, urls[0], versions)
        metadata_hash = metadata_fingerprint(metadata.values)
        if outcome is None:
            assert row is not None
            outcome = metadata_outcome(row, metadata_hash)
        warning = "; ".join(w.message for w in metadata.warnings) or None if metadata.warnings else None
        if outcome is Outcome.DATA_CHANGED:
            warning = "; ".join(filter(None, [DATA_CHANGED_WARNING, warning]))
        if outcome is Outcome.NEW and not self._admit_new(draft, urls, metadata.values):
            return
        if self._needs_sync(outcome, row, metadata_hash):
            uuid = row.item_uuid if row is not None else None
            self.changes.add(change_line(urls[0], uuid, metadata.values, metadata.files))
        fields = base | {"metadata_hash": metadata_hash, "warning": warning}
        self._member_rows(draft, urls, outcome, fields, row)

    def _diff(self, draft: Draft, urls: list[str], input_fp: str) -> tuple[Outcome | None, LedgerRow | None]:
        """:func:`diff_item` of the item (an empty ledger knows no item: every one is new)."""
        if self.ledger_empty:
            return Outcome.NEW, None
        states = [ObjectState(url, m.version, m.size) for url, m in zip(urls, draft.members, strict=True)]
        return diff_item(states, urls[0], input_fp, self.ledger, full_rescan=self.ctx.full_rescan)

    def _admit_new(self, draft: Draft, urls: list[str], metadata: dict[str, Any]) -> bool:
        """Queue a new item for registration; ``False`` when it ended here (over the run's limit,
        or no manifest item could be built: its rows are written)."""
        if self.ctx.new_item_limit is not None and self.new_items >= self.ctx.new_item_limit:
            self._over_limit(draft, urls)
            return False
        error = self._register(draft, urls, metadata)
        if error is not None:
            self._fail(draft, error, urls)
            return False
        self.new_items += 1
        return True

    def _over_limit(self, draft: Draft, urls: Sequence[str]) -> None:
        """A new item past the run's ``limit``: skipped now (no ledger row), planned again next run."""
        message = (
            f"not registered: the run's limit on new items was reached ({self.ctx.new_item_limit} for this "
            "shard); a later run registers it"
        )
        for member, url in zip(draft.members, urls, strict=True):
            self._row(
                member,
                Outcome.SKIPPED,
                url,
                item_url=urls[0],
                kind=row_kind(draft),
                title=draft.title,
                code=OVER_LIMIT,
                message=message,
            )

    def _needs_sync(self, outcome: Outcome, row: LedgerRow | None, metadata_hash: str) -> bool:
        if outcome is Outcome.NEW:
            return self.ctx.config.sync_new_items
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

    def _item_metadata(
        self, draft: Draft, inputs: Mapping[str, ObjectInfo], layers: FolderLayers | None
    ) -> ItemMetadata:
        """The lean path's metadata where it applies, else the full path's."""
        metadata = None if layers is None else self.lean.metadata(draft, inputs, layers)
        return self._metadata(draft, inputs) if metadata is None else metadata

    def _metadata(self, draft: Draft, inputs: Mapping[str, ObjectInfo]) -> ItemMetadata:
        parsed: dict[str, Parsed] = {}
        for key in inputs:
            if self._is_folder_input(key):
                parsed[key] = self.inputs.parsed(key)
            else:
                document = read_and_parse(self.ctx.source, self.conventions, key, inputs[key].size)
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
            draft.metadata_key, parsed, conventions=self.conventions, root=self.ctx.config.metadata_root
        )
        if isinstance(layers, ItemError):
            return ItemMetadata(error=layers)
        own_layers = own_defaults(own, self.conventions.defaults_keys(draft.own_folder or ""))
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
            config=self.ctx.config,
            schema=self.ctx.schema,
            static=self.static,
            cache=self.typed_defaults,
        )

    def _provenance(self, draft: Draft, item_url: str, versions: Mapping[str, str]) -> dict[str, Any]:
        members = draft.members
        version = members[0].version if len(members) == 1 else _fingerprint([m.version for m in members])
        return {"source": item_url, "version": version, "sidecars": dict(sorted(versions.items()))}

    def _register(self, draft: Draft, urls: list[str], metadata: dict[str, Any]) -> ItemError | None:
        plain = plain_entry(draft, urls, metadata, self.ctx.config.probe)
        if plain is not None and self.manifests.add_entry(plain[0], urls, plain[1]):
            return None
        item = build_item(draft, urls, metadata, self.ctx.source, self.ctx.config.probe)
        if isinstance(item, ItemError):
            return item
        return self.manifests.add(item)

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
        shared = {"item_url": urls[0], "kind": row_kind(draft), "title": draft.title, "item_uuid": uuid}
        shared.update(fields)
        self._add_rows(zip(draft.members, urls, strict=True), outcome, shared)

    def _fail(self, draft: Draft, error: ItemError, urls: Sequence[str] | None = None) -> None:
        urls = list(urls) if urls is not None else [self.ctx.source.object_url(m.key) for m in draft.members]
        self._fail_members(draft.members, urls, error, row_kind(draft), draft.title)

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
        summary.objects = self.objects
        summary.counts = dict(sorted(self.counts.items()))
        summary.items = dict(sorted(self.item_counts.items()))
        summary.errors = dict(sorted(self.error_counts.items()))
        summary.manifest_items = self.manifests.total_items
        summary.manifest_urls = self.manifests.total_urls
        summary.metadata_changes = self.changes.total
        summary.manifest_uris = self.manifests.writer.uris
        summary.metadata_uris = self.changes.writer.uris
        summary.outcome_uris = self.outcomes.writer.uris
        summary.summary_uri = self.ctx.run.summary_uri(self.ctx.shard.index)
        self.ctx.run.write_summary(self.ctx.shard.index, summary.model_dump_json(indent=1).encode("utf-8"))
        if not summary.accounted:
            raise RuntimeError(
                f"shard {self.ctx.shard.index}: {summary.objects} objects but outcomes {summary.counts}"
            )
        return summary


def outside_prefix_message(template: str | None) -> str:
    """The message of an ``outside_prefix`` row (see :meth:`ShardScanner._outside_renderings`)."""
    return (
        f"under no rendering of bucket.prefix {template!r}: an event run plans what the scheduled runs "
        "plan (the object's ledger row, if any, is kept; a run with a prefix override plans it)"
    )


def row_kind(draft: Draft) -> str:
    """The ``kind`` column of an item's rows: an image group made into a video is an ``image_sequence``."""
    return "image_sequence" if draft.kind == "image_group" and draft.create_video else draft.kind


def _member_problem(draft: Draft, urls: Sequence[str]) -> ItemError | None:
    """Why the item cannot be registered at all: a URL Encord would refuse, or an empty file."""
    for member, url in zip(draft.members, urls, strict=True):
        bad_url = check_object_url(url, member.key)
        if bad_url is not None:
            return bad_url
    empty = next((member for member in draft.members if member.size == 0), None)
    return None if empty is None else _empty_object(empty.key)


def _empty_object(key: str) -> ItemError:
    return ItemError.of(
        ErrorCode.EMPTY_OBJECT,
        key,
        expected="a data file with content",
        value=0,
        detail="size in bytes; set filters.skip_empty to skip empty files instead",
    )


def _value(reason: Any) -> str | None:
    return None if reason is None else str(reason.value)


def _source_uri(source: Source) -> str:
    uri = getattr(source, "uri", None)
    return str(uri()) if callable(uri) else f"{source.scheme}://{source.bucket}"


def read_ahead(context: ScanContext, snapshot: LedgerSnapshot) -> AbstractContextManager[Source]:
    """The shard's source, reading ahead (``read_concurrency`` at a time) every listed sidecar
    whose version the ledger did not record: those the scan reads (unchanged ones it skips).
    ``read_concurrency`` 1, or a local directory (reads take microseconds there): the plain
    source, the scanner reads one sidecar after another."""
    conventions = context.config.sidecars
    if context.config.read_concurrency <= 1 or context.source.scheme == "file":
        return nullcontext(context.source)
    recorded = recorded_sidecars(row.sidecars for row in snapshot.rows.values())
    return ReadAhead(
        context.source,
        lambda info: conventions.read_ahead_limit(info.key, info.version, recorded),
        concurrency=context.config.read_concurrency,
    )


def scan_shard(context: ScanContext) -> dict[str, Any]:
    """Plan one shard into the run folder (see :class:`ScanContext`); returns the summary as JSON data."""
    ledger, shard = context.ledger, context.shard
    full = context.full_rescan
    snapshot = ledger.snapshot(shard.parts) if ledger is not None and not full else LedgerSnapshot()
    gc.freeze()  # the snapshot is kept whole until the end: garbage collections need not walk it
    try:
        with read_ahead(context, snapshot) as source:
            summary = ShardScanner(replace(context, source=source), snapshot).run()
    finally:
        del snapshot
        gc.collect()  # the scanner's own cycles (bound methods its helpers keep), snapshot and all
        gc.unfreeze()
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
