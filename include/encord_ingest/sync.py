"""Metadata sync, Airflow-free: decide the final ``clientMetadata`` of each item on the client.

Encord's PATCH semantics for ``clientMetadata`` (merge or replace) are not documented, so the
pipeline never relies on them: it reads what Encord holds, computes the whole final dict here,
writes it only when it differs, and the result is the same under either server behaviour.

A key whose value is ``null`` counts as absent. Removing a key is written as ``key: null``:
under replace semantics Encord then stores a null (equivalent to absent), under a shallow
merge it overwrites the old value with null, and under JSON merge-patch it deletes the key;
all three read back as the same final dict, so a second run writes nothing.

The planner writes one :class:`MetadataChange` row per item to ``metadata/<name>.jsonl`` in the
run folder (:func:`write_changes`); the sync operator reads them back (:func:`read_changes`),
plans with :func:`plan_item` and :func:`plan_bundles`, and records one :class:`SyncItemResult`
per object URL in ``results/<name>.sync.json`` (:class:`SyncReport`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from encord_ingest.errors import ItemError
from encord_ingest.sidecars.merge import merge_layers

#: One ``patch-bulk`` request carries at most this many item patches (the SDK bundle limit).
MAX_BUNDLE_SIZE = 1000

#: Default cap on the JSON body of one ``patch-bulk`` request. Encord publishes no limit; 1 MiB is
#: the smallest common proxy default (nginx). Measure yours with the contract check.
MAX_BUNDLE_BYTES = 1024 * 1024

#: Keys Encord itself interprets (video keyframes and sampling config), handled by
#: :class:`ReservedKeysPolicy` rather than like ordinary metadata.
RESERVED_KEYS: tuple[str, ...] = ("keyframes", "config")


class SyncMode(StrEnum):
    """How the sidecar metadata combines with what Encord holds."""

    MERGE = "merge"
    """Keys from the sidecars win, every other key Encord holds is kept."""
    REPLACE = "replace"
    """The final dict is exactly the sidecar keys (reserved keys per :class:`ReservedKeysPolicy`)."""


class ReservedKeysPolicy(StrEnum):
    """Who owns ``keyframes`` and ``config``."""

    PRESERVE = "preserve"
    """Sidecars set them when they have them; otherwise Encord's values are kept (both modes)."""
    SIDECAR = "sidecar"
    """Ordinary keys: in ``replace`` mode they disappear when the sidecars do not set them."""
    ENCORD = "encord"
    """Encord's values are always kept and sidecar values for them are ignored."""


class MetadataChange(BaseModel):
    """One planned metadata change: the typed metadata the sidecars say one item should carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    object_url: str = Field(min_length=1)
    item_uuid: str | None = None
    """Encord item UUID when the ledger knows it; ``None``: resolve by listing the folder."""
    metadata: dict[str, Any]
    source_files: list[str] = Field(default_factory=list)


def read_changes(data: bytes, *, source: str = "<metadata changes>") -> list[MetadataChange]:
    """Parse a JSON-lines chunk; a bad line raises ``ValueError`` naming ``source`` and the line."""
    rows: list[MetadataChange] = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(MetadataChange.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "row"
            raise ValueError(f"{source}: line {number}: {where}: {first['msg']}") from None
    return rows


def write_changes(rows: Iterable[MetadataChange]) -> bytes:
    """Serialise rows as JSON lines (one object per line, UTF-8, trailing newline)."""
    lines = [row.model_dump_json() for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def final_metadata(
    current: Mapping[str, Any],
    desired: Mapping[str, Any],
    mode: SyncMode,
    reserved: ReservedKeysPolicy = ReservedKeysPolicy.PRESERVE,
) -> dict[str, Any]:
    """The whole dict the item should carry after the sync (no ``null`` values at any depth).

    ``merge`` combines ``desired`` over ``current`` by the sidecar layers' rule
    (:func:`~encord_ingest.sidecars.merge.merge_layers`): object over object recursively, lists
    and scalars replace whole, so nested keys someone else set in Encord are kept.
    """
    current = present(current)
    final = merge_layers([current, desired]) if mode is SyncMode.MERGE else present(desired)
    for key in RESERVED_KEYS:
        keep_encord = reserved is ReservedKeysPolicy.ENCORD or (
            reserved is ReservedKeysPolicy.PRESERVE and key not in desired
        )
        if not keep_encord:
            continue
        if key in current:
            final[key] = current[key]
        else:
            final.pop(key, None)
    return present(final)


def present(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without ``null`` object members, at any depth (``null`` counts as absent; a
    ``null`` inside a list is a value and stays)."""
    return merge_layers([metadata])


def _canonical(value: Any) -> Any:
    """A comparable form: JSON numbers compare by value (1 == 1.0) but booleans stay distinct."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


def same_metadata(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    """True when both dicts are equal as JSON documents (key order ignored, ``true`` != ``1``,
    ``null`` values count as absent)."""
    return bool(_canonical(present(left)) == _canonical(present(right)))


class MetadataDiff(BaseModel):
    """Key-level difference between what Encord holds and the final dict."""

    model_config = ConfigDict(frozen=True)

    added: dict[str, Any] = Field(default_factory=dict)
    changed: dict[str, tuple[Any, Any]] = Field(default_factory=dict)
    """key -> (value in Encord, final value)"""
    removed: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def diff_metadata(current: Mapping[str, Any], final: Mapping[str, Any]) -> MetadataDiff:
    """What a write of ``final`` would change relative to ``current`` (``null`` = absent)."""
    current, final = present(current), present(final)
    added = {key: value for key, value in final.items() if key not in current}
    removed = {key: value for key, value in current.items() if key not in final}
    changed = {
        key: (current[key], value)
        for key, value in final.items()
        if key in current and _canonical(current[key]) != _canonical(value)
    }
    return MetadataDiff(added=added, changed=changed, removed=removed)


class ItemPlan(BaseModel):
    """The sync decision for one item whose current metadata is known."""

    model_config = ConfigDict(frozen=True)

    object_url: str
    item_uuid: str
    final: dict[str, Any]
    diff: MetadataDiff

    @property
    def changed(self) -> bool:
        return not self.diff.is_empty

    @property
    def patch_body(self) -> dict[str, Any]:
        """What to send: the final dict, with each removed key set to ``null``."""
        return {**self.final, **dict.fromkeys(self.diff.removed)}


def plan_item(
    change: MetadataChange,
    item_uuid: str,
    current: Mapping[str, Any],
    mode: SyncMode,
    reserved: ReservedKeysPolicy = ReservedKeysPolicy.PRESERVE,
) -> ItemPlan:
    """Compute the final dict of one item and its difference from what Encord holds."""
    final = final_metadata(current, change.metadata, mode, reserved)
    return ItemPlan(
        object_url=change.object_url,
        item_uuid=item_uuid,
        final=final,
        diff=diff_metadata(current, final),
    )


def plan_bundles(plans: Sequence[ItemPlan], size: int = MAX_BUNDLE_SIZE) -> list[list[ItemPlan]]:
    """The changed items, in order, in bundles of at most ``size`` (<= 1000); one item once.

    When the same item appears more than once, the last plan wins (as in an SDK bundle).
    """
    if not 1 <= size <= MAX_BUNDLE_SIZE:
        raise ValueError(f"bundle size must be between 1 and {MAX_BUNDLE_SIZE}, got {size}")
    latest: dict[str, ItemPlan] = {}
    for plan in plans:
        latest.pop(plan.item_uuid, None)
        latest[plan.item_uuid] = plan
    changed = [plan for plan in latest.values() if plan.changed]
    return [changed[start : start + size] for start in range(0, len(changed), size)]


class SyncStatus(StrEnum):
    """The outcome of one item in one sync run."""

    UNCHANGED = "unchanged"
    UPDATED = "updated"
    WOULD_UPDATE = "would_update"
    """Dry run: the item differs and would be written."""
    NOT_FOUND = "not_found"
    FAILED = "failed"


class SyncItemResult(BaseModel):
    """One line of ``results/<name>.sync.json``."""

    model_config = ConfigDict(frozen=True)

    status: SyncStatus
    item_uuid: str | None = None
    diff: MetadataDiff | None = None
    error: ItemError | None = None


class SyncCounts(BaseModel):
    """What a sync run did; small enough for XCom."""

    examined: int = 0
    changed: int = 0
    written: int = 0
    failed: int = 0
    not_found: int = 0
    patch_calls: int = 0


class SyncReport(BaseModel):
    """The whole ``results/<name>.sync.json`` document."""

    chunk_uri: str
    mode: SyncMode
    dry_run: bool
    counts: SyncCounts
    items: dict[str, SyncItemResult]
    """object URL -> result"""

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=1, exclude_none=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> SyncReport:
        return cls.model_validate(json.loads(data))


def patch_body_bytes(item_uuid: str, metadata: Mapping[str, Any]) -> int:
    """Bytes one item adds to a ``patch-bulk`` body: ``"<uuid>":{"clientMetadata":{...}},``."""
    entry = {item_uuid: {"clientMetadata": metadata}}
    return len(json.dumps(entry, separators=(",", ":")).encode("utf-8"))


def split_by_size(sizes: Sequence[int], *, max_count: int, max_bytes: int) -> list[range]:
    """Consecutive index ranges of at most ``max_count`` entries and ``max_bytes`` in total.

    An entry larger than ``max_bytes`` on its own gets a range of its own (the server decides).
    """
    if max_count < 1 or max_bytes < 1:
        raise ValueError(f"max_count and max_bytes must be positive, got {max_count} and {max_bytes}")
    ranges: list[range] = []
    start, total = 0, 0
    for index, size in enumerate(sizes):
        if index > start and (index - start >= max_count or total + size > max_bytes):
            ranges.append(range(start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        ranges.append(range(start, len(sizes)))
    return ranges
