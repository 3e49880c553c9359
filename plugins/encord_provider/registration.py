"""What an upload job did, per object URL. Plain Python: no Airflow import.

An upload job reports created items by *name* (``items_with_names``) and failures by *object
URL* (``unit_errors``); skipped duplicates may not be reported at all. :func:`build_report`
turns that, plus (only when needed) one listing of the folder, into one entry per object URL of
the manifest chunk: the Encord item UUID, or the reason it failed. The register operator writes
the result as ``results/<name>.register.json`` next to the chunk.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.manifest import GROUP_KINDS
from encord_ingest.manifest.model import Manifest
from encord_ingest.results import JobStatus, RegisterCounts, RegisterReport, UrlResult
from encord_ingest.sources.urls import url_identity

TERMINAL_STATUSES: frozenset[str] = frozenset({"DONE", "ERROR", "CANCELLED"})


class UnitError(BaseModel):
    """One failed job unit (an item), as Encord reports it."""

    model_config = ConfigDict(frozen=True)

    object_urls: list[str]
    error: str
    action_description: str = ""


class JobOutcome(BaseModel):
    """JSON-safe summary of ``UploadLongPollingState``: what a trigger event carries."""

    model_config = ConfigDict(frozen=True)

    status: JobStatus
    items_with_names: list[tuple[str, str]] = Field(default_factory=list)
    """(item UUID, name) of each item the job created."""
    errors: list[str] = Field(default_factory=list)
    units_pending: int = 0
    units_done: int = 0
    units_error: int = 0
    units_cancelled: int = 0
    unit_errors: list[UnitError] = Field(default_factory=list)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_sdk(cls, state: Any) -> JobOutcome:
        """Build from ``encord.orm.storage.UploadLongPollingState``."""
        return cls(
            status=state.status.value,
            items_with_names=[(str(item.item_uuid), item.name) for item in state.items_with_names],
            errors=list(state.errors),
            units_pending=state.units_pending_count,
            units_done=state.units_done_count,
            units_error=state.units_error_count,
            units_cancelled=state.units_cancelled_count,
            unit_errors=[
                UnitError(
                    object_urls=list(error.object_urls),
                    error=error.error,
                    action_description=error.action_description,
                )
                for error in state.unit_errors
            ],
        )


def _names_by_title(manifest: Manifest) -> Counter[str]:
    return Counter(item.title for item in manifest.items if item.title is not None)


def urls_needing_listing(manifest: Manifest, outcome: JobOutcome) -> bool:
    """True when some item is not identifiable by its title in the job result, or failed (a
    failed unit may be a skipped duplicate that exists in the folder)."""
    return bool(_resolve_from_job(manifest, outcome)[1])


def _resolve_from_job(manifest: Manifest, outcome: JobOutcome) -> tuple[dict[str, UrlResult], list[int]]:
    """Results known from the job alone, and the indexes of items still unresolved (a failed
    item is both: its unit error stands unless the folder holds the item, see
    :func:`build_report`)."""
    failed: dict[str, UnitError] = {}
    for unit_error in outcome.unit_errors:
        for url in unit_error.object_urls:
            failed[url_identity(url)] = unit_error
    created: defaultdict[str, list[str]] = defaultdict(list)
    for item_uuid, name in outcome.items_with_names:
        created[name].append(item_uuid)
    titles = _names_by_title(manifest)
    results: dict[str, UrlResult] = {}
    unresolved: list[int] = []
    for index, item in enumerate(manifest.items):
        urls = item.object_urls()
        failure = next((failed[key] for key in map(url_identity, urls) if key in failed), None)
        if failure is not None:
            error = ItemError.of(
                ErrorCode.UNIT_ERROR,
                item.key_url,
                detail=f"{failure.action_description}: {failure.error}".strip(": "),
            )
            results.update(dict.fromkeys(urls, UrlResult(error=error)))
            unresolved.append(index)
            continue
        title = item.title
        if title is not None and titles[title] == 1 and len(created.get(title, ())) == 1:
            results.update(dict.fromkeys(urls, UrlResult(item_uuid=created[title][0])))
            continue
        unresolved.append(index)
    return results, unresolved


class FolderIndex(BaseModel):
    """What one listing of the storage folder tells: item UUIDs by object URL and by name."""

    by_url: dict[str, str] = Field(default_factory=dict)
    """URL identity (:func:`~encord_ingest.sources.urls.url_identity`) -> item UUID."""
    by_name: dict[str, list[str]] = Field(default_factory=dict)


def build_report(
    manifest: Manifest,
    outcome: JobOutcome,
    *,
    chunk_uri: str,
    job_uuid: str,
    folder: FolderIndex | None = None,
) -> RegisterReport:
    """Per-URL results of a finished job; ``folder`` resolves items the job result does not name."""
    results, unresolved = _resolve_from_job(manifest, outcome)
    index = folder or FolderIndex()
    for position in unresolved:
        item = manifest.items[position]
        urls = item.object_urls()
        unit_error = results.get(item.key_url)
        if unit_error is not None:
            # With skip_duplicate_urls a unit whose item the folder already holds was skipped as a
            # duplicate, whether Encord reports that as a success or as a unit error.
            existing = _existing_uuid(item, index)
            if existing is not None:
                results.update(dict.fromkeys(urls, UrlResult(item_uuid=existing)))
            continue
        results.update(dict.fromkeys(urls, _resolve_from_folder(item, index, outcome, job_uuid)))
    failed_items = sum(1 for item in manifest.items if results[item.key_url].error is not None)
    counts = RegisterCounts(
        items=len(manifest.items),
        urls=manifest.url_count,
        registered_items=len(manifest.items) - failed_items,
        failed_items=failed_items,
    )
    return RegisterReport(
        chunk_uri=chunk_uri,
        job_uuid=job_uuid,
        status=outcome.status,
        counts=counts,
        job_errors=outcome.errors,
        results=results,
    )


def _existing_uuid(item: Any, index: FolderIndex) -> str | None:
    """The UUID of the folder's item for ``item``: by URL identity, or for a group by its title
    when exactly one item has it."""
    if item.kind not in GROUP_KINDS:
        return index.by_url.get(url_identity(item.key_url))
    named = index.by_name.get(item.title or "", [])
    return named[0] if len(named) == 1 else None


def _resolve_from_folder(item: Any, index: FolderIndex, outcome: JobOutcome, job_uuid: str) -> UrlResult:
    grouped = item.kind in GROUP_KINDS
    existing = _existing_uuid(item, index)
    if existing is not None:
        return UrlResult(item_uuid=existing)
    named = index.by_name.get(item.title or "", []) if grouped else []
    if outcome.status != "DONE":
        code, detail = ErrorCode.JOB_FAILED, f"upload job {job_uuid} ended {outcome.status}"
        if outcome.errors:
            detail += f": {'; '.join(outcome.errors)[:500]}"
    elif len(named) > 1:
        code, detail = ErrorCode.ITEM_NOT_FOUND, f"{len(named)} items in the folder are named {item.title!r}"
    else:
        code, detail = (
            ErrorCode.ITEM_NOT_FOUND,
            f"upload job {job_uuid} is DONE but the item is not in the folder",
        )
    return UrlResult(error=ItemError.of(code, item.key_url, detail=detail))


def folder_index(items: Mapping[str, tuple[str | None, str]]) -> FolderIndex:
    """Build an index from ``{item_uuid: (url, name)}`` of one folder listing (URLs by their
    :func:`~encord_ingest.sources.urls.url_identity`)."""
    by_url: dict[str, str] = {}
    by_name: defaultdict[str, list[str]] = defaultdict(list)
    for item_uuid, (url, name) in items.items():
        if url:
            by_url[url_identity(url)] = item_uuid
        by_name[name].append(item_uuid)
    return FolderIndex(by_url=by_url, by_name=dict(by_name))
