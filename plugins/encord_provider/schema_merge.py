"""Merge the schema declared in the repo into the organisation's metadata schema.

Encord's schema belongs to the whole organisation and ``MetadataSchema.save()`` replaces it
whole, so the only safe write is read, merge, write: add the keys that are missing, add missing
enum values, and leave every other key (other teams' keys included) exactly as it was. Changing
the type of an existing key or deleting a key happens only when the caller asks for it by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from encord.metadata_schema import MetadataSchema as SdkSchema
from encord.metadata_schema import MetadataSchemaError
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


def read_existing(schema: SdkSchema) -> dict[str, ExistingKey]:
    """Every key of an SDK schema with its type, without changing anything."""
    existing: dict[str, ExistingKey] = {}
    for key in schema.keys():  # noqa: SIM118 - MetadataSchema is not a mapping
        try:
            if schema.is_key_deleted(key):
                existing[key] = ExistingKey(type="deleted")
                continue
            key_type = schema.get_key_type(key)
        except MetadataSchemaError:
            existing[key] = ExistingKey(type="unsupported")
            continue
        if key_type == "enum":
            existing[key] = ExistingKey(type="enum", values=tuple(schema.get_enum_options(key)))
        elif key_type == "embedding":
            existing[key] = ExistingKey(type="embedding", size=schema.get_embedding_size(key))
        else:
            existing[key] = ExistingKey(type=key_type or "unsupported")
    return existing


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


def apply_plan(schema: SdkSchema, plan: SchemaPlan, declared: MetadataSchema) -> None:
    """Make the planned changes on the SDK schema object (in memory; the caller saves)."""
    for change in plan.changes:
        if change.action == "delete":
            schema.delete_key(change.key)
            continue
        if change.action == "add_enum_values":
            schema.add_enum_options(change.key, values=list(change.enum_values))
            continue
        method, kwargs = sdk_call(declared.keys[change.key])
        call: Any = getattr(schema, method)
        call(change.key, **kwargs)
