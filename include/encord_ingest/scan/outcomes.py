"""The per-object outcome table of a shard scan: schema, Parquet encoding, reader."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from encord_ingest.ledger import LEDGER_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

_WHERE = ("key", "url", "item_url", "kind")
_VERDICT = ("outcome", "code", "message", "title")
OUTCOME_COLUMNS: tuple[str, ...] = (
    *_WHERE,
    *_VERDICT,
    *(name for name in LEDGER_COLUMNS if name not in _WHERE and not name.startswith("last_")),
    "warning",
)
"""The per-object outcome table (:func:`outcome_schema`); its ledger columns feed
:func:`~.ledger.commit_run`."""
COMMIT_COLUMNS: tuple[str, ...] = tuple(
    name for name in OUTCOME_COLUMNS if name in LEDGER_COLUMNS or name in ("outcome", "title", "code")
)
"""The outcome columns a ledger commit reads."""


@functools.cache
def outcome_schema() -> pa.Schema:
    """The Arrow schema of the outcome table: ``size`` is an int64, the other columns strings
    (built on first use: importing this module imports no pyarrow)."""
    import pyarrow as pa

    return pa.schema([(name, pa.int64() if name == "size" else pa.string()) for name in OUTCOME_COLUMNS])


def outcome_table_bytes(rows: list[tuple[Any, ...]]) -> bytes:
    """Outcome rows (tuples in :data:`OUTCOME_COLUMNS` order) as Parquet bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = outcome_schema()
    table = pa.Table.from_arrays(  # a column at a time: cheaper than zip(*rows) over many rows
        [pa.array(list(map(itemgetter(i), rows)), type=field.type) for i, field in enumerate(schema)],
        schema=schema,
    )
    buffer = pa.BufferOutputStream()
    # No dictionary pages: most columns are unique per row (keys, URLs, fingerprints), where
    # building dictionaries cost 3x the CPU of the whole write for a larger file.
    pq.write_table(table, buffer, compression="zstd", use_dictionary=False)
    return bytes(buffer.getvalue().to_pybytes())


def write_outcome_frames(frames: Iterable[Any], path: str) -> int:
    """Outcome DataFrames (:data:`OUTCOME_COLUMNS`) into one Parquet file at ``path``, a row group
    each, holding one at a time; returns the rows written (no file for none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, writer = 0, None
    try:
        for frame in frames:
            if frame.empty:
                continue
            table = pa.Table.from_pandas(
                frame[list(OUTCOME_COLUMNS)], schema=outcome_schema(), preserve_index=False
            )
            writer = writer or pq.ParquetWriter(path, outcome_schema(), compression="zstd")
            writer.write_table(table)
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return rows


def read_outcomes(data: bytes, columns: Sequence[str] | None = None) -> Any:
    """An outcome chunk as a pandas DataFrame (all columns, or ``columns``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data), columns=list(columns) if columns else None).to_pandas()
