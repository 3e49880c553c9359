"""Requests: what an operator or a DAG run asks for."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from encord_ingest.errors import ConfigError, value_repr
from encord_ingest.metadata import UnknownKeyPolicy
from encord_ingest.metadata_ops.columns import Scope
from encord_ingest.sync import ReservedKeysPolicy, SyncMode


def _blank_to_none(value: Any) -> Any:
    return None if value in ("", {}, None) else value


def _id_list(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        return [str(item).strip() for item in value if str(item).strip()]
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Scope
    target_ids: list[str] = Field(min_length=1)
    """Folder paths or UUIDs, dataset hashes, project hashes, or group UUIDs / titles."""
    recursive: bool = False
    """Folder scope: include the items of every subfolder."""
    folder: str | None = None
    """Group frames: the folder in which group titles are looked up."""

    _blank = field_validator("folder", mode="before")(_blank_to_none)
    _ids = field_validator("target_ids", mode="before")(_id_list)

    @classmethod
    def parse(cls, values: Mapping[str, Any], *, source: str) -> Self:
        """Validate ``values``; a problem raises :class:`ConfigError` naming ``source`` and the field."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_url=False):
                message = str(error["msg"]).removeprefix("Value error, ")
                if error["loc"]:
                    where = ".".join(str(part) for part in error["loc"])
                    message = f"field {where!r}: {message}, got {value_repr(error.get('input'))}"
                problems.append(message)
            raise ConfigError(f"{source}: " + "; ".join(problems)) from None


class ApplyRequest(_Request):
    """Apply a change table (``table_uri``) or the same ``metadata`` to every target."""

    table_uri: str | None = None
    metadata: dict[str, Any] | None = None
    mode: SyncMode = SyncMode.MERGE
    reserved_keys: ReservedKeysPolicy = ReservedKeysPolicy.PRESERVE
    keyframes_only: bool = False
    """Set only ``keyframes`` and ``config`` (videos only); ``mode`` is then always ``merge``."""
    unknown_keys: UnknownKeyPolicy = "reject"
    dry_run: bool = False

    _blank_source = field_validator("table_uri", "metadata", mode="before")(_blank_to_none)

    @model_validator(mode="after")
    def _one_source(self) -> ApplyRequest:
        if (self.table_uri is None) == (self.metadata is None):
            raise ValueError(
                "give exactly one of 'table_uri' (a change table) and 'metadata' (for every target)"
            )
        if self.keyframes_only and self.table_uri is None:
            raise ValueError("a keyframes import reads 'table_uri' (one row per video)")
        return self

    @property
    def effective_mode(self) -> SyncMode:
        return SyncMode.MERGE if self.keyframes_only else self.mode


class ExportRequest(_Request):
    """Export the metadata of every target to ``<output_uri>/<name>.parquet`` and ``.csv``."""

    output_uri: str = Field(min_length=1)
    name: str = Field(default="metadata", min_length=1)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        """Keep file names portable: anything but letters, digits, ``.``, ``_``, ``-`` becomes ``-``."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "metadata"

    def uris(self) -> tuple[str, str]:
        """(Parquet URI, CSV URI)."""
        base = self.output_uri.rstrip("/")
        return f"{base}/{self.name}.parquet", f"{base}/{self.name}.csv"
