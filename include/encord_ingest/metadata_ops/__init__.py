"""Metadata operations at every scope Encord's docs describe, without Airflow or the SDK.

A *scope* turns target ids into storage items (:class:`Target`: UUID, URL, title, type, the
metadata Encord holds, and where the item sits); the hook layer builds them:

- ``folder``: the items of storage folders (optionally with every subfolder);
- ``dataset``: the data units of datasets, each through its backing storage item;
- ``project``: the data units of every dataset attached to projects (one target per item);
- ``group_frames``: the child items (frames) of image groups, image sequences, DICOM series.

This package decides what each target should carry, from either

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

One module per step: :mod:`.columns` (scopes, column names), :mod:`.targets`,
:mod:`.change_tables`, :mod:`.resolve` (rows to typed targets), :mod:`.report` (planning writes,
counts, the report file), :mod:`.requests` (what an operator asks for), :mod:`.export`.
"""

from __future__ import annotations

from encord_ingest.metadata_ops.change_tables import ChangeTable, read_change_table
from encord_ingest.metadata_ops.columns import (
    DATA_HASH,
    DATA_INDEX,
    DATASET_HASH,
    ESCAPE_PREFIX,
    FRAME_FILE,
    FRAME_INDEX,
    GROUP,
    GROUP_TITLE,
    ID_COLUMNS,
    INFO_COLUMNS,
    ITEM_TYPE,
    ITEM_UUID,
    KEYFRAME_KEYS,
    OBJECT_URL,
    TITLE,
    Scope,
    column_for_key,
    key_for_column,
)
from encord_ingest.metadata_ops.export import export_columns, export_csv, export_parquet, export_records
from encord_ingest.metadata_ops.report import OpCounts, OpReport, count_results, item_results, plan_writes
from encord_ingest.metadata_ops.requests import ApplyRequest, ExportRequest
from encord_ingest.metadata_ops.resolve import Desired, Resolution, csv_cell, resolve_for_all, resolve_table
from encord_ingest.metadata_ops.targets import Target, unique_targets
from encord_ingest.sync import ItemResult, WriteStatus

__all__ = [
    "DATASET_HASH",
    "DATA_HASH",
    "DATA_INDEX",
    "ESCAPE_PREFIX",
    "FRAME_FILE",
    "FRAME_INDEX",
    "GROUP",
    "GROUP_TITLE",
    "ID_COLUMNS",
    "INFO_COLUMNS",
    "ITEM_TYPE",
    "ITEM_UUID",
    "KEYFRAME_KEYS",
    "OBJECT_URL",
    "TITLE",
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
    "column_for_key",
    "count_results",
    "csv_cell",
    "export_columns",
    "export_csv",
    "export_parquet",
    "export_records",
    "item_results",
    "key_for_column",
    "plan_writes",
    "read_change_table",
    "resolve_for_all",
    "resolve_table",
    "unique_targets",
]
