"""The compiled (orjson) JSON paths write and read exactly what the standard library paths do.

Their bytes are hashed into ledger fingerprints and compared by the golden plan, so every case
here compares bytes (or parsed values and errors) with ``json``/pydantic's, on the edge cases
where the writers differ: floats in exponent form or below 1e-4, non-finite floats, integers
beyond 64 bits, non-string keys, subclasses, every code point; and, for sidecars, duplicate keys
hidden behind colons inside strings, big integers, escapes and byte-order marks.
"""

from __future__ import annotations

import json
import math
import random
import struct
import tracemalloc
from enum import IntEnum, StrEnum
from typing import Any

import pytest

from encord_ingest.fastjson import compact, pydantic_compatible
from encord_ingest.ledger import sidecar_versions_json
from encord_ingest.manifest.model import compact_json_bytes
from encord_ingest.metadata import metadata_fingerprint
from encord_ingest.sidecars import documents
from encord_ingest.sidecars._values import fast_flat_json
from encord_ingest.sidecars.documents import parse_sidecar
from encord_ingest.sync import MetadataChange, change_line


class Color(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


def _json(value: Any, *, sort_keys: bool = False) -> bytes:
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=sort_keys
    ).encode("utf-8")


def _floats() -> list[float]:
    rng = random.Random(2026)
    edges = [
        0.0,
        -0.0,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        1e16,
        1e22,
        123456789012345678.0,
    ]
    for edge in (1e-4, 1e16):  # both sides of where Python's repr switches to exponent form
        below = above = edge
        for _ in range(50):
            below, above = math.nextafter(below, 0), math.nextafter(above, math.inf)
            edges += [below, above, -below, -above]
    randoms = [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20000)]
    scaled = [rng.random() * 10 ** rng.randint(-12, 20) for _ in range(20000)]
    return [x for x in edges + randoms + scaled if math.isfinite(x)]


def _all_code_points() -> list[str]:
    """Every code point but the surrogates, in strings of 4096."""
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    return ["".join(points[i : i + 4096]) for i in range(0, len(points), 4096)]


PLAIN_CASES: list[Any] = [
    {"b": 1, "a": [True, False, None, "x"], "é": {"😀": -0.0, "\uffff": 1.5}},
    ["day/cam-0001/img_1.jpg.json", "187d3a5c2b1e-5a", ("tuple", 1)],
    {"k": 2**63, "l": -(2**63), "m": 2**64 - 1, "big": 2**64, "neg": -(2**63) - 1, "huge": 10**40},
    {1: "int key", None: "null key"},
    {"enum": Color.RED, "int_enum": Level.HIGH, Color.RED: "enum key"},
    {"small": 1e-05, "tiny": 1.5e-07, "large": 1e16, "deep": [[{"x": 0.00001}]]},
    {"ctl": '\x00\x1f\x7f\u2028\u2029"\\/\b\f\n\r\t'},
    {},
    [],
    "",
]


@pytest.mark.parametrize("sort_keys", [False, True])
def test_compact_writes_json_dumps_bytes(sort_keys: bool) -> None:
    encode = compact(sort_keys=sort_keys)
    cases: list[Any] = [*PLAIN_CASES, *_all_code_points(), _floats()]
    cases += [{"v": x} for x in _floats()[:3000]]
    rng = random.Random(7)
    keys = ["a", "B", "é", "ä", "\uffff", "😀", "\U0001d538", "a.b", "a_b", ""]
    cases += [{rng.choice(keys) + rng.choice(keys): i for i in range(8)} for _ in range(200)]
    for value in cases:
        try:
            expected = _json(value, sort_keys=sort_keys)
        except TypeError:  # json refuses mixed key types to sort: so must the encoder
            with pytest.raises(TypeError):
                encode(value)
            continue
        assert encode(value) == expected, value


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, {"x": [math.inf]}])
def test_compact_refuses_non_finite_floats_as_json_does(value: Any) -> None:
    with pytest.raises(ValueError, match="Out of range float values"):
        _json(value)
    with pytest.raises(ValueError, match="Out of range float values"):
        compact()(value)


def test_the_hot_path_encodings_are_json_dumps() -> None:
    metadata = {"capture.site": "lab", "quality.score": 1e-05, "n": 3, "t": "2026-11-20T10:00:00Z"}
    entry = {"objectUrl": "file:///b/img_1.jpg", "title": "img_1.jpg", "clientMetadata": metadata}
    assert compact_json_bytes(entry) == _json(entry)
    assert (
        metadata_fingerprint(metadata)
        == __import__("hashlib").sha256(_json(metadata, sort_keys=True)).hexdigest()
    )
    versions = {"b.json": "1e-5", "a.json": "é"}
    assert sidecar_versions_json(versions) == json.dumps(
        dict(sorted(versions.items())), separators=(",", ":"), ensure_ascii=False
    )


def _model_line(url: str, uuid: str | None, metadata: dict[str, Any], files: list[str]) -> bytes:
    model = MetadataChange.model_construct(
        object_url=url, item_uuid=uuid, metadata=metadata, source_files=files
    )
    return model.model_dump_json().encode("utf-8")


def _str_keyed(case: Any) -> bool:
    return isinstance(case, dict) and all(isinstance(k, str) for k in case)


def test_change_lines_are_pydantic_dumps() -> None:
    metadatas: list[dict[str, Any]] = [{"x": x} for x in [*_floats()[:5000], math.inf, -math.inf, math.nan]]
    metadatas += [{"s": text} for text in _all_code_points()]
    metadatas += [case for case in PLAIN_CASES if _str_keyed(case)]
    for metadata in metadatas:
        for uuid in (None, "2b8f3c1e-0000-4000-8000-000000000001"):
            line = change_line("file:///b/é.jpg", uuid, metadata, ["a.json", "é.yaml"])
            assert line == _model_line("file:///b/é.jpg", uuid, metadata, ["a.json", "é.yaml"]), metadata
    assert pydantic_compatible({"big": 2**64}) is None  # taken by the model instead


def _full_path(data: bytes, file: str = "d/x.jpg.json") -> Any:
    """``parse_sidecar`` without the orjson path."""
    original = documents.fast_flat_json
    documents.fast_flat_json = lambda _data, _max: None  # type: ignore[assignment]
    try:
        return parse_sidecar(data, file=file)
    finally:
        documents.fast_flat_json = original


SIDECARS = [
    b'{"capture.frame": 17, "capture.time": "2026-11-20T10:00:00Z", "capture.site": "lab"}',
    b'{"a":1,"a":2}',
    b'{"a:":1,"a:":1}',
    b'{"x":"a:b","x":"a:b"}',
    b'{"a":{"b:":1},"a":2}',
    b'{"a":[1,2],"a":2}',
    b'{"a":"\\":","a":1}',
    b'{"a":"x\\"y:z","b":":"}',
    b'{"a":18446744073709551616}',
    b'{"a":-9223372036854775809}',
    b'{"a":12345678901234567890123}',
    b'{"a":9223372036854775808.0}',
    b'{"a":1e400}',
    b'{"a":NaN}',
    b'{"a":"\\u00e9:"}',
    b'{"a":"\\ud800"}',
    b'{"\\u0061":1,"a":2}',
    b'\xef\xbb\xbf{"a":1}',
    b'{"a":"\xff"}',
    b'{"a":"x\ty"}',
    b'{"a":1,}',
    b"[1]",
    b'"text"',
    b"",
    b'{"a": -0, "b": -0.0, "c": 1E2, "d": null, "e": true, "f": "\xc3\xa9\xf0\x9f\x98\x80"}',
]


@pytest.mark.parametrize("data", SIDECARS)
def test_a_sidecar_parses_as_the_full_path_parses_it(data: bytes) -> None:
    fast = parse_sidecar(data, file="d/x.jpg.json")
    full = _full_path(data)
    assert fast == full
    if isinstance(full, documents.ParsedSidecar):
        assert [type(v) for v in fast.values.values()] == [type(v) for v in full.values.values()]


def test_the_orjson_path_is_taken_only_where_proven() -> None:
    assert fast_flat_json(SIDECARS[0], 100) == json.loads(SIDECARS[0])
    assert fast_flat_json(b'{"a":"x\\"y:z","b":":"}', 100) == {"a": 'x"y:z', "b": ":"}
    for hidden in (
        b'{"a":1,"a":2}',
        b'{"a:":1,"a:":1}',
        b'{"a":{"b:":1},"a":2}',
        b'{"a":18446744073709551616}',
    ):
        assert fast_flat_json(hidden, 100) is None


def test_random_flat_sidecars_with_duplicates_and_colons_parse_as_the_full_path() -> None:
    rng = random.Random(11)
    keys = ["a", "a:", ":", "b", 'c"', "d\\", "é:"]
    values: list[Any] = ["x", "x:y", ":", "", 1, -2, 2.5, 1e-7, True, None, 2**64, [1], {"k:": 1}]
    taken = 0
    for _ in range(3000):
        pairs = [(rng.choice(keys), rng.choice(values)) for _ in range(rng.randint(0, 4))]
        space = rng.choice(["", " ", "\n\t"])
        body = ("," + space).join(f"{json.dumps(k)}{space}:{space}{json.dumps(v)}" for k, v in pairs)
        data = ("{" + space + body + space + "}").encode("utf-8")
        fast, full = parse_sidecar(data, file="d/x.jpg.json"), _full_path(data)
        assert fast == full, data
        taken += fast_flat_json(data, 100) is not None
    assert 500 < taken < 3000  # both paths were exercised


def test_encoded_bytes_hold_no_spare_buffer() -> None:
    """orjson's own bytes keep its ~4 KiB write buffer: 50k manifest entries held in a chunk
    would take 200 MiB."""
    entry = {"objectUrl": "file:///b/img_1.jpg", "title": "img_1.jpg", "clientMetadata": {"n": 1}}
    encode = compact()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [encode(entry) for _ in range(500)] + [
            change_line("u", None, {"n": 1}, []) for _ in range(500)
        ]
        per_value = (tracemalloc.get_traced_memory()[0] - before) / len(held)
    finally:
        tracemalloc.stop()
    assert per_value < 512, per_value
