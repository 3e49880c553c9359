"""Event-driven ingestion end to end: moto S3 notifications -> moto SQS -> the DAG's own SQS
watcher trigger -> ``encord_events__demo_media`` -> the Encord emulator.

Real parts: moto in server mode delivers the S3 bucket notifications to SQS itself (it writes
the documented S3 event JSON); the messages are received by the very trigger object of the
DAG's ``AssetWatcher`` (common-messaging's ``MessageQueueTrigger`` -> the amazon provider's
``SqsSensorTrigger``) over HTTP; the run is ``dag.test()`` on SQLite, talking to S3, SQS and the
Encord emulator over HTTP. One hop is not real here: the triggerer turning the trigger's event
into an asset event and the scheduler starting the run. The test hands the trigger's
``message_batch`` to the run as ``conf["messages"]`` (the DAG's replay input); the benchmark
``bench/bench_events.py`` runs that hop for real (triggerer + scheduler).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from demo_data import DAY_PREFIX, demo_objects
from standins.s3 import REGION, notifying_queue, sqs_client
from standins.stack import DEMO_RAW_BUCKET, DEMO_STATE_BUCKET, StandinStack

from tests.dags.conftest import CAM_FRONT_0001_METADATA, Runner, load_dag

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]
DAG_ID = "encord_events__demo_media"
QUEUE = "uploads"
WRITES = ("upload_jobs.start", "items.patch_bulk", "items.patch")


class Events:
    """The queue, the watcher's trigger and event runs of the demo source."""

    def __init__(self, stack: StandinStack, runner: Runner, queue_url: str):
        self.stack, self.runner, self.queue_url = stack, runner, queue_url
        self.sqs = sqs_client(stack.s3_endpoint)

    def trigger(self) -> Any:
        """The trigger of the DAG's asset watcher, as the triggerer would run it."""
        (asset,) = load_dag(DAG_ID, self.runner.repo_root).timetable.asset_condition.objects
        return asset.watchers[0].trigger

    def receive(self) -> list[dict[str, Any]]:
        """Every batch the watcher's trigger fires until the queue has nothing visible left."""
        messages: list[dict[str, Any]] = []

        async def first_event(trigger: Any) -> Any:
            async for event in trigger.run():
                return event
            return None

        trigger = self.trigger()
        while True:
            try:
                event = asyncio.run(asyncio.wait_for(first_event(trigger), timeout=8))
            except TimeoutError:
                return messages
            assert event.payload["status"] == "success"
            messages.extend(event.payload["message_batch"])

    def run(self, messages: list[dict[str, Any]]) -> Any:
        dag = load_dag(DAG_ID, self.runner.repo_root)
        return dag.test(logical_date=None, run_conf={"messages": messages})

    def in_queue(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def plan(self, dag_run: Any) -> dict[str, Any]:
        from encord_ingest.run_folder import EVENT_PLAN, run_key

        key = f"demo_media/runs/{run_key(dag_run.run_id)}/{EVENT_PLAN}"
        return json.loads(self.stack.s3.get_object(Bucket=DEMO_STATE_BUCKET, Key=key)["Body"].read())

    def ledger(self) -> Any:
        from encord_ingest.pipeline import ledger_of
        from encord_ingest.storage import BlobStore

        state = BlobStore.from_uri(
            f"s3://{DEMO_STATE_BUCKET}/demo_media", s3_client=self.stack.s3, gcs_client=None
        )
        return ledger_of(state).read_frame()


@pytest.fixture
def events(
    stack: StandinStack, source_file: Path, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Events]:
    """The demo source with ``events:`` on a moto SQS queue that the raw bucket notifies."""
    queue_url = notifying_queue(stack.s3, sqs_client(stack.s3_endpoint), DEMO_RAW_BUCKET, QUEUE)
    document = yaml.safe_load(source_file.read_text())
    document["events"] = {
        "queue_url": queue_url,
        "conn_id": "aws_events",
        "region": REGION,
        "max_events": 50,
        "window_s": 5,
        "idle_poll_s": 1,
        "visibility_timeout_s": 600,
    }
    source_file.write_text(yaml.safe_dump(document))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_EVENTS", stack.airflow_env("aws_events")["AIRFLOW_CONN_AWS_EVENTS"])
    return Events(stack, runner, queue_url)


def key_of(message: dict[str, Any]) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(json.loads(message["Body"])["Records"][0]["s3"]["object"]["key"])


def writes(counts: Callable[[], dict[str, int]]) -> dict[str, int]:
    calls = counts()
    return {name: calls.get(name, 0) for name in WRITES}


def test_s3_notifications_drive_runs_that_converge_under_redelivery(
    events: Events, runner: Runner, counts: Callable[[], dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Upload objects and sidecars: moto sends one notification per PUT to the queue.
    runner.put(demo_objects())
    batch = events.receive()
    bodies = [json.loads(m["Body"]) for m in batch]
    assert [b["Event"] for b in bodies if "Records" not in b] == ["s3:TestEvent"]  # sent on configuring
    assert sorted(key_of(m) for m in batch if "Records" in m["Body"]) == sorted(demo_objects())
    first = events.run(batch)
    assert first.state == "success", runner.states(first)
    assert list(events.plan(first)["ignored"].values()) == ["s3_test_event"]
    assert runner.states(first)["catch_up"] == "skipped"  # no batch arrived after this run's window
    items = runner.items()
    assert len(items) == 10  # the same items a scheduled scan of the day registers
    assert items["raw/2026/11/20/images/cam_front_0001.jpg"]["client_metadata"] == CAM_FRONT_0001_METADATA
    assert items["raw/2026/11/20/video/drive_0001.mp4"]["client_metadata"]["keyframes"] == [0, 30, 60]
    assert items["raw/2026/11/20/sequences/seq_0001"]["item_type"] == "imageSequence"
    assert "cam_side_0001.jpg.json: expected valid JSON" in runner.report(first)
    assert events.in_queue() == 0  # deleted after the commit
    counts()

    # The same events delivered again (plus a malformed message): 0 duplicates, 0 writes.
    settled = {
        DAY_PREFIX + k for k in ("_defaults.yaml", "video/drive_0001.mp4", "video/drive_0001.mp4.yaml")
    }
    settled |= {DAY_PREFIX + "images/cam_front_0001.jpg", DAY_PREFIX + "images/cam_front_0001.jpg.json"}
    for message in batch:
        if "Records" in message["Body"] and key_of(message) in settled:
            events.sqs.send_message(QueueUrl=events.queue_url, MessageBody=message["Body"])
    events.sqs.send_message(QueueUrl=events.queue_url, MessageBody="{not an S3 event")
    duplicate = events.run(events.receive())
    assert duplicate.state == "success", runner.states(duplicate)
    assert writes(counts) == dict.fromkeys(WRITES, 0)
    plan = events.plan(duplicate)
    assert len(plan["malformed"]) == 1
    assert "expected JSON of an S3 event" in plan["malformed"][0]["reason"]
    assert len(plan["already_applied"]) == 5
    assert plan["units"] == []
    assert len(runner.items()) == 10
    assert events.in_queue() == 0

    # A sidecar update: exactly one patch, of that item.
    before = runner.items()
    runner.put(
        {f"{DAY_PREFIX}images/cam_front_0002.json": json.dumps({"review": {"status": "approved"}}).encode()}
    )
    sidecar = events.run(events.receive())
    assert sidecar.state == "success", runner.states(sidecar)
    assert writes(counts) == {"upload_jobs.start": 0, "items.patch_bulk": 1, "items.patch": 0}
    after = runner.items()
    changed = {t for t in before if after[t]["client_metadata"] != before[t]["client_metadata"]}
    assert changed == {"raw/2026/11/20/images/cam_front_0002.jpg"}
    assert "| metadata_updated | 1 |" in runner.report(sidecar)

    # A _defaults.yaml change re-syncs its folder (and only it).
    runner.put(
        {f"{DAY_PREFIX}groups/group_0001/_defaults.yaml": b"capture:\n  indoor: true\n  site: yard-2\n"}
    )
    defaults = events.run(events.receive())
    assert defaults.state == "success", runner.states(defaults)
    assert writes(counts)["items.patch_bulk"] == 1
    group = runner.items()["raw/2026/11/20/groups/group_0001"]["client_metadata"]
    assert group["fleet.capture.site"] == "yard-2"
    assert [u["reason"] for u in events.plan(defaults)["units"]] == ["folder_input"]

    # A delete marks the ledger row gone, as a scan would.
    events.stack.s3.delete_object(Bucket=DEMO_RAW_BUCKET, Key=f"{DAY_PREFIX}text/notes_0001.txt")
    removed = events.run(events.receive())
    assert removed.state == "success", runner.states(removed)
    assert "| gone | 1 |" in runner.report(removed)
    ledger = events.ledger()
    assert f"{DAY_PREFIX}text/notes_0001.txt" not in set(ledger["key"])
    assert writes(counts) == dict.fromkeys(WRITES, 0)

    # A crash after the commit, before the messages are deleted: they come back and converge.
    runner.put({f"{DAY_PREFIX}images/cam_front_0003.jpg": b"\xff\xd8\xff\xe0 a new frame"})
    received = events.receive()
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_EVENTS",
        json.dumps(
            {
                "conn_type": "aws",
                "extra": {
                    "endpoint_url": "http://127.0.0.1:9",
                    "region_name": REGION,
                    "config_kwargs": {"retries": {"max_attempts": 1}},
                },
            }
        ),
    )
    crashed = events.run(received)
    assert crashed.state == "failed"
    assert runner.states(crashed)["commit_and_report"] == "success"
    assert runner.states(crashed)["acknowledge"] == "failed"
    assert writes(counts)["upload_jobs.start"] == 1
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_EVENTS", events.stack.airflow_env("aws_events")["AIRFLOW_CONN_AWS_EVENTS"]
    )
    assert events.in_queue() == 1  # still there, hidden until its visibility timeout ends
    for message in received:  # the timeout elapses (shortened here)
        events.sqs.change_message_visibility(
            QueueUrl=events.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    redelivered = events.receive()
    assert [m["Body"] for m in redelivered] == [m["Body"] for m in received]
    converged = events.run(redelivered)
    assert converged.state == "success", runner.states(converged)
    assert writes(counts) == dict.fromkeys(WRITES, 0)
    titles = [item["name"] for item in runner.stack.emulator.admin.folder_items("demo/fleet/raw")]
    assert titles.count("raw/2026/11/20/images/cam_front_0003.jpg") == 1
    assert events.in_queue() == 0
