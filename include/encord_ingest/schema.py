"""The metadata schema: a YAML file of keys and types, loaded into typed models.

File format (``include/schemas/*.yaml``)::

    keys:
      capture.time: datetime                  # shorthand for types without parameters
      capture.site: {type: varchar, max_length: 64}
      review.status: {type: enum, values: [pending, approved]}
      vision.clip: {type: embedding, size: 512, description: "CLIP ViT-B/32"}

Types map 1:1 to Encord's (``encord.metadata_schema``): ``boolean``, ``number``, ``varchar``,
``text``, ``datetime``, ``uuid`` are created with ``add_scalar(key, data_type=type)``, ``enum``
with ``add_enum(key, values=...)`` and ``embedding`` with ``add_embedding(key, size=...)``;
:meth:`KeySpec.sdk_call` spells that out. The type names are the ones Encord's
``MetadataSchema.get_key_type`` returns, so an existing organisation schema compares directly.
``varchar.max_length`` (1..8192, default 8192) is checked on our side only: ``add_scalar`` does
not send a length. ``description`` is documentation and never sent.

Key rules are Encord's (the SDK's ``_is_valid_metadata_key``): not empty, no leading ``$``,
only letters, digits (``str.isalnum``, so non-ASCII letters pass as they do in the SDK) and
``- _ space .``, at least one letter or digit, and never ``keyframes`` once ``- _ space .`` are
removed (so ``key_frames`` is refused too). The schema may not declare the reserved keys
``keyframes`` and ``config`` (the video sampling config), which the pipeline types itself.
Every problem raises :class:`~encord_ingest.errors.ConfigError` naming the file, the key and
the expected form.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from encord_ingest.errors import ConfigError, value_repr

KEYFRAMES_KEY = "keyframes"
VIDEO_CONFIG_KEY = "config"
#: Keys Encord itself interprets (video keyframes and sampling config): typed by the pipeline and
#: handled by :class:`~encord_ingest.sync.ReservedKeysPolicy` rather than like ordinary metadata.
RESERVED_KEYS: tuple[str, ...] = (KEYFRAMES_KEY, VIDEO_CONFIG_KEY)

VARCHAR_MAX_LENGTH = 8192
ENUM_MAX_VALUES = 255
EMBEDDING_MAX_SIZE = 4096
SCALAR_TYPES = ("boolean", "number", "varchar", "text", "datetime", "uuid")
ALL_TYPES = (*SCALAR_TYPES, "enum", "embedding")
KEY_FORM = "a non-empty key of letters, digits, '-', '_', ' ' and '.', not starting with '$', not 'keyframes'"
_KEY_PUNCTUATION = "-_ ."


def key_problem(key: object) -> str | None:
    """Why ``key`` is not a valid Encord metadata key, or ``None`` when it is."""
    if not isinstance(key, str):
        return "keys must be strings"
    if key == "":
        return "the key is empty"
    if key.startswith("$"):
        return "keys may not start with '$'"
    core = key
    for char in _KEY_PUNCTUATION:
        core = core.replace(char, "")
    if core == "":
        return "keys need at least one letter or digit"
    if core == KEYFRAMES_KEY:
        return "'keyframes' is reserved by Encord"
    if not core.isalnum():
        bad = sorted({c for c in core if not c.isalnum()})
        return f"characters not allowed: {''.join(bad)!r}"
    return None


def is_valid_key(key: object) -> bool:
    """True when Encord accepts ``key`` as a metadata key."""
    return key_problem(key) is None


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str | None = None


class BooleanSpec(_Spec):
    """``true`` or ``false``."""

    type: Literal["boolean"] = "boolean"


class NumberSpec(_Spec):
    """A finite number (Encord stores F64)."""

    type: Literal["number"] = "number"


class VarcharSpec(_Spec):
    """A string of at most ``max_length`` characters."""

    type: Literal["varchar"] = "varchar"
    max_length: int = Field(VARCHAR_MAX_LENGTH, ge=1, le=VARCHAR_MAX_LENGTH, strict=True)


class TextSpec(_Spec):
    """A string of any length."""

    type: Literal["text"] = "text"


class DatetimeSpec(_Spec):
    """A point in time, stored as an ISO 8601 string in UTC."""

    type: Literal["datetime"] = "datetime"


class UuidSpec(_Spec):
    """A UUID, stored in its canonical lowercase 8-4-4-4-12 form."""

    type: Literal["uuid"] = "uuid"


class EnumSpec(_Spec):
    """One of ``values`` (1..255 distinct strings, compared exactly)."""

    type: Literal["enum"] = "enum"
    values: tuple[Annotated[str, Field(strict=True)], ...] = Field(min_length=1, max_length=ENUM_MAX_VALUES)

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"enum values must be distinct, repeated: {duplicates}")
        return values


class EmbeddingSpec(_Spec):
    """A vector of exactly ``size`` numbers (1..4096)."""

    type: Literal["embedding"] = "embedding"
    size: int = Field(ge=1, le=EMBEDDING_MAX_SIZE, strict=True)


KeySpec = Annotated[
    BooleanSpec | NumberSpec | VarcharSpec | TextSpec | DatetimeSpec | UuidSpec | EnumSpec | EmbeddingSpec,
    Field(discriminator="type"),
]
_KEY_SPEC_ADAPTER: TypeAdapter[KeySpec] = TypeAdapter(KeySpec)


def sdk_call(spec: KeySpec) -> tuple[str, dict[str, Any]]:
    """The ``encord.MetadataSchema`` method and keyword arguments that create ``spec``."""
    if isinstance(spec, EnumSpec):
        return "add_enum", {"values": list(spec.values)}
    if isinstance(spec, EmbeddingSpec):
        return "add_embedding", {"size": spec.size}
    return "add_scalar", {"data_type": spec.type}


class MetadataSchema(BaseModel):
    """Typed keys of one schema file. Build it with :func:`load_schema` or :func:`parse_schema`."""

    model_config = ConfigDict(frozen=True)

    keys: dict[str, KeySpec]
    file: str = "<schema>"

    @field_validator("keys")
    @classmethod
    def _valid_keys(cls, keys: dict[str, KeySpec]) -> dict[str, KeySpec]:
        for key in keys:
            problem = key_problem(key) or ("reserved key" if key in RESERVED_KEYS else None)
            if problem:
                raise ValueError(f"key {key!r}: expected {KEY_FORM} ({problem})")
        return keys

    def get(self, key: str) -> KeySpec | None:
        """The spec of ``key``, or ``None`` when the schema does not declare it."""
        return self.keys.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe document form (``{"keys": {key: {"type": ...}}}``), sorted by key.

        :func:`parse_schema` reads it back; a hook turns each entry into SDK calls.
        """
        keys = {k: self.keys[k].model_dump(mode="json", exclude_none=True) for k in sorted(self.keys)}
        return {"keys": keys}


def _spec_input(raw: Any, *, file: str, key: str) -> dict[str, Any]:
    """Normalise the shorthand ``key: type`` and check the ``type`` field."""
    spec = {"type": raw} if isinstance(raw, str) else raw
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{file}: key {key!r}: expected a type name or a mapping with 'type', got {raw!r}")
    type_name = spec.get("type")
    if type_name not in ALL_TYPES:
        raise ConfigError(
            f"{file}: key {key!r}: field 'type': expected one of {', '.join(ALL_TYPES)}, got {type_name!r}"
        )
    return dict(spec)


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"][1:]]  # drop the discriminator tag
    where = f"field {'.'.join(loc)!r}: " if loc else ""
    return f"{where}{first['msg']}, got {value_repr(first.get('input'))}"


def _parse_spec(raw: Any, *, file: str, key: str) -> KeySpec:
    spec = _spec_input(raw, file=file, key=key)
    try:
        return _KEY_SPEC_ADAPTER.validate_python(spec)
    except ValidationError as exc:
        raise ConfigError(f"{file}: key {key!r}: {_validation_message(exc)}") from None


def _check_key(key: object, *, file: str) -> str:
    problem = key_problem(key)
    if problem is not None:
        raise ConfigError(f"{file}: key {key!r}: expected {KEY_FORM} ({problem})")
    assert isinstance(key, str)
    if key in RESERVED_KEYS:
        raise ConfigError(
            f"{file}: key {key!r}: expected a key other than the reserved "
            f"{sorted(RESERVED_KEYS)} (the pipeline types them itself)"
        )
    return key


def parse_schema(document: Any, *, file: str) -> MetadataSchema:
    """Build a schema from a parsed document (``{"keys": {...}}``); ``file`` names it in errors."""
    if not isinstance(document, Mapping) or set(document) != {"keys"}:
        found = sorted(map(str, document)) if isinstance(document, Mapping) else type(document).__name__
        raise ConfigError(f"{file}: expected a mapping with exactly one field 'keys', got {found}")
    raw_keys = document["keys"]
    if not isinstance(raw_keys, Mapping):
        raise ConfigError(f"{file}: field 'keys': expected a mapping of key -> type, got {raw_keys!r}")
    keys = {}
    for raw_key, raw_spec in raw_keys.items():
        key = _check_key(raw_key, file=file)
        keys[key] = _parse_spec(raw_spec, file=file, key=key)
    return MetadataSchema(keys=keys, file=file)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses repeated keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"repeated key {key!r}", key_node.start_mark)
        seen.add(key)
    return dict(loader.construct_mapping(node, deep=True))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_schema(path: str | Path) -> MetadataSchema:
    """Read and check a schema YAML file; raise :class:`ConfigError` on any problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: expected a readable UTF-8 YAML file ({exc})") from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: expected valid YAML ({exc})") from None
    return parse_schema(document, file=file)
