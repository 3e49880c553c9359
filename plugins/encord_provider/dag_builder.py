"""Turn declarative source configs (``include/sources/*.yaml``) into Airflow DAGs.

One source gives three DAGs:

- ``encord_ingest__<name>``: scheduled ingestion (and backfills, and manual runs from the UI):
  resolve the run options -> apply schema -> plan shards -> scan each shard (mapped over shards)
  -> register new items (mapped over manifest chunks, deferrable) -> sync metadata (mapped over
  change chunks) -> commit ledger and report (emits the source's Asset). The same steps embed in
  any DAG with :func:`ingest_task_group`.
- ``encord_resync__<name>``: manual; re-reads the sidecars under a prefix and syncs metadata
  only (every item is compared with what Encord holds; nothing is registered).
- ``encord_reconcile__<name>``: manual; rebuilds the ledger's item UUIDs from Encord's folder
  listing and reports drift (in the ledger, not in Encord, and the reverse).

Task callables only wire Airflow to :mod:`encord_ingest.pipeline` (commit and report:
:func:`~encord_ingest.pipeline.finish_run`); XCom carries URIs, counts and ids; the resolved
:class:`~encord_ingest.pipeline.RunOptions` are one XCom that every task reads. Building a DAG
does no I/O beyond what the caller already read (the YAML files).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, TaskGroup, task
from airflow.sdk.exceptions import AirflowException

from encord_ingest.config import SourceConfig
from encord_ingest.pipeline import (
    RunOptions,
    asset_extra,
    batches,
    finish_resync,
    finish_run,
    plan_run_shards,
    registration_chunks,
    resolve_run,
    scan,
    summary_table,
)
from encord_ingest.run_folder import RunFolder, chunk_uris
from encord_ingest.sources.factory import open_source
from encord_ingest.sources.prefix import placeholders, render_prefix
from encord_ingest.storage import BlobStore
from encord_provider.clients import storage_clients
from encord_provider.links import RunReportLink, object_url_for_connection
from encord_provider.operators.encord import (
    EncordLinkDatasetOperator,
    EncordMetadataSchemaOperator,
    EncordRegisterDataOperator,
    EncordSyncMetadataOperator,
)

log = logging.getLogger(__name__)


def _schedule(config: SourceConfig) -> Any:
    """Cron schedules get data intervals: the run at the end of day D lists day D's prefix.

    Airflow 3's default for cron strings is a trigger timetable whose interval is empty (start =
    end = run time), which would list the day that has just begun.
    """
    schedule = config.schedule
    if schedule is None or schedule in ("@once", "@continuous"):
        return schedule
    return CronDataIntervalTimetable(schedule, timezone=config.bucket.timezone)


def default_args(config: SourceConfig) -> dict[str, Any]:
    """Task defaults of every DAG of a source (owner, retries and their back-off)."""
    return {
        "owner": config.owner,
        "retries": config.retries,
        "retry_delay": timedelta(seconds=config.retry_delay_s),
        "retry_exponential_backoff": config.retry_backoff,
        "max_retry_delay": timedelta(seconds=config.max_retry_delay_s),
    }


def source_dag_args(config: SourceConfig, kind: str) -> dict[str, Any]:
    """What every DAG of a source shares: one run at a time, no catch-up, the task defaults, and
    the tags ``encord``, ``kind`` and ``source:<name>`` (then the source's own)."""
    return {
        "catchup": False,
        "max_active_runs": 1,
        "default_args": default_args(config),
        "tags": ["encord", kind, f"source:{config.name}", *config.tags],
    }


def source_asset(config: SourceConfig) -> Asset:
    """The Asset a successful ingestion run emits: downstream DAGs can schedule on it.

    Its URI is a custom ``x-`` scheme naming the source, and the ledger's location is in
    ``extra``: an ``s3://`` or ``gs://`` URI would make Airflow import every provider's asset
    handlers (the amazon one imports boto3) each time this file is parsed.
    """
    return Asset(
        name=f"encord_ingest.{config.name}",
        uri=f"x-encord-ingest://{config.name}",
        extra={"ledger_uri": f"{config.state_uri}/ledger/"},
    )


def _source(config: SourceConfig) -> Any:
    return open_source(
        config.bucket.uri,
        region=config.bucket.region,
        url_style=config.bucket.url_style,
        direct_reads=config.bucket.direct_reads,
        **storage_clients(config.bucket.uri, config.bucket.conn_id),
    )


def _state_conns(config: SourceConfig) -> dict[str, Any]:
    """Connection arguments of the operators' run-folder readers for ``state_uri``."""
    if config.state_uri.startswith("gs://"):
        return {"aws_conn_id": None, "gcs_conn_id": config.state_connection}
    return {"aws_conn_id": config.state_connection}


def state_store(config: SourceConfig) -> BlobStore:
    """The source's state folder (ledger and run folders), opened with its connection."""
    return BlobStore.from_uri(config.state_uri, **storage_clients(config.state_uri, config.state_connection))


TASK_DOCS = {
    "resolve": "The run's prefixes (the form's **Prefix override**, else the source's prefix over the "
    "data interval; a run triggered from the form has the interval Airflow infers from its logical "
    "date) and its options. The log names the prefixes and where they came from.",
    "plan_shards": "Splits the prefixes into at most `shards` key ranges that cover them once.",
    "scan_shard": "Lists one shard, pairs sidecars, parses and types metadata, groups, and diffs "
    "against the ledger; writes manifest, metadata-change and outcome chunks to the run folder.",
    "manifest_chunks": "Packs the shards' manifest chunks into upload-job-sized chunks and batches "
    "them for `register` (none in a dry run).",
    "change_chunks": "The metadata-change chunk URIs in batches for `sync_metadata`.",
    "register": "One Encord upload job per manifest chunk (`skip_duplicate_urls` on); the per-URL "
    "results (item UUID or error) go to the run folder. Extra links: the Encord folder and job.",
    "sync_metadata": "Reads what Encord holds for the changed items and patches only the differences.",
    "link_dataset": "Links the items registered in this run to the source's dataset.",
    "apply_schema": "Merges the source's schema file into the organisation's metadata schema.",
    "commit_and_report": "Commits what Encord confirmed to the ledger, writes `final_outcomes.parquet` "
    "and `report.md` (printed in this task's log, failed objects included) and emits the source's "
    "Asset with the counts and the report URI in its `extra`. Extra link: the report.",
}
"""Task documentation shown in the UI (task ``doc_md``), by task id."""


def prefix_example(config: SourceConfig) -> str:
    """A prefix this source really lists: its template over the first day from ``start_date`` (in
    the bucket's time zone). Deterministic, so the serialised DAG does not change from day to day."""
    zone = ZoneInfo(config.bucket.timezone)
    start = datetime(config.start_date.year, config.start_date.month, config.start_date.day, tzinfo=zone)
    example = render_prefix(
        config.bucket.prefix,
        data_interval_start=start,
        data_interval_end=start + timedelta(days=1),
        timezone=config.bucket.timezone,
    )
    return example or "some/folder/"


def run_params(config: SourceConfig, *, interval: bool = True) -> dict[str, Param]:
    """The manual-run form of an ingestion run (give these to a DAG that embeds the task group).
    ``interval=False``: the DAG's runs ignore the data interval (resync), so a templated prefix
    needs the override."""
    example = prefix_example(config)
    if not placeholders(config.bucket.prefix):
        empty = f"the source's prefix {config.bucket.prefix or '(the bucket root)'}"
    elif interval:
        empty = (
            f"the source's prefix {config.bucket.prefix} over the data interval; a run triggered "
            "from this form lists the interval Airflow infers from its logical date"
        )
    else:
        empty = f"not allowed, since the source's prefix {config.bucket.prefix} needs a data interval"
    return {
        "prefix": Param(
            None,
            type=["null", "string"],
            title="Prefix override",
            description=f"List only this prefix, e.g. {example} (comma-separated for several). "
            f"Empty: {empty}.",
            examples=[example],
        ),
        "dry_run": Param(
            False, type=["boolean", "null"], title="Dry run", description="Plan and report; write nothing."
        ),
        "full_rescan": Param(
            False,
            type=["boolean", "null"],
            title="Full rescan",
            description="Ignore the ledger: re-plan every object.",
        ),
        "limit": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            title="Limit",
            description="Register at most this many new items in this run; the rest wait for a later run.",
        ),
        "sync_mode": Param(
            config.encord.sync_mode,
            enum=["merge", "replace"],
            title="Metadata sync mode",
            description="merge: sidecar keys win, other keys kept; replace: exactly the sidecar keys.",
        ),
    }


def _doc(config: SourceConfig, kind: str) -> str:
    return (
        f"### {kind}: `{config.name}`\n\n{config.description}\n\n"
        f"- bucket: `{config.bucket.uri}`, prefix `{config.bucket.prefix or '(root)'}`\n"
        f"- Encord folder: `{config.encord.folder}` (integration `{config.encord.integration}`)\n"
        f"- state (ledger, run folders, reports): `{config.state_uri}`\n"
        f"- manual runs: **Prefix override** lists that prefix (e.g. `{prefix_example(config)}`). Left "
        "empty, a run triggered from the form lists the source's prefix over the data interval that "
        "Airflow infers from the logical date (the report's headline says which); a run triggered "
        "through the API or CLI without a logical date has no interval and needs the override.\n"
    )


def _plan_and_scan(config: SourceConfig, *, resync: bool, apply_schema: bool = False) -> tuple[Any, Any]:
    """``resolve -> [apply_schema] -> plan_shards -> scan_shard`` (mapped over shards).

    Returns the XComArgs of the run options (:meth:`RunOptions.to_json` plus ``run_uri``; one
    XCom per key too, so ``run["dry_run"]`` feeds an operator argument) and of the shard summaries.
    A resync re-reads every sidecar (``full_rescan``) and ignores the data interval: its prefix
    comes from the form.
    """

    @task(
        multiple_outputs=True, task_display_name="Resolve prefixes and options", doc_md=TASK_DOCS["resolve"]
    )
    def resolve(**context: Any) -> dict[str, Any]:
        params = {**context["params"], "full_rescan": True} if resync else context["params"]
        options = resolve_run(
            config,
            run_id=context["run_id"],
            data_interval_start=None if resync else context.get("data_interval_start"),
            data_interval_end=None if resync else context.get("data_interval_end"),
            params=params,
        )
        log.info("Run %s lists %s (from %s)", options.run_id, options.prefixes, options.prefix_origin or "-")
        return {**options.to_json(), "run_uri": RunFolder.of(state_store(config), options.run_id).uri()}

    @task(task_display_name="Plan shards", doc_md=TASK_DOCS["plan_shards"])
    def plan_shards(run: dict[str, Any]) -> list[dict[str, Any]]:
        shards = plan_run_shards(config, _source(config), run["prefixes"])
        log.info("Planned %d shard(s)", len(shards))
        return shards

    # TaskFlow calls return XComArgs, resolved at run time (typed Any for mypy).
    run: Any = resolve()
    shards: Any = plan_shards(run)
    if apply_schema and config.schema_path is not None:
        schema = EncordMetadataSchemaOperator(
            task_id="apply_schema",
            task_display_name="Apply metadata schema",
            doc_md=TASK_DOCS["apply_schema"],
            schema_path=str(config.schema_path),
            dry_run=run["dry_run"],
            encord_conn_id=config.encord.conn_id,
            pool=config.encord.pool,
            folder_state_uri=config.state_uri,
            hook_params=config.encord.hook_params,
            **_state_conns(config),
        )
        run >> schema >> shards
    return run, scan_shards(config, run, shards)


def scan_shards(config: SourceConfig, run: Any, shards: Any) -> Any:
    """``scan_shard`` mapped over the shard descriptors ``shards`` (an XComArg); its summaries."""

    @task(task_display_name="Scan shard", doc_md=TASK_DOCS["scan_shard"])
    def scan_shard(shard: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
        return scan(config, _source(config), state_store(config), shard, RunOptions.from_json(run))

    return scan_shard.partial(run=run).expand(shard=shards)


def build_ingest_dag(config: SourceConfig) -> DAG:
    """The scheduled ingestion DAG of one source: the :func:`ingest_task_group` and the run form."""
    with DAG(
        dag_id=config.dag_id,
        description=f"Ingest {config.bucket.uri} into Encord folder {config.encord.folder}",
        schedule=_schedule(config),
        start_date=datetime(
            config.start_date.year, config.start_date.month, config.start_date.day, tzinfo=UTC
        ),
        params=run_params(config),
        **source_dag_args(config, "ingest"),
        doc_md=_doc(config, "Ingestion"),
    ) as dag:
        ingest_task_group(config)
    return dag


def ingest_task_group(config: SourceConfig, *, group_id: str | None = None) -> TaskGroup:
    """The ingestion steps of one source as a TaskGroup, to embed in any DAG.

    ``resolve -> [apply_schema] -> plan_shards -> scan_shard[] -> register[] -> sync_metadata[]
    -> [link_dataset] -> commit_and_report``. The run options come from the DAG's params (see
    :func:`run_params`; missing ones take the source's defaults) and reach every task as one value,
    the output of ``resolve``. ``group_id=None``: the task ids are not prefixed (the source's own
    DAG); with a group id they are ``<group_id>.<task>``.
    """
    group_tasks: list[str] = []
    with TaskGroup(
        group_id=group_id or f"encord_ingest__{config.name}", prefix_group_id=group_id is not None
    ) as group:
        run, summaries = _plan_and_scan(config, resync=False, apply_schema=config.encord.apply_schema)
        register_sync_commit(config, run, summaries, among=group_tasks)
    group_tasks.extend(t.task_id for t in group.iter_tasks())
    return group


def register_sync_commit(
    config: SourceConfig, run: Any, summaries: Any, among: list[str] | None = None
) -> Any:
    """register -> sync metadata -> link dataset -> commit and report, after the scans ``summaries``
    of the run ``run`` (XComArgs: ``run`` is the output of a ``resolve`` task with one XCom per
    key, so ``run["dry_run"]`` feeds an operator argument). A failed task among ``among`` (default:
    the whole DAG run) fails the run after the report. Returns the commit task."""
    encord = config.encord
    operator_args = _operator_args(config)

    @task(task_display_name="Batch manifest chunks", doc_md=TASK_DOCS["manifest_chunks"])
    def manifest_chunks(summaries: list[dict[str, Any]], run: dict[str, Any]) -> list[list[str]]:
        uris = registration_chunks(config, state_store(config), RunOptions.from_json(run), list(summaries))
        return batches(uris, config.max_mapped_tasks)

    @task(
        trigger_rule="all_done",
        outlets=[source_asset(config)],
        task_display_name="Commit ledger and report",
        doc_md=TASK_DOCS["commit_and_report"],
    )
    def commit_and_report(
        summaries: list[dict[str, Any]] | None, run: dict[str, Any] | None, **context: Any
    ) -> dict[str, Any]:
        failed_tasks = _failed_tasks(context, among)
        if run is None:
            raise _unplanned(failed_tasks)
        options = RunOptions.from_json(run)
        return _commit_and_report(config, list(summaries or []), options, failed_tasks, context)

    manifests: Any = manifest_chunks(summaries, run)
    changes: Any = _change_chunks(config, "change_chunks")(summaries)
    register = EncordRegisterDataOperator.partial(
        task_id="register",
        task_display_name="Register in Encord",
        doc_md=TASK_DOCS["register"],
        folder=encord.folder,
        integration=encord.integration,
        ignore_errors=encord.ignore_errors,
        deferrable=encord.deferrable,
        max_failed_items=None,
        max_failed_fraction=1.0,
        **operator_args,
    ).expand(manifest_uris=manifests)
    sync = _sync_metadata(
        config, run, changes, register_results_uri=run["run_uri"], trigger_rule="none_failed"
    )
    register >> sync
    tail: Any = sync
    if encord.dataset:
        link = EncordLinkDatasetOperator(
            task_id="link_dataset",
            task_display_name="Link to dataset",
            doc_md=TASK_DOCS["link_dataset"],
            result_uris=run["run_uri"],
            dataset_hash=encord.dataset,
            trigger_rule="none_failed",
            **operator_args,
        )
        sync >> link
        tail = link
    done: Any = commit_and_report(summaries, run)
    done.operator.operator_extra_links = (RunReportLink(),)  # a TaskFlow task has no class of its own
    tail >> done
    return done


def _operator_args(config: SourceConfig) -> dict[str, Any]:
    """The Encord operators' connection, pool and state folder (with its connection)."""
    encord = config.encord
    return {
        "encord_conn_id": encord.conn_id,
        "pool": encord.pool,
        "folder_state_uri": config.state_uri,
        "hook_params": encord.hook_params,
        **_state_conns(config),
    }


def _change_chunks(config: SourceConfig, task_id: str) -> Any:
    """The task that batches the scans' metadata-change chunks for the mapped sync."""

    @task(task_id=task_id, task_display_name="Batch metadata changes", doc_md=TASK_DOCS["change_chunks"])
    def change_chunks(summaries: list[dict[str, Any]]) -> list[list[str]]:
        return batches(chunk_uris(list(summaries), "metadata"), config.max_mapped_tasks)

    return change_chunks


def _sync_metadata(config: SourceConfig, run: Any, changes: Any, **extra: Any) -> Any:
    """``sync_metadata``, mapped over batches of metadata-change chunks (``run``: the resolve XComArg)."""
    return EncordSyncMetadataOperator.partial(
        task_id="sync_metadata",
        task_display_name="Sync metadata",
        doc_md=TASK_DOCS["sync_metadata"],
        folder=config.encord.folder,
        mode=run["sync_mode"],
        dry_run=run["dry_run"],
        max_failed_items=None,
        max_failed_fraction=1.0,
        **extra,
        **_operator_args(config),
    ).expand(changes_uris=changes)


def _commit_and_report(
    config: SourceConfig,
    summaries: list[dict[str, Any]],
    options: RunOptions,
    failed_tasks: list[str],
    context: Mapping[str, Any],
) -> dict[str, Any]:
    """:func:`~encord_ingest.pipeline.finish_run` (the report goes to the log too, and the counts
    and report URI to the Asset event), then fail if the ledger could not be read, a task failed
    (an error that is not per item: auth, a missing folder, an unreadable bucket), nothing was
    listed and ``empty_run`` is ``fail``, or past the error budget."""
    result = finish_run(config, state_store(config), options, summaries, failed_tasks)
    RunReportLink.persist(context, object_url_for_connection(result.report_uri, config.state_connection))
    log.info(
        "Run report: %s (every object's final outcome: %s)\n%s\n\n%s",
        result.report_uri,
        result.outcomes_uri,
        summary_table({**result.counts, "objects seen": result.objects}),
        result.markdown,
    )
    if result.empty:
        log.warning("%s", result.empty)
    if result.ledger_error is not None:
        raise AirflowException(f"{result.ledger_error}; see {result.report_uri}")
    if (outlet_events := context.get("outlet_events")) is not None:
        outlet_events[source_asset(config)].extra = asset_extra(options, result.to_json())
    _raise_for_failed_tasks(failed_tasks, result.report_uri)
    if result.empty and config.empty_run == "fail":
        raise AirflowException(f"{result.empty}; see {result.report_uri}")
    if config.error_budget.exceeded(result.failed, result.items):
        raise AirflowException(
            f"{result.failed} of {result.items} items failed, more than the error budget "
            f"({config.error_budget.model_dump()}); see {result.report_uri}"
        )
    return result.to_json()


def _failed_tasks(context: dict[str, Any], among: list[str] | None = None) -> list[str]:
    """Tasks of this DAG run (``among`` these, when given) that failed or could not run because an
    upstream task failed."""
    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=among, run_ids=[ti.run_id]).get(ti.run_id, {})
    return sorted(name for name, state in states.items() if state in ("failed", "upstream_failed"))


def _unplanned(failed_tasks: list[str]) -> AirflowException:
    """`resolve` failed: nothing was planned, so there is nothing to commit or report."""
    return AirflowException(f"task(s) {', '.join(failed_tasks)} failed before planning; see their logs")


def _raise_for_failed_tasks(failed_tasks: list[str], report_uri: str) -> None:
    if failed_tasks:
        raise AirflowException(
            f"task(s) {', '.join(failed_tasks)} failed, so this run is incomplete; what Encord "
            f"confirmed is committed and the rest is planned again next run; see {report_uri}"
        )


def _manual_params(config: SourceConfig) -> dict[str, Param]:
    params = run_params(config, interval=False)
    params.pop("full_rescan")
    params.pop("limit")
    return params


def build_resync_dag(config: SourceConfig) -> DAG:
    """Manual metadata-only resync: re-read the sidecars under a prefix, sync what differs."""
    encord = config.encord
    with DAG(
        dag_id=f"encord_resync__{config.name}",
        description=f"Re-read sidecars of {config.bucket.uri} and sync metadata in {encord.folder}",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        params=_manual_params(config),
        **source_dag_args(config, "resync"),
        doc_md=_doc(config, "Metadata resync")
        + "\nEvery item found under the prefix is compared with what Encord holds; only differences "
        "are written. Nothing is registered and the ledger is not changed.\n",
    ) as dag:

        @task(
            trigger_rule="all_done",
            task_display_name="Report",
            doc_md="Writes the resync report (every metadata update and failure) and logs its counts.",
        )
        def report(
            summaries: list[dict[str, Any]] | None,
            uris: list[list[str]] | None,  # noqa: ARG001 (an XComArg: the report waits for the sync)
            run: dict[str, Any] | None,
            **context: Any,
        ) -> dict[str, Any]:
            failed_tasks = _failed_tasks(context)
            if run is None:
                raise _unplanned(failed_tasks)
            report_uri, sync = finish_resync(
                config, state_store(config), RunOptions.from_json(run), list(summaries or [])
            )
            failed, totals = sync.failed_urls, sync.counts
            log.info("Resync report: %s\n%s", report_uri, summary_table(totals))
            _raise_for_failed_tasks(failed_tasks, report_uri)
            if config.error_budget.exceeded(len(failed), totals.get("examined", 0)):
                raise AirflowException(f"{len(failed)} metadata updates failed; see {report_uri}")
            return {"report_uri": report_uri, "counts": totals}

        run, summaries = _plan_and_scan(config, resync=True)
        uris: Any = _change_chunks(config, "changes")(summaries)
        sync = _sync_metadata(config, run, uris)
        sync >> report(summaries, uris, run)
    return dag


def build_reconcile_dag(config: SourceConfig) -> DAG:
    """Manual reconcile: rebuild the ledger's item UUIDs from Encord's listing; report drift."""
    with DAG(
        dag_id=f"encord_reconcile__{config.name}",
        description=f"Rebuild the ledger of {config.name} from Encord folder {config.encord.folder}",
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        **source_dag_args(config, "reconcile"),
        doc_md=_doc(config, "Reconcile")
        + "\nLists the Encord folder once, fixes item UUIDs in the ledger, drops ledger rows Encord "
        "does not have (they are registered again next run) and reports the drift.\n",
    ) as dag:

        @task(
            pool=config.encord.pool,
            task_display_name="Reconcile the ledger with Encord",
            doc_md="Lists the Encord folder, rebuilds the ledger's item UUIDs, writes the drift report.",
        )
        def reconcile(**context: Any) -> dict[str, Any]:
            from encord_ingest.pipeline import drift_markdown, reconcile_ledger
            from encord_provider.hooks.encord import EncordHook
            from encord_provider.run_io import FolderMemory, RunFolderIO

            hook = EncordHook(config.encord.conn_id, **config.encord.hook_params)
            memory = FolderMemory(RunFolderIO(**_state_conns(config)), config.state_uri)
            folder = hook.get_folder(config.encord.folder, create=False, memory=memory)
            items = (
                (str(item.uuid), item.url, item.client_metadata or {})
                for item in hook.iter_folder_items(folder)
            )
            state = state_store(config)
            drift = reconcile_ledger(state, context["run_id"], items, key_of=_source(config).key_from_url)
            text = drift_markdown(config, context["run_id"], drift)
            report_uri = RunFolder.of(state, context["run_id"]).write_report(text)
            log.info("Reconcile report: %s\n%s", report_uri, summary_table(drift.to_json()))
            return {"report_uri": report_uri, "drift": drift.to_json()}

        reconcile()
    return dag


def build_source_dags(config: SourceConfig) -> list[DAG]:
    """The ingestion, resync and reconcile DAGs of one source, and its events DAG (``events:``)."""
    dags = [build_ingest_dag(config), build_resync_dag(config), build_reconcile_dag(config)]
    if config.events is not None:
        from encord_provider.events_dag import build_events_dag

        dags.append(build_events_dag(config))
    return dags
