"""Per-folder tables (CSV, TSV, JSON Lines, Parquet): rows, lookups and hostile tables."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.sidecars import ParsedTable, SidecarConventions, TableFormat, parse_table


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def ok(data: bytes, file: str = "d/metadata.csv", **options: Any) -> ParsedTable:
    result = parse_table(data, file=file, **options)
    assert isinstance(result, ParsedTable), result
    return result


def failed(data: bytes, file: str, code: ErrorCode, key: str | None = None, **options: Any) -> ItemError:
    result = parse_table(data, file=file, **options)
    assert isinstance(result, ItemError), result
    assert result.code is code, result.message
    assert (result.file, result.key) == (file, key)
    assert result.message.startswith(f"{file}: ")
    if key is not None:
        assert f"key {key!r}" in result.message
    return result


# --- happy paths ------------------------------------------------------------------------------


def test_csv_rows_are_strings_keyed_by_relative_path() -> None:
    data = b"file,weather,count\nimg1.jpg,sunny,3\n./day2/img2.jpg,,04\n"
    table = ok(data)
    assert table.rows == {
        "img1.jpg": {"weather": "sunny", "count": "3"},
        "day2/img2.jpg": {"count": "04"},
    }
    assert table.untyped is True
    assert table.format is TableFormat.CSV
    assert table.file_column == "file"
    assert table.fingerprint == hashlib.sha256(data).hexdigest()
    assert table.folder == "d/"


def test_csv_cells_are_never_interpreted() -> None:
    table = ok(b"file,a,b,c,d\nx.jpg,NA,null,True,1e3\n")
    assert table.rows == {"x.jpg": {"a": "NA", "b": "null", "c": "True", "d": "1e3"}}


def test_csv_quoting_bom_crlf_and_header_spaces() -> None:
    data = b'\xef\xbb\xbf file , note ,tags\r\n"a, b.jpg","line1\nline2","x;y"\r\n'
    assert ok(data).rows == {"a, b.jpg": {"note": "line1\nline2", "tags": "x;y"}}


def test_csv_blank_rows_and_short_rows() -> None:
    data = b"file,a,b\n\nx.jpg,1\n,,\n  ,  ,\ny.jpg,,2\n"
    assert ok(data).rows == {"x.jpg": {"a": "1"}, "y.jpg": {"b": "2"}}


def test_csv_empty_unnamed_column_is_ignored() -> None:
    assert ok(b"file,a,\nx.jpg,1,\n").rows == {"x.jpg": {"a": "1"}}


def test_csv_header_only() -> None:
    table = ok(b"file,a\n")
    assert (table.rows, table.row_errors) == ({}, {})


def test_tsv_has_no_quoting() -> None:
    table = ok(b'file\tnote\nx.jpg\tsays "hi", ok\n', "metadata.tsv")
    assert table.rows == {"x.jpg": {"note": 'says "hi", ok'}}
    assert (table.format, table.untyped) == (TableFormat.TSV, True)


def test_file_column_candidates_first_present_wins() -> None:
    table = ok(b"file_name,file,a\nx.jpg,other,1\n")
    assert table.file_column == "file"
    assert table.rows == {"other": {"file_name": "x.jpg", "a": "1"}}
    table = ok(b"file_name,a\nx.jpg,1\n")
    assert table.rows == {"x.jpg": {"a": "1"}}
    table = ok(b"path,a\nx.jpg,1\n", file_columns=["key", "path"])
    assert (table.file_column, table.rows) == ("path", {"x.jpg": {"a": "1"}})


def test_jsonl_rows_keep_types_and_nulls() -> None:
    data = (
        b'{"file": "a.jpg", "n": 3, "x": 1.5, "cam": {"iso": 100}, "gone": null}\n'
        b'\n{"file": "b/c.jpg", "ok": true}\r\n'
    )
    table = ok(data, "d/metadata.jsonl")
    assert table.rows == {
        "a.jpg": {"n": 3, "x": 1.5, "cam": {"iso": 100}, "gone": None},
        "b/c.jpg": {"ok": True},
    }
    assert (table.format, table.untyped) == (TableFormat.JSONL, False)


def test_jsonl_line_separator_inside_a_string_is_not_a_line_break() -> None:
    table = ok('{"file": "a.jpg", "t": "x\u2028y"}\n'.encode(), "metadata.ndjson")
    assert table.rows == {"a.jpg": {"t": "x\u2028y"}}


def test_parquet_native_types() -> None:
    table = pa.table(
        {
            "file": ["a.jpg", "b.jpg"],
            "n": pa.array([1, None], pa.int64()),
            "x": [1.5, float("nan")],
            "ok": [True, None],
            "tags": [["a", "b"], []],
            "cam": [{"iso": 100, "lens": None}, None],
            "at": [datetime(2024, 5, 1, 10, tzinfo=UTC), None],
            "day": [date(2024, 5, 1), None],
            "emb": [[0.5, 1.0], None],
        }
    )
    parsed = ok(parquet_bytes(table), "d/metadata.parquet")
    assert parsed.rows == {
        "a.jpg": {
            "n": 1,
            "x": 1.5,
            "ok": True,
            "tags": ["a", "b"],
            "cam": {"iso": 100},
            "at": "2024-05-01T10:00:00+00:00",
            "day": "2024-05-01",
            "emb": [0.5, 1.0],
        },
        "b.jpg": {"tags": []},
    }
    assert (parsed.format, parsed.untyped) == (TableFormat.PARQUET, False)
    assert isinstance(parsed.rows["a.jpg"]["n"], int)


def test_lookup_relative_to_the_table_folder() -> None:
    table = ok(b"file,a\nx.jpg,1\nsub/y.jpg,2\nsub/dup.jpg,3\nsub/dup.jpg,4\n", "data/metadata.csv")
    assert table.lookup("data/x.jpg") == {"a": "1"}
    assert table.lookup("data/sub/y.jpg") == {"a": "2"}
    assert table.lookup("data/sub/x.jpg") is None  # a plain name only matches next to the table
    assert table.lookup("other/x.jpg") is None
    assert table.lookup("x.jpg") is None
    error = table.lookup("data/sub/dup.jpg")
    assert isinstance(error, ItemError)
    assert error.code is ErrorCode.DUPLICATE_TABLE_ROW
    root_table = ok(b"file,a\ndata/x.jpg,1\n", "metadata.csv")
    assert root_table.folder == ""
    assert root_table.lookup("data/x.jpg") == {"a": "1"}


def test_conventions_parse_dispatches_tables_with_their_limits() -> None:
    conv = SidecarConventions(table_file_columns=["name"], max_table_bytes=40)
    parsed = conv.parse("d/metadata.csv", b"name,a\nx.jpg,1\n")
    assert isinstance(parsed, ParsedTable)
    assert parsed.rows == {"x.jpg": {"a": "1"}}
    error = conv.parse("d/metadata.csv", b"name,a\n" + b"x.jpg,1\n" * 10)
    assert isinstance(error, ItemError)
    assert error.code is ErrorCode.FILE_TOO_LARGE


# --- hostile tables -----------------------------------------------------------------------------


def test_duplicate_rows_fail_that_file_only() -> None:
    table = ok(b"file,a\nx.jpg,1\ny.jpg,2\n./x.jpg,3\nx.jpg,4\n")
    assert table.rows == {"y.jpg": {"a": "2"}}
    error = table.row_errors["x.jpg"]
    assert (error.code, error.file, error.key, error.value) == (
        ErrorCode.DUPLICATE_TABLE_ROW,
        "d/metadata.csv",
        "file",
        "'x.jpg'",
    )
    assert error.detail == "row 1, row 3 and row 4 name the same file"


def test_jsonl_duplicate_rows() -> None:
    table = ok(b'{"file": "x.jpg", "a": 1}\n{"file": "x.jpg", "a": 2}\n', "metadata.jsonl")
    assert table.rows == {}
    assert table.row_errors["x.jpg"].detail == "line 1 and line 2 name the same file"


def test_missing_file_column() -> None:
    error = failed(b"name,a\nx.jpg,1\n", "d/metadata.csv", ErrorCode.MISSING_FILE_COLUMN, "file")
    assert error.expected == "a column named 'file' or 'file_name'"
    assert error.value == "['name', 'a']"


def test_duplicated_file_column() -> None:
    error = failed(b"file,a,file\nx.jpg,1,y.jpg\n", "d/metadata.csv", ErrorCode.DUPLICATE_FILE_COLUMN, "file")
    assert error.detail == "columns 1, 3"


def test_duplicated_metadata_column() -> None:
    failed(b"file,a,a\nx.jpg,1,2\n", "d/metadata.csv", ErrorCode.DUPLICATE_KEY, "a")


def test_duplicated_column_after_stripping_spaces() -> None:
    failed(b"file,a, a \nx.jpg,1,2\n", "d/metadata.csv", ErrorCode.DUPLICATE_KEY, "a")


def test_ragged_csv_row() -> None:
    error = failed(b"file,a\nx.jpg,1\ny.jpg,2,3\n", "d/metadata.csv", ErrorCode.INVALID_TABLE)
    assert "line 3" in (error.detail or "")


def test_empty_table() -> None:
    failed(b"", "d/metadata.csv", ErrorCode.INVALID_TABLE)


@pytest.mark.parametrize(
    ("cell", "shown"), [(b"", "''"), (b"/abs.jpg", "'/abs.jpg'"), (b"../up.jpg", "'../up.jpg'")]
)
def test_row_naming_no_usable_file(cell: bytes, shown: str) -> None:
    error = failed(b"file,a\nok.jpg,1\n" + cell + b",2\n", "d/metadata.csv", ErrorCode.INVALID_TABLE, "file")
    assert (error.value, error.detail) == (shown, "row 2")


def test_value_in_an_unnamed_column() -> None:
    error = failed(b"file,a,\nx.jpg,1,oops\n", "d/metadata.csv", ErrorCode.INVALID_TABLE)
    assert error.detail == "column 3 has no name, row 1 has a value in it"


def test_table_invalid_utf8() -> None:
    failed(b"file,a\nx.jpg,caf\xe9\n", "d/metadata.csv", ErrorCode.INVALID_UTF8)


def test_table_over_the_size_limit() -> None:
    failed(b"file,a\n" + b"x.jpg,1\n" * 100, "d/metadata.csv", ErrorCode.FILE_TOO_LARGE, max_bytes=100)


def test_unsupported_table_extension() -> None:
    failed(b"file,a\n", "d/metadata.xlsx", ErrorCode.UNSUPPORTED_SIDECAR)


def test_jsonl_malformed_line() -> None:
    error = failed(b'{"file": "a.jpg"}\n{"file": "b.jpg",\n', "metadata.jsonl", ErrorCode.INVALID_JSON)
    assert (error.detail or "").startswith("line 2: column 18")


def test_jsonl_line_not_an_object() -> None:
    error = failed(b'{"file": "a.jpg"}\n["b.jpg"]\n', "metadata.jsonl", ErrorCode.NOT_AN_OBJECT)
    assert error.detail == "line 2"


def test_jsonl_line_without_file_key() -> None:
    error = failed(
        b'{"file": "a.jpg"}\n{"name": "b.jpg"}\n', "metadata.jsonl", ErrorCode.MISSING_FILE_COLUMN, "file"
    )
    assert error.detail == "line 2"


def test_jsonl_duplicate_key_in_a_line() -> None:
    error = failed(b'{"file": "a.jpg", "a": 1, "a": 2}\n', "metadata.jsonl", ErrorCode.DUPLICATE_KEY, "a")
    assert error.detail == "line 1"


def test_jsonl_nan_in_a_line() -> None:
    failed(b'{"file": "a.jpg", "g": NaN}\n', "metadata.jsonl", ErrorCode.INVALID_JSON, "g")


def test_jsonl_file_value_not_a_string() -> None:
    error = failed(b'{"file": 7}\n', "metadata.jsonl", ErrorCode.INVALID_TABLE, "file")
    assert error.value == "7"


def test_parquet_garbage() -> None:
    failed(b"PAR1 not really parquet", "d/metadata.parquet", ErrorCode.INVALID_TABLE)


def test_parquet_duplicated_file_column() -> None:
    table = pa.table([pa.array(["a.jpg"]), pa.array(["b.jpg"])], names=["file", "file"])
    failed(parquet_bytes(table), "d/metadata.parquet", ErrorCode.DUPLICATE_FILE_COLUMN, "file")


def test_parquet_missing_file_column() -> None:
    table = pa.table({"path": ["a.jpg"]})
    failed(parquet_bytes(table), "d/metadata.parquet", ErrorCode.MISSING_FILE_COLUMN, "file")


def test_parquet_null_file_cell() -> None:
    table = pa.table({"file": ["a.jpg", None], "n": [1, 2]})
    error = failed(parquet_bytes(table), "d/metadata.parquet", ErrorCode.INVALID_TABLE, "file")
    assert error.detail == "row 2"


def test_parquet_unsupported_cells_fail_their_row_only() -> None:
    table = pa.table(
        {
            "file": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
            "blob": pa.array([None, b"\x00", None, None], pa.binary()),
            "price": pa.array([None, None, Decimal("1.50"), None], pa.decimal128(5, 2)),
            "vec": pa.array([[1.0], None, None, [float("inf")]], pa.list_(pa.float64())),
        }
    )
    parsed = ok(parquet_bytes(table), "d/metadata.parquet")
    assert parsed.rows == {"a.jpg": {"vec": [1.0]}}
    assert {path: (e.code, e.key) for path, e in parsed.row_errors.items()} == {
        "b.jpg": (ErrorCode.INVALID_TABLE, "blob"),
        "c.jpg": (ErrorCode.INVALID_TABLE, "price"),
        "d.jpg": (ErrorCode.INVALID_TABLE, "vec[0]"),
    }
    assert parsed.row_errors["b.jpg"].detail == "row 2 for 'b.jpg'"
    assert "d/metadata.parquet: key 'blob'" in parsed.row_errors["b.jpg"].message


@pytest.mark.parametrize(
    "data",
    [
        b'file,a,b\nx.jpg,"two\nlines",\ny.jpg,2,3,\n',  # quoted newline; a trailing empty cell
        b"file,a\nx.jpg,1,2\n",  # a ragged row
        b'file,a\nx.jpg,"unclosed\n',  # broken quoting
    ],
)
def test_folder_tables_and_change_tables_read_the_same_bytes_the_same_way(data: bytes) -> None:
    """One reader: a folder table (``parse_table``) and a change table (``read_table``, the
    metadata operations' reader) agree on every cell and on every error."""
    from encord_ingest.sidecars.tables import read_table

    parsed = parse_table(data, file="d/metadata.csv")
    records = read_table(data, file="d/metadata.csv")
    if isinstance(records, ItemError):
        assert parsed == records
        return
    assert isinstance(parsed, ParsedTable)
    assert parsed.rows == {
        row.values["file"]: {k: v for k, v in row.values.items() if k != "file" and v != ""}
        for row in records.rows
    }
