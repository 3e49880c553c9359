"""Deferral, part one: the register operator defers, the trigger runs on its own against the
emulator, and its one event is all a fresh operator instance needs to finish."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from airflow.triggers.base import TriggerEvent

from encord_emulator.testing import EmulatorServer
from encord_provider.hooks.encord import EncordHook
from encord_provider.triggers.encord import EncordUploadJobTrigger
from tests.provider.helpers import (
    BUCKET_URL,
    TaskStateStore,
    read_result,
    register_operator,
    task_context,
    write_manifest,
)

IMAGES = {"images": [{"objectUrl": f"{BUCKET_URL}/t/a.jpg"}, {"objectUrl": f"{BUCKET_URL}/t/b.jpg"}]}


def first_event(trigger: EncordUploadJobTrigger) -> TriggerEvent:
    async def run() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(run())


def defer(conn_id: str, uri: str, store: TaskStateStore, **kwargs: Any) -> EncordUploadJobTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        register_operator(conn_id, [uri], deferrable=True, **kwargs).execute(task_context(store))
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is not None
    trigger = deferred.value.trigger
    assert isinstance(trigger, EncordUploadJobTrigger)
    return trigger


@pytest.mark.usefixtures("integration")
def test_serialized_trigger_event_alone_lets_a_new_operator_finish(
    encord_conn: str, emulator: EmulatorServer, run_folder: Path
) -> None:
    uri = write_manifest(run_folder, "c0", IMAGES)
    store = TaskStateStore()
    trigger = defer(encord_conn, uri, store)
    classpath, kwargs = trigger.serialize()
    assert classpath == "encord_provider.triggers.encord.EncordUploadJobTrigger"
    revived = EncordUploadJobTrigger(**json.loads(json.dumps(kwargs)))
    assert revived.serialize() == (classpath, kwargs)
    [job] = kwargs["jobs"]
    assert store.values["encord_upload_jobs"]["jobs"] == {uri: job["job_uuid"]}

    event = first_event(revived)
    payload = json.loads(json.dumps(event.payload))
    assert payload["status"] == "done"
    assert payload["jobs"][0]["chunk_uri"] == uri
    assert payload["jobs"][0]["outcome"]["units_done"] == 2

    xcom = register_operator(encord_conn, [uri], deferrable=True).execute_complete(
        task_context(store), payload
    )
    assert xcom["chunks"][0]["job_uuid"] == job["job_uuid"]
    assert xcom["counts"] == {"items": 2, "urls": 2, "registered_items": 2, "failed_items": 0}
    results = read_result(run_folder, "c0.register.json")["results"]
    listed = {item["url"]: item["uuid"] for item in emulator.admin.folder_items("ingest/cams")}
    assert {url: r["item_uuid"] for url, r in results.items()} == listed
    assert store.values == {}


@pytest.mark.usefixtures("integration")
@pytest.mark.emulator(job_duration_s=0.3)
def test_trigger_survives_a_burst_of_server_errors_while_polling(
    encord_conn: str, emulator: EmulatorServer, run_folder: Path
) -> None:
    trigger = defer(encord_conn, write_manifest(run_folder, "c0", IMAGES), TaskStateStore())
    emulator.admin.inject("upload_jobs.get", 503, times=6)
    emulator.admin.reset_counts()
    event = first_event(trigger)
    assert event.payload["status"] == "done"
    assert emulator.admin.counts()["upload_jobs.get"] >= 7


@pytest.mark.usefixtures("emulator", "integration")
@pytest.mark.emulator(job_duration_s=60)
def test_deadline_yields_a_timeout_event_and_the_task_fails(encord_conn: str, run_folder: Path) -> None:
    uri = write_manifest(run_folder, "c0", IMAGES)
    trigger = defer(encord_conn, uri, TaskStateStore(), timeout_s=1.5, poll_timeout_s=1)
    started = time.monotonic()
    event = first_event(trigger)
    assert time.monotonic() - started < 5
    assert event.payload["status"] == "timeout"
    assert event.payload["jobs"][0]["outcome"] is None
    with pytest.raises(AirflowException, match=r"stopped \(timeout\): deadline passed; 0/1 job\(s\) ended"):
        register_operator(encord_conn, [uri], deferrable=True).execute_complete({}, event.payload)


@pytest.mark.usefixtures("integration")
@pytest.mark.emulator(job_duration_s=60)
def test_killing_the_task_cancels_the_job(
    encord_conn: str, emulator: EmulatorServer, run_folder: Path
) -> None:
    trigger = defer(encord_conn, write_manifest(run_folder, "c0", IMAGES), TaskStateStore())
    asyncio.run(trigger.on_kill())
    [job] = emulator.admin.jobs()
    assert job["status"] == "CANCELLED"
    assert emulator.admin.counts()["upload_jobs.cancel"] == 1


@pytest.mark.emulator(job_duration_s=0.3)
@pytest.mark.usefixtures("emulator", "integration")
def test_sdk_work_never_runs_on_the_event_loop(
    encord_conn: str,
    run_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building the hook (it imports the SDK), loading the key and every SDK request run in worker
    threads: the triggerer's one event loop is never blocked by them (its watchdog logged 3 s)."""
    import requests

    trigger = defer(encord_conn, write_manifest(run_folder, "c0", IMAGES), TaskStateStore())
    calls: list[tuple[str, int]] = []

    def spy(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, threading.get_ident()))
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(EncordHook, "__init__", spy("build the hook", EncordHook.__init__))
    monkeypatch.setattr(EncordHook, "_create_client", spy("load the key", EncordHook._create_client))
    monkeypatch.setattr(requests.Session, "send", spy("HTTP request", requests.Session.send))

    async def run_then_kill() -> tuple[int, TriggerEvent]:
        loop_thread = threading.get_ident()
        async for event in trigger.run():
            await trigger.on_kill()
            return loop_thread, event
        raise AssertionError("the trigger ended without an event")

    loop_thread, event = asyncio.run(run_then_kill())
    assert event.payload["status"] == "done"
    assert {name for name, _ in calls} == {"build the hook", "load the key", "HTTP request"}
    assert [name for name, thread in calls if thread == loop_thread] == []
