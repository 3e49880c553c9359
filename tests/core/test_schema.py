"""Schema YAML -> typed models, Encord's key rules, and the 1:1 mapping to the SDK's types."""

from __future__ import annotations

from pathlib import Path

import pytest
from encord import metadata_schema as sdk_schema
from pydantic import ValidationError

from encord_ingest.errors import ConfigError
from encord_ingest.schema import (
    EmbeddingSpec,
    EnumSpec,
    MetadataSchema,
    VarcharSpec,
    is_valid_key,
    key_problem,
    load_schema,
    parse_schema,
    sdk_call,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "include" / "schemas" / "example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schema.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def offline_sdk_schema() -> sdk_schema.MetadataSchema:
    """A real SDK MetadataSchema without its constructor, which would GET the org schema over HTTP."""
    schema = sdk_schema.MetadataSchema.__new__(sdk_schema.MetadataSchema)
    schema._schema = {}
    schema._dirty = False
    return schema


def test_example_schema_covers_every_type_with_its_parameters() -> None:
    schema = load_schema(EXAMPLE)
    types = {spec.type for spec in schema.keys.values()}
    assert types == {"boolean", "number", "varchar", "text", "datetime", "uuid", "enum", "embedding"}
    assert schema.get("fleet.capture.site") == VarcharSpec(
        max_length=64, description="Depot or test-track name."
    )
    assert schema.get("fleet.capture.weather") == EnumSpec(values=("clear", "cloudy", "rain", "fog", "snow"))
    embedding = schema.get("fleet.embedding.clip_vit_b32")
    assert isinstance(embedding, EmbeddingSpec)
    assert embedding.size == 512
    assert schema.get("fleet.camera.model") == VarcharSpec(max_length=128)
    assert schema.get("nope") is None
    assert "fleet.camera.fps" in schema
    assert schema.file == str(EXAMPLE)


def test_dict_form_is_json_safe_sorted_and_round_trips() -> None:
    schema = load_schema(EXAMPLE)
    document = schema.to_dict()
    assert list(document["keys"]) == sorted(document["keys"])
    assert document["keys"]["fleet.capture.weather"] == {
        "type": "enum",
        "values": ["clear", "cloudy", "rain", "fog", "snow"],
    }
    assert document["keys"]["fleet.capture.indoor"] == {"type": "boolean"}
    assert parse_schema(document, file="roundtrip").keys == schema.keys


def test_shorthand_varchar_gets_encord_maximum() -> None:
    schema = parse_schema({"keys": {"a": "varchar"}}, file="s.yaml")
    assert schema.get("a") == VarcharSpec(max_length=8192)


def test_sdk_calls_create_the_same_types_in_the_real_sdk() -> None:
    schema = load_schema(EXAMPLE)
    sdk = offline_sdk_schema()
    for key, spec in schema.keys.items():
        method, kwargs = sdk_call(spec)
        getattr(sdk, method)(key, **kwargs)
    for key, spec in schema.keys.items():
        assert sdk.get_key_type(key) == spec.type
    assert sdk.get_embedding_size("fleet.embedding.clip_vit_b32") == 512
    assert sorted(sdk.get_enum_options("fleet.review.status")) == ["approved", "pending", "rejected"]


KEY_SAMPLES = [
    "a",
    "fleet.capture.site",
    "A-b_c d.e",
    "température",
    "x1",
    "",
    "$price",
    "a$",
    "a/b",
    "a:b",
    "keyframes",
    "key_frames",
    "key frames",
    "Keyframes",
    "...",
    "-",
    "config",
    "tab\there",
    "emoji🙂",
]


@pytest.mark.parametrize("key", KEY_SAMPLES)
def test_key_rule_agrees_with_the_sdk(key: str) -> None:
    assert is_valid_key(key) == sdk_schema._is_valid_metadata_key(key)


def test_key_problem_says_why() -> None:
    assert key_problem("a/b") == "characters not allowed: '/'"
    assert key_problem("") == "the key is empty"
    assert key_problem("$x") == "keys may not start with '$'"
    assert key_problem("key.frames") == "'keyframes' is reserved by Encord"
    assert key_problem(" . ") == "keys need at least one letter or digit"
    assert key_problem(3) == "keys must be strings"
    assert key_problem("ok key") is None


@pytest.mark.parametrize(
    ("yaml_key", "shown"),
    [
        ('""', "''"),
        ('"$price"', "'$price'"),
        ('"a/b"', "'a/b'"),
        ("keyframes", "'keyframes'"),
        ("key_frames", "'key_frames'"),
        ('"..."', "'...'"),
        ("config", "'config'"),
        ("1", "1"),
        ("true", "True"),
    ],
)
def test_bad_keys_are_refused_at_load(tmp_path: Path, yaml_key: str, shown: str) -> None:
    path = write(tmp_path, f"keys:\n  {yaml_key}: number\n")
    with pytest.raises(ConfigError) as info:
        load_schema(path)
    message = str(info.value)
    assert message.startswith(f"{path}: key {shown}: expected ")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("string", "field 'type': expected one of boolean, number, varchar"),
        ("{max_length: 3}", "field 'type': expected one of"),
        ("[number]", "expected a type name or a mapping with 'type'"),
        ("{type: enum, values: []}", "field 'values'"),
        ("{type: enum}", "field 'values': Field required"),
        ("{type: enum, values: [a, b, a]}", "repeated: ['a']"),
        ("{type: enum, values: [yes, no]}", "field 'values.0': Input should be a valid string"),
        (
            "{type: varchar, max_length: 8193}",
            "field 'max_length': Input should be less than or equal to 8192",
        ),
        ("{type: varchar, max_length: 0}", "field 'max_length'"),
        ("{type: varchar, max_length: '64'}", "field 'max_length': Input should be a valid integer"),
        ("{type: embedding, size: 0}", "field 'size': Input should be greater than or equal to 1"),
        ("{type: embedding, size: 4097}", "field 'size': Input should be less than or equal to 4096"),
        ("{type: embedding}", "field 'size': Field required"),
        ("{type: number, max: 3}", "field 'max': Extra inputs are not permitted"),
    ],
)
def test_bad_specs_are_refused_with_field_and_form(tmp_path: Path, spec: str, fragment: str) -> None:
    path = write(tmp_path, f"keys:\n  team.k: {spec}\n")
    with pytest.raises(ConfigError) as info:
        load_schema(path)
    message = str(info.value)
    assert message.startswith(f"{path}: key 'team.k': ")
    assert fragment in message


def test_enum_limit_is_255_values() -> None:
    values = [f"v{i}" for i in range(255)]
    assert parse_schema({"keys": {"e": {"type": "enum", "values": values}}}, file="s").get("e") == EnumSpec(
        values=tuple(values)
    )
    with pytest.raises(ConfigError, match=r"^s: key 'e': field 'values': .*at most 255 items"):
        parse_schema({"keys": {"e": {"type": "enum", "values": [*values, "v255"]}}}, file="s")


def test_parameter_limits_are_inclusive() -> None:
    schema = parse_schema(
        {
            "keys": {
                "v": {"type": "varchar", "max_length": 8192},
                "v1": {"type": "varchar", "max_length": 1},
                "e": {"type": "embedding", "size": 4096},
                "e1": {"type": "embedding", "size": 1},
            }
        },
        file="s",
    )
    assert [schema.keys[k] for k in ("v", "v1", "e", "e1")] == [
        VarcharSpec(max_length=8192),
        VarcharSpec(max_length=1),
        EmbeddingSpec(size=4096),
        EmbeddingSpec(size=1),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "expected a mapping with exactly one field 'keys', got NoneType"),
        ("- a\n", "expected a mapping with exactly one field 'keys', got list"),
        ("fields:\n  a: number\n", "expected a mapping with exactly one field 'keys', got ['fields']"),
        ("keys: {a: number}\nversion: 1\n", "got ['keys', 'version']"),
        ("keys: [a, b]\n", "field 'keys': expected a mapping of key -> type"),
        ("keys:\n  a: number\n  a: text\n", "expected valid YAML"),
        ("keys: {a: [\n", "expected valid YAML"),
        ("keys: !!python/object:os.system {}\n", "expected valid YAML"),
    ],
)
def test_bad_documents_are_refused(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_schema(path)
    assert str(info.value).startswith(f"{path}: ")
    assert fragment in str(info.value)


def test_repeated_key_error_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "keys:\n  a: number\n  a: text\n")
    with pytest.raises(ConfigError, match="repeated key 'a'"):
        load_schema(path)


def test_missing_and_non_utf8_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: expected a readable UTF-8 YAML file"):
        load_schema(tmp_path / "nope.yaml")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"keys:\n  caf\xe9: number\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml: expected a readable UTF-8 YAML file"):
        load_schema(path)


def test_model_refuses_bad_keys_however_built() -> None:
    with pytest.raises(ValidationError, match="'a/b'"):
        MetadataSchema(keys={"a/b": VarcharSpec()})
    with pytest.raises(ValidationError, match="reserved key"):
        MetadataSchema(keys={"config": VarcharSpec()})
