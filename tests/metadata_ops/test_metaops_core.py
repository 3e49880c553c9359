"""The Airflow-free core of metadata operations: reading change tables, resolving rows to targets,
typing, planning, requests and export files (no Encord, no Airflow)."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encord_ingest.errors import ConfigError, ErrorCode, ItemError
from encord_ingest.metadata_ops import (
    ApplyRequest,
    ChangeTable,
    ExportRequest,
    Scope,
    Target,
    WriteStatus,
    csv_cell,
    export_csv,
    export_parquet,
    plan_writes,
    read_change_table,
    resolve_for_all,
    resolve_table,
)
from encord_ingest.schema import parse_schema
from encord_ingest.sync import ReservedKeysPolicy, SyncMode

SCHEMA = parse_schema({"keys": {"site": "varchar", "fps": "number", "flag": "boolean"}}, file="schema.yaml")
U1, U2, U3 = (f"00000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))
TARGETS = [
    Target(
        item_uuid=U1,
        title="a.jpg",
        object_url="s3://b/a.jpg",
        item_type="image",
        metadata={"site": "x", "n": 7},
    ),
    Target(item_uuid=U2, title="v.mp4", object_url="s3://b/v.mp4", item_type="video", metadata={"fps": 30}),
    Target(item_uuid=U3, title="a.jpg", object_url="s3://b/sub/a.jpg", item_type="image"),
]


def table(text: str, name: str = "t.csv") -> ChangeTable:
    parsed = read_change_table(text.encode(), file=name)
    assert isinstance(parsed, ChangeTable), parsed
    return parsed


def test_every_format_reads_the_same_rows() -> None:
    csv_rows = table("object_url,site,fps\ns3://b/a.jpg,y,3\n\ns3://b/v.mp4,,4.5\n").rows
    tsv_rows = table("object_url\tsite\tfps\ns3://b/a.jpg\ty\t3\ns3://b/v.mp4\t\t4.5\n", "t.tsv").rows
    jsonl = (
        '{"object_url": "s3://b/a.jpg", "site": "y", "fps": 3}\n\n'
        '{"object_url": "s3://b/v.mp4", "fps": 4.5}\n'
    )
    jsonl_rows = table(jsonl, "t.jsonl").rows
    sink = io.BytesIO()
    pq.write_table(
        pa.table({"object_url": ["s3://b/a.jpg", "s3://b/v.mp4"], "site": ["y", None], "fps": [3, 4.5]}), sink
    )
    parquet = read_change_table(sink.getvalue(), file="t.parquet")
    assert isinstance(parquet, ChangeTable)
    assert [r.values for r in csv_rows] == [r.values for r in tsv_rows]
    assert csv_rows[1].values == {"object_url": "s3://b/v.mp4", "site": "", "fps": "4.5"}
    assert [r.where for r in csv_rows] == ["row 1", "row 3"]
    assert [r.values for r in jsonl_rows] == [r.values for r in parquet.rows]
    assert parquet.rows[1].values == {"object_url": "s3://b/v.mp4", "fps": 4.5}
    assert [r.where for r in jsonl_rows] == ["line 1", "line 3"]


@pytest.mark.parametrize(
    ("name", "data", "code", "detail"),
    [
        ("t.csv", b"title,site,site\na,b,c\n", ErrorCode.DUPLICATE_KEY, None),
        ("t.csv", b"title,site\na,b,c\n", ErrorCode.INVALID_TABLE, "row 1 has 3"),
        ("t.csv", b"", ErrorCode.INVALID_TABLE, "the table is empty"),
        ("t.csv", b"title\n\xff\n", ErrorCode.INVALID_UTF8, "byte 6: invalid start byte"),
        ("t.jsonl", b'{"title": "a"}\n{"title": \n', ErrorCode.INVALID_JSON, "line 2"),
        ("t.jsonl", b'{"title": "a", "title": "b"}\n', ErrorCode.DUPLICATE_KEY, "line 1"),
        ("t.parquet", b"not parquet", ErrorCode.INVALID_TABLE, None),
        ("t.xlsx", b"x", ErrorCode.UNSUPPORTED_SIDECAR, None),
    ],
)
def test_a_broken_table_is_one_error_naming_the_file(
    name: str, data: bytes, code: ErrorCode, detail: str | None
) -> None:
    error = read_change_table(data, file=name)
    assert isinstance(error, ItemError)
    assert (error.code, error.file) == (code, name)
    if detail:
        assert error.detail is not None
        assert error.detail.startswith(detail)


def test_a_table_larger_than_the_limit_is_refused() -> None:
    error = read_change_table(b"title\n" + b"a\n" * 10, file="t.csv", max_bytes=10)
    assert isinstance(error, ItemError)
    assert error.code is ErrorCode.FILE_TOO_LARGE


def test_the_first_identifier_column_names_the_rows() -> None:
    both = table(f"title,item_uuid,fps\nnot-used,{U2.upper()},5\n")
    (wanted,) = resolve_table(both, TARGETS, scope=Scope.FOLDER, schema=SCHEMA).desired
    assert (wanted.target.item_uuid, wanted.metadata, wanted.where) == (U2, {"fps": 5}, "row 1")


def test_without_an_identifier_column_the_table_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"t.csv: expected an identifier column for scope 'folder': "
        r"one of item_uuid, object_url, title; got columns \['name', 'fps'\]",
    ):
        resolve_table(table("name,fps\na,1\n"), TARGETS, scope=Scope.FOLDER, schema=SCHEMA)
    with pytest.raises(
        ConfigError, match="for scope 'group_frames': one of item_uuid, object_url, frame_index, frame_file"
    ):
        resolve_table(table("title,fps\na,1\n"), TARGETS, scope=Scope.GROUP_FRAMES, schema=SCHEMA)


def test_missing_ambiguous_and_malformed_identifiers_are_row_errors() -> None:
    resolution = resolve_table(
        table("title,fps\na.jpg,1\nzzz,2\nv.mp4,3\n"), TARGETS, scope=Scope.FOLDER, schema=SCHEMA
    )
    assert [d.target.item_uuid for d in resolution.desired] == [U2]
    ambiguous, missing = resolution.rejected
    assert (ambiguous.status, ambiguous.errors[0].code) == (WriteStatus.REJECTED, ErrorCode.AMBIGUOUS_TARGET)
    assert f"names 2 items: {U1}, {U3}" in ambiguous.errors[0].message
    assert (missing.status, missing.where, missing.errors[0].code) == (
        WriteStatus.NOT_FOUND,
        "row 2",
        ErrorCode.ITEM_NOT_FOUND,
    )
    bad_uuid = resolve_table(
        table("item_uuid,fps\nnot-a-uuid,1\n"), TARGETS, scope=Scope.FOLDER, schema=SCHEMA
    )
    assert bad_uuid.rejected[0].errors[0].code is ErrorCode.INVALID_TABLE


def test_frames_by_index_in_a_typed_table() -> None:
    frames = [
        Target(
            item_uuid=U1,
            title="g/f0.jpg",
            object_url="s3://b/g/f0.jpg",
            group_uuid=U3,
            group_title="g",
            frame_index=0,
        ),
        Target(
            item_uuid=U2,
            title="g/f1.jpg",
            object_url="s3://b/g/f%201.jpg",
            group_uuid=U3,
            group_title="g",
            frame_index=1,
        ),
    ]
    jsonl = table(
        '{"frame_index": 1, "site": "s"}\n{"frame_index": "0", "site": "t"}\n{"frame_index": -1}\n', "f.jsonl"
    )
    resolution = resolve_table(jsonl, frames, scope=Scope.GROUP_FRAMES, schema=SCHEMA)
    assert [(d.target.item_uuid, d.metadata) for d in resolution.desired] == [
        (U2, {"site": "s"}),
        (U1, {"site": "t"}),
    ]
    assert resolution.rejected[0].errors[0].code is ErrorCode.INVALID_TABLE
    by_file = resolve_table(
        table("frame_file,site\nf 1.jpg,u\n"), frames, scope=Scope.GROUP_FRAMES, schema=SCHEMA
    )
    assert [d.target.item_uuid for d in by_file.desired] == [U2]  # the URL's file name, decoded
    assert frames[1].frame_file == "f 1.jpg"


def test_a_jsonl_null_removes_the_key_in_merge_mode() -> None:
    resolution = resolve_table(
        table('{"object_url": "s3://b/a.jpg", "n": null, "site": "x"}\n', "t.jsonl"),
        TARGETS,
        scope=Scope.FOLDER,
        schema=SCHEMA,
        unknown_keys="allow",
    )
    (plan,) = plan_writes(resolution.desired, SyncMode.MERGE)
    assert plan.final == {"site": "x"}
    assert plan.patch_body == {"site": "x", "n": None}


def test_cells_that_reproduce_the_held_value_are_kept_untyped() -> None:
    target = Target(item_uuid=U1, title="a", metadata={"n": 7, "l": [1, 2], "fps": "30"})
    csv_table = table('title,n,l,fps,extra\na,7,"[1, 2]",30,new\n')
    resolution = resolve_table(csv_table, [target], scope=Scope.FOLDER, schema=SCHEMA, unknown_keys="reject")
    (rejected,) = resolution.rejected  # only the new unknown key is checked (and refused)
    assert [(e.code, e.key) for e in rejected.errors] == [(ErrorCode.UNKNOWN_KEY, "extra")]
    allowed = resolve_table(csv_table, [target], scope=Scope.FOLDER, schema=SCHEMA, unknown_keys="warn")
    (wanted,) = allowed.desired
    assert wanted.metadata == {"n": 7, "l": [1, 2], "fps": "30", "extra": "new"}
    assert [(w.code, w.key) for w in wanted.warnings] == [(ErrorCode.UNKNOWN_KEY, "extra")]
    edited = resolve_table(table("title,fps\na,31\n"), [target], scope=Scope.FOLDER, schema=SCHEMA)
    assert edited.desired[0].metadata == {"fps": 31}


def test_the_same_metadata_for_all_checks_reserved_keys_per_target() -> None:
    resolution = resolve_for_all({"keyframes": [5, 1], "flag": True}, TARGETS, schema=SCHEMA, source="params")
    assert [(d.target.item_uuid, d.metadata) for d in resolution.desired] == [
        (U2, {"keyframes": [1, 5], "flag": True})
    ]
    assert {(r.item_uuid, r.errors[0].code) for r in resolution.rejected} == {
        (U1, ErrorCode.KEYFRAMES_NOT_VIDEO),
        (U3, ErrorCode.KEYFRAMES_NOT_VIDEO),
    }
    with pytest.raises(
        ConfigError, match=r"params: key 'flag': expected boolean \(true or false\), got 'yes'"
    ):
        resolve_for_all({"flag": "yes"}, TARGETS, schema=SCHEMA, source="params")


def test_replace_keeps_reserved_keys_by_policy() -> None:
    video = Target(item_uuid=U2, title="v", item_type="video", metadata={"fps": 1, "keyframes": [2]})
    (wanted,) = resolve_for_all({"site": "s"}, [video], schema=SCHEMA).desired
    (kept,) = plan_writes([wanted], SyncMode.REPLACE, ReservedKeysPolicy.PRESERVE)
    (dropped,) = plan_writes([wanted], SyncMode.REPLACE, ReservedKeysPolicy.SIDECAR)
    assert kept.final == {"site": "s", "keyframes": [2]}
    assert dropped.final == {"site": "s"}


def test_requests_name_the_bad_field() -> None:
    base = {"scope": "folder", "target_ids": ["f"]}
    with pytest.raises(ConfigError, match=r"^op: give exactly one of 'table_uri'"):
        ApplyRequest.parse({**base, "table_uri": "", "metadata": {}}, source="op")
    with pytest.raises(ConfigError, match="a keyframes import reads 'table_uri'"):
        ApplyRequest.parse({**base, "metadata": {"a": 1}, "keyframes_only": True}, source="op")
    with pytest.raises(ConfigError, match=r"field 'target_ids': List should have at least 1 item"):
        ApplyRequest.parse({"scope": "folder", "target_ids": [" "], "metadata": {"a": 1}}, source="op")
    with pytest.raises(
        ConfigError, match=r"field 'mode': Input should be 'merge' or 'replace', got 'upsert'"
    ):
        ApplyRequest.parse({**base, "metadata": {"a": 1}, "mode": "upsert"}, source="op")
    request = ApplyRequest.parse(
        {**base, "target_ids": "f", "table_uri": "t.csv", "keyframes_only": True, "mode": "replace"},
        source="op",
    )
    assert (request.target_ids, request.effective_mode) == (["f"], SyncMode.MERGE)
    export = ExportRequest.parse(
        {**base, "output_uri": "s3://b/x/", "name": "folder-manual__2026-01-01T00:00:00+00:00"}, source="op"
    )
    assert export.uris() == (
        "s3://b/x/folder-manual__2026-01-01T00-00-00-00-00.parquet",
        "s3://b/x/folder-manual__2026-01-01T00-00-00-00-00.csv",
    )


def test_csv_cells_and_empty_exports() -> None:
    assert [csv_cell(v) for v in (None, "x", True, False, 3, 2.5, [0, 1], {"a": "é"})] == [
        "",
        "x",
        "true",
        "false",
        "3",
        "2.5",
        "[0, 1]",
        '{"a": "é"}',
    ]
    assert export_csv([]) == b"item_uuid,object_url,title\n"
    assert pq.read_table(io.BytesIO(export_parquet([]))).column_names == ["item_uuid", "object_url", "title"]
    assert json.loads(csv_cell({"k": [1.5]})) == {"k": [1.5]}
