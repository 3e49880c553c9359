"""Operators for metadata operations at every scope: apply (a change table or the same metadata for
every target, or keyframes only) and export.

Arguments are templated, so a DAG can pass its Params (render with
``render_template_as_native_obj=True`` to keep lists, dicts and booleans). They are checked in
``execute`` by :class:`~encord_ingest.metadata_ops.ApplyRequest` /
:class:`~encord_ingest.metadata_ops.ExportRequest`, which name the bad field. Encord I/O lives in
:class:`~encord_provider.hooks.encord_scopes.EncordMetadataHook`, decisions in
:mod:`encord_ingest.metadata_ops`; XCom carries counts and URIs only.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException
from pydantic import ValidationError

from encord_ingest.budget import ErrorBudget
from encord_ingest.errors import ConfigError, ItemError
from encord_ingest.metadata_ops import (
    ApplyRequest,
    ExportRequest,
    OpReport,
    Resolution,
    Target,
    WriteStatus,
    count_results,
    export_csv,
    export_parquet,
    read_change_table,
    resolve_for_all,
    resolve_table,
)
from encord_ingest.run_folder import parent_and_name
from encord_ingest.schema import MetadataSchema
from encord_ingest.sync import MAX_BUNDLE_SIZE, present
from encord_provider.hooks.encord_scopes import EncordMetadataHook
from encord_provider.operators.encord import EncordBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Errors quoted in a task failure message and diffs logged by a dry run (all are in the report).
QUOTED_ERRORS = 5
LOGGED_DIFFS = 20
_SCOPE_FIELDS = ("scope", "target_ids", "recursive", "folder")


def default_report_uri(table_uri: str, dry_run: bool) -> str:
    """``<table folder>/reports/<table stem>.report.json`` (``.dry-run.report.json`` for a dry run)."""
    folder, name = parent_and_name(table_uri)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{folder}/reports/{stem}.{'dry-run.' if dry_run else ''}report.json"


class _MetadataOperator(EncordBaseOperator):
    """Shared arguments: what to reach (scope, ids), plus the Encord and storage connections
    (``aws_conn_id`` for ``s3://`` URIs, ``gcs_conn_id`` for ``gs://`` ones: change tables,
    reports and exports)."""

    def __init__(
        self,
        *,
        scope: str,
        target_ids: str | Sequence[str],
        recursive: bool | str = False,
        folder: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scope = scope
        self.target_ids = target_ids
        self.recursive = recursive
        self.folder = folder

    @cached_property
    def hook(self) -> EncordMetadataHook:
        return EncordMetadataHook(self.encord_conn_id, **self.hook_params)

    def _arguments(self, names: Sequence[str]) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*_SCOPE_FIELDS, *names)}

    @property
    def _source(self) -> str:
        return f"{type(self).__name__}(task_id={self.task_id!r})"


class EncordApplyMetadataOperator(_MetadataOperator):
    """Apply metadata to the items a scope reaches, writing only what differs.

    ``scope`` is ``folder`` (paths or UUIDs; ``recursive`` adds subfolders), ``dataset`` (data
    units through their backing items), ``project`` (the data units of its datasets) or
    ``group_frames`` (child items of groups, by UUID or by title within ``folder``). The metadata
    comes from a change table (``table_uri``: CSV/TSV/JSONL/Parquet, one row per item) or is the
    same ``metadata`` dict for every item. ``mode`` ``merge`` keeps keys the table does not set,
    ``replace`` makes the table's keys the whole dict (``reserved_keys`` decides ``keyframes`` and
    ``config``). ``keyframes_only`` sets only ``keyframes``/``config`` on videos. Values are checked
    against ``schema_path`` (a schema YAML) or, without it, the organisation's schema. Rows that
    break it are rejected one by one and the rest is written; the task fails afterwards when the
    rejected, missing and failed rows exceed the error budget. ``dry_run`` writes nothing to Encord.
    The report (every row, its diff or its errors) goes to ``report_uri``, by default
    ``<table folder>/reports/<table stem>.report.json``.
    """

    template_fields: Sequence[str] = (
        *_SCOPE_FIELDS,
        "table_uri",
        "metadata",
        "mode",
        "reserved_keys",
        "keyframes_only",
        "unknown_keys",
        "dry_run_setting",
        "schema_path",
        "report_uri",
        "max_failed_items",
        "max_failed_fraction",
        "encord_conn_id",
        "aws_conn_id",
        "gcs_conn_id",
    )
    _REQUEST_FIELDS = (
        "table_uri",
        "metadata",
        "mode",
        "reserved_keys",
        "keyframes_only",
        "unknown_keys",
    )

    def __init__(
        self,
        *,
        table_uri: str | None = None,
        metadata: dict[str, Any] | str | None = None,
        mode: str = "merge",
        reserved_keys: str = "preserve",
        keyframes_only: bool | str = False,
        unknown_keys: str = "reject",
        dry_run: bool | str = False,
        schema_path: str | None = None,
        report_uri: str | None = None,
        bundle_size: int = MAX_BUNDLE_SIZE,
        max_failed_items: int | str | None = 0,
        max_failed_fraction: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table_uri = table_uri
        self.metadata = metadata
        self.mode = mode
        self.reserved_keys = reserved_keys
        self.keyframes_only = keyframes_only
        self.unknown_keys = unknown_keys
        self.dry_run_setting = dry_run  # templated; ``dry_run`` itself is a BaseOperator method
        self.schema_path = schema_path
        self.report_uri = report_uri
        self.bundle_size = bundle_size
        self.max_failed_items = max_failed_items
        self.max_failed_fraction = max_failed_fraction

    def execute(self, context: Context) -> dict[str, Any]:  # noqa: ARG002 (Airflow passes it)
        arguments = {**self._arguments(self._REQUEST_FIELDS), "dry_run": self.dry_run_setting}
        request = ApplyRequest.parse(arguments, source=self._source)
        budget = self._budget()
        schema = self.hook.operation_schema(self.schema_path)
        reached = self.hook.scope_items(
            request.scope, request.target_ids, recursive=request.recursive, folder=request.folder
        )
        resolution, rows = self._resolve(request, reached.targets, schema)
        results, calls = self.hook.write_metadata(
            reached,
            resolution.desired,
            mode=request.effective_mode,
            reserved=request.reserved_keys,
            dry_run=request.dry_run,
            bundle_size=self.bundle_size,
        )
        items = [*resolution.rejected, *results]
        report = OpReport(
            operation="keyframes" if request.keyframes_only else "apply",
            scope=request.scope,
            target_ids=request.target_ids,
            source=request.table_uri,
            mode=request.effective_mode,
            dry_run=request.dry_run,
            counts=count_results(items, targets=len(reached.targets), rows=rows, patch_calls=calls),
            items=items,
        )
        report_uri = self._write_report(request, report)
        self._log(report, report_uri)
        self._check_budget(budget, report, report_uri, total=rows or len(reached.targets))
        return {
            "dry_run": request.dry_run,
            "counts": report.counts.model_dump(),
            "report_uri": report_uri,
        }

    def _resolve(
        self, request: ApplyRequest, targets: list[Target], schema: MetadataSchema
    ) -> tuple[Resolution, int]:
        """(resolution, table rows read)."""
        if request.table_uri is None:
            source = f"{self._source}: metadata"
            metadata = request.metadata or {}
            return resolve_for_all(
                metadata, targets, schema=schema, unknown_keys=request.unknown_keys, source=source
            ), 0
        table = read_change_table(self.run_io.read(request.table_uri), file=request.table_uri)
        if isinstance(table, ItemError):
            raise ConfigError(f"change table unreadable: {table.message}")
        resolution = resolve_table(
            table,
            targets,
            scope=request.scope,
            schema=schema,
            unknown_keys=request.unknown_keys,
            keyframes_only=request.keyframes_only,
        )
        return resolution, len(table.rows)

    def _write_report(self, request: ApplyRequest, report: OpReport) -> str | None:
        uri = self.report_uri or (
            default_report_uri(request.table_uri, request.dry_run) if request.table_uri else None
        )
        if uri:
            self.run_io.write(uri, report.to_bytes())
        return uri

    def _log(self, report: OpReport, report_uri: str | None) -> None:
        would = [item for item in report.items if item.status is WriteStatus.WOULD_UPDATE and item.diff]
        for item in would[:LOGGED_DIFFS]:
            assert item.diff is not None
            self.log.info("Would update %s: %s", item.label, item.diff.model_dump_json())
        if len(would) > LOGGED_DIFFS:
            self.log.info("... and %d more diffs in the report", len(would) - LOGGED_DIFFS)
        for message in report.error_messages(QUOTED_ERRORS):
            self.log.warning("%s", message)
        self.log.info(
            "%s%s of %s %s: %s; report: %s",
            "Dry run: " if report.dry_run else "",
            report.operation,
            report.scope.value,
            report.target_ids,
            report.counts.model_dump(),
            report_uri or "(not written)",
        )

    def _budget(self) -> ErrorBudget:
        try:
            return ErrorBudget(
                max_failed_items=self.max_failed_items, max_failed_fraction=self.max_failed_fraction
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise ConfigError(
                f"{self._source}: field {first['loc'][0]!r}: {first['msg']}, got {first.get('input')!r}"
            ) from None

    def _check_budget(
        self, budget: ErrorBudget, report: OpReport, report_uri: str | None, *, total: int
    ) -> None:
        counts = report.counts
        if not budget.exceeded(counts.problems, total):
            return
        raise AirflowException(
            f"{counts.problems} of {total} rows/items were not applied ({counts.rejected} rejected, "
            f"{counts.not_found} not found, {counts.failed} failed), more than the error budget "
            f"({budget.model_dump()}); the rest was {'planned' if report.dry_run else 'applied'}. "
            f"Report: {report_uri or '(not written)'}. First errors: "
            + "; ".join(report.error_messages(QUOTED_ERRORS))
        )


class EncordExportMetadataOperator(_MetadataOperator):
    """Write the metadata every item of a scope holds to ``<output_uri>/<name>.parquet`` and
    ``.csv``: one row per item (``item_uuid``, ``object_url``, ``title``, the item type, dataset
    or group position), one column per key. The files are change tables: edit them and apply them
    with :class:`EncordApplyMetadataOperator` (export -> edit -> apply changes only the edited cells).
    """

    template_fields: Sequence[str] = (
        *_SCOPE_FIELDS,
        "output_uri",
        "name",
        "encord_conn_id",
        "aws_conn_id",
        "gcs_conn_id",
    )

    def __init__(self, *, output_uri: str, name: str = "metadata", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_uri = output_uri
        self.name = name

    def execute(self, context: Context) -> dict[str, Any]:  # noqa: ARG002 (Airflow passes it)
        request = ExportRequest.parse(self._arguments(("output_uri", "name")), source=self._source)
        reached = self.hook.scope_items(
            request.scope, request.target_ids, recursive=request.recursive, folder=request.folder
        )
        parquet_uri, csv_uri = request.uris()
        self.run_io.write(parquet_uri, export_parquet(reached.targets))
        self.run_io.write(csv_uri, export_csv(reached.targets))
        keys = len({key for target in reached.targets for key in present(target.metadata)})
        self.log.info(
            "Exported %d items (%d metadata keys) of %s %s to %s and %s",
            len(reached.targets),
            keys,
            request.scope.value,
            request.target_ids,
            parquet_uri,
            csv_uri,
        )
        return {"parquet_uri": parquet_uri, "csv_uri": csv_uri, "items": len(reached.targets), "keys": keys}
