"""Export of targets and their metadata as Parquet or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from encord_ingest.metadata_ops.columns import INFO_COLUMNS, ITEM_UUID, OBJECT_URL, TITLE, column_for_key
from encord_ingest.metadata_ops.resolve import csv_cell
from encord_ingest.metadata_ops.targets import Target
from encord_ingest.sync import present

if TYPE_CHECKING:
    import pyarrow as pa


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
