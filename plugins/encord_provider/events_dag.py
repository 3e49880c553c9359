"""``encord_events__<name>``: ingestion driven by S3 event notifications on SQS.

The DAG is scheduled on an :class:`~airflow.sdk.Asset` watched by an ``AssetWatcher`` on
common-messaging's ``MessageQueueTrigger`` (``scheme="sqs"``: the amazon provider's
``SqsSensorTrigger``), which the triggerer runs. Each batch of messages the trigger receives
becomes an asset event; the scheduler starts a run with the events that queued up since the last
one (``max_active_runs=1``, so a busy run makes the next batch larger, never a second writer of
the ledger).

Delete only after commit. The SQS trigger deletes messages on receipt by default; here it is
configured with ``delete_message_on_reception=False`` and a ``visibility_timeout``: received
messages stay in the queue, hidden, and their receipt handles travel in the asset event. The
run plans exactly the affected key ranges (:mod:`encord_ingest.events`), scans, registers, syncs
and commits the ledger like a scheduled run, and only then ``acknowledge`` deletes the messages.
A crash anywhere before that leaves them in the queue: they become visible again after the
visibility timeout, the watcher fires again, and the new run converges (0 writes for what the
first run finished). A message received again while its first run is still busy (a run longer
than the timeout) gives a second run with 0 writes.

Batches that arrive while a run waits for ``max_active_runs``: Airflow 3.3.2 starts an asset
run with the events up to the time its queue entry was *created*, and deletes the entry; events
that arrived between that time and the run's creation stay unconsumed until some later event
starts another run (measured with ``bench/bench_events.py``: 73 of 200 messages waited for their
visibility timeout). So the last task, ``catch_up``, looks for asset events after its run's
window; if there are any, it succeeds and its outlet event on the same asset starts the next run,
which consumes them; otherwise it is skipped and emits nothing (no loop).

Manual runs replay messages: ``conf={"messages": [<SQS message or {"Body": ...}>...]}`` (for
example from a dead-letter queue); they are planned the same way and deleted if they carry a
receipt handle of the queue.

Building the DAG reads nothing: the trigger's import (boto3) happens only for sources that have
``events:``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, Param, task

from encord_ingest.config import SourceConfig
from encord_provider.dag_builder import (
    register_sync_commit,
    scan_shards,
    source_dag_args,
    state_store,
)

log = logging.getLogger(__name__)
SQS_DELETE_BATCH = 10


def events_dag_id(config: SourceConfig) -> str:
    return f"encord_events__{config.name}"


def events_asset(config: SourceConfig) -> Asset:
    """The Asset the SQS watcher updates for each batch of messages."""
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    assert config.events is not None
    trigger = MessageQueueTrigger(scheme="sqs", **config.events.trigger_kwargs(config.bucket.conn_id))
    return Asset(
        name=f"encord_events.{config.name}",
        uri=f"sqs://{config.events.queue_url.split('://', 1)[1]}",
        watchers=[AssetWatcher(name=f"encord_events_{config.name}", trigger=trigger)],
    )


def collect_messages(context: Any) -> list[dict[str, Any]]:
    """The SQS messages of this run: from the asset events that triggered it (the watcher's
    ``payload.message_batch``) and from a manual run's ``conf["messages"]``."""
    messages: list[dict[str, Any]] = []
    events = context.get("triggering_asset_events") or {}
    for asset_events in events.values():
        for event in asset_events:
            payload = (event.extra or {}).get("payload") or {}
            messages.extend(payload.get("message_batch") or [])
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    for index, message in enumerate(conf.get("messages") or []):
        messages.append(
            message if isinstance(message, dict) else {"MessageId": f"conf-{index}", "Body": message}
        )
    return messages


def _plan_run(config: SourceConfig, context: Any) -> dict[str, Any]:
    from encord_ingest.events import events_markdown, ledger_versions_of, plan_events
    from encord_ingest.pipeline import RunOptions, as_flag, ledger_of
    from encord_ingest.run_folder import RunFolder

    state = state_store(config)
    ledger = ledger_of(state)

    def versions(parts: Any) -> dict[str, str]:
        if ledger.pointer() is None:
            return {}
        return ledger_versions_of(ledger.snapshot(parts).rows.values())

    run_id = context["run_id"]
    params = context["params"]
    plan = plan_events(config, collect_messages(context), run_id=run_id, ledger_versions=versions)
    folder = RunFolder.of(state, run_id)
    folder.write_event_plan(plan.model_dump_json(indent=1).encode("utf-8"), events_markdown(plan))
    log.info("Event batch: %s", plan.counts())
    for bad in plan.malformed:
        log.error("Malformed message %s: %s", bad["id"], bad["reason"])
    options = RunOptions(
        run_id=run_id,
        prefixes=plan.prefixes,
        dry_run=as_flag(params.get("dry_run", False), f"{config.name}: param dry_run"),
        sync_mode=str(params.get("sync_mode") or config.encord.sync_mode),
    )
    return {**options.to_json(), "run_uri": folder.uri()}


def _read_plan(config: SourceConfig, run: dict[str, Any]) -> Any:
    from encord_ingest.events import EventPlan
    from encord_ingest.pipeline import RunOptions
    from encord_ingest.run_folder import RunFolder

    return EventPlan.model_validate_json(
        RunFolder.of(state_store(config), RunOptions.from_json(run).run_id).read_event_plan()
    )


def delete_messages(config: SourceConfig, receipts: list[dict[str, str]]) -> dict[str, int]:
    """Delete the batch's messages from the queue (10 per call); returns deleted/failed counts.

    A failed delete (a receipt handle that expired because the message was received again) is
    harmless: the message comes back and its run writes nothing."""
    from airflow.providers.amazon.aws.hooks.sqs import SqsHook

    assert config.events is not None
    events = config.events
    client = SqsHook(
        aws_conn_id=events.conn_id or config.bucket.conn_id, region_name=events.region
    ).get_conn()
    deleted = failed = 0
    for start in range(0, len(receipts), SQS_DELETE_BATCH):
        entries = [
            {"Id": str(i), "ReceiptHandle": r["ReceiptHandle"]}
            for i, r in enumerate(receipts[start : start + SQS_DELETE_BATCH])
        ]
        answer = client.delete_message_batch(QueueUrl=events.queue_url, Entries=entries)
        deleted += len(answer.get("Successful", []))
        for failure in answer.get("Failed", []):
            failed += 1
            log.warning("Could not delete message %s: %s", failure.get("Id"), failure.get("Message"))
    return {"deleted": deleted, "failed": failed}


def build_events_dag(config: SourceConfig) -> DAG:
    """The event-driven ingestion DAG of a source with ``events:``."""
    asset = events_asset(config)
    with DAG(
        dag_id=events_dag_id(config),
        description=f"Ingest {config.bucket.uri} into Encord from S3 event notifications on SQS",
        schedule=[asset],
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        params={
            "dry_run": Param(
                False, type="boolean", title="Dry run", description="Plan and report; write nothing."
            ),
            "sync_mode": Param(
                config.encord.sync_mode, enum=["merge", "replace"], title="Metadata sync mode"
            ),
        },
        **source_dag_args(config, "events"),
        doc_md=(
            f"### Event-driven ingestion: `{config.name}`\n\nEach run takes a batch of S3 event "
            "notifications from the SQS queue, re-plans exactly the affected objects, folders and "
            "groups, and deletes the messages after the ledger commit. Manual runs replay "
            'messages given as `{"messages": [...]}` in the run configuration.\n'
        ),
    ) as dag:

        @task(
            task_display_name="Plan the event batch",
            doc_md="Parses the batch's S3 event notifications and plans exactly the affected objects, "
            "folders and groups (malformed and out-of-source events are reported and skipped).",
        )
        def resolve(**context: Any) -> dict[str, Any]:
            return _plan_run(config, context)

        @task(task_display_name="Plan shards", doc_md="The planned units in at most `shards` shards.")
        def plan_shards(run: dict[str, Any]) -> list[dict[str, Any]]:
            return list(_read_plan(config, run).shards)

        @task(
            task_display_name="Acknowledge messages",
            doc_md="Deletes the batch's messages from the queue once the ledger is committed "
            "(kept in a dry run).",
        )
        def acknowledge(run: dict[str, Any]) -> dict[str, int]:
            """Delete the batch's messages: the run has committed its ledger."""
            plan = _read_plan(config, run)
            if run["dry_run"]:
                log.info("Dry run: the %d message(s) stay in the queue", len(plan.receipts))
                return {"deleted": 0, "failed": 0}
            return delete_messages(config, plan.receipts)

        @task(
            inlets=[asset],
            outlets=[asset],
            task_display_name="Catch up",
            doc_md="Starts another run when batches arrived after this run's window.",
        )
        def catch_up(**context: Any) -> str:
            """Start another run if batches arrived after this run's window (see the module doc)."""
            from airflow.sdk.exceptions import AirflowSkipException

            window_end = context["dag_run"].run_after
            later = context["inlet_events"][asset].after(window_end.isoformat()).limit(1)
            if not len(later):
                raise AirflowSkipException("no batch arrived after this run's window")
            log.info("A batch arrived after %s; its run is started by this task's asset event", window_end)
            return str(later[0].timestamp)

        run: Any = resolve()
        summaries = scan_shards(config, run, plan_shards(run))
        done = register_sync_commit(config, run, summaries)
        done >> acknowledge(run) >> catch_up()
    return dag
