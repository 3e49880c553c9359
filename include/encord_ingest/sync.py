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
plans with :func:`plan_item` and :func:`plan_bundles`, and records one :class:`ItemResult`
per object URL in ``results/<name>.sync.json`` (:class:`SyncReport`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from typing_extensions import TypedDict

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.fastjson import pydantic_compatible
from encord_ingest.results import ResultFile, parse_result_file
from encord_ingest.schema import RESERVED_KEYS
from encord_ingest.sidecars.merge import merge_layers

#: One ``patch-bulk`` request carries at most this many item patches (the SDK bundle limit).
MAX_BUNDLE_SIZE = 1000

#: Default cap on the JSON body of one ``patch-bulk`` request. Encord publishes no limit; 1 MiB is
#: the smallest common proxy default (nginx). Measure yours with the contract check.
MAX_BUNDLE_BYTES = 1024 * 1024


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
    return join_lines([row.model_dump_json().encode("utf-8") for row in rows])


def join_lines(lines: Sequence[bytes]) -> bytes:
    """JSON lines (each from :func:`change_line` or ``model_dump_json``) as a chunk's bytes."""
    return b"\n".join(lines) + b"\n" if lines else b""


def change_line(
    object_url: str, item_uuid: str | None, metadata: dict[str, Any], source_files: list[str]
) -> bytes:
    """The JSON line of a :class:`MetadataChange` of these fields (checked by the caller), as its
    ``model_dump_json`` writes it, without building the model (the planner writes one per item)."""
    fields: dict[str, Any] = {
        "object_url": object_url,
        "item_uuid": item_uuid,
        "metadata": metadata,
        "source_files": source_files,
    }
    line = pydantic_compatible(fields)
    if line is None:
        line = MetadataChange.model_construct(**fields).model_dump_json().encode("utf-8")
    return line


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
    current: dict[str, Any] = Field(default_factory=dict)
    """What Encord held when the plan was made."""

    @property
    def changed(self) -> bool:
        return not self.diff.is_empty

    @property
    def removes_keys(self) -> bool:
        """Whether the write removes a key Encord holds, at any depth: then the right body
        depends on the server's PATCH semantics, and the write is checked (:attr:`patch_body`)."""
        return self.patch_body != self.final

    @property
    def patch_body(self) -> dict[str, Any]:
        """The first body to send: the final dict, with every removed key, at any depth, set to
        ``null`` (a JSON merge patch, RFC 7386, from what Encord holds to the final dict).

        Without removals this is the final dict itself, right under every PATCH semantics
        (replace, shallow merge, recursive merge). With removals it is exactly right under
        recursive merge; under replace or a shallow merge it leaves nulls behind, which
        :func:`holds_exactly` detects and :attr:`repair_body` (the final dict) then corrects.
        """
        return _removal_patch(present_or_empty(self.current), self.final)

    @property
    def repair_body(self) -> dict[str, Any]:
        """The second body, sent only when Encord does not hold :attr:`final` exactly after the
        first: the final dict without any ``null`` (replace: exact; shallow merge: every key it
        sends is replaced whole)."""
        return self.final


def present_or_empty(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """:func:`present` of ``metadata``, ``{}`` for ``None``."""
    return present(metadata or {})


def _removal_patch(current: Mapping[str, Any], final: Mapping[str, Any]) -> dict[str, Any]:
    """``final`` plus a ``null`` for each key of ``current`` it lacks, recursing into objects that
    are objects on both sides."""
    body: dict[str, Any] = {key: None for key in current if key not in final}
    for key, value in final.items():
        held = current.get(key)
        if isinstance(value, Mapping) and isinstance(held, Mapping):
            body[key] = _removal_patch(held, value)
        else:
            body[key] = value
    return body


def holds_exactly(stored: Mapping[str, Any] | None, final: Mapping[str, Any]) -> bool:
    """Whether Encord holds ``final`` exactly: no stored ``null`` anywhere, nothing left over
    (``true`` != ``1``, ``1`` == ``1.0``, key order ignored)."""
    return bool(_canonical(dict(stored or {})) == _canonical(dict(final)))


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
        current=dict(current),
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


class WriteStatus(StrEnum):
    """The outcome of one item (or table row) of a metadata write: ingestion sync and metadata
    operations alike."""

    UNCHANGED = "unchanged"
    UPDATED = "updated"
    WOULD_UPDATE = "would_update"
    """Dry run: the item differs and would be written."""
    REJECTED = "rejected"
    """Metadata operations: the row (or the metadata for this target) breaks the schema or names
    no single item."""
    NOT_FOUND = "not_found"
    FAILED = "failed"
    """Encord refused the write, it failed after retries, or it was not written."""


class ItemResult(BaseModel):
    """The result of one item of a metadata write (a line of a sync or operation report)."""

    model_config = ConfigDict(frozen=True)

    status: WriteStatus
    where: str | None = None
    """Metadata operations: the table row (``row 3``), or ``None``."""
    item_uuid: str | None = None
    label: str | None = None
    diff: MetadataDiff | None = None
    errors: list[ItemError] = Field(default_factory=list)
    warnings: list[ItemError] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _single_error(cls, data: Any) -> Any:
        """Sync reports written before results were unified carry one ``error``."""
        if isinstance(data, dict) and "error" in data:
            data = {**data, "errors": [data["error"]]}
            data.pop("error")
        return data

    @property
    def error(self) -> ItemError | None:
        """The first error, if any."""
        return self.errors[0] if self.errors else None


def write_result(
    plan: ItemPlan,
    *,
    dry_run: bool,
    written: Collection[str] = (),
    failed: Mapping[str, str] | None = None,
    label: str | None = None,
) -> ItemResult:
    """The result of one planned item, given which item UUIDs were written or failed.

    A changed item that was neither written nor failed (another plan for the same item took its
    place in the bundle, :func:`plan_bundles`) is FAILED with that reason: Encord does not hold
    what this plan asked for, and a failed item is retried by the next run.
    """
    where = label or plan.object_url
    failed = failed or {}
    common: dict[str, Any] = {"item_uuid": plan.item_uuid, "diff": plan.diff, "label": label}
    if plan.item_uuid in failed:
        error = ItemError.of(ErrorCode.PATCH_FAILED, where, detail=failed[plan.item_uuid])
        return ItemResult(status=WriteStatus.FAILED, errors=[error], **common)
    if not plan.changed:
        return ItemResult(status=WriteStatus.UNCHANGED, **common)
    if dry_run:
        return ItemResult(status=WriteStatus.WOULD_UPDATE, **common)
    if plan.item_uuid in written:
        return ItemResult(status=WriteStatus.UPDATED, **common)
    detail = f"not written: another change for Encord item {plan.item_uuid} in the same run replaced it"
    error = ItemError.of(ErrorCode.PATCH_FAILED, where, detail=detail)
    return ItemResult(status=WriteStatus.FAILED, errors=[error], **common)


class SyncCounts(BaseModel):
    """What a sync run did; small enough for XCom."""

    examined: int = 0
    changed: int = 0
    written: int = 0
    failed: int = 0
    not_found: int = 0
    patch_calls: int = 0
    """PATCH requests that carried a bundle (a bundle retried after a transient error is one call)."""
    patch_attempts: int = 0
    """Every PATCH attempt, retries included."""


class SyncReport(ResultFile):
    """The whole ``results/<name>.sync.json`` document."""

    chunk_uri: str
    mode: SyncMode
    dry_run: bool
    counts: SyncCounts
    items: dict[str, ItemResult]
    """object URL -> result"""


class _SyncRow(TypedDict):
    errors: NotRequired[list[ItemError]]
    error: NotRequired[ItemError]
    """Sync reports written before results were unified carry one ``error``."""


class _SyncRows(TypedDict):
    counts: SyncCounts
    items: dict[str, _SyncRow]


_SYNC_ROWS = TypeAdapter(_SyncRows)
SYNC_FORM = (
    'a sync result: {"counts": {"examined": 0, ...}, "items": {"<object URL>": {"status": "...", '
    '"errors": [{"code": "...", "file": "...", ...}]}}}'
)


def sync_failures(data: bytes, *, source: str) -> tuple[dict[str, int], dict[str, str]]:
    """The counts of a sync result file and its failed URLs with their reasons, without building a
    model per item (the file's shape is checked in one pass; only errors become models)."""
    rows = parse_result_file(_SYNC_ROWS.validate_json, data, source=source, form=SYNC_FORM)
    failed = {}
    for url, row in rows["items"].items():
        errors = row.get("errors") or ([row["error"]] if "error" in row else [])
        if errors:
            failed[url] = errors[0].message
    return rows["counts"].model_dump(), failed


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
