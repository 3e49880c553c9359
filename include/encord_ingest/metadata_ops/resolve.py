"""Resolving table rows (or one metadata dict) to targets, and typing them against the schema."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from encord_ingest.errors import ConfigError, ErrorCode, ItemError
from encord_ingest.metadata import UnknownKeyPolicy, type_metadata, validate_reserved
from encord_ingest.metadata_ops.change_tables import ChangeTable
from encord_ingest.metadata_ops.columns import (
    FRAME_INDEX,
    GROUP,
    ID_COLUMNS,
    ITEM_UUID,
    KEYFRAME_KEYS,
    TITLE,
    Scope,
    key_for_column,
)
from encord_ingest.metadata_ops.targets import Target, unique_targets
from encord_ingest.schema import MetadataSchema
from encord_ingest.sidecars.tables import TableRow
from encord_ingest.sync import ItemResult, WriteStatus, same_metadata


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
