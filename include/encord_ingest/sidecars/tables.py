"""Per-folder tables: one row per data file, one column naming the file, the rest metadata.

Formats by extension (any case): ``.csv``, ``.tsv`` (tab-separated, no quoting), ``.jsonl`` /
``.ndjson`` (one JSON object per line), ``.parquet``.

The file column is the first of ``file_columns`` present in the header (default ``file``, then
``file_name``, the Hugging Face ``metadata.csv`` name); other candidate columns stay metadata.
Its value is a path relative to the table's folder (``img.jpg`` for a file next to the table,
``day1/img.jpg`` for one below it); a leading ``./`` is dropped. Rows therefore only reach
files at or below the table's folder. Names match after Unicode NFC normalisation (a row naming
``café.jpg`` in NFD matches an NFC object key), and :attr:`ParsedTable.row_names` remembers the
row of each name, so rows that match no object can be reported.

Values:

- CSV/TSV: every cell is a string (``untyped=True``: the typing layer coerces); an empty cell
  is an absent key; header names are stripped of surrounding spaces; a column without a name
  must be empty; a row whose cells are all empty is skipped.
- JSON Lines: each line goes through the JSON sidecar rules (duplicate keys, NaN, depth); a
  ``null`` is kept (the merge treats it as "remove this key").
- Parquet (read with pyarrow, pandas' engine, so integers stay integers and nulls are not
  NaN): null and NaN cells are absent keys; null fields inside structs are dropped;
  timestamps, dates and times become ISO 8601 strings; binary, decimal and map cells are
  unsupported (that row's error).

Errors, decided by whether the problem can be pinned on one data file:

- the table as a whole (``ItemError`` instead of a table, so every file below the table's
  folder fails): too large, invalid UTF-8, syntax (``INVALID_TABLE``, ``INVALID_JSON``,
  ``NOT_AN_OBJECT``), no file column (``MISSING_FILE_COLUMN``), the file column twice
  (``DUPLICATE_FILE_COLUMN``), any other column twice (``DUPLICATE_KEY``), or a row that names
  no usable file (blank, absolute, ``..``, not a string: ``INVALID_TABLE`` with the row number);
- one file (``row_errors``): two or more rows for it (``DUPLICATE_TABLE_ROW``: none of them
  is used), or a cell Parquet cannot give as JSON.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from encord_ingest.errors import ErrorCode, ItemError

from ._values import DEFAULT_MAX_DEPTH, Normaliser, ValueProblem, check_size, decode_text, fingerprint
from .documents import DocumentFormat, parse_document

DEFAULT_MAX_TABLE_BYTES = 64 * 1024 * 1024
DEFAULT_FILE_COLUMNS: tuple[str, ...] = ("file", "file_name")


class TableFormat(StrEnum):
    """The table formats, by extension."""

    CSV = "csv"
    TSV = "tsv"
    JSONL = "jsonl"
    PARQUET = "parquet"


_FORMAT_BY_EXTENSION = {
    ".csv": TableFormat.CSV,
    ".tsv": TableFormat.TSV,
    ".jsonl": TableFormat.JSONL,
    ".ndjson": TableFormat.JSONL,
    ".parquet": TableFormat.PARQUET,
}


def table_format(file: str) -> TableFormat | None:
    """The table format of ``file`` by extension (any case), ``None`` when it is not a table."""
    dot = file.rfind(".")
    return _FORMAT_BY_EXTENSION.get(file[dot:].lower()) if dot > file.rfind("/") else None


class ParsedTable(BaseModel):
    """A parsed table. ``rows`` and ``row_errors`` are keyed by path relative to :attr:`folder`."""

    model_config = ConfigDict(frozen=True)

    file: str
    fingerprint: str
    format: TableFormat
    untyped: bool
    file_column: str
    rows: dict[str, dict[str, Any]]
    row_errors: dict[str, ItemError]
    row_names: dict[str, str] = {}
    """``{relative path (NFC): where}`` (``row 3``, ``line 3``) of every row, to report unmatched rows."""

    @property
    def folder(self) -> str:
        """The folder the table describes (``""`` for the root), with a trailing slash."""
        return self.file[: self.file.rfind("/") + 1]

    def lookup(self, data_key: str) -> dict[str, Any] | ItemError | None:
        """The row for ``data_key`` (do not mutate it), its row error, or ``None``."""
        folder = self.folder
        if not data_key.startswith(folder):
            return None
        relative = unicodedata.normalize("NFC", data_key[len(folder) :])
        errors = self.row_errors
        return (errors.get(relative) if errors else None) or self.rows.get(relative)


class _TableProblem(Exception):
    """A problem with the whole table."""

    def __init__(self, error: ItemError) -> None:
        super().__init__(error.message)
        self.error = error


class TableRow(BaseModel):
    """One row of a table as read: where it is (``row 3`` / ``line 3``) and its cells by column.

    CSV/TSV cells are strings, empty cells included; JSON Lines values as parsed (``null``
    kept); Parquet cells as JSON values, null cells left out."""

    model_config = ConfigDict(frozen=True)

    where: str
    values: dict[str, Any]


class TableRecords(BaseModel):
    """A table as read, before any meaning is given to its columns: the one reader of
    ``.csv``/``.tsv``/``.jsonl``/``.parquet`` for folder tables and change tables alike."""

    model_config = ConfigDict(frozen=True)

    file: str
    format: TableFormat
    untyped: bool
    columns: list[str]
    rows: list[TableRow]


class _Rows:
    """Collects rows by relative path; duplicates become row errors."""

    def __init__(self, file: str, file_column: str) -> None:
        self.file = file
        self.file_column = file_column
        self.rows: dict[str, dict[str, Any]] = {}
        self.row_errors: dict[str, ItemError] = {}
        self._seen: dict[str, list[str]] = {}

    @property
    def row_names(self) -> dict[str, str]:
        """``{path: where}`` of the first row naming each path."""
        return {path: seen[0] for path, seen in self._seen.items()}

    def add(self, where: str, named: Any, values: dict[str, Any] | ValueProblem) -> None:
        """Add the row at ``where`` (``row 3`` / ``line 3``) naming ``named``."""
        path = self._relative_path(where, named)
        seen = self._seen.setdefault(path, [])
        seen.append(where)
        if len(seen) > 1:
            self.rows.pop(path, None)
            self.row_errors[path] = ItemError.of(
                ErrorCode.DUPLICATE_TABLE_ROW,
                self.file,
                key=self.file_column,
                expected="one row per file",
                value=path,
                detail=f"{', '.join(seen[:-1])} and {seen[-1]} name the same file",
            )
        elif isinstance(values, ValueProblem):
            self.row_errors[path] = values.to_error(self.file, detail_prefix=f"{where} for {path!r}")
        else:
            self.rows[path] = values

    def _relative_path(self, where: str, named: Any) -> str:
        path = named
        while isinstance(path, str) and path.startswith("./"):
            path = path[2:]
        if (
            isinstance(path, str)
            and path.strip()
            and not path.startswith("/")
            and ".." not in path.split("/")
        ):
            return unicodedata.normalize("NFC", path)
        raise _TableProblem(
            ItemError.of(
                ErrorCode.INVALID_TABLE,
                self.file,
                key=self.file_column,
                expected="a file path relative to the table's folder",
                value=named,
                has_value=True,
                detail=where,
            )
        )


def _file_column(header: Sequence[str], file_columns: Sequence[str], file: str) -> int:
    """The index of the file column (a header :func:`_check_header` passed); raises :class:`_TableProblem`."""
    for name in file_columns:
        if name in header:
            return list(header).index(name)
    raise _TableProblem(
        ItemError.of(
            ErrorCode.MISSING_FILE_COLUMN,
            file,
            key=file_columns[0],
            expected="a column named " + " or ".join(repr(name) for name in file_columns),
            value=list(header),
        )
    )


def _check_header(header: Sequence[str], file: str, file_columns: Sequence[str] = ()) -> None:
    """A file column at most once (``DUPLICATE_FILE_COLUMN``), then every named column at most once."""
    for name in file_columns:
        positions = [index for index, column in enumerate(header) if column == name]
        if len(positions) > 1:
            raise _TableProblem(
                ItemError.of(
                    ErrorCode.DUPLICATE_FILE_COLUMN,
                    file,
                    key=name,
                    expected="one file column",
                    detail="columns " + ", ".join(str(p + 1) for p in positions),
                )
            )
    seen: set[str] = set()
    for column in header:
        if column in seen and column:
            raise _TableProblem(
                ItemError.of(ErrorCode.DUPLICATE_KEY, file, key=column, expected="each column name once")
            )
        seen.add(column)


def _delimited_records(text: str, table: TableFormat, file: str) -> list[tuple[int, list[str]]]:
    """``(line, cells)`` of each record (the stdlib ``csv`` module, strict)."""
    options: dict[str, Any] = {"delimiter": ","}
    if table is TableFormat.TSV:
        options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    reader = csv.reader(io.StringIO(text, newline=""), strict=True, **options)
    try:
        records = [(reader.line_num, record) for record in reader]
    except csv.Error as exc:
        raise _TableProblem(
            ItemError.of(
                ErrorCode.INVALID_TABLE,
                file,
                expected=f"valid {table.value.upper()}",
                detail=f"line {reader.line_num}: {exc}",
            )
        ) from None
    if not records:
        raise _TableProblem(
            ItemError.of(ErrorCode.INVALID_TABLE, file, expected="a header row", detail="the table is empty")
        )
    return records


def _delimited(
    text: str, table: TableFormat, file: str, file_columns: Sequence[str]
) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """The named columns and ``(where, cells by column)`` of each row (no model per row: a
    folder table has one row per file)."""
    records = _delimited_records(text, table, file)
    header = [name.strip() for name in records[0][1]]
    _check_header(header, file, file_columns)
    unnamed = [index for index, name in enumerate(header) if not name]
    rows = []
    for number, (line, record) in enumerate(records[1:], start=1):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) > len(header) and any(cell.strip() for cell in record[len(header) :]):
            raise _TableProblem(
                ItemError.of(
                    ErrorCode.INVALID_TABLE,
                    file,
                    expected=f"at most {len(header)} cells per row (the header's)",
                    detail=f"row {number} has {len(record)} (line {line})",
                )
            )
        for index in unnamed:  # a column without a name must be empty
            cell = record[index] if index < len(record) else ""
            if cell.strip():
                raise _TableProblem(
                    ItemError.of(
                        ErrorCode.INVALID_TABLE,
                        file,
                        expected="a header name for every column with values",
                        detail=f"column {index + 1} has no name, row {number} has a value in it",
                    )
                )
        values = {name: cell for name, cell in zip(header, record, strict=False) if name}
        rows.append((f"row {number}", values))
    return [name for name in header if name], rows


def _parse_delimited(text: str, table: TableFormat, file: str, file_columns: Sequence[str]) -> _Rows:
    header, records = _delimited(text, table, file, file_columns)
    column = header[_file_column(header, file_columns, file)]
    rows = _Rows(file, column)
    for where, cells in records:
        values = {name: cell for name, cell in cells.items() if name != column and cell != ""}
        rows.add(where, cells.get(column, ""), values)
    return rows


def _jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    # split on "\n" only: str.splitlines() would also split on U+2028 inside JSON strings
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line


def _jsonl_file_column(record: dict[str, Any], file_columns: Sequence[str], file: str, where: str) -> str:
    for name in file_columns:
        if name in record:
            return name
    raise _TableProblem(
        ItemError.of(
            ErrorCode.MISSING_FILE_COLUMN,
            file,
            key=file_columns[0],
            expected="a key named " + " or ".join(repr(name) for name in file_columns),
            value=list(record),
            detail=where,
        )
    )


def _jsonl(text: str, file: str, max_depth: int) -> tuple[list[str], list[TableRow]]:
    columns: dict[str, None] = {}
    rows = []
    for number, line in _jsonl_lines(text):
        where = f"line {number}"
        try:
            record = parse_document(line, DocumentFormat.JSON, max_depth=max_depth, max_values=len(line) + 1)
        except ValueProblem as problem:
            if problem.detail:  # the JSON parser saw one line: its own line number is always 1
                problem.detail = problem.detail.replace("line 1 column", "column", 1)
            raise _TableProblem(problem.to_error(file, detail_prefix=where)) from None
        columns.update(dict.fromkeys(record))
        rows.append(TableRow.model_construct(where=where, values=record))  # normalised above
    return list(columns), rows


def _parse_jsonl(text: str, file: str, file_columns: Sequence[str], max_depth: int) -> _Rows:
    rows: _Rows | None = None
    for row in _jsonl(text, file, max_depth)[1]:
        record = dict(row.values)
        column = _jsonl_file_column(record, file_columns, file, row.where)
        rows = rows or _Rows(file, column)
        named = record.pop(column)
        rows.add(row.where, named, record)
    return rows or _Rows(file, file_columns[0])


def arrow_cell(value: Any) -> Any:
    """Parquet cell -> JSON-compatible value; nulls inside structs are dropped."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: arrow_cell(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [arrow_cell(item) for item in value]
    return value


def is_absent(value: Any) -> bool:
    """A missing table cell: ``None`` or a float NaN (pandas' and Arrow's nulls)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _parquet(data: bytes, file: str, file_columns: Sequence[str]) -> tuple[list[str], list[TableRow]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        header = list(parquet.schema_arrow.names)
        _check_header(header, file, file_columns)
        records = parquet.read().to_pylist()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _TableProblem(
            ItemError.of(ErrorCode.INVALID_TABLE, file, expected="a valid Parquet file", detail=str(exc))
        ) from None
    rows = [
        TableRow(
            where=f"row {number}",
            values={key: arrow_cell(value) for key, value in record.items() if not is_absent(value)},
        )
        for number, record in enumerate(records, start=1)
    ]
    return header, rows


def _parse_parquet(data: bytes, file: str, file_columns: Sequence[str], max_depth: int) -> _Rows:
    header, records = _parquet(data, file, file_columns)
    column = header[_file_column(header, file_columns, file)]
    rows = _Rows(file, column)
    for row in records:
        raw = dict(row.values)
        named = raw.pop(column, None)
        normaliser = Normaliser(
            invalid_code=ErrorCode.INVALID_TABLE, max_depth=max_depth, max_values=sys.maxsize
        )
        try:
            values: dict[str, Any] | ValueProblem = normaliser.document(raw)
        except ValueProblem as problem:
            values = problem
        rows.add(row.where, named, values)
    return rows


def checked_table_format(
    data: bytes, *, file: str, max_bytes: int, object_size: int | None = None
) -> TableFormat | ItemError:
    """The table format named by ``file``'s extension, once the bytes are within ``max_bytes``."""
    too_large = check_size(file, len(data), max_bytes, object_size=object_size)
    if too_large is not None:
        return too_large
    table = table_format(file)
    if table is None:
        return ItemError.of(
            ErrorCode.UNSUPPORTED_SIDECAR, file, expected="a .csv, .tsv, .jsonl or .parquet table", value=file
        )
    return table


def read_table(
    data: bytes,
    *,
    file: str,
    max_bytes: int = DEFAULT_MAX_TABLE_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> TableRecords | ItemError:
    """Read a table (format by extension) into :class:`TableRecords`; a broken table is one
    :class:`ItemError` (too large, not UTF-8, bad syntax, a column twice, a ragged row)."""
    table = checked_table_format(data, file=file, max_bytes=max_bytes)
    if isinstance(table, ItemError):
        return table
    try:
        if table is TableFormat.PARQUET:
            columns, rows = _parquet(data, file, ())
        else:
            text = decode_text(data, file)
            if isinstance(text, ItemError):
                return text
            if table is TableFormat.JSONL:
                columns, rows = _jsonl(text, file, max_depth)
            else:
                columns, cells = _delimited(text, table, file, ())
                rows = [TableRow.model_construct(where=where, values=values) for where, values in cells]
    except _TableProblem as problem:
        return problem.error
    untyped = table in (TableFormat.CSV, TableFormat.TSV)
    return TableRecords(file=file, format=table, untyped=untyped, columns=columns, rows=rows)


def parse_table(
    data: bytes,
    *,
    file: str,
    file_columns: Sequence[str] = DEFAULT_FILE_COLUMNS,
    max_bytes: int = DEFAULT_MAX_TABLE_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    object_size: int | None = None,
) -> ParsedTable | ItemError:
    """Parse a metadata table read from ``file``; bad input is an :class:`ItemError`."""
    table = checked_table_format(data, file=file, max_bytes=max_bytes, object_size=object_size)
    if isinstance(table, ItemError):
        return table
    try:
        if table is TableFormat.PARQUET:
            rows = _parse_parquet(data, file, file_columns, max_depth)
        else:
            text = decode_text(data, file)
            if isinstance(text, ItemError):
                return text
            if table is TableFormat.JSONL:
                rows = _parse_jsonl(text, file, file_columns, max_depth)
            else:
                rows = _parse_delimited(text, table, file, file_columns)
    except _TableProblem as problem:
        return problem.error
    return ParsedTable.model_construct(
        file=file,
        fingerprint=fingerprint(data),
        format=table,
        untyped=table in (TableFormat.CSV, TableFormat.TSV),
        file_column=rows.file_column,
        rows=rows.rows,
        row_errors=rows.row_errors,
        row_names=rows.row_names,
    )
