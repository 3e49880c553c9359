"""Metadata operations at every scope Encord's docs describe, without Airflow or the SDK.

A *scope* turns target ids into storage items (:class:`Target`: UUID, URL, title, type, the
metadata Encord holds, and where the item sits); the hook layer builds them:

- ``folder``: the items of storage folders (optionally with every subfolder);
- ``dataset``: the data units of datasets, each through its backing storage item;
- ``project``: the data units of every dataset attached to projects (one target per item);
- ``group_frames``: the child items (frames) of image groups, image sequences, DICOM series.

This module decides what each target should carry, from either

- a **change table** (:func:`read_change_table`, :func:`resolve_table`): CSV, TSV, JSON Lines or
  Parquet, one row per target, named by the first identifier column present, in this order:
  ``item_uuid``, ``object_url``, ``title`` (folder, dataset, project) or ``item_uuid``,
  ``object_url``, ``frame_index``, ``frame_file`` (group frames; an optional ``group`` column,
  the group's UUID or title, narrows each row to one group). Every other column is a metadata
  key, except the informational columns an export writes (:data:`INFO_COLUMNS`); a key that
  collides with one of them is written ``meta:<key>``. With ``keyframes_only`` the table may
  only set ``keyframes`` and ``config``, and only on videos;
- or **the same metadata for every target** (:func:`resolve_for_all`).

Rules for rows: a row that names no target is ``not_found``; one that names several is
``ambiguous_target``; two rows naming one target are both ``duplicate_table_row``; a row with
any value that breaks the schema (:func:`~encord_ingest.metadata.type_metadata`, reserved keys by
:func:`~encord_ingest.metadata.validate_reserved`) is rejected whole, with every problem named.
A cell that reproduces the value Encord holds exactly as :func:`export_csv` writes it (or, in a
typed table, the same JSON value) keeps that value untouched and is not re-typed, so an
export -> edit -> apply round trip changes exactly the edited cells, even for keys the schema
does not declare. Empty CSV cells are absent keys; to delete a key use ``replace`` mode or a
JSON Lines ``null``.

Writes are planned with :func:`encord_ingest.sync.plan_item` (:func:`plan_writes`): the final
dict is decided here, only differing items are written, in bundles of at most 1000.
:func:`export_parquet` / :func:`export_csv` write one row per target, one column per key.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from encord_ingest.errors import ConfigError, ErrorCode, ItemError, value_repr
from encord_ingest.metadata import VIDEO_KIND, UnknownKeyPolicy, type_metadata, validate_reserved
from encord_ingest.schema import KEYFRAMES_KEY, VIDEO_CONFIG_KEY, MetadataSchema
from encord_ingest.sidecars import DEFAULT_MAX_TABLE_BYTES
from encord_ingest.sidecars.tables import TableRecords, TableRow, read_table
from encord_ingest.sync import (
    ItemPlan,
    ItemResult,
    MetadataChange,
    ReservedKeysPolicy,
    SyncMode,
    WriteStatus,
    plan_item,
    present,
    same_metadata,
    write_result,
)

if TYPE_CHECKING:
    import pyarrow as pa


class Scope(StrEnum):
    """What the target ids of an operation name."""

    FOLDER = "folder"
    DATASET = "dataset"
    PROJECT = "project"
    GROUP_FRAMES = "group_frames"


ITEM_UUID = "item_uuid"
OBJECT_URL = "object_url"
TITLE = "title"
ITEM_TYPE = "item_type"
DATASET_HASH = "dataset_hash"
DATA_HASH = "data_hash"
DATA_INDEX = "data_index"
GROUP = "group"
GROUP_TITLE = "group_title"
FRAME_INDEX = "frame_index"
FRAME_FILE = "frame_file"

#: Identifier columns per scope, in order of preference: the first one present names the rows.
ID_COLUMNS: dict[Scope, tuple[str, ...]] = {
    Scope.FOLDER: (ITEM_UUID, OBJECT_URL, TITLE),
    Scope.DATASET: (ITEM_UUID, OBJECT_URL, TITLE),
    Scope.PROJECT: (ITEM_UUID, OBJECT_URL, TITLE),
    Scope.GROUP_FRAMES: (ITEM_UUID, OBJECT_URL, FRAME_INDEX, FRAME_FILE),
}
#: Columns an export writes besides the metadata keys; never read as metadata.
INFO_COLUMNS: tuple[str, ...] = (
    ITEM_UUID,
    OBJECT_URL,
    TITLE,
    ITEM_TYPE,
    DATASET_HASH,
    DATA_HASH,
    DATA_INDEX,
    GROUP,
    GROUP_TITLE,
    FRAME_INDEX,
    FRAME_FILE,
)
ESCAPE_PREFIX = "meta:"
"""Column prefix for a metadata key that is also the name of an info column (``meta:title``)."""
KEYFRAME_KEYS = (KEYFRAMES_KEY, VIDEO_CONFIG_KEY)


def column_for_key(key: str) -> str:
    """The table column of a metadata key."""
    return ESCAPE_PREFIX + key if key in INFO_COLUMNS or key.startswith(ESCAPE_PREFIX) else key


def key_for_column(column: str) -> str | None:
    """The metadata key of a table column, ``None`` for an info column."""
    if column in INFO_COLUMNS:
        return None
    return column[len(ESCAPE_PREFIX) :] if column.startswith(ESCAPE_PREFIX) else column


# --- targets ------------------------------------------------------------------------------------


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class Target(BaseModel):
    """One storage item an operation may write, with the metadata Encord holds for it."""

    model_config = ConfigDict(frozen=True)

    item_uuid: str
    title: str
    object_url: str | None = None
    item_type: str = ""
    """The ``StorageItemType`` wire value: ``video``, ``image``, ``imageGroup``, ..."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    dataset_hash: str | None = None
    data_hash: str | None = None
    data_index: int | None = None
    """Position of the data unit in its dataset (what Encord's docs call the data unit number)."""
    group_uuid: str | None = None
    group_title: str | None = None
    frame_index: int | None = None
    """Position of the frame among the group's child items."""

    @property
    def label(self) -> str:
        """How reports name the item: its object URL, else its title, else its UUID."""
        return self.object_url or self.title or self.item_uuid

    @property
    def kind(self) -> str:
        """The kind :func:`~encord_ingest.metadata.validate_reserved` checks (``video`` or not)."""
        return VIDEO_KIND if self.item_type == "video" else (self.item_type or "item")

    @property
    def frame_file(self) -> str | None:
        """The file name of a frame: the last part of its object URL (decoded), else of its title."""
        if self.frame_index is None:
            return None
        if self.object_url:
            return _basename(unquote(urlsplit(self.object_url).path))
        return _basename(self.title)

    def names(self, column: str) -> set[str]:
        """The identifier values a table row may use in ``column`` to name this target."""
        if column == ITEM_UUID:
            return {self.item_uuid.lower()}
        if column == OBJECT_URL:
            return {self.object_url} if self.object_url else set()
        if column == TITLE:
            return {self.title}
        if column == FRAME_INDEX:
            return {str(self.frame_index)} if self.frame_index is not None else set()
        if column == FRAME_FILE and self.frame_index is not None:
            return {name for name in (self.frame_file, self.title, _basename(self.title)) if name}
        if column == GROUP and self.group_uuid:
            return {self.group_uuid.lower(), *([self.group_title] if self.group_title else [])}
        return set()

    def info(self) -> dict[str, Any]:
        """The informational columns of this target in an export."""
        return {
            ITEM_UUID: self.item_uuid,
            OBJECT_URL: self.object_url,
            TITLE: self.title,
            ITEM_TYPE: self.item_type or None,
            DATASET_HASH: self.dataset_hash,
            DATA_HASH: self.data_hash,
            DATA_INDEX: self.data_index,
            GROUP: self.group_uuid,
            GROUP_TITLE: self.group_title,
            FRAME_INDEX: self.frame_index,
            FRAME_FILE: self.frame_file,
        }


def unique_targets(targets: Iterable[Target]) -> list[Target]:
    """The first target of each item UUID, in order (a project may reach one item twice)."""
    seen: dict[str, Target] = {}
    for target in targets:
        seen.setdefault(target.item_uuid, target)
    return list(seen.values())


# --- reading change tables -----------------------------------------------------------------------


ChangeTable = TableRecords
"""A change table is read by the one table reader (:func:`~.sidecars.tables.read_table`)."""


def read_change_table(
    data: bytes, *, file: str, max_bytes: int = DEFAULT_MAX_TABLE_BYTES
) -> ChangeTable | ItemError:
    """Read a change table (format by extension); a broken table is one :class:`ItemError`."""
    return read_table(data, file=file, max_bytes=max_bytes)


# --- resolving rows to targets and typing them -----------------------------------------------------


class Desired(BaseModel):
    """The typed, checked metadata one target should carry (before combining with Encord's)."""

    model_config = ConfigDict(frozen=True)

    target: Target
    metadata: dict[str, Any]
    where: str | None = None
    warnings: list[ItemError] = Field(default_factory=list)


class Resolution(BaseModel):
    """What a table or a metadata dict asks for: targets to plan, and rows that cannot be applied."""

    desired: list[Desired] = Field(default_factory=list)
    rejected: list[ItemResult] = Field(default_factory=list)


def _located(error: ItemError, where: str, label: str | None) -> ItemError:
    place = f"{where} for {label}" if label else where
    detail = f"{place}: {error.detail}" if error.detail else place
    return error.model_copy(update={"detail": detail})


def csv_cell(value: Any) -> str:
    """How an export writes a value in CSV: strings as they are, ``true``/``false``, JSON otherwise."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def _reproduces(cell: Any, current: Any, untyped: bool) -> bool:
    """True when ``cell`` is how an export writes ``current`` (or the same JSON value)."""
    if isinstance(cell, str) and cell == csv_cell(current):
        return True
    return not untyped and same_metadata({"v": cell}, {"v": current})


def _identifier(column: str, raw: Any) -> str | None:
    """A row's identifier cell normalised for lookup; ``None`` when it cannot name anything."""
    if isinstance(raw, bool) or raw is None:
        return None
    if column == FRAME_INDEX:
        if isinstance(raw, float) and raw.is_integer() and raw >= 0:  # Parquet/pandas integers as floats
            return str(int(raw))
        text = str(raw).strip()
        return str(int(text)) if text.isdigit() else None
    if not isinstance(raw, str) or not raw.strip():
        return None
    if column in (ITEM_UUID, GROUP):
        try:
            return str(uuid.UUID(raw.strip()))
        except ValueError:
            return raw.strip() if column == GROUP else None
    return raw if column == TITLE else raw.strip()


def _id_column(table: ChangeTable, scope: Scope) -> str:
    for column in ID_COLUMNS[scope]:
        if column in table.columns:
            return column
    raise ConfigError(
        f"{table.file}: expected an identifier column for scope {scope.value!r}: one of "
        f"{', '.join(ID_COLUMNS[scope])}; got columns {table.columns}"
    )


def _index(targets: Sequence[Target], column: str) -> dict[str, list[Target]]:
    index: dict[str, list[Target]] = defaultdict(list)
    for target in targets:
        for name in target.names(column):
            index[name].append(target)
    return index


def _lookup(
    row: TableRow, column: str, index: dict[str, list[Target]], *, by_group: bool, file: str, scope: Scope
) -> Target | ItemError:
    raw = row.values.get(column)
    name = _identifier(column, raw)
    if name is None:
        return ItemError.of(
            ErrorCode.INVALID_TABLE,
            file,
            key=column,
            expected="a non-negative integer" if column == FRAME_INDEX else f"a valid {column}",
            value=raw,
            has_value=True,
            detail=row.where,
        )
    found = index.get(name, [])
    group = _identifier(GROUP, row.values.get(GROUP)) if by_group else None
    if group is not None:
        found = [target for target in found if group in target.names(GROUP)]
    if len(found) == 1:
        return found[0]
    where = f"{row.where}, {GROUP} {group!r}" if group else row.where
    if not found:
        return ItemError.of(
            ErrorCode.ITEM_NOT_FOUND,
            file,
            key=column,
            expected=f"the {column} of an item in the {scope.value.replace('_', ' ')}",
            value=raw,
            detail=where,
        )
    return ItemError.of(
        ErrorCode.AMBIGUOUS_TARGET,
        file,
        key=column,
        expected="a value that names one item (use item_uuid)",
        value=raw,
        detail=f"{where}: names {len(found)} items: {', '.join(sorted(t.item_uuid for t in found))}",
    )


def _row_metadata(
    cells: Mapping[str, Any],
    target: Target,
    *,
    table: ChangeTable,
    schema: MetadataSchema,
    unknown_keys: UnknownKeyPolicy,
) -> tuple[dict[str, Any], list[ItemError], list[ItemError]]:
    """(typed metadata, errors, warnings) of one row's metadata cells for ``target``."""
    current = target.metadata
    kept = {
        k: current[k] for k, v in cells.items() if k in current and _reproduces(v, current[k], table.untyped)
    }
    fresh = {k: v for k, v in cells.items() if k not in kept}
    typed = type_metadata(fresh, schema, file=table.file, untyped=table.untyped, unknown_keys=unknown_keys)
    checked, reserved_errors = validate_reserved(typed.values, kind=target.kind, file=table.file)
    return {**checked, **kept}, [*typed.errors, *reserved_errors], typed.warnings


def _metadata_cells(row: TableRow, keyframes_only: bool) -> dict[str, Any]:
    cells = {}
    for column, value in row.values.items():
        key = key_for_column(column)
        if key is not None and (not keyframes_only or key in KEYFRAME_KEYS):
            cells[key] = value
    return cells


def _check_keyframes_columns(table: ChangeTable) -> None:
    others = [c for c in table.columns if key_for_column(c) is not None and c not in KEYFRAME_KEYS]
    if others:
        raise ConfigError(
            f"{table.file}: a keyframes import sets only the columns {', '.join(KEYFRAME_KEYS)} "
            f"(plus an identifier column); remove the columns {others}"
        )


def resolve_table(
    table: ChangeTable,
    targets: Sequence[Target],
    *,
    scope: Scope,
    schema: MetadataSchema,
    unknown_keys: UnknownKeyPolicy = "reject",
    keyframes_only: bool = False,
) -> Resolution:
    """Match each row to one target and type its cells; see the module docstring for the rules.

    Raises :class:`ConfigError` when the table has no identifier column for ``scope`` or, with
    ``keyframes_only``, sets other keys than ``keyframes`` and ``config``.
    """
    column = _id_column(table, scope)
    if keyframes_only:
        _check_keyframes_columns(table)
    index = _index(targets, column)
    by_group = scope is Scope.GROUP_FRAMES and GROUP in table.columns
    resolution = Resolution()
    matched: list[tuple[TableRow, Target]] = []
    for row in table.rows:
        found = _lookup(row, column, index, by_group=by_group, file=table.file, scope=scope)
        if isinstance(found, ItemError):
            status = WriteStatus.NOT_FOUND if found.code is ErrorCode.ITEM_NOT_FOUND else WriteStatus.REJECTED
            resolution.rejected.append(ItemResult(status=status, where=row.where, errors=[found]))
        else:
            matched.append((row, found))
    rows_by_item: dict[str, list[str]] = defaultdict(list)
    for row, target in matched:
        rows_by_item[target.item_uuid].append(row.where)
    for row, target in matched:
        result = _resolve_row(
            row,
            target,
            same_item_rows=rows_by_item[target.item_uuid],
            table=table,
            schema=schema,
            unknown_keys=unknown_keys,
            keyframes_only=keyframes_only,
        )
        if isinstance(result, Desired):
            resolution.desired.append(result)
        else:
            resolution.rejected.append(result)
    return resolution


def _resolve_row(
    row: TableRow,
    target: Target,
    *,
    same_item_rows: list[str],
    table: ChangeTable,
    schema: MetadataSchema,
    unknown_keys: UnknownKeyPolicy,
    keyframes_only: bool,
) -> Desired | ItemResult:
    if len(same_item_rows) > 1:
        error = ItemError.of(
            ErrorCode.DUPLICATE_TABLE_ROW,
            table.file,
            expected="one row per item",
            value=target.label,
            detail=f"{', '.join(same_item_rows[:-1])} and {same_item_rows[-1]} name the same item "
            f"{target.item_uuid}",
        )
        return _rejected(row.where, target, [error])
    cells = _metadata_cells(row, keyframes_only)
    metadata, errors, warnings = _row_metadata(
        cells, target, table=table, schema=schema, unknown_keys=unknown_keys
    )
    if errors:
        return _rejected(row.where, target, [_located(e, row.where, target.label) for e in errors])
    located = [_located(w, row.where, target.label) for w in warnings]
    return Desired(target=target, metadata=metadata, where=row.where, warnings=located)


def _rejected(where: str | None, target: Target, errors: list[ItemError]) -> ItemResult:
    return ItemResult(
        status=WriteStatus.REJECTED,
        where=where,
        item_uuid=target.item_uuid,
        label=target.label,
        errors=errors,
    )


def resolve_for_all(
    metadata: Mapping[str, Any],
    targets: Sequence[Target],
    *,
    schema: MetadataSchema,
    unknown_keys: UnknownKeyPolicy = "reject",
    source: str = "metadata",
) -> Resolution:
    """The same metadata for every target (each item once). A value that breaks the schema raises
    :class:`ConfigError` naming ``source``; reserved keys on a target that is no video reject that
    target only."""
    typed = type_metadata(metadata, schema, file=source, untyped=False, unknown_keys=unknown_keys)
    if typed.errors:
        raise ConfigError("; ".join(error.message for error in typed.errors))
    resolution = Resolution()
    for target in unique_targets(targets):
        checked, errors = validate_reserved(typed.values, kind=target.kind, file=source)
        if errors:
            resolution.rejected.append(_rejected(None, target, errors))
        else:
            resolution.desired.append(Desired(target=target, metadata=checked, warnings=typed.warnings))
    return resolution


# --- planning writes and reporting -----------------------------------------------------------------


def plan_writes(
    desired: Sequence[Desired],
    mode: SyncMode,
    reserved: ReservedKeysPolicy = ReservedKeysPolicy.PRESERVE,
) -> list[ItemPlan]:
    """One :class:`~encord_ingest.sync.ItemPlan` per desired target, against what Encord holds."""
    plans = []
    for wanted in desired:
        target = wanted.target
        change = MetadataChange(object_url=target.label, item_uuid=target.item_uuid, metadata=wanted.metadata)
        plans.append(plan_item(change, target.item_uuid, target.metadata, mode, reserved))
    return plans


class OpCounts(BaseModel):
    """What an operation did; small enough for XCom."""

    targets: int = 0
    """Items the scope reached."""
    rows: int = 0
    """Table rows read (0 when the same metadata went to every target)."""
    rejected: int = 0
    not_found: int = 0
    examined: int = 0
    """Items planned (their final dict computed)."""
    changed: int = 0
    written: int = 0
    failed: int = 0
    patch_calls: int = 0

    @property
    def problems(self) -> int:
        """Rows or items that did not end as asked: rejected, not found or failed."""
        return self.rejected + self.not_found + self.failed


def item_results(
    desired: Sequence[Desired],
    plans: Sequence[ItemPlan],
    *,
    dry_run: bool,
    written: Collection[str] = (),
    failed: Mapping[str, str] | None = None,
) -> list[ItemResult]:
    """The result of each planned target (:func:`~encord_ingest.sync.write_result`), with the
    row and warnings of what it was asked for."""
    results = []
    for wanted, plan in zip(desired, plans, strict=True):
        result = write_result(
            plan, dry_run=dry_run, written=written, failed=failed, label=wanted.target.label
        )
        results.append(result.model_copy(update={"where": wanted.where, "warnings": wanted.warnings}))
    return results


def count_results(results: Sequence[ItemResult], *, targets: int, rows: int, patch_calls: int) -> OpCounts:
    """Counts of a finished operation; every row or target is in exactly one status."""
    by_status = {status: sum(1 for r in results if r.status is status) for status in WriteStatus}
    return OpCounts(
        targets=targets,
        rows=rows,
        rejected=by_status[WriteStatus.REJECTED],
        not_found=by_status[WriteStatus.NOT_FOUND],
        examined=sum(1 for r in results if r.diff is not None),
        changed=sum(1 for r in results if r.diff is not None and not r.diff.is_empty),
        written=by_status[WriteStatus.UPDATED],
        failed=by_status[WriteStatus.FAILED],
        patch_calls=patch_calls,
    )


class OpReport(BaseModel):
    """The report file of one operation: what was asked, the counts and one line per row/target."""

    operation: str
    scope: Scope
    target_ids: list[str]
    source: str | None = None
    """The change table URI, or ``None`` when the same metadata went to every target."""
    mode: SyncMode
    dry_run: bool
    counts: OpCounts
    items: list[ItemResult]

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=1, exclude_none=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> OpReport:
        return cls.model_validate_json(data)

    def error_messages(self, limit: int | None = None) -> list[str]:
        """The distinct error messages, in order (at most ``limit``)."""
        messages = dict.fromkeys(e.message for item in self.items for e in item.errors)
        return list(messages)[:limit]


# --- requests (what an operator or a DAG run asks for) ---------------------------------------------


def _blank_to_none(value: Any) -> Any:
    return None if value in ("", {}, None) else value


def _id_list(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        return [str(item).strip() for item in value if str(item).strip()]
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Scope
    target_ids: list[str] = Field(min_length=1)
    """Folder paths or UUIDs, dataset hashes, project hashes, or group UUIDs / titles."""
    recursive: bool = False
    """Folder scope: include the items of every subfolder."""
    folder: str | None = None
    """Group frames: the folder in which group titles are looked up."""

    _blank = field_validator("folder", mode="before")(_blank_to_none)
    _ids = field_validator("target_ids", mode="before")(_id_list)

    @classmethod
    def parse(cls, values: Mapping[str, Any], *, source: str) -> Self:
        """Validate ``values``; a problem raises :class:`ConfigError` naming ``source`` and the field."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_url=False):
                message = str(error["msg"]).removeprefix("Value error, ")
                if error["loc"]:
                    where = ".".join(str(part) for part in error["loc"])
                    message = f"field {where!r}: {message}, got {value_repr(error.get('input'))}"
                problems.append(message)
            raise ConfigError(f"{source}: " + "; ".join(problems)) from None


class ApplyRequest(_Request):
    """Apply a change table (``table_uri``) or the same ``metadata`` to every target."""

    table_uri: str | None = None
    metadata: dict[str, Any] | None = None
    mode: SyncMode = SyncMode.MERGE
    reserved_keys: ReservedKeysPolicy = ReservedKeysPolicy.PRESERVE
    keyframes_only: bool = False
    """Set only ``keyframes`` and ``config`` (videos only); ``mode`` is then always ``merge``."""
    unknown_keys: UnknownKeyPolicy = "reject"
    dry_run: bool = False

    _blank_source = field_validator("table_uri", "metadata", mode="before")(_blank_to_none)

    @model_validator(mode="after")
    def _one_source(self) -> ApplyRequest:
        if (self.table_uri is None) == (self.metadata is None):
            raise ValueError(
                "give exactly one of 'table_uri' (a change table) and 'metadata' (for every target)"
            )
        if self.keyframes_only and self.table_uri is None:
            raise ValueError("a keyframes import reads 'table_uri' (one row per video)")
        return self

    @property
    def effective_mode(self) -> SyncMode:
        return SyncMode.MERGE if self.keyframes_only else self.mode


class ExportRequest(_Request):
    """Export the metadata of every target to ``<output_uri>/<name>.parquet`` and ``.csv``."""

    output_uri: str = Field(min_length=1)
    name: str = Field(default="metadata", min_length=1)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        """Keep file names portable: anything but letters, digits, ``.``, ``_``, ``-`` becomes ``-``."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "metadata"

    def uris(self) -> tuple[str, str]:
        """(Parquet URI, CSV URI)."""
        base = self.output_uri.rstrip("/")
        return f"{base}/{self.name}.parquet", f"{base}/{self.name}.csv"


# --- export --------------------------------------------------------------------------------------


def export_columns(targets: Sequence[Target]) -> list[str]:
    """Info columns that carry a value for some target (``item_uuid``, ``object_url``, ``title``
    always), then one column per metadata key that holds a value (a ``null`` is absent), sorted."""
    infos = [target.info() for target in targets]
    always = {ITEM_UUID, OBJECT_URL, TITLE}
    info = [c for c in INFO_COLUMNS if c in always or any(row[c] is not None for row in infos)]
    keys = sorted({key for target in targets for key in present(target.metadata)})
    return info + [column_for_key(key) for key in keys]


def export_records(targets: Sequence[Target]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, one dict per target) with ``None`` for keys a target does not carry."""
    columns = export_columns(targets)
    records = []
    for target in targets:
        values = {**target.info(), **{column_for_key(k): v for k, v in present(target.metadata).items()}}
        records.append({column: values.get(column) for column in columns})
    return columns, records


def _arrow_column(values: list[Any]) -> pa.Array:
    """Typed when Arrow can hold every value of the column; else each value as its CSV text."""
    import pyarrow as pa

    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        array = None
    if array is None or (pa.types.is_struct(array.type) and array.type.num_fields == 0):
        return pa.array([None if v is None else csv_cell(v) for v in values], type=pa.string())
    return array


def export_parquet(targets: Sequence[Target]) -> bytes:
    """The export as Parquet: typed columns (info columns: strings and integers)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns, records = export_records(targets)
    arrays = [_arrow_column([record[column] for record in records]) for column in columns]
    sink = io.BytesIO()
    pq.write_table(pa.table(arrays, names=columns) if columns else pa.table({}), sink)
    return sink.getvalue()


def export_csv(targets: Sequence[Target]) -> bytes:
    """The export as CSV (UTF-8, a header row): values as :func:`csv_cell` writes them."""
    columns, records = export_records(targets)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([csv_cell(record[column]) for column in columns])
    return out.getvalue().encode("utf-8")


__all__ = [
    "ID_COLUMNS",
    "INFO_COLUMNS",
    "ApplyRequest",
    "ChangeTable",
    "Desired",
    "ExportRequest",
    "ItemResult",
    "OpCounts",
    "OpReport",
    "Resolution",
    "Scope",
    "Target",
    "WriteStatus",
    "count_results",
    "csv_cell",
    "export_csv",
    "export_parquet",
    "export_records",
    "item_results",
    "plan_writes",
    "read_change_table",
    "resolve_for_all",
    "resolve_table",
    "unique_targets",
]
