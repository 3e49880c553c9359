"""Planning writes against what Encord holds, and reporting what an operation did."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from pydantic import BaseModel

from encord_ingest.metadata_ops.columns import Scope
from encord_ingest.metadata_ops.resolve import Desired
from encord_ingest.results import ResultFile
from encord_ingest.sync import (
    ItemPlan,
    ItemResult,
    MetadataChange,
    ReservedKeysPolicy,
    SyncMode,
    WriteStatus,
    plan_item,
    write_result,
)


def plan_writes(
    desired: Sequence[Desired],
    mode: SyncMode,
    reserved: ReservedKeysPolicy = ReservedKeysPolicy.PRESERVE,
) -> list[ItemPlan]:
    """One :class:`~encord_ingest.sync.ItemPlan` per desired target, against what Encord holds."""
    plans = []
    for wanted in desired:
        target = wanted.target
        change = MetadataChange(object_url=target.label, item_uuid=target.item_uuid, metadata=wanted.metadata)
        plans.append(plan_item(change, target.item_uuid, target.metadata, mode, reserved))
    return plans


class OpCounts(BaseModel):
    """What an operation did; small enough for XCom."""

    targets: int = 0
    """Items the scope reached."""
    rows: int = 0
    """Table rows read (0 when the same metadata went to every target)."""
    rejected: int = 0
    not_found: int = 0
    examined: int = 0
    """Items planned (their final dict computed)."""
    changed: int = 0
    written: int = 0
    failed: int = 0
    patch_calls: int = 0

    @property
    def problems(self) -> int:
        """Rows or items that did not end as asked: rejected, not found or failed."""
        return self.rejected + self.not_found + self.failed


def item_results(
    desired: Sequence[Desired],
    plans: Sequence[ItemPlan],
    *,
    dry_run: bool,
    written: Collection[str] = (),
    failed: Mapping[str, str] | None = None,
) -> list[ItemResult]:
    """The result of each planned target (:func:`~encord_ingest.sync.write_result`), with the
    row and warnings of what it was asked for."""
    results = []
    for wanted, plan in zip(desired, plans, strict=True):
        result = write_result(
            plan, dry_run=dry_run, written=written, failed=failed, label=wanted.target.label
        )
        results.append(result.model_copy(update={"where": wanted.where, "warnings": wanted.warnings}))
    return results


def count_results(results: Sequence[ItemResult], *, targets: int, rows: int, patch_calls: int) -> OpCounts:
    """Counts of a finished operation; every row or target is in exactly one status."""
    by_status = {status: sum(1 for r in results if r.status is status) for status in WriteStatus}
    return OpCounts(
        targets=targets,
        rows=rows,
        rejected=by_status[WriteStatus.REJECTED],
        not_found=by_status[WriteStatus.NOT_FOUND],
        examined=sum(1 for r in results if r.diff is not None),
        changed=sum(1 for r in results if r.diff is not None and not r.diff.is_empty),
        written=by_status[WriteStatus.UPDATED],
        failed=by_status[WriteStatus.FAILED],
        patch_calls=patch_calls,
    )


class OpReport(ResultFile):
    """The report file of one operation: what was asked, the counts and one line per row/target."""

    operation: str
    scope: Scope
    target_ids: list[str]
    source: str | None = None
    """The change table URI, or ``None`` when the same metadata went to every target."""
    mode: SyncMode
    dry_run: bool
    counts: OpCounts
    items: list[ItemResult]

    def error_messages(self, limit: int | None = None) -> list[str]:
        """The distinct error messages, in order (at most ``limit``)."""
        messages = dict.fromkeys(e.message for item in self.items for e in item.errors)
        return list(messages)[:limit]
