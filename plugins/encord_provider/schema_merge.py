"""Merge the schema declared in the repo into the organisation's metadata schema.

Encord's schema belongs to the whole organisation and a save replaces it whole, so the only safe
write is read, merge, write: add the keys that are missing, add missing enum values, and leave
every other key (other teams' keys included) exactly as it was. Changing the type of an existing
key or deleting a key happens only when the caller asks for it by name.

The merge works on the schema DOCUMENT as Encord stores it (``{key: {"ty": ..., ...}}``), not on
the SDK's ``MetadataSchema``: that class re-serialises every key through its models on
``save()``, which drops fields it does not model (``description``, ...), rewrites
``long_string`` as ``text`` and refuses types newer than the SDK. Here a key the plan does not
change is written back byte for byte as read; a key that is added gets exactly the form the SDK
itself would write (:func:`sdk_entry`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from encord_ingest.errors import ConfigError
from encord_ingest.schema import SCALAR_TYPES, EmbeddingSpec, EnumSpec, KeySpec, MetadataSchema, sdk_call


class ExistingKey(BaseModel):
    """What the organisation schema holds for one key."""

    model_config = ConfigDict(frozen=True)

    type: str
    """An Encord type name, ``deleted`` for a tombstone, or ``unsupported`` (unknown to the SDK)."""
    values: tuple[str, ...] = ()
    size: int | None = None

    def describe(self) -> str:
        if self.type == "enum":
            return f"enum{list(self.values)}"
        if self.type == "embedding":
            return f"embedding(size={self.size})"
        return self.type


def describe_spec(spec: KeySpec) -> str:
    if isinstance(spec, EnumSpec):
        return f"enum{list(spec.values)}"
    if isinstance(spec, EmbeddingSpec):
        return f"embedding(size={spec.size})"
    return spec.type


#: The scalar type names the SDK accepts as aliases (``MetadataSchemaScalarType._missing_``).
_HINT_ALIASES = {"string": "varchar", "long_string": "text"}
#: Most values an enum may hold (the SDK refuses 256 and more).
MAX_ENUM_VALUES = 255


def read_existing(document: Mapping[str, Any]) -> dict[str, ExistingKey]:
    """Every key of a schema document with its type, without changing anything.

    Types the pinned SDK does not model (a future type, ``user``, a malformed entry) read as
    ``unsupported``: they are kept and never touched, and declaring such a key is refused.
    """
    return {key: existing_key(entry) for key, entry in document.items()}


def existing_key(entry: Any) -> ExistingKey:
    """The type of one stored schema entry (``{"ty": ...}``)."""
    kind = entry.get("ty") if isinstance(entry, Mapping) else None
    if kind == "tombstone":
        return ExistingKey(type="deleted")
    if kind == "variant":
        hint = str(entry.get("hint", "text"))
        kind = _HINT_ALIASES.get(hint, hint)
    if kind in SCALAR_TYPES or kind == "geospatial":
        return ExistingKey(type=str(kind))
    values = entry.get("values") if kind == "enum" else None
    if isinstance(values, list) and all(isinstance(value, str) for value in values):
        return ExistingKey(type="enum", values=tuple(sorted(values)))
    size = entry.get("size") if kind == "embedding" else None
    if isinstance(size, int) and not isinstance(size, bool):
        return ExistingKey(type="embedding", size=size)
    return ExistingKey(type="unsupported")


class KeyChange(BaseModel):
    """One change to the organisation schema."""

    model_config = ConfigDict(frozen=True)

    key: str
    action: Literal["add", "add_enum_values", "retype", "delete"]
    before: str | None = None
    after: str | None = None
    enum_values: tuple[str, ...] = ()
    """For ``add_enum_values``: the values added."""

    def describe(self) -> str:
        if self.action == "add":
            return f"+ {self.key}: {self.after}"
        if self.action == "add_enum_values":
            return f"~ {self.key}: add enum values {list(self.enum_values)}"
        if self.action == "retype":
            return f"~ {self.key}: {self.before} -> {self.after}"
        return f"- {self.key}: {self.before}"


class SchemaPlan(BaseModel):
    """What applying the declared schema would do."""

    changes: list[KeyChange] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    kept_foreign: list[str] = Field(default_factory=list)
    """Keys the organisation holds that the declared schema does not mention: never touched."""
    enum_values_kept: dict[str, list[str]] = Field(default_factory=dict)
    """Enum values Encord holds that the declared schema leaves out: kept, never removed."""

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def describe(self) -> str:
        lines = [change.describe() for change in self.changes] or ["(no change)"]
        lines.append(f"unchanged: {len(self.unchanged)}, other keys kept: {len(self.kept_foreign)}")
        return "\n".join(lines)


def _retype_problem(key: str, before: ExistingKey, spec: KeySpec) -> str | None:
    if before.type not in SCALAR_TYPES or spec.type not in SCALAR_TYPES:
        return (
            f"key {key!r}: the SDK can only retype between scalar types "
            f"({', '.join(SCALAR_TYPES)}); delete the key in Encord first"
        )
    return None


def _plan_key(
    key: str, spec: KeySpec, before: ExistingKey, allow_retype: bool, file: str
) -> KeyChange | None:
    if before.type == "deleted":
        raise ConfigError(
            f"{file}: key {key!r}: expected a key that is not deleted in the organisation schema, "
            f"but Encord holds it as deleted; restore it in Encord or use another key"
        )
    if isinstance(spec, EnumSpec) and before.type == "enum":
        missing = tuple(value for value in spec.values if value not in before.values)
        if not missing:
            return None
        return KeyChange(key=key, action="add_enum_values", before=before.describe(), enum_values=missing)
    if isinstance(spec, EmbeddingSpec) and before.type == "embedding" and before.size == spec.size:
        return None
    if spec.type == before.type and spec.type in SCALAR_TYPES:
        return None
    after = describe_spec(spec)
    if not allow_retype:
        raise ConfigError(
            f"{file}: key {key!r}: declared {after} but the organisation schema holds "
            f"{before.describe()}; retyping a shared key needs allow_retype=True"
        )
    problem = _retype_problem(key, before, spec)
    if problem:
        raise ConfigError(f"{file}: {problem}")
    return KeyChange(key=key, action="retype", before=before.describe(), after=after)


def plan_schema(
    existing: dict[str, ExistingKey],
    declared: MetadataSchema,
    *,
    allow_retype: bool = False,
    delete_keys: Iterable[str] = (),
) -> SchemaPlan:
    """Compare the declared schema with the organisation's; raise ``ConfigError`` on a refused change."""
    plan = SchemaPlan()
    for key, spec in declared.keys.items():
        before = existing.get(key)
        if before is None:
            plan.changes.append(KeyChange(key=key, action="add", after=describe_spec(spec)))
            continue
        change = _plan_key(key, spec, before, allow_retype, declared.file)
        if change is None:
            plan.unchanged.append(key)
        else:
            plan.changes.append(change)
        if isinstance(spec, EnumSpec) and before.type == "enum":
            dropped = [value for value in before.values if value not in spec.values]
            if dropped:
                plan.enum_values_kept[key] = dropped
    for key in delete_keys:
        if key in declared.keys:
            raise ConfigError(f"{declared.file}: key {key!r}: asked to delete a key the schema declares")
        before = existing.get(key)
        if before is None or before.type == "deleted":
            continue
        plan.changes.append(KeyChange(key=key, action="delete", before=before.describe()))
    touched = {change.key for change in plan.changes}
    plan.kept_foreign = sorted(key for key in existing if key not in declared.keys and key not in touched)
    return plan


def apply_plan(document: Mapping[str, Any], plan: SchemaPlan, declared: MetadataSchema) -> dict[str, Any]:
    """The schema document after the planned changes; every key the plan does not name is a copy
    of what was read, field for field (``document`` itself is not changed)."""
    result = copy.deepcopy(dict(document))
    for change in plan.changes:
        if change.action == "delete":
            result[change.key] = {"ty": "tombstone", "deleted_ty": result[change.key]}
        elif change.action == "add_enum_values":
            result[change.key] = _with_enum_values(result[change.key], change, declared.file)
        else:
            result[change.key] = sdk_entry(declared.keys[change.key])
    return result


def _with_enum_values(entry: dict[str, Any], change: KeyChange, file: str) -> dict[str, Any]:
    """The enum entry with the new values added (sorted, as the SDK writes them); its other
    fields are kept."""
    values = sorted([*entry.get("values", []), *change.enum_values])
    if len(values) > MAX_ENUM_VALUES:
        raise ConfigError(
            f"{file}: key {change.key!r}: expected at most {MAX_ENUM_VALUES} enum values in the "
            f"organisation schema, adding {list(change.enum_values)} makes {len(values)}"
        )
    return {**entry, "values": values}


class _NoStoredSchema:
    """Stands in for the SDK's API client when a scratch ``MetadataSchema`` is built: it reads an
    empty schema and is never asked to write."""

    def get(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def sdk_entry(spec: KeySpec) -> dict[str, Any]:
    """The stored form of a new key, exactly as the SDK's own ``add_*`` call would write it."""
    from encord.metadata_schema import MetadataSchema as SdkSchema

    scratch = SdkSchema(_NoStoredSchema())  # type: ignore[arg-type]
    method, kwargs = sdk_call(spec)
    getattr(scratch, method)("key", **kwargs)
    entry: dict[str, Any] = json.loads(repr(scratch))["key"]
    return entry
