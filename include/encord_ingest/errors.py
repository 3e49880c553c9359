"""Per-item problems as values.

Bad input never raises out of the core library: parsers, typing and grouping return
:class:`ItemError` values that name the file, the key, the expected form and the offending
value, so one bad sidecar fails one item and the rest of the batch goes on. Exceptions are
kept for errors that are not per item (configuration, auth, a missing bucket).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

VALUE_REPR_LIMIT = 120


class ErrorCode(StrEnum):
    """Every kind of per-item problem the pipeline reports. One place, so reports can group."""

    # Reading a sidecar or table file.
    FILE_TOO_LARGE = "file_too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    INVALID_YAML = "invalid_yaml"
    UNSAFE_YAML = "unsafe_yaml"
    DUPLICATE_KEY = "duplicate_key"
    NOT_AN_OBJECT = "not_an_object"
    INVALID_TABLE = "invalid_table"
    MISSING_FILE_COLUMN = "missing_file_column"
    DUPLICATE_FILE_COLUMN = "duplicate_file_column"
    DUPLICATE_TABLE_ROW = "duplicate_table_row"
    UNSUPPORTED_SIDECAR = "unsupported_sidecar"
    NESTED_TOO_DEEP = "nested_too_deep"
    # Typing values against the metadata schema.
    TYPE_MISMATCH = "type_mismatch"
    VALUE_TOO_LONG = "value_too_long"
    NOT_IN_ENUM = "not_in_enum"
    WRONG_EMBEDDING_SIZE = "wrong_embedding_size"
    INVALID_DATETIME = "invalid_datetime"
    INVALID_UUID = "invalid_uuid"
    UNKNOWN_KEY = "unknown_key"
    INVALID_KEY = "invalid_key"
    INVALID_KEYFRAMES = "invalid_keyframes"
    KEYFRAMES_NOT_VIDEO = "keyframes_not_video"
    INVALID_VIDEO_CONFIG = "invalid_video_config"
    FLATTEN_CONFLICT = "flatten_conflict"
    MAPPING_CONFLICT = "mapping_conflict"
    # Planning items.
    UNKNOWN_KIND = "unknown_kind"
    ORPHAN_SIDECAR = "orphan_sidecar"
    INVALID_DICOM = "invalid_dicom"
    INVALID_ORDER = "invalid_order"
    URL_TOO_LONG = "url_too_long"
    INVALID_URL = "invalid_url"
    PROBE_FAILED = "probe_failed"
    READ_FAILED = "read_failed"
    EMPTY_OBJECT = "empty_object"
    ITEM_TOO_LARGE = "item_too_large"
    # Registering and syncing in Encord.
    UNIT_ERROR = "unit_error"
    JOB_FAILED = "job_failed"
    ITEM_NOT_FOUND = "item_not_found"
    PATCH_FAILED = "patch_failed"
    AMBIGUOUS_TARGET = "ambiguous_target"


def value_repr(value: Any) -> str:
    """A short, log-safe representation of an offending value."""
    text = repr(value)
    if len(text) > VALUE_REPR_LIMIT:
        text = text[: VALUE_REPR_LIMIT - 3] + "..."
    return text


class ItemError(BaseModel):
    """One problem with one input, precise enough to fix without opening the code.

    ``file`` is the object key (or path) of the file at fault, ``key`` the metadata key or
    table column (``None`` when the whole file is at fault), ``expected`` the form that was
    wanted and ``value`` a short repr of what was found.
    """

    model_config = ConfigDict(frozen=True)

    code: ErrorCode
    file: str
    key: str | None = None
    expected: str | None = None
    value: str | None = None
    detail: str | None = None

    @classmethod
    def of(
        cls,
        code: ErrorCode,
        file: str,
        *,
        key: str | None = None,
        expected: str | None = None,
        value: Any = None,
        detail: str | None = None,
        has_value: bool = False,
    ) -> ItemError:
        """Build an error; ``value`` is stored as a truncated repr when given."""
        shown = value_repr(value) if (value is not None or has_value) else None
        return cls(code=code, file=file, key=key, expected=expected, value=shown, detail=detail)

    @property
    def message(self) -> str:
        """One line: ``<file>: key '<key>': expected <form>, got <value> (<detail>) [code]``."""
        parts = [self.file]
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        what = []
        if self.expected is not None:
            what.append(f"expected {self.expected}")
        if self.value is not None:
            what.append(f"got {self.value}")
        if self.detail:
            what.append(self.detail)
        head = ": ".join(parts)
        body = ", ".join(what) if what else self.code.value.replace("_", " ")
        return f"{head}: {body} [{self.code.value}]"

    def __str__(self) -> str:
        return self.message


class ConfigError(ValueError):
    """A configuration file is wrong; the message names the file, the field and the expected form."""
