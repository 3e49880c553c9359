"""The per-object outcome table of a shard scan: schema, Parquet encoding, reader."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from encord_ingest.ledger import LEDGER_SCHEMA

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
