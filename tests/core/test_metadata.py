"""Typing sidecar values against the schema, reserved keys, flattening, mapping, fingerprints."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from encord_ingest.errors import ErrorCode, ItemError, value_repr
from encord_ingest.metadata import (
    MetadataMapping,
    check_keyframes_in_video,
    flatten,
    map_and_type,
    metadata_fingerprint,
    type_metadata,
    validate_reserved,
)
from encord_ingest.schema import MetadataSchema, parse_schema

FILE = "raw/day1/clip.mp4.json"
CSV = "raw/day1/metadata.csv"
UID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.fixture(scope="module")
def schema() -> MetadataSchema:
    return parse_schema(
        {
            "keys": {
                "flag": "boolean",
                "num": "number",
                "short": {"type": "varchar", "max_length": 5},
                "notes": "text",
                "when": "datetime",
                "id": "uuid",
                "status": {"type": "enum", "values": ["pending", "approved"]},
                "vec": {"type": "embedding", "size": 3},
            }
        },
        file="schemas/test.yaml",
    )


def typed_one(schema: MetadataSchema, key: str, value: Any, *, untyped: bool = False) -> Any:
    result = type_metadata({key: value}, schema, file=FILE, untyped=untyped, unknown_keys="reject")
    assert result.errors == [], [e.message for e in result.errors]
    return result.values[key]


def only_error(schema: MetadataSchema, key: str, value: Any, *, untyped: bool = False) -> ItemError:
    file = CSV if untyped else FILE
    sibling = {"num": 1} if key == "notes" else {"notes": "kept"}
    result = type_metadata({key: value, **sibling}, schema, file=file, untyped=untyped, unknown_keys="reject")
    assert key not in result.values
    assert result.values == sibling, "the other keys still come out typed"
    assert len(result.errors) == 1
    return result.errors[0]


# --- accepted values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("flag", True, True),
        ("flag", False, False),
        ("num", 3, 3),
        ("num", 3.0, 3),
        ("num", -2.5, -2.5),
        ("num", 2**60, 2**60),
        ("num", 1e300, 1e300),
        ("short", "abcde", "abcde"),
        ("short", "", ""),
        ("notes", "x" * 10000, "x" * 10000),
        ("when", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
        ("when", "2024-05-01T14:30:00+02:00", "2024-05-01T12:30:00Z"),
        ("when", "2024-05-01 12:00-0130", "2024-05-01T13:30:00Z"),
        ("when", "2024-05-01t12:00:00.250z", "2024-05-01T12:00:00.250000Z"),
        ("when", datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T12:00:00Z"),
        ("id", UID.upper(), UID),
        ("id", uuid.UUID(UID), UID),
        ("status", "approved", "approved"),
        ("vec", [1, 2.5, -3], [1.0, 2.5, -3.0]),
        ("vec", (0.1, 0.2, 0.3), [0.1, 0.2, 0.3]),
    ],
)
def test_typed_sources_accept_each_type(schema: MetadataSchema, key: str, value: Any, expected: Any) -> None:
    result = typed_one(schema, key, value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("key", "cell", "expected"),
    [
        ("flag", "true", True),
        ("flag", "FALSE", False),
        ("flag", " True ", True),
        ("num", "3", 3),
        ("num", "3.0", 3),
        ("num", " -2.5 ", -2.5),
        ("num", "1e3", 1000),
        ("num", ".5", 0.5),
        ("short", " ab ", " ab "),
        ("when", " 2024-05-01 12:00+02:00 ", "2024-05-01T10:00:00Z"),
        ("id", f" {UID.upper()} ", UID),
        ("status", "pending", "pending"),
        ("vec", "[1, 2, 3.5]", [1.0, 2.0, 3.5]),
        ("vec", "1;2;3", [1.0, 2.0, 3.0]),
        ("vec", "1 2 3", [1.0, 2.0, 3.0]),
    ],
)
def test_csv_cells_are_coerced(schema: MetadataSchema, key: str, cell: str, expected: Any) -> None:
    result = typed_one(schema, key, cell, untyped=True)
    assert result == expected
    assert type(result) is type(expected)


def test_json_three_and_csv_three_type_and_hash_alike(schema: MetadataSchema) -> None:
    from_json = type_metadata(
        {"num": 3.0, "flag": True}, schema, file=FILE, untyped=False, unknown_keys="reject"
    )
    from_csv = type_metadata(
        {"flag": "true", "num": "3"}, schema, file=CSV, untyped=True, unknown_keys="reject"
    )
    assert from_json.values == from_csv.values == {"num": 3, "flag": True}
    assert metadata_fingerprint(from_json.values) == metadata_fingerprint(from_csv.values)


def test_numpy_values_from_parquet_become_python(schema: MetadataSchema) -> None:
    values = {"num": np.int64(7), "flag": np.bool_(True), "vec": np.array([1.0, 2.0, 3.0], dtype=np.float32)}
    result = type_metadata(values, schema, file="t.parquet", untyped=False, unknown_keys="reject")
    assert result.values == {"num": 7, "flag": True, "vec": [1.0, 2.0, 3.0]}
    assert type(result.values["num"]) is int
    assert type(result.values["flag"]) is bool


def test_empty_csv_cell_is_absent_but_empty_json_string_is_a_value(schema: MetadataSchema) -> None:
    csv = type_metadata(
        {"num": "", "short": "", "extra": ""}, schema, file=CSV, untyped=True, unknown_keys="reject"
    )
    assert csv.values == {}
    assert csv.errors == []
    assert csv.warnings == []
    json_layer = type_metadata({"short": ""}, schema, file=FILE, untyped=False, unknown_keys="reject")
    assert json_layer.values == {"short": ""}


def test_null_is_kept_as_none_for_the_merge_step(schema: MetadataSchema) -> None:
    result = type_metadata(
        {"num": None, "other": None}, schema, file=FILE, untyped=False, unknown_keys="allow"
    )
    assert result.values == {"num": None, "other": None}
    assert result.errors == []


# --- refused values -----------------------------------------------------------------------------

BAD_VALUES = [
    # (key, value, untyped, code, expected-fragment)
    ("flag", "true", False, ErrorCode.TYPE_MISMATCH, "boolean (true or false)"),
    ("flag", 1, False, ErrorCode.TYPE_MISMATCH, "boolean"),
    ("flag", "yes", True, ErrorCode.TYPE_MISMATCH, "boolean"),
    ("flag", "1", True, ErrorCode.TYPE_MISMATCH, "boolean"),
    ("num", "3", False, ErrorCode.TYPE_MISMATCH, "a finite number"),
    ("num", True, False, ErrorCode.TYPE_MISMATCH, "a finite number"),
    ("num", float("nan"), False, ErrorCode.TYPE_MISMATCH, "a finite number"),
    ("num", float("inf"), False, ErrorCode.TYPE_MISMATCH, "a finite number"),
    ("num", "nan", True, ErrorCode.TYPE_MISMATCH, "a finite number"),
    ("num", "1_000", True, ErrorCode.TYPE_MISMATCH, "a finite number"),
    ("num", "1,5", True, ErrorCode.TYPE_MISMATCH, "a finite number"),
    ("num", "1e999", True, ErrorCode.TYPE_MISMATCH, "a finite number"),
    ("num", 10**400, False, ErrorCode.TYPE_MISMATCH, "a finite number"),
    ("num", "9" * 5000, True, ErrorCode.TYPE_MISMATCH, "a finite number"),
    ("short", "abcdef", False, ErrorCode.VALUE_TOO_LONG, "varchar of at most 5 characters"),
    ("short", 12, False, ErrorCode.TYPE_MISMATCH, "varchar of at most 5 characters"),
    ("notes", ["a"], False, ErrorCode.TYPE_MISMATCH, "text (a string)"),
    ("when", "2024-05-01T12:00:00", False, ErrorCode.INVALID_DATETIME, "ISO 8601 with a timezone offset"),
    ("when", "2024-05-01", True, ErrorCode.INVALID_DATETIME, "datetime"),
    ("when", "2024-05-01X12:00:00Z", False, ErrorCode.INVALID_DATETIME, "datetime"),
    ("when", "20240501T120000Z", False, ErrorCode.INVALID_DATETIME, "datetime"),
    ("when", "2024-13-01T12:00:00Z", False, ErrorCode.INVALID_DATETIME, "datetime"),
    ("when", " 2024-05-01T12:00:00Z", False, ErrorCode.INVALID_DATETIME, "datetime"),
    ("when", datetime(2024, 5, 1, 12), False, ErrorCode.INVALID_DATETIME, "datetime"),
    ("when", date(2024, 5, 1), False, ErrorCode.INVALID_DATETIME, "datetime"),
    ("when", 1714564800, False, ErrorCode.TYPE_MISMATCH, "datetime"),
    ("when", "0001-01-01T00:00:00+01:00", False, ErrorCode.INVALID_DATETIME, "datetime"),
    ("id", "not-a-uuid", False, ErrorCode.INVALID_UUID, "uuid (8-4-4-4-12 hex digits)"),
    ("id", UID.replace("-", ""), False, ErrorCode.INVALID_UUID, "uuid"),
    ("id", 12, False, ErrorCode.TYPE_MISMATCH, "uuid"),
    ("status", "Approved", False, ErrorCode.NOT_IN_ENUM, "enum, one of ['pending', 'approved']"),
    ("status", " pending", True, ErrorCode.NOT_IN_ENUM, "enum"),
    ("status", 1, False, ErrorCode.TYPE_MISMATCH, "enum"),
    ("vec", [1, 2], False, ErrorCode.WRONG_EMBEDDING_SIZE, "embedding of 3 numbers"),
    ("vec", [1, True, 3], False, ErrorCode.TYPE_MISMATCH, "embedding of 3 numbers"),
    ("vec", [1, float("nan"), 3], False, ErrorCode.TYPE_MISMATCH, "embedding"),
    ("vec", "[1, 2, 3]", False, ErrorCode.TYPE_MISMATCH, "embedding"),
    ("vec", "1, x, 3", True, ErrorCode.TYPE_MISMATCH, "embedding"),
    ("vec", {"a": 1}, False, ErrorCode.TYPE_MISMATCH, "embedding"),
    ("vec", [1, 10**400, 3], False, ErrorCode.TYPE_MISMATCH, "embedding"),
]


@pytest.mark.parametrize("case", BAD_VALUES, ids=lambda case: f"{case[0]}-{case[3]}-{case[1]!r}"[:60])
def test_bad_values_fail_only_their_key_with_a_precise_error(
    schema: MetadataSchema, case: tuple[str, Any, bool, ErrorCode, str]
) -> None:
    key, value, untyped, code, expected = case
    error = only_error(schema, key, value, untyped=untyped)
    file = CSV if untyped else FILE
    assert error.code is code
    assert (error.file, error.key) == (file, key)
    assert expected in (error.expected or "")
    assert error.value == value_repr(value)
    assert error.message.startswith(f"{file}: key {key!r}: expected ")
    assert f"got {value!r}"[:60] in error.message


def test_error_details_say_what_is_off(schema: MetadataSchema) -> None:
    assert only_error(schema, "short", "abcdef").detail == "6 characters"
    assert only_error(schema, "vec", [1, 2]).detail == "2 numbers"
    assert only_error(schema, "vec", [1, "2", 3]).detail == "element 1 is '2'"
    assert only_error(schema, "when", "2024-05-01T12:00:00").detail == "no timezone offset"
    assert only_error(schema, "when", datetime(2024, 5, 1)).detail == "no timezone offset"


def test_long_enum_lists_are_shortened_in_messages() -> None:
    values = [f"v{i}" for i in range(40)]
    big = parse_schema({"keys": {"e": {"type": "enum", "values": values}}}, file="s")
    result = type_metadata({"e": "zzz"}, big, file=FILE, untyped=False, unknown_keys="reject")
    assert result.errors[0].expected == f"enum, one of {values[:10]} and 30 more"


# --- unknown keys -------------------------------------------------------------------------------


def test_unknown_keys_reject(schema: MetadataSchema) -> None:
    result = type_metadata({"num": 1, "camera": "x"}, schema, file=FILE, untyped=False, unknown_keys="reject")
    assert result.values == {"num": 1}
    [error] = result.errors
    assert (error.code, error.key) == (ErrorCode.UNKNOWN_KEY, "camera")
    assert error.message == (
        f"{FILE}: key 'camera': expected a key declared in the schema schemas/test.yaml [unknown_key]"
    )


def test_unknown_keys_warn_keeps_the_value(schema: MetadataSchema) -> None:
    result = type_metadata({"camera": {"model": "x"}}, schema, file=FILE, untyped=False, unknown_keys="warn")
    assert result.values == {"camera": {"model": "x"}}
    assert result.errors == []
    [warning] = result.warnings
    assert (warning.code, warning.file, warning.key) == (ErrorCode.UNKNOWN_KEY, FILE, "camera")


def test_unknown_keys_allow_is_untyped_but_json_safe(schema: MetadataSchema) -> None:
    values = {
        "rig": "3",
        "count": 3,
        "taken": datetime(2024, 5, 1, 12, tzinfo=UTC),
        "day": date(2024, 5, 1),
        "tags": ("a", 1),
        "np": np.float64(0.5),
    }
    result = type_metadata(values, schema, file=FILE, untyped=False, unknown_keys="allow")
    assert result.values == {
        "rig": "3",
        "count": 3,
        "taken": "2024-05-01T12:00:00+00:00",
        "day": "2024-05-01",
        "tags": ["a", 1],
        "np": 0.5,
    }
    assert result.errors == []
    assert result.warnings == []
    csv = type_metadata({"rig": "true"}, schema, file=CSV, untyped=True, unknown_keys="allow")
    assert csv.values == {"rig": "true"}, "cells of unknown keys stay strings"


@pytest.mark.parametrize(
    ("values", "key", "code"),
    [
        ({"a/b": 1}, "a/b", ErrorCode.INVALID_KEY),
        ({"$x": 1}, "$x", ErrorCode.INVALID_KEY),
        ({3: 1}, "3", ErrorCode.INVALID_KEY),
        ({"blob": b"\x00"}, "blob", ErrorCode.TYPE_MISMATCH),
        ({"s": {1, 2}}, "s", ErrorCode.TYPE_MISMATCH),
        ({"n": [1, float("inf")]}, "n", ErrorCode.TYPE_MISMATCH),
        ({"d": {"x": {1: 2}}}, "d", ErrorCode.TYPE_MISMATCH),
    ],
)
def test_unknown_keys_allowed_still_need_valid_keys_and_json(
    schema: MetadataSchema, values: dict[Any, Any], key: str, code: ErrorCode
) -> None:
    result = type_metadata({**values, "num": 2}, schema, file=FILE, untyped=False, unknown_keys="allow")
    assert result.values == {"num": 2}
    [error] = result.errors
    assert (error.code, error.file, error.key) == (code, FILE, key)
    assert error.message.startswith(f"{FILE}: key {key!r}: expected ")


# --- reserved keys ------------------------------------------------------------------------------


def test_keyframes_are_sorted_and_deduplicated(schema: MetadataSchema) -> None:
    typed = type_metadata(
        {"keyframes": [30, 0, 30, 12]}, schema, file=FILE, untyped=False, unknown_keys="reject"
    )
    assert typed.values == {"keyframes": [0, 12, 30]}
    out, errors = validate_reserved(typed.values, kind="video", file=FILE)
    assert out == {"keyframes": [0, 12, 30]}
    assert errors == []


@pytest.mark.parametrize(("cell", "expected"), [("[40, 0, 12]", [0, 12, 40]), ("5;3;3", [3, 5]), ("7", [7])])
def test_keyframes_from_csv_cells(schema: MetadataSchema, cell: str, expected: list[int]) -> None:
    typed = type_metadata({"keyframes": cell}, schema, file=CSV, untyped=True, unknown_keys="reject")
    assert typed.values == {"keyframes": expected}


@pytest.mark.parametrize(
    ("value", "untyped"),
    [
        ([1, -2], False),
        ([1, True], False),
        ([1.0, 2], False),
        ("1,2", False),
        (5, False),
        ("1,x", True),
        ("-1", True),
        ([0, 2**70], False),
        ([2**63], False),
        (str(2**64), True),
    ],
)
def test_bad_keyframes(schema: MetadataSchema, value: Any, untyped: bool) -> None:
    typed = type_metadata({"keyframes": value}, schema, file=FILE, untyped=untyped, unknown_keys="reject")
    assert typed.values == {}
    [error] = typed.errors
    assert (error.code, error.file, error.key) == (ErrorCode.INVALID_KEYFRAMES, FILE, "keyframes")
    assert error.expected == "a list of integers from 0 to 2**63-1"
    out, errors = validate_reserved({"keyframes": value}, kind="video", file=FILE)
    if not untyped:
        assert out == {}
        assert [e.code for e in errors] == [ErrorCode.INVALID_KEYFRAMES]


@pytest.mark.parametrize("kind", ["image", "audio", "image_group", "dicom"])
def test_keyframes_and_config_only_on_videos(kind: str) -> None:
    metadata = {"keyframes": [1], "config": {"sampling_rate": 1}, "a": 1}
    out, errors = validate_reserved(metadata, kind=kind, file=FILE)
    assert out == {"a": 1}
    assert [(e.code, e.key, e.file) for e in errors] == [
        (ErrorCode.INVALID_VIDEO_CONFIG, "config", FILE),
        (ErrorCode.KEYFRAMES_NOT_VIDEO, "keyframes", FILE),
    ]
    assert errors[1].message.startswith(f"{FILE}: key 'keyframes': expected no 'keyframes' on a {kind}")


def test_video_config_is_normalised(schema: MetadataSchema) -> None:
    config = {"sampling_rate": 2.0, "keyframe_mode": "seconds"}
    typed = type_metadata({"config": config}, schema, file=FILE, untyped=False, unknown_keys="reject")
    assert typed.values == {"config": {"sampling_rate": 2, "keyframe_mode": "seconds"}}
    out, errors = validate_reserved({"config": {"sampling_rate": 0}}, kind="video", file=FILE)
    assert out == {"config": {"sampling_rate": 0}}
    assert errors == []
    cell = '{"sampling_rate": 0.5, "keyframe_mode": "frame"}'
    csv = type_metadata({"config": cell}, schema, file=CSV, untyped=True, unknown_keys="reject")
    assert csv.values == {"config": {"sampling_rate": 0.5, "keyframe_mode": "frame"}}


@pytest.mark.parametrize(
    ("config", "untyped", "detail"),
    [
        ({"sampling_rate": -1}, False, "sampling_rate -1"),
        ({"sampling_rate": True}, False, "sampling_rate True"),
        ({"sampling_rate": "1"}, False, "sampling_rate '1'"),
        ({"sampling_rate": float("inf")}, False, "sampling_rate inf"),
        ({"sampling_rate": 10**400}, False, "sampling_rate " + value_repr(10**400)),
        ({"keyframe_mode": "frames"}, False, "keyframe_mode 'frames'"),
        ({"mode": "frame"}, False, "unknown fields ['mode']"),
        ([1], False, None),
        ("sampling_rate=1", True, "not a JSON object"),
        ("[1]", True, None),
    ],
)
def test_bad_video_config(schema: MetadataSchema, config: Any, untyped: bool, detail: str | None) -> None:
    typed = type_metadata({"config": config}, schema, file=FILE, untyped=untyped, unknown_keys="reject")
    assert typed.values == {}
    [error] = typed.errors
    assert (error.code, error.key, error.detail) == (ErrorCode.INVALID_VIDEO_CONFIG, "config", detail)
    assert error.message.startswith(f"{FILE}: key 'config': expected an object {{sampling_rate")


# --- flattening and mapping ---------------------------------------------------------------------


def test_flatten_nested_objects() -> None:
    values = {
        "capture": {"site": "depot", "gps": {"lat": 1.5, "lon": 2}},
        "tags": [{"a": 1}],
        "empty": {},
        "config": {"sampling_rate": 1},
        "top": 1,
    }
    out, errors = flatten(values, file=FILE)
    assert out == {
        "capture.site": "depot",
        "capture.gps.lat": 1.5,
        "capture.gps.lon": 2,
        "tags": [{"a": 1}],
        "config": {"sampling_rate": 1},
        "top": 1,
    }
    assert errors == []
    assert flatten({"a": {"b": 1}}, "/", file=FILE) == ({"a/b": 1}, [])


@pytest.mark.parametrize(
    "values",
    [
        {"a.b": 1, "a": {"b": 2}, "c": 3},
        {"a": {"b": 2}, "a.b": 1, "c": 3},
        {"a": {"b": 2, "b.x": 0}, "a.b": 1, "a.b.x": 5, "c": 3},
    ],
)
def test_flatten_conflicts_fail_the_key(values: dict[str, Any]) -> None:
    out, errors = flatten(values, file=FILE)
    assert "a.b" not in out
    assert out["c"] == 3
    conflict = [e for e in errors if e.key == "a.b"]
    assert [e.code for e in conflict] == [ErrorCode.FLATTEN_CONFLICT]
    assert conflict[0].message.startswith(f"{FILE}: key 'a.b': expected one value per key")


def test_flatten_refuses_non_string_nested_keys() -> None:
    out, errors = flatten({"a": {1: "x", "b": 2}}, file=FILE)
    assert out == {"a.b": 2}
    assert [(e.code, e.key) for e in errors] == [(ErrorCode.INVALID_KEY, "a.1")]


def test_mapping_order_flatten_drop_rename_prefix() -> None:
    mapping = MetadataMapping(
        flatten=True,
        drop=["capture.debug", "a"],
        rename={"capture.ts": "capture.time", "b": "a", "kf": "keyframes"},
        prefix="fleet",
    )
    values = {"capture": {"ts": "t", "debug": 1, "site": "s"}, "a": 1, "b": 2, "kf": [3], "config": {}}
    out, errors = mapping.apply(values, file=FILE)
    assert out == {
        "fleet.capture.time": "t",
        "fleet.capture.site": "s",
        "fleet.a": 2,
        "keyframes": [3],
        "config": {},
    }
    assert errors == []


def test_mapping_without_flatten_leaves_objects_whole() -> None:
    out, errors = MetadataMapping(prefix="p").apply({"capture": {"site": "s"}}, file=FILE)
    assert out == {"p.capture": {"site": "s"}}
    assert errors == []


def test_mapping_rename_onto_present_key_is_a_conflict() -> None:
    out, errors = MetadataMapping(rename={"old": "new"}).apply({"old": 1, "new": 2, "k": 3}, file=FILE)
    assert out == {"k": 3}
    [error] = errors
    assert (error.code, error.file, error.key) == (ErrorCode.MAPPING_CONFLICT, FILE, "new")
    assert error.message.startswith(f"{FILE}: key 'new': expected one source key per key")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"prefix": "a/b"}, "prefix 'a/b'"),
        ({"prefix": "team."}, "not ending with '.'"),
        ({"prefix": "keyframes"}, "prefix 'keyframes'"),
        ({"rename": {"a": "x", "b": "x"}}, "several keys renamed to ['x']"),
        ({"rename": {"a": "x"}, "drop": ["a"]}, "both dropped and renamed: ['a']"),
        ({"rename": {"a": "$x"}}, "key '$x'"),
        ({"static": {"a/b": 1}}, "key 'a/b'"),
        ({"flaten": True}, "Extra inputs are not permitted"),
    ],
)
def test_bad_mapping_config(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment.replace("[", r"\[").replace("$", r"\$")):
        MetadataMapping.model_validate(config)


def test_static_values_are_a_typed_layer_with_final_keys(schema: MetadataSchema) -> None:
    mapping = MetadataMapping(
        prefix="fleet", static={"status": "pending", "num": "3", "config": {"sampling_rate": 0}}
    )
    layer = mapping.static_layer(schema, file="sources/fleet.yaml", unknown_keys="reject")
    assert layer.values == {"status": "pending", "config": {"sampling_rate": 0}}
    [error] = layer.errors
    assert (error.code, error.file, error.key) == (ErrorCode.TYPE_MISMATCH, "sources/fleet.yaml", "num")


def test_map_and_type_runs_every_step_on_a_csv_row() -> None:
    schema = parse_schema(
        {
            "keys": {
                "fleet.capture.time": "datetime",
                "fleet.capture.indoor": "boolean",
                "fleet.fps": "number",
            }
        },
        file="s.yaml",
    )
    mapping = MetadataMapping(rename={"ts": "capture.time", "fps ": "fps"}, drop=["file"], prefix="fleet")
    row = {
        "file": "a.mp4",
        "ts": "2024-05-01T12:00:00+02:00",
        "capture.indoor": "false",
        "fps ": "x",
        "kf": "",
    }
    typed = map_and_type(row, schema, mapping, file=CSV, untyped=True, unknown_keys="warn")
    assert typed.values == {"fleet.capture.time": "2024-05-01T10:00:00Z", "fleet.capture.indoor": False}
    assert [(e.code, e.key) for e in typed.errors] == [(ErrorCode.TYPE_MISMATCH, "fleet.fps")]
    assert typed.warnings == []
    assert not typed.ok


def test_map_and_type_reports_mapping_errors_first(schema: MetadataSchema) -> None:
    typed = map_and_type(
        {"a.b": 1, "a": {"b": 2}, "num": "x"},
        schema,
        MetadataMapping(flatten=True),
        file=FILE,
        untyped=False,
        unknown_keys="reject",
    )
    assert [(e.code, e.key) for e in typed.errors] == [
        (ErrorCode.FLATTEN_CONFLICT, "a.b"),
        (ErrorCode.TYPE_MISMATCH, "num"),
    ]


# --- fingerprint --------------------------------------------------------------------------------


def test_fingerprint_is_sha256_of_canonical_json() -> None:
    typed = {"b": [1, 2.5], "a": "é", "c": {"y": None, "x": True}}
    canonical = '{"a":"é","b":[1,2.5],"c":{"x":true,"y":null}}'
    assert metadata_fingerprint(typed) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_fingerprint_ignores_key_order_and_sees_every_change() -> None:
    base = {"a": 1, "b": "x"}
    assert metadata_fingerprint(base) == metadata_fingerprint({"b": "x", "a": 1})
    changed: list[dict[str, Any]] = [
        {"a": 2, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1},
        {"a": 1, "b": "x", "c": None},
        {"a": 1.5, "b": "x"},
    ]
    prints = {metadata_fingerprint(c) for c in changed}
    assert len(prints) == len(changed)
    assert metadata_fingerprint(base) not in prints


def test_the_largest_64_bit_keyframe_is_kept(schema: MetadataSchema) -> None:
    typed = type_metadata(
        {"keyframes": [2**63 - 1, 0]}, schema, file=FILE, untyped=False, unknown_keys="reject"
    )
    assert typed.values == {"keyframes": [0, 2**63 - 1]}


@pytest.mark.parametrize(
    ("metadata", "frames", "duration", "bad"),
    [
        ({"keyframes": [0, 299]}, 300, 10.0, None),
        ({"keyframes": [0, 300]}, 300, 10.0, 300),
        ({"keyframes": [0, 300]}, None, None, None),
        ({"keyframes": [10], "config": {"keyframe_mode": "seconds"}}, 300, 10.0, None),
        ({"keyframes": [11], "config": {"keyframe_mode": "seconds"}}, 300, 10.0, 11),
    ],
)
def test_keyframes_must_lie_inside_a_probed_video(
    metadata: dict[str, Any], frames: int | None, duration: float | None, bad: int | None
) -> None:
    error = check_keyframes_in_video(metadata, frames=frames, duration=duration, file=FILE)
    if bad is None:
        assert error is None
    else:
        assert error is not None
        assert (error.code, error.key, error.value) == (ErrorCode.INVALID_KEYFRAMES, "keyframes", str(bad))
