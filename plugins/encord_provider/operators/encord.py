"""Operators: apply the metadata schema, register manifest chunks, sync metadata.

Each ``execute`` is a few lines: Encord I/O lives in :class:`EncordHook`, decisions in
:mod:`encord_ingest.sync` and :mod:`encord_provider.registration`. XCom carries only URIs,
counts and ids; per-item results go to ``results/`` in the run folder.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from encord_ingest.budget import ErrorBudget
from encord_ingest.manifest.model import Manifest
from encord_ingest.pipeline import as_flag
from encord_ingest.results import RegisterCounts, RegisterReport, ResultIndex
from encord_ingest.run_folder import (
    DRY_RUN_SYNC_SUFFIX,
    REGISTER_FAILURE_SUFFIX,
    REGISTER_SUFFIX,
    SYNC_SUFFIX,
    result_uri,
)
from encord_ingest.schema import load_schema
from encord_ingest.sync import ReservedKeysPolicy, SyncCounts, SyncMode, SyncReport, WriteStatus, read_changes
from encord_provider.hooks.encord import EncordFolderNotFound, EncordHook
from encord_provider.links import EncordFolderLink, EncordUploadJobLink
from encord_provider.registration import FolderIndex, JobOutcome, build_report, urls_needing_listing
from encord_provider.run_io import FolderMemory, RunFolderIO
from encord_provider.triggers.encord import EncordUploadJobTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context
    from encord.storage import StorageFolder

#: Errors quoted in a task failure message (the full list is in the result files).
QUOTED_ERRORS = 5
#: Diffs logged by a dry run (all of them are in the result file).
LOGGED_DIFFS = 20


def _as_list(uris: str | Sequence[str]) -> list[str]:
    return [uris] if isinstance(uris, str) else list(uris)


class EncordBaseOperator(BaseOperator):
    """Shared arguments: the Encord connection, hook parameters and run-folder access."""

    def __init__(
        self,
        *,
        encord_conn_id: str = EncordHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        gcs_project: str | None = None,
        gcs_conn_id: str | None = None,
        hook_params: dict[str, Any] | None = None,
        folder_state_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.folder_state_uri = folder_state_uri
        self.encord_conn_id = encord_conn_id
        self.aws_conn_id = aws_conn_id
        self.gcs_project = gcs_project
        self.gcs_conn_id = gcs_conn_id
        self.hook_params = hook_params or {}

    @property
    def is_dry_run(self) -> bool:
        """``dry_run`` is a bool (the DAGs pass the resolved run options' value), or text from a
        template such as ``{{ params.dry_run }}``, read by :func:`~encord_ingest.pipeline.as_flag`."""
        return as_flag(getattr(self, "dry_run_setting", False), f"{self.task_id}: dry_run")

    @cached_property
    def hook(self) -> EncordHook:
        return EncordHook(self.encord_conn_id, **self.hook_params)

    @cached_property
    def run_io(self) -> RunFolderIO:
        return RunFolderIO(
            aws_conn_id=self.aws_conn_id, gcs_project=self.gcs_project, gcs_conn_id=self.gcs_conn_id
        )

    def encord_folder(self, path: str, *, create: bool = True) -> StorageFolder:
        """The storage folder at ``path`` (or UUID); with ``folder_state_uri`` the resolved UUID is
        remembered in the source's state and tried first next time."""
        memory = FolderMemory(self.run_io, self.folder_state_uri) if self.folder_state_uri else None
        return self.hook.get_folder(path, create=create, memory=memory)

    def register_reports(self, uris: str | Sequence[str]) -> Iterator[RegisterReport]:
        """Register results, one at a time: the given result files, or every one under a run
        folder's ``results/``."""
        for uri in _as_list(uris):
            if uri.endswith(REGISTER_SUFFIX):
                yield RegisterReport.from_bytes(self.run_io.read(uri), source=uri)
            else:
                yield from self.run_io.run_folder(uri).register_reports()


class EncordMetadataSchemaOperator(EncordBaseOperator):
    """Merge the schema file declared in the repo into the organisation's schema.

    Adds missing keys and enum values; keeps every other key. Retyping needs
    ``allow_retype=True``; deleting needs the key in ``delete_keys``. ``dry_run`` logs the plan.
    """

    template_fields: Sequence[str] = ("schema_path", "encord_conn_id", "delete_keys", "dry_run_setting")

    def __init__(
        self,
        *,
        schema_path: str,
        allow_retype: bool = False,
        delete_keys: Sequence[str] = (),
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.schema_path = schema_path
        self.allow_retype = allow_retype
        self.delete_keys = delete_keys
        self.dry_run_setting = dry_run

    def execute(self, context: Context) -> dict[str, Any]:  # noqa: ARG002 (Airflow passes it)
        declared = load_schema(self.schema_path)
        plan = self.hook.apply_schema(
            declared, allow_retype=self.allow_retype, delete_keys=self.delete_keys, dry_run=self.is_dry_run
        )
        self.log.info(
            "%s schema plan for %s:\n%s",
            "Dry-run" if self.is_dry_run else "Applied",
            declared.file,
            plan.describe(),
        )
        return {
            "dry_run": self.is_dry_run,
            "changes": [c.describe() for c in plan.changes],
            "unchanged": len(plan.unchanged),
        }


class EncordRegisterDataOperator(EncordBaseOperator):
    """Register manifest chunks: one upload job per chunk, then wait (deferrable by default).

    Job UUIDs go to the task state store before waiting, so a retried task resumes a job that
    is still running (or already done) instead of starting another. Per object URL, the item
    UUID or the unit error is written to ``results/<name>.register.json``; the task fails only
    when the failed items exceed the error budget.
    """

    template_fields: Sequence[str] = (
        "manifest_uris",
        "folder",
        "integration",
        "encord_conn_id",
        "aws_conn_id",
    )
    STATE_KEY = "encord_upload_jobs"
    operator_extra_links = (EncordFolderLink(), EncordUploadJobLink())

    def __init__(
        self,
        *,
        manifest_uris: str | Sequence[str],
        folder: str,
        integration: str,
        ignore_errors: bool = True,
        max_failed_items: int | None = 0,
        max_failed_fraction: float | None = None,
        deferrable: bool = True,
        timeout_s: float = 6 * 3600,
        poll_timeout_s: int = 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest_uris = manifest_uris
        self.folder = folder
        self.integration = integration
        self.ignore_errors = ignore_errors
        self.budget = ErrorBudget(max_failed_items=max_failed_items, max_failed_fraction=max_failed_fraction)
        self.deferrable = deferrable
        self.timeout_s = timeout_s
        self.poll_timeout_s = poll_timeout_s
        self._running: tuple[str, list[dict[str, str]]] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        with self._cause_recorded():
            folder_uuid = str(self.encord_folder(self.folder).uuid)
            EncordFolderLink.persist(context, self.hook.web_link("folder", folder_uuid=folder_uuid))
            jobs = self._start_jobs(context, folder_uuid)
            if jobs:
                first = jobs[0]["job_uuid"]
                link = self.hook.web_link("upload_job", folder_uuid=folder_uuid, job_uuid=first)
                EncordUploadJobLink.persist(context, link)
            if self.deferrable and jobs:
                self._defer(folder_uuid, jobs)
            return self._finish(context, folder_uuid, self._wait(folder_uuid, jobs))

    @contextmanager
    def _cause_recorded(self) -> Iterator[None]:
        """A failure (auth, a refused job, a timeout) is written next to each chunk without a
        result, so the run report names the cause per item instead of "did not complete".
        Deferral (``TaskDeferred``, a ``BaseException``) passes through."""
        try:
            yield
        except Exception as exc:
            cause = f"{type(exc).__name__}: {exc}".encode()
            for uri in _as_list(self.manifest_uris):
                try:
                    self.run_io.write(result_uri(uri, REGISTER_FAILURE_SUFFIX), cause)
                except Exception as write_error:  # noqa: BLE001 (the original error matters more)
                    self.log.warning("Could not record the failure for %s: %s", uri, write_error)
            raise

    def _defer(self, folder_uuid: str, jobs: list[dict[str, str]]) -> None:
        trigger = EncordUploadJobTrigger(
            encord_conn_id=self.encord_conn_id,
            folder_uuid=folder_uuid,
            jobs=jobs,
            deadline=time.time() + self.timeout_s,
            poll_timeout_s=self.poll_timeout_s,
            hook_params=self.hook_params,
        )
        # Airflow's own timeout is a backstop: the trigger's deadline fires first, with an event.
        self.defer(
            trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout_s + 300)
        )

    def _wait(self, folder_uuid: str, jobs: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Synchronous mode: long-poll each job; the same shape as the trigger event's ``jobs``."""
        self._running = (folder_uuid, jobs)
        finished = []
        for job in jobs:
            outcome = self.hook.wait_for_upload_job(
                folder_uuid, job["job_uuid"], timeout_s=self.timeout_s, poll_s=self.poll_timeout_s
            )
            finished.append({**job, "outcome": outcome.model_dump(mode="json")})
        self._running = None
        return finished

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume from the trigger; the event alone holds the folder, the jobs and their outcomes."""
        with self._cause_recorded():
            if event["status"] != "done":
                raise AirflowException(
                    f"waiting for Encord upload jobs stopped ({event['status']}): {event['message']}"
                )
            return self._finish(context, event["folder_uuid"], event["jobs"])

    def on_kill(self) -> None:
        from encord.exceptions import EncordException

        if self._running is not None:
            folder_uuid, jobs = self._running
            for job in jobs:
                try:
                    self.hook.cancel_upload_job(folder_uuid, job["job_uuid"])
                except EncordException as exc:
                    self.log.warning(
                        "Could not cancel Encord job %s: %s", job["job_uuid"], type(exc).__name__
                    )

    # --- starting or resuming ------------------------------------------------------------------

    def _start_jobs(self, context: Context, folder_uuid: str) -> list[dict[str, str]]:
        store = context.get("task_state_store")
        started = _saved_jobs(store.get(self.STATE_KEY) if store is not None else None, folder_uuid)
        if store is None:
            self.log.warning("No task state store: a retried task cannot resume its upload jobs")
        from encord_provider.upload_items import upload_items  # the SDK: not at DAG parse time

        integration_uuid: str | None = None
        jobs = []
        for uri in _as_list(self.manifest_uris):
            job_uuid = self._resumable(folder_uuid, started.get(uri))
            if job_uuid is None:
                manifest = Manifest.from_bytes(self.run_io.read(uri), source=uri)
                if not manifest.items:
                    self.log.info("%s has no items: no upload job", uri)
                    continue
                integration_uuid = integration_uuid or self.hook.resolve_integration(self.integration)
                job_uuid = self.hook.start_upload_job(
                    self.hook.get_folder(folder_uuid),
                    integration_uuid,
                    upload_items(manifest),
                    ignore_errors=self.ignore_errors,
                )
                started[uri] = job_uuid
                if store is not None:  # saved before any waiting
                    state: dict[str, Any] = {"folder_uuid": folder_uuid, "jobs": dict(started)}
                    store.set(self.STATE_KEY, state)
            jobs.append({"chunk_uri": uri, "job_uuid": job_uuid})
        return jobs

    def _resumable(self, folder_uuid: str, job_uuid: str | None) -> str | None:
        """``job_uuid`` when that job is still running or done; ``None`` to start a new one."""
        from encord.exceptions import EncordException

        if job_uuid is None:
            return None
        try:
            status = self.hook.get_upload_job(folder_uuid, job_uuid).status
        except EncordException as exc:
            self.log.warning(
                "Saved upload job %s cannot be read (%s): starting a new one", job_uuid, type(exc).__name__
            )
            return None
        if status in ("PENDING", "DONE"):
            self.log.info(
                "Resuming saved Encord upload job %s (%s) instead of starting a new one", job_uuid, status
            )
            return job_uuid
        self.log.info("Saved upload job %s ended %s: starting a new one", job_uuid, status)
        return None

    # --- results -------------------------------------------------------------------------------

    def _finish(self, context: Context, folder_uuid: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
        index: FolderIndex | None = None
        chunks, reports = [], []
        for job in jobs:
            uri, outcome = job["chunk_uri"], JobOutcome.model_validate(job["outcome"])
            manifest = Manifest.from_bytes(self.run_io.read(uri), source=uri)
            if index is None and urls_needing_listing(manifest, outcome):
                index = self.hook.folder_index(self.hook.get_folder(folder_uuid))
            report = build_report(manifest, outcome, chunk_uri=uri, job_uuid=job["job_uuid"], folder=index)
            out = result_uri(uri, REGISTER_SUFFIX)
            self.run_io.write(out, report.to_bytes())
            reports.append(report)
            chunks.append(
                {
                    "chunk_uri": uri,
                    "result_uri": out,
                    "job_uuid": job["job_uuid"],
                    "counts": report.counts.model_dump(),
                }
            )
        store = context.get("task_state_store")
        if store is not None:
            store.delete(self.STATE_KEY)  # outcomes are recorded: a retry may start fresh jobs
        totals = _sum_register(reports)
        self._check_budget(reports, totals)
        return {"folder_uuid": folder_uuid, "chunks": chunks, "counts": totals.model_dump()}

    def _check_budget(self, reports: list[RegisterReport], totals: RegisterCounts) -> None:
        if not self.budget.exceeded(totals.failed_items, totals.items):
            return
        errors = [
            result.error.message
            for report in reports
            for result in report.results.values()
            if result.error is not None
        ]
        quoted = "; ".join(list(dict.fromkeys(errors))[:QUOTED_ERRORS])
        raise AirflowException(
            f"{totals.failed_items} of {totals.items} items failed to register, more than the error budget "
            f"({self.budget.model_dump()}); first errors: {quoted}"
        )


def _saved_jobs(saved: Any, folder_uuid: str) -> dict[str, str]:
    """Chunk URI -> job UUID from the task state, when it was saved for the same folder."""
    if not isinstance(saved, dict) or saved.get("folder_uuid") != folder_uuid:
        return {}
    jobs = saved.get("jobs")
    return {str(uri): str(job) for uri, job in jobs.items()} if isinstance(jobs, dict) else {}


def _sum_register(reports: list[RegisterReport]) -> RegisterCounts:
    total = RegisterCounts()
    for report in reports:
        for field in RegisterCounts.model_fields:
            setattr(total, field, getattr(total, field) + getattr(report.counts, field))
    return total


class EncordSyncMetadataOperator(EncordBaseOperator):
    """Bring Encord's ``clientMetadata`` in line with the sidecars, writing only what differs.

    For each change chunk (``metadata/<name>.jsonl``): read what Encord holds for those items,
    compute the final dicts on the client (``mode`` merge or replace; ``reserved_keys`` for
    ``keyframes``/``config``), patch only items that differ, in bundles of at most 1000, and
    write ``results/<name>.sync.json``. ``dry_run`` writes ``<name>.sync.dry-run.json`` and logs
    the diffs instead of patching.
    """

    template_fields: Sequence[str] = (
        "changes_uris",
        "folder",
        "mode",
        "dry_run_setting",
        "register_results_uri",
        "encord_conn_id",
        "aws_conn_id",
    )

    def __init__(
        self,
        *,
        changes_uris: str | Sequence[str],
        folder: str,
        register_results_uri: str | None = None,
        mode: SyncMode | str = SyncMode.MERGE,
        reserved_keys: ReservedKeysPolicy | str = ReservedKeysPolicy.PRESERVE,
        dry_run: bool | str = False,
        bundle_size: int = 1000,
        max_failed_items: int | None = 0,
        max_failed_fraction: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.changes_uris = changes_uris
        self.folder = folder
        self.register_results_uri = register_results_uri
        self.mode = mode
        self.reserved_keys = ReservedKeysPolicy(reserved_keys)
        self.dry_run_setting = dry_run
        self.bundle_size = bundle_size
        self.budget = ErrorBudget(max_failed_items=max_failed_items, max_failed_fraction=max_failed_fraction)

    def execute(self, context: Context) -> dict[str, Any]:  # noqa: ARG002 (Airflow passes it)
        try:
            folder = self.encord_folder(self.folder, create=False)
        except EncordFolderNotFound:
            if not self.is_dry_run:
                raise
            self.log.info(
                "Dry run: folder %s does not exist yet, so no item has metadata to compare", self.folder
            )
            return {"dry_run": True, "counts": SyncCounts().model_dump(), "chunks": []}
        with tempfile.TemporaryDirectory(prefix="register-results-") as spill:
            known = self._registered_uuids(spill)
            reports = [self._sync_chunk(folder, uri, known) for uri in _as_list(self.changes_uris)]
        totals = _sum_sync([report.counts for report in reports])
        failed = totals.failed + totals.not_found
        if self.budget.exceeded(failed, totals.examined):
            raise AirflowException(
                f"{failed} of {totals.examined} metadata updates failed "
                f"({totals.not_found} items not found), "
                f"more than the error budget ({self.budget.model_dump()})"
            )
        return {
            "dry_run": self.is_dry_run,
            "counts": totals.model_dump(),
            "chunks": [r.chunk_uri for r in reports],
        }

    def _registered_uuids(self, spill: str) -> ResultIndex | None:
        """The item UUIDs of this run's register results (items new in this run), spilled to the
        local folder ``spill`` one result file at a time and looked up per change chunk, so a
        task holds one chunk's UUIDs, not the run's (a later result file wins, as before)."""
        if not self.register_results_uri:
            return None
        index = ResultIndex(spill)
        for report in self.register_reports(self.register_results_uri):
            index.add((url, uuid, None) for url, uuid, _failure in report.url_results() if uuid)
        return index

    def _sync_chunk(self, folder: Any, uri: str, known: ResultIndex | None) -> SyncReport:
        changes = read_changes(self.run_io.read(uri), source=uri)
        missing = [change.object_url for change in changes if not change.item_uuid]
        if known is not None and missing:
            found = known.lookup(missing)["item_uuid"]
            uuids = {url: uuid for url, uuid in found.items() if uuid}
            changes = [
                change.model_copy(update={"item_uuid": uuids[change.object_url]})
                if not change.item_uuid and change.object_url in uuids
                else change
                for change in changes
            ]
        mode = SyncMode(self.mode)
        counts, items = self.hook.sync_metadata(
            folder,
            changes,
            mode=mode,
            reserved=self.reserved_keys,
            dry_run=self.is_dry_run,
            bundle_size=self.bundle_size,
        )
        report = SyncReport(chunk_uri=uri, mode=mode, dry_run=self.is_dry_run, counts=counts, items=items)
        self.run_io.write(
            result_uri(uri, DRY_RUN_SYNC_SUFFIX if self.is_dry_run else SYNC_SUFFIX), report.to_bytes()
        )
        if self.is_dry_run:
            would = [
                (url, r.diff) for url, r in items.items() if r.status is WriteStatus.WOULD_UPDATE and r.diff
            ]
            for url, diff in would[:LOGGED_DIFFS]:
                self.log.info("Would update %s: %s", url, diff.model_dump_json())
            if len(would) > LOGGED_DIFFS:
                self.log.info(
                    "... and %d more; every diff is in the dry-run result file", len(would) - LOGGED_DIFFS
                )
        self.log.info("%s: %s", uri, counts.model_dump())
        return report


def _sum_sync(counts: list[SyncCounts]) -> SyncCounts:
    total = SyncCounts()
    for part in counts:
        for field in SyncCounts.model_fields:
            setattr(total, field, getattr(total, field) + getattr(part, field))
    return total


class EncordLinkDatasetOperator(EncordBaseOperator):
    """Link the items a register task recorded (``results/<name>.register.json``) to a dataset.

    ``result_uris``: register result files, or run folders (every result under their ``results/``).

    Items already in the dataset are skipped by Encord, so a rerun links nothing twice.
    """

    template_fields: Sequence[str] = ("result_uris", "dataset_hash", "encord_conn_id", "aws_conn_id")

    def __init__(self, *, result_uris: str | Sequence[str], dataset_hash: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result_uris = result_uris
        self.dataset_hash = dataset_hash

    def execute(self, context: Context) -> dict[str, Any]:  # noqa: ARG002 (Airflow passes it)
        item_uuids = sorted(
            {
                result.item_uuid
                for report in self.register_reports(self.result_uris)
                for result in report.results.values()
                if result.item_uuid
            }
        )
        linked = self.hook.link_items_to_dataset(self.dataset_hash, item_uuids)
        return {"dataset_hash": self.dataset_hash, "linked_items": linked}
