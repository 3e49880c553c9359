"""Reading change tables (through the one table reader, ``sidecars.tables``)."""

from __future__ import annotations

from encord_ingest.errors import ItemError
from encord_ingest.sidecars import DEFAULT_MAX_TABLE_BYTES
from encord_ingest.sidecars.tables import TableRecords, read_table

ChangeTable = TableRecords
"""A change table is read by the one table reader (:func:`~.sidecars.tables.read_table`)."""


def read_change_table(
    data: bytes, *, file: str, max_bytes: int = DEFAULT_MAX_TABLE_BYTES
) -> ChangeTable | ItemError:
    """Read a change table (format by extension); a broken table is one :class:`ItemError`."""
    return read_table(data, file=file, max_bytes=max_bytes)
