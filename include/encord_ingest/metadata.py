"""Sidecar values -> typed ``clientMetadata``: mapping, typing, reserved keys, fingerprints.

Order of operations for one sidecar layer (one JSON/YAML file, one CSV/TSV row, ...):

1. **flatten** (only when the source's :class:`MetadataMapping` says ``flatten: true``): nested
   objects become dotted keys, ``{"capture": {"site": "x"}}`` -> ``{"capture.site": "x"}``.
   Lists are values and stay whole; an empty object gives no key; the reserved keys
   ``keyframes`` and ``config`` are never flattened. Two entries that land on one key
   (``{"a.b": 1, "a": {"b": 2}}``) are a ``FLATTEN_CONFLICT`` and neither is kept.
2. **drop**: the listed keys (names after flattening) are removed.
3. **rename**: ``source key -> new key`` (names after flattening). A rename onto a key that is
   still present is a ``MAPPING_CONFLICT`` and neither is kept.
4. **prefix**: every key except the reserved ones becomes ``<prefix>.<key>``.
5. **type**: :func:`type_metadata` against the schema.

``static`` values of a mapping are their own, lowest-precedence layer: their keys are final
(no flatten, drop, rename or prefix) and :meth:`MetadataMapping.static_layer` types them like a
JSON layer. Merging layers is not done here. After the merge, :func:`validate_reserved` checks
the item's kind (``keyframes`` only for videos).

Typing (:func:`type_metadata`), per schema type; "typed" sources are JSON, YAML, Parquet:

- boolean: ``bool``. CSV: ``true``/``false`` in any letter case. ``1``/``0``/``yes`` are refused.
- number: ``int``/``float`` (never ``bool``), finite. Integral values come out as ``int``
  (``3.0`` -> ``3`` up to 2**53), others as ``float``, so JSON ``3``, ``3.0`` and CSV ``3``
  agree. CSV: decimal notation ``[+-]digits[.digits][e[+-]digits]``; no ``nan``, ``inf``,
  thousands separators or ``_``. A string in a typed source is refused.
- varchar: ``str`` of at most ``max_length`` characters (code points). text: any ``str``.
- datetime: an ISO 8601 / RFC 3339 string ``YYYY-MM-DD(T| )hh:mm[:ss[.frac]]`` with ``Z`` or
  ``+hh[:mm]``, or an aware ``datetime`` object (YAML timestamps, Parquet); normalised to UTC
  and written ``2024-05-01T10:00:00Z`` (``.ffffff`` when there are microseconds). Naive
  date-times (no offset) and bare dates are refused: the zone would be a guess.
- uuid: ``8-4-4-4-12`` hex string (any case) or ``uuid.UUID``; written lowercase.
- enum: ``str`` equal to one of the values (exact, case-sensitive).
- embedding: list of exactly ``size`` finite numbers, written as floats. CSV: a list cell.

CSV/TSV cells (``untyped=True``): only strings are coerced, as above; surrounding whitespace is
ignored for boolean, number, datetime, uuid, embedding and ``keyframes`` but kept for varchar,
text and enum; an empty cell means the key is absent. A list cell is numbers separated by
``,`` ``;`` or whitespace, optionally inside ``[ ]`` (``[0, 12, 40]``, ``0;12;40``). A
``config`` cell is a JSON object.

``null`` (``None``) is kept as ``None`` for any key: it means "no value" and the merge step
decides what it does to lower layers. Keys absent from the schema follow ``unknown_keys``:
``allow`` keeps them untyped (must be JSON values; ``date``/``datetime`` objects become their
``isoformat()``; CSV cells stay strings; the key must obey Encord's key rules), ``warn`` keeps
them and adds an ``UNKNOWN_KEY`` warning, ``reject`` makes each one an ``UNKNOWN_KEY`` error.

Reserved keys: ``keyframes`` is a list of non-negative ``int`` (not ``bool``, not ``float``),
written sorted and de-duplicated; ``config`` is ``{sampling_rate: number >= 0, keyframe_mode:
frame|seconds}`` (both optional, nothing else). Typed output is JSON-safe throughout.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from encord_ingest.errors import ErrorCode, ItemError, value_repr
from encord_ingest.fastjson import compact
from encord_ingest.schema import (
    KEY_FORM,
    KEYFRAMES_KEY,
    RESERVED_KEYS,
    VIDEO_CONFIG_KEY,
    BooleanSpec,
    DatetimeSpec,
    EmbeddingSpec,
    EnumSpec,
    KeySpec,
    MetadataSchema,
    NumberSpec,
    TextSpec,
    UuidSpec,
    VarcharSpec,
    key_problem,
)

UnknownKeyPolicy = Literal["allow", "warn", "reject"]
VIDEO_KIND = "video"
KEYFRAME_MODES = ("frame", "seconds")
MAX_EXACT_INT = 2**53

_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)"
)
_UTC_SECONDS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
"""A date-time exactly as :func:`_utc_iso` writes it when there are no microseconds."""
_FLOAT_MAX = sys.float_info.max
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LIST_SEPARATORS = re.compile(r"[,;\s]+")
_ENUM_SHOWN = 10
_MAX_INT_DIGITS = 400  # below int("...")'s 4300-digit limit; larger overflows a float anyway

MAX_KEYFRAME = 2**63 - 1
"""Keyframes fit a signed 64-bit integer (what Encord and Parquet store)."""
KEYFRAMES_FORM = "a list of integers from 0 to 2**63-1"
CONFIG_FORM = "an object {sampling_rate: number >= 0, keyframe_mode: frame|seconds}"


class _Reject(Exception):
    """A value does not fit; caught in this module and turned into an :class:`ItemError`."""

    def __init__(self, code: ErrorCode, detail: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(slots=True)
class TypedMetadata:
    """One layer's typed, JSON-safe values plus what went wrong (errors) or looks odd (warnings)."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: list[ItemError] = field(default_factory=list)
    warnings: list[ItemError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no key failed."""
        return not self.errors


# --- scalar coercions -------------------------------------------------------------------------


def _native(value: Any) -> Any:
    """numpy scalars and arrays (pandas/Parquet) -> Python values; anything else unchanged."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    return value


def _number(value: Any) -> int | float:
    if type(value) is int and -_FLOAT_MAX <= value <= _FLOAT_MAX:  # the usual case, checked first
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(ErrorCode.TYPE_MISMATCH)
    if isinstance(value, int):
        if abs(value) > sys.float_info.max:
            raise _Reject(ErrorCode.TYPE_MISMATCH, "out of the range of a 64-bit float")
        return value
    if not math.isfinite(value):
        raise _Reject(ErrorCode.TYPE_MISMATCH, "not a finite number")
    return int(value) if value.is_integer() and abs(value) <= MAX_EXACT_INT else value


def _number_cell(text: str) -> int | float:
    text = text.strip()
    if _INT_RE.fullmatch(text) and len(text) <= _MAX_INT_DIGITS:
        return _number(int(text))
    if _NUMBER_RE.fullmatch(text):
        return _number(float(text))
    raise _Reject(ErrorCode.TYPE_MISMATCH)


def _boolean(value: Any, untyped: bool) -> bool:
    if untyped and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, bool):
        return value
    raise _Reject(ErrorCode.TYPE_MISMATCH)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Reject(ErrorCode.TYPE_MISMATCH)
    return value


def _utc_iso(moment: datetime) -> str:
    try:
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:
        raise _Reject(ErrorCode.INVALID_DATETIME, "out of range in UTC") from None


def _datetime(value: Any, untyped: bool) -> str:
    if type(value) is str and _UTC_SECONDS_RE.fullmatch(value):  # already as written: only check it
        try:
            datetime.fromisoformat(value)
        except ValueError as exc:
            raise _Reject(ErrorCode.INVALID_DATETIME, str(exc)) from None
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise _Reject(ErrorCode.INVALID_DATETIME, "no timezone offset")
        return _utc_iso(value)
    if isinstance(value, date):
        raise _Reject(ErrorCode.INVALID_DATETIME, "a date without time and timezone")
    text = _string(value).strip() if untyped else _string(value)
    if not _DATETIME_RE.fullmatch(text):
        detail = "no timezone offset" if _DATETIME_RE.fullmatch(text + "Z") else None
        raise _Reject(ErrorCode.INVALID_DATETIME, detail)
    try:
        return _utc_iso(datetime.fromisoformat(text.upper()))
    except ValueError as exc:
        raise _Reject(ErrorCode.INVALID_DATETIME, str(exc)) from None


def _uuid(value: Any, untyped: bool) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    text = _string(value).strip() if untyped else _string(value)
    if not _UUID_RE.fullmatch(text):
        raise _Reject(ErrorCode.INVALID_UUID)
    return text.lower()


def _enum(value: Any, spec: EnumSpec) -> str:
    text = _string(value)
    if text not in spec.values:
        raise _Reject(ErrorCode.NOT_IN_ENUM)
    return text


def _list_cell(text: str) -> list[str]:
    """Split a CSV list cell: ``[0, 12, 40]``, ``0,12,40``, ``0;12;40`` or ``0 12 40``."""
    inner = text.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    return [part for part in _LIST_SEPARATORS.split(inner) if part]


def _embedding(value: Any, spec: EmbeddingSpec, untyped: bool) -> list[float]:
    if untyped and isinstance(value, str):
        value = [_number_cell(part) for part in _list_cell(value)]
    if not isinstance(value, list | tuple):
        raise _Reject(ErrorCode.TYPE_MISMATCH)
    if len(value) != spec.size:
        raise _Reject(ErrorCode.WRONG_EMBEDDING_SIZE, f"{len(value)} numbers")
    out = []
    for index, element in enumerate(value):
        try:
            out.append(float(_number(_native(element))))
        except _Reject:
            raise _Reject(ErrorCode.TYPE_MISMATCH, f"element {index} is {element!r}") from None
    return out


def _varchar(spec: VarcharSpec, value: Any) -> str:
    text = _string(value)
    if len(text) > spec.max_length:
        raise _Reject(ErrorCode.VALUE_TOO_LONG, f"{len(text)} characters")
    return text


_COERCE: dict[type, Any] = {
    BooleanSpec: lambda _spec, value, untyped: _boolean(value, untyped),
    NumberSpec: lambda _spec, value, untyped: (
        _number_cell(value) if untyped and isinstance(value, str) else _number(value)
    ),
    VarcharSpec: lambda spec, value, _untyped: _varchar(spec, value),
    TextSpec: lambda _spec, value, _untyped: _string(value),
    DatetimeSpec: lambda _spec, value, untyped: _datetime(value, untyped),
    UuidSpec: lambda _spec, value, untyped: _uuid(value, untyped),
    EnumSpec: lambda spec, value, _untyped: _enum(value, spec),
    EmbeddingSpec: lambda spec, value, untyped: _embedding(value, spec, untyped),
}
"""The coercion of each spec type (one dict lookup per value instead of a chain of checks)."""


_PLAIN = (str, int, float, bool)
"""Exact types that are never numpy values (:func:`_native` has nothing to do)."""


def _coerce(spec: KeySpec, value: Any, untyped: bool) -> Any:
    """Type one value against ``spec``; raise :class:`_Reject` when it does not fit."""
    return _COERCE[type(spec)](spec, value if type(value) in _PLAIN else _native(value), untyped)


def expected_form(spec: KeySpec) -> str:
    """How an error message describes what ``spec`` wants."""
    if isinstance(spec, VarcharSpec):
        return f"varchar of at most {spec.max_length} characters"
    if isinstance(spec, EnumSpec):
        shown = list(spec.values[:_ENUM_SHOWN])
        more = f" and {len(spec.values) - _ENUM_SHOWN} more" if len(spec.values) > _ENUM_SHOWN else ""
        return f"enum, one of {shown}{more}"
    if isinstance(spec, EmbeddingSpec):
        return f"embedding of {spec.size} numbers"
    return {
        "boolean": "boolean (true or false)",
        "number": "a finite number",
        "text": "text (a string)",
        "datetime": "datetime (ISO 8601 with a timezone offset, e.g. 2024-05-01T12:00:00Z)",
        "uuid": "uuid (8-4-4-4-12 hex digits)",
    }[spec.type]


# --- reserved keys ------------------------------------------------------------------------------


def _keyframes(value: Any, untyped: bool) -> list[int]:
    value = _native(value)
    if untyped and isinstance(value, str):
        parts = _list_cell(value)
        if not all(part.isdigit() and part.isascii() and len(part) <= _MAX_INT_DIGITS for part in parts):
            raise _Reject(ErrorCode.INVALID_KEYFRAMES)
        value = [int(part) for part in parts]
    elif not isinstance(value, list | tuple):
        raise _Reject(ErrorCode.INVALID_KEYFRAMES)
    value = [_native(v) for v in value]
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        raise _Reject(ErrorCode.INVALID_KEYFRAMES, f"not a non-negative integer: {value_repr(bad[0])}")
    too_large = [v for v in value if v > MAX_KEYFRAME]
    if too_large:
        raise _Reject(ErrorCode.INVALID_KEYFRAMES, f"{value_repr(too_large[0])} does not fit 64 bits")
    return sorted(set(value))


def _sampling_rate(rate: Any) -> int | float:
    try:
        number = _number(_native(rate))
    except _Reject:
        number = -1
    if number < 0:
        raise _Reject(ErrorCode.INVALID_VIDEO_CONFIG, f"sampling_rate {value_repr(rate)}")
    return number


def _video_config(value: Any, untyped: bool) -> dict[str, Any]:
    if untyped and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _Reject(ErrorCode.INVALID_VIDEO_CONFIG, "not a JSON object") from None
    if not isinstance(value, Mapping):
        raise _Reject(ErrorCode.INVALID_VIDEO_CONFIG)
    extra = sorted(map(str, set(value) - {"sampling_rate", "keyframe_mode"}))
    if extra:
        raise _Reject(ErrorCode.INVALID_VIDEO_CONFIG, f"unknown fields {extra}")
    out: dict[str, Any] = {}
    if "sampling_rate" in value:
        out["sampling_rate"] = _sampling_rate(value["sampling_rate"])
    if "keyframe_mode" in value:
        if value["keyframe_mode"] not in KEYFRAME_MODES:
            raise _Reject(ErrorCode.INVALID_VIDEO_CONFIG, f"keyframe_mode {value['keyframe_mode']!r}")
        out["keyframe_mode"] = value["keyframe_mode"]
    return out


_RESERVED_FORMS = {KEYFRAMES_KEY: KEYFRAMES_FORM, VIDEO_CONFIG_KEY: CONFIG_FORM}


def _reserved(key: str, value: Any, untyped: bool) -> Any:
    return _keyframes(value, untyped) if key == KEYFRAMES_KEY else _video_config(value, untyped)


def validate_reserved(
    metadata: Mapping[str, Any], *, kind: str, file: str
) -> tuple[dict[str, Any], list[ItemError]]:
    """Normalise ``keyframes``/``config`` of a merged item; refuse them unless ``kind`` is a video.

    Returns a copy with the reserved keys normalised (bad and ``None`` ones removed) and the
    errors. Idempotent: already typed values pass unchanged.
    """
    out = dict(metadata)
    errors = []
    for key in sorted(set(RESERVED_KEYS) & set(out)):
        value = out.pop(key)
        if value is None:
            continue
        if kind != VIDEO_KIND:
            code = ErrorCode.KEYFRAMES_NOT_VIDEO if key == KEYFRAMES_KEY else ErrorCode.INVALID_VIDEO_CONFIG
            errors.append(
                ItemError.of(
                    code,
                    file,
                    key=key,
                    expected=f"no {key!r} on a {kind}",
                    value=value,
                    detail="only videos take this key",
                )
            )
            continue
        try:
            out[key] = _reserved(key, value, untyped=False)
        except _Reject as rej:
            errors.append(_error(rej, file, key, _RESERVED_FORMS[key], value))
    return out, errors


def check_keyframes_in_video(
    metadata: Mapping[str, Any], *, frames: int | None, duration: float | None, file: str
) -> ItemError | None:
    """A keyframe past the end of a probed video (frame mode: ``>= frames``; seconds mode:
    ``> duration``), or ``None``. Nothing is checked when the video was not probed."""
    keyframes = metadata.get(KEYFRAMES_KEY) or []
    seconds = (metadata.get(VIDEO_CONFIG_KEY) or {}).get("keyframe_mode") == "seconds"
    limit: float | None = duration if seconds else frames
    if limit is None or not keyframes:
        return None
    last = max(keyframes)
    if (last > limit) if seconds else (last >= limit):
        unit = f"at most the duration {limit:g} s" if seconds else f"below the frame count {limit}"
        return ItemError.of(
            ErrorCode.INVALID_KEYFRAMES,
            file,
            key=KEYFRAMES_KEY,
            expected=f"keyframes {unit} (probed)",
            value=last,
        )
    return None


# --- typing a layer -----------------------------------------------------------------------------


def _error(rej: _Reject, file: str, key: str, expected: str, value: Any) -> ItemError:
    return ItemError.of(
        rej.code, file, key=key, expected=expected, value=value, detail=rej.detail, has_value=True
    )


def _json_value(value: Any) -> Any:
    """A JSON-safe copy of an untyped value; raise :class:`_Reject` when there is none."""
    value = _native(value)
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Reject(ErrorCode.TYPE_MISMATCH, "not a finite number")
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _json_value(v) for k, v in value.items()}
    raise _Reject(ErrorCode.TYPE_MISMATCH, f"{type(value).__name__} is not a JSON value")


def _unknown(
    key: str,
    value: Any,
    *,
    schema: MetadataSchema,
    file: str,
    policy: UnknownKeyPolicy,
    result: TypedMetadata,
) -> None:
    expected = f"a key declared in the schema {schema.file}"
    if policy == "reject":
        result.errors.append(ItemError.of(ErrorCode.UNKNOWN_KEY, file, key=key, expected=expected))
        return
    problem = key_problem(key)
    if problem is not None:
        result.errors.append(
            ItemError.of(ErrorCode.INVALID_KEY, file, key=key, expected=KEY_FORM, detail=problem)
        )
        return
    try:
        result.values[key] = _json_value(value)
    except _Reject as rej:
        result.errors.append(_error(rej, file, key, "a JSON value", value))
        return
    if policy == "warn":
        result.warnings.append(
            ItemError.of(ErrorCode.UNKNOWN_KEY, file, key=key, expected=expected, detail="kept untyped")
        )


def type_metadata(
    values: Mapping[Any, Any],
    schema: MetadataSchema,
    *,
    file: str,
    untyped: bool,
    unknown_keys: UnknownKeyPolicy,
) -> TypedMetadata:
    """Type one layer's values; each bad key becomes an error, the others come out typed."""
    result = TypedMetadata()
    specs = schema.keys
    for key, value in values.items():
        if untyped and isinstance(value, str) and value == "":
            continue
        if not isinstance(key, str):
            result.errors.append(
                ItemError.of(
                    ErrorCode.INVALID_KEY,
                    file,
                    key=repr(key),
                    expected=KEY_FORM,
                    detail="keys must be strings",
                )
            )
            continue
        if value is None:
            result.values[key] = None
            continue
        spec = specs.get(key)  # never a reserved key: the schema may not declare them
        if spec is None and key not in RESERVED_KEYS:
            _unknown(key, value, schema=schema, file=file, policy=unknown_keys, result=result)
            continue
        try:
            if spec is None:
                result.values[key] = _reserved(key, value, untyped)
            else:  # _coerce, inline: this runs for every value
                plain = value if type(value) in _PLAIN else _native(value)
                result.values[key] = _COERCE[type(spec)](spec, plain, untyped)
        except _Reject as rej:
            expected = _RESERVED_FORMS[key] if spec is None else expected_form(spec)
            result.errors.append(_error(rej, file, key, expected, value))
    return result


# --- flattening and mapping ---------------------------------------------------------------------


def flatten(
    values: Mapping[Any, Any], sep: str = ".", *, file: str
) -> tuple[dict[Any, Any], list[ItemError]]:
    """Nested objects -> ``sep``-joined keys; conflicting entries become ``FLATTEN_CONFLICT`` errors."""
    out: dict[Any, Any] = {}
    conflicted: set[str] = set()
    errors: list[ItemError] = []

    def put(key: Any, value: Any) -> None:
        if key in conflicted:
            return
        if key in out:
            first = out.pop(key)
            conflicted.add(key)
            errors.append(
                ItemError.of(
                    ErrorCode.FLATTEN_CONFLICT,
                    file,
                    key=key,
                    expected="one value per key",
                    value=[first, value],
                    detail="two entries flatten to this key",
                )
            )
            return
        out[key] = value

    def walk(prefix: str, obj: Mapping[Any, Any]) -> None:
        for name, value in obj.items():
            if not isinstance(name, str):
                errors.append(
                    ItemError.of(
                        ErrorCode.INVALID_KEY,
                        file,
                        key=f"{prefix}{sep}{name!r}",
                        expected=KEY_FORM,
                        detail="keys must be strings",
                    )
                )
                continue
            key = f"{prefix}{sep}{name}"
            if isinstance(value, Mapping):
                walk(key, value)
            else:
                put(key, value)

    for name, value in values.items():
        if isinstance(name, str) and name not in RESERVED_KEYS and isinstance(value, Mapping):
            walk(name, value)
        else:
            put(name, value)
    return out, errors


class MetadataMapping(BaseModel):
    """Per-source reshaping of sidecar keys before typing; see the module docstring for the order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flatten: bool = False
    drop: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict)
    prefix: str | None = None
    static: dict[str, Any] = Field(default_factory=dict)

    @field_validator("prefix")
    @classmethod
    def _valid_prefix(cls, prefix: str | None) -> str | None:
        if prefix is not None and (key_problem(prefix) or prefix.endswith(".") or prefix in RESERVED_KEYS):
            raise ValueError(f"prefix {prefix!r}: expected {KEY_FORM}, not ending with '.'")
        return prefix

    @model_validator(mode="after")
    def _valid_keys(self) -> MetadataMapping:
        targets = list(self.rename.values())
        repeated = sorted({t for t in targets if targets.count(t) > 1})
        if repeated:
            raise ValueError(f"rename: several keys renamed to {repeated}")
        both = sorted(set(self.drop) & set(self.rename))
        if both:
            raise ValueError(f"keys both dropped and renamed: {both}")
        for key in [*targets, *self.static]:
            if key not in RESERVED_KEYS and key_problem(key):
                raise ValueError(f"key {key!r}: expected {KEY_FORM} ({key_problem(key)})")
        return self

    def _final_key(self, key: Any) -> Any:
        key = self.rename.get(key, key) if isinstance(key, str) else key
        if self.prefix is None or not isinstance(key, str) or key in RESERVED_KEYS:
            return key
        return f"{self.prefix}.{key}"

    @property
    def reshapes(self) -> bool:
        """Whether :meth:`apply` changes any key (flatten, drop, rename or prefix)."""
        return bool(self.flatten or self.drop or self.rename or self.prefix is not None)

    def apply(self, values: Mapping[Any, Any], *, file: str) -> tuple[dict[Any, Any], list[ItemError]]:
        """Flatten, drop, rename and prefix one layer's keys (not ``static``; not typed)."""
        if not self.reshapes:
            return dict(values), []  # nothing to reshape: every key stays as it is
        flat, errors = flatten(values, file=file) if self.flatten else (dict(values), [])
        out: dict[Any, Any] = {}
        conflicted: set[Any] = set()
        for key, value in flat.items():
            if key in self.drop:
                continue
            final = self._final_key(key)
            if final in conflicted:
                continue
            if final in out:
                out.pop(final)
                conflicted.add(final)
                errors.append(
                    ItemError.of(
                        ErrorCode.MAPPING_CONFLICT,
                        file,
                        key=str(final),
                        expected="one source key per key",
                        detail="rename onto a present key",
                    )
                )
                continue
            out[final] = value
        return out, errors

    def static_layer(
        self, schema: MetadataSchema, *, file: str, unknown_keys: UnknownKeyPolicy
    ) -> TypedMetadata:
        """``static`` values typed as the lowest layer; ``file`` names the config that holds them."""
        return type_metadata(self.static, schema, file=file, untyped=False, unknown_keys=unknown_keys)


def map_and_type(
    values: Mapping[Any, Any],
    schema: MetadataSchema,
    mapping: MetadataMapping | None,
    *,
    file: str,
    untyped: bool,
    unknown_keys: UnknownKeyPolicy,
) -> TypedMetadata:
    """Steps 1-5 for one sidecar layer: the usual entry point for sidecar parsers."""
    if mapping is None or not mapping.reshapes:  # type_metadata only reads its input
        return type_metadata(values, schema, file=file, untyped=untyped, unknown_keys=unknown_keys)
    mapped, errors = mapping.apply(values, file=file)
    typed = type_metadata(mapped, schema, file=file, untyped=untyped, unknown_keys=unknown_keys)
    typed.errors[:0] = errors
    return typed


_CANONICAL = compact(sort_keys=True)


def metadata_fingerprint(typed: Mapping[str, Any]) -> str:
    """SHA-256 hex of canonical JSON (sorted keys, no spaces, UTF-8): equal dicts, equal hashes."""
    return hashlib.sha256(_CANONICAL(typed)).hexdigest()
