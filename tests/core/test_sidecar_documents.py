"""JSON and YAML sidecars: happy paths and hostile files (each with its exact error)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.sidecars import (
    DocumentFormat,
    ParsedSidecar,
    SidecarConventions,
    check_size,
    parse_sidecar,
)

BOM = b"\xef\xbb\xbf"


def ok(data: bytes, file: str = "d/clip.mp4.json", **limits: int) -> ParsedSidecar:
    result = parse_sidecar(data, file=file, **limits)
    assert isinstance(result, ParsedSidecar), result
    return result


def failed(data: bytes, file: str, code: ErrorCode, key: str | None = None, **limits: int) -> ItemError:
    """Parse ``data`` and check: an error value (not an exception), its code, file and key."""
    result = parse_sidecar(data, file=file, **limits)
    assert isinstance(result, ItemError), result
    assert result.code is code, result.message
    assert result.file == file
    assert result.key == key
    assert result.message.startswith(f"{file}: ")
    if key is not None:
        assert f"key {key!r}" in result.message
    assert f"[{code.value}]" in result.message
    return result


# --- happy paths ------------------------------------------------------------------------------


def test_json_object_with_fingerprint() -> None:
    data = b'{"site": "lab", "n": 3, "x": 1.5, "ok": true, "none": null, "cam": {"iso": [100, 200]}}'
    parsed = ok(data)
    assert parsed.values == {
        "site": "lab",
        "n": 3,
        "x": 1.5,
        "ok": True,
        "none": None,
        "cam": {"iso": [100, 200]},
    }
    assert parsed.file == "d/clip.mp4.json"
    assert parsed.format is DocumentFormat.JSON
    assert parsed.fingerprint == hashlib.sha256(data).hexdigest()


def test_bom_is_accepted_and_fingerprint_covers_raw_bytes() -> None:
    parsed = ok(BOM + b'{"a": "\xc3\xa9"}')
    assert parsed.values == {"a": "\u00e9"}
    assert parsed.fingerprint == hashlib.sha256(BOM + b'{"a": "\xc3\xa9"}').hexdigest()
    assert ok(BOM + b"a: 1\n", "x.yaml").values == {"a": 1}


def test_extension_is_case_insensitive_and_metadata_json_is_json() -> None:
    assert ok(b'{"a": 1}', "X.JSON").format is DocumentFormat.JSON
    assert ok(b'{"a": 1}', "clip.mp4.metadata.json").values == {"a": 1}
    assert ok(b"a: 1", "x.YML").format is DocumentFormat.YAML


def test_yaml_core_schema_values() -> None:
    data = b"""
plain: hello
int: 42
octal: 0o17
hex: 0x1F
leading_zero: 012
float: 1.5
exp: 1e3
yes_is_text: yes
on_is_text: on
bool: true
upper: FALSE
null1: ~
null2: null
empty:
date: 2024-05-01
datetime: 2024-05-01T10:00:00Z
sexagesimal: 1:30
quoted_int: "42"
explicit: !!str 7
explicit_int: !!int "7"
list: [1, two, 3.0]
nested: {a: {b: c}}
"""
    assert ok(data, "d/_defaults.yaml").values == {
        "plain": "hello",
        "int": 42,
        "octal": 15,
        "hex": 31,
        "leading_zero": 12,
        "float": 1.5,
        "exp": 1000.0,
        "yes_is_text": "yes",
        "on_is_text": "on",
        "bool": True,
        "upper": False,
        "null1": None,
        "null2": None,
        "empty": None,
        "date": "2024-05-01",
        "datetime": "2024-05-01T10:00:00Z",
        "sexagesimal": "1:30",
        "quoted_int": "42",
        "explicit": "7",
        "explicit_int": 7,
        "list": [1, "two", 3.0],
        "nested": {"a": {"b": "c"}},
    }


def test_yaml_anchors_aliases_and_merge_keys() -> None:
    data = b"""
base: &base {site: lab, cam: {iso: 100}}
tags: &tags [a, b]
copy: *base
more_tags: *tags
derived:
  <<: *base
  site: field
multi:
  <<: [{a: 1, b: 1}, {b: 2, c: 2}]
"""
    values = ok(data, "x.yml").values
    assert values["copy"] == {"site": "lab", "cam": {"iso": 100}}
    assert values["more_tags"] == ["a", "b"]
    assert values["derived"] == {"site": "field", "cam": {"iso": 100}}
    assert values["multi"] == {"a": 1, "b": 1, "c": 2}
    # aliases are copied, not shared
    values["copy"]["cam"]["iso"] = 1
    assert values["base"]["cam"]["iso"] == 100


def test_empty_yaml_is_an_empty_object() -> None:
    assert ok(b"", "_defaults.yaml").values == {}
    assert ok(b"# only a comment\n", "_defaults.yml").values == {}


def test_unicode_and_spaces_in_keys() -> None:
    assert ok('{"caméra model": "Ω", "a.b": 1}'.encode()).values == {"caméra model": "Ω", "a.b": 1}


def test_depth_at_the_limit_is_fine() -> None:
    data = b'{"a": ' * 3 + b"1" + b"}" * 3
    assert ok(data, max_depth=4).values == {"a": {"a": {"a": 1}}}


def test_check_size_helper() -> None:
    assert check_size("a.json", 10, 10) is None
    error = check_size("a.json", 11, 10, object_size=12_000_000)
    assert error is not None
    assert (error.code, error.file, error.value) == (ErrorCode.FILE_TOO_LARGE, "a.json", "12000000")


def test_a_too_large_file_never_claims_the_truncated_read_length_as_its_size() -> None:
    """Readers stop one byte past the limit: without the listed size the error says "more than"."""
    big = b'{"a": "' + b"x" * 64 + b'"}'
    error = parse_sidecar(big[:11], file="d/x.json", max_bytes=10)
    assert isinstance(error, ItemError)
    assert error.value is None
    assert error.message == (
        "d/x.json: expected at most 10 bytes, more than 10 bytes (reading stopped there) [file_too_large]"
    )
    sized = SidecarConventions(max_sidecar_bytes=10).parse("d/x.json", big[:11], object_size=len(big))
    assert isinstance(sized, ItemError)
    expected = f"d/x.json: expected at most 10 bytes, got {len(big)}, size in bytes [file_too_large]"
    assert sized.message == expected


def test_conventions_parse_applies_configured_limits() -> None:
    conv = SidecarConventions(max_sidecar_bytes=20, max_depth=2)
    assert isinstance(conv.parse("a/x.json", b'{"a": "' + b"x" * 11 + b'"}'), ParsedSidecar)
    error = conv.parse("a/x.json", b'{"a": "' + b"x" * 12 + b'"}')
    assert isinstance(error, ItemError)
    assert error.code is ErrorCode.FILE_TOO_LARGE
    error = conv.parse("a/x.yaml", b"a: {b: {c: 1}}")
    assert isinstance(error, ItemError)
    assert (error.code, error.key) == (ErrorCode.NESTED_TOO_DEEP, "a.b")


# --- hostile files: one exact error each ------------------------------------------------------


def test_malformed_json_names_line_and_column() -> None:
    error = failed(b'{"a": 1,\n "b": }', "d/x.json", ErrorCode.INVALID_JSON)
    assert error.detail is not None
    assert "line 2 column 7" in error.detail


def test_empty_json_file() -> None:
    failed(b"", "d/x.json", ErrorCode.INVALID_JSON)


def test_truncated_json() -> None:
    failed(b'{"a": {"b": [1, 2', "d/x.json", ErrorCode.INVALID_JSON)


def test_malformed_yaml_names_line() -> None:
    error = failed(b"a: 1\nb: [1, 2\n", "d/x.yaml", ErrorCode.INVALID_YAML)
    assert error.detail is not None
    assert error.detail.startswith("line 3")


def test_yaml_with_two_documents() -> None:
    error = failed(b"a: 1\n---\nb: 2\n", "d/x.yaml", ErrorCode.INVALID_YAML)
    assert "another document" in (error.detail or "")


def test_yaml_control_character() -> None:
    failed(b"a: \x07bell\n", "d/x.yaml", ErrorCode.INVALID_YAML)


def test_invalid_utf8_names_the_byte() -> None:
    error = failed(b'{"a": "caf\xe9"}', "d/x.json", ErrorCode.INVALID_UTF8)
    assert error.detail is not None
    assert error.detail.startswith("byte 10")


def test_utf16_file_is_not_utf8() -> None:
    failed('{"a": 1}'.encode("utf-16"), "d/x.json", ErrorCode.INVALID_UTF8)


def test_bom_then_invalid_utf8_counts_bytes_from_file_start() -> None:
    error = failed(BOM + b"a: \xff", "d/x.yaml", ErrorCode.INVALID_UTF8)
    assert (error.detail or "").startswith("byte 6")


def test_json_duplicate_top_level_key() -> None:
    failed(b'{"a": 1, "b": 2, "a": 3}', "d/x.json", ErrorCode.DUPLICATE_KEY, "a")


def test_json_duplicate_nested_key_names_the_path() -> None:
    data = b'{"cam": {"lens": [{"mm": 35}, {"mm": 50, "mm": 85}]}}'
    failed(data, "d/x.json", ErrorCode.DUPLICATE_KEY, "cam.lens[1].mm")


def test_yaml_duplicate_key() -> None:
    error = failed(b"cam:\n  iso: 100\n  iso: 200\n", "d/x.yaml", ErrorCode.DUPLICATE_KEY, "cam.iso")
    assert error.detail == "line 3"


def test_yaml_duplicate_key_quoted_and_plain() -> None:
    failed(b'site: a\n"site": b\n', "d/x.yaml", ErrorCode.DUPLICATE_KEY, "site")


@pytest.mark.parametrize(
    ("data", "file", "expected"),
    [
        (b"[1, 2]", "d/x.json", "a JSON object"),
        (b'"text"', "d/x.json", "a JSON object"),
        (b"null", "d/x.json", "a JSON object"),
        (b"- a\n- b\n", "d/x.yaml", "a YAML mapping"),
        (b"just text\n", "d/x.yml", "a YAML mapping"),
    ],
)
def test_top_level_not_an_object(data: bytes, file: str, expected: str) -> None:
    error = failed(data, file, ErrorCode.NOT_AN_OBJECT)
    assert error.expected == expected


@pytest.mark.parametrize(
    "document",
    [
        "a: !!python/object/apply:os.system ['touch {marker}']\n",
        "a: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
        "a: !!python/object/apply:builtins.open ['{marker}', 'w']\n",
        "a: !!python/name:os.system\n",
        "? !!python/tuple [1, 2]\n: x\n",
    ],
)
def test_yaml_python_tags_are_unsafe_and_never_run(document: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    error = parse_sidecar(document.format(marker=marker).encode(), file="d/x.yaml")
    assert isinstance(error, ItemError)
    assert error.code is ErrorCode.UNSAFE_YAML
    assert error.file == "d/x.yaml"
    assert "!!python/" in (error.value or "")
    assert not marker.exists()


def test_yaml_python_tag_nested_names_the_key() -> None:
    failed(
        b"cam:\n  lens: [ok, !!python/object:os.Foo {}]\n", "d/x.yaml", ErrorCode.UNSAFE_YAML, "cam.lens[1]"
    )


@pytest.mark.parametrize(
    "tag", [b"!!binary aGk=", b"!!timestamp 2024-01-01", b"!Ref Bucket", b"!!set {a, b}"]
)
def test_yaml_other_tags_are_invalid(tag: bytes) -> None:
    error = failed(b"a: " + tag + b"\n", "d/x.yaml", ErrorCode.INVALID_YAML, "a")
    assert error.value is not None
    assert error.value.strip("'").startswith("!")


def test_yaml_explicit_tag_with_a_bad_value() -> None:
    failed(b"n: !!int twelve\n", "d/x.yaml", ErrorCode.INVALID_YAML, "n")


@pytest.mark.parametrize(
    ("document", "key"), [(b"1: one\n", "1"), (b"a:\n  true: x\n", "a.true"), (b"~: x\n", "~")]
)
def test_yaml_non_string_keys(document: bytes, key: str) -> None:
    failed(document, "d/x.yaml", ErrorCode.INVALID_KEY, key)


def test_yaml_complex_key() -> None:
    failed(b"? [a, b]\n: x\n", "d/x.yaml", ErrorCode.INVALID_KEY, "a sequence key")


def test_file_over_the_size_limit() -> None:
    error = failed(b'{"a": "' + b"x" * 100 + b'"}', "d/x.json", ErrorCode.FILE_TOO_LARGE, max_bytes=64)
    assert error.expected == "at most 64 bytes"
    assert error.detail == "more than 64 bytes (reading stopped there)"


def test_default_size_limit_is_four_mib() -> None:
    big = b'{"a": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    failed(big, "d/x.json", ErrorCode.FILE_TOO_LARGE)


@pytest.mark.parametrize(("data", "key"), [(b'{"a": NaN}', "a"), (b'{"a": [1, -Infinity]}', "a[1]")])
def test_json_nan_and_infinity_refused(data: bytes, key: str) -> None:
    failed(data, "d/x.json", ErrorCode.INVALID_JSON, key)


def test_json_number_overflowing_to_infinity() -> None:
    failed(b'{"cam": {"gain": 1e400}}', "d/x.json", ErrorCode.INVALID_JSON, "cam.gain")


def test_yaml_nan_refused() -> None:
    failed(b"x: {gain: .nan}\n", "d/x.yaml", ErrorCode.INVALID_YAML, "x.gain")


def test_json_integer_too_long_to_convert() -> None:
    failed(b'{"a": ' + b"9" * 5000 + b"}", "d/x.json", ErrorCode.INVALID_JSON)


def test_json_lone_surrogate_in_value_and_key() -> None:
    failed(b'{"a": "\\ud800"}', "d/x.json", ErrorCode.INVALID_JSON, "a")
    failed(b'{"\\udfff": 1}', "d/x.json", ErrorCode.INVALID_JSON, "\udfff")


def test_nesting_over_the_depth_limit() -> None:
    data = b'{"a": ' * 40 + b"1" + b"}" * 40
    error = failed(data, "d/x.json", ErrorCode.NESTED_TOO_DEEP, ".".join(["a"] * 32))
    assert error.expected == "at most 32 nested objects or lists"


def test_json_nesting_beyond_the_recursion_limit() -> None:
    failed(b"[" * 200_000 + b"]" * 200_000, "d/x.json", ErrorCode.NESTED_TOO_DEEP, max_bytes=1_000_000)


def test_yaml_nesting_beyond_libyaml_limit() -> None:
    failed(b"a: " + b"[" * 5000 + b"]" * 5000, "d/x.yaml", ErrorCode.INVALID_YAML)


def test_yaml_recursive_alias() -> None:
    error = failed(b"a: &loop [1, *loop]\n", "d/x.yaml", ErrorCode.NESTED_TOO_DEEP, "a" + "[1]" * 31)
    assert error.expected is not None


def test_yaml_alias_bomb_is_bounded() -> None:
    lines = [b"l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]".encode() for i in range(1, 9)]
    data = b"\n".join(lines) + b"\n"
    # budget max_bytes // 2 + 1 = 2001 values; 1 (top) + 11 (l0) + 111 (l1) + 1111 (l2) = 1234,
    # l3 (1) + l3[0] (1) + 6 * 111 = 1902, l3[0][6] (1) + 8 * 11 = 1991, l3[0][6][8] (1) + 9 = 2001
    error = failed(data, "d/x.yaml", ErrorCode.FILE_TOO_LARGE, "l3[0][6][8][9]", max_bytes=4000)
    assert error.expected == "at most 2001 values"


def test_unsupported_sidecar_extension() -> None:
    error = failed(b"a=1", "d/x.ini", ErrorCode.UNSUPPORTED_SIDECAR)
    assert error.value == "'d/x.ini'"
    failed(b"{}", "d/json", ErrorCode.UNSUPPORTED_SIDECAR)
