"""The demo source on a real CeleryExecutor stack (``make test-distributed``; see conftest.py).

Two Celery workers share the tasks, ``register`` waits in the triggerer and resumes on a worker,
a second run writes nothing, and a run whose worker is killed with SIGKILL still converges, with
each object registered once. The runs are triggered like a user would (``airflow dags trigger``
with a prefix) and observed through the metadata DB, S3 and the emulator.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from demo_data import DAY_PREFIX, demo_objects
from standins.stack import DEMO_RAW_BUCKET, DEMO_STATE_BUCKET

from encord_ingest.run_folder import REPORT_NAME, run_key
from tests.dags.test_ingest_e2e import EXPECTED_KINDS
from tests.distributed.conftest import DAG_ID, SOURCE, WORKERS, CeleryStack

ENCORD_FOLDER = "demo/fleet/raw"
WRITE_ROUTES = ("upload_jobs.start", "items.patch_bulk", "items.patch", "folders.create", "schema.save")
KILLED_PREFIX = "raw/2026/11/22/"


def label(ti: dict[str, Any]) -> str:
    return ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"


class Observer:
    """Every (state, hostname) each task instance was seen in while the run was polled."""

    def __init__(self) -> None:
        self.seen: dict[str, set[tuple[str | None, str | None]]] = defaultdict(set)

    def __call__(self, tis: list[dict[str, Any]]) -> None:
        for ti in tis:
            self.seen[label(ti)].add((ti["state"], ti["hostname"]))


def trigger_logs(stack: CeleryStack, run_id: str, ti: dict[str, Any]) -> list[Path]:
    """The triggerer's log files of one task instance (written next to its task log)."""
    folder = Path(stack.env["AIRFLOW_HOME"]) / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    folder /= f"task_id={ti['task_id']}"
    if ti["map_index"] >= 0:
        folder /= f"map_index={ti['map_index']}"
    return sorted(folder.glob("attempt=*.log.trigger.*.log"))


def report(stack: CeleryStack, run_id: str) -> str:
    key = f"{SOURCE}/runs/{run_key(run_id)}/{REPORT_NAME}"
    return stack.standins.s3.get_object(Bucket=DEMO_STATE_BUCKET, Key=key)["Body"].read().decode()


def items(stack: CeleryStack) -> list[dict[str, Any]]:
    return list(stack.standins.emulator.admin.folder_items(ENCORD_FOLDER))


def writes(stack: CeleryStack) -> dict[str, int]:
    counts = stack.standins.emulator.admin.counts()
    return {route: counts.get(route, 0) for route in WRITE_ROUTES}


def run(
    stack: CeleryStack, run_id: str, prefix: str, summary: list[str], observer: Observer | None = None
) -> list[dict[str, Any]]:
    """Trigger a run of the demo source over ``prefix``; its task instances once it succeeded."""
    started = time.monotonic()
    stack.trigger(run_id, prefix)
    state = stack.wait_for_run(run_id, observer)
    tis = stack.task_instances(run_id)
    hosts = Counter(ti["hostname"] for ti in tis)
    summary.append(
        f"run {run_id!r}: {state} {time.monotonic() - started:.0f} s after the trigger; "
        f"task instances per host {dict(hosts)}"
    )
    assert state == "success", tis
    assert {ti["state"] for ti in tis} <= {"success", "skipped"}, tis
    return tis


def test_tasks_spread_over_both_workers_register_resumes_after_the_triggerer_and_a_rerun_writes_nothing(
    celery_stack: CeleryStack, summary: list[str]
) -> None:
    stack = celery_stack
    stack.standins.put_objects(DEMO_RAW_BUCKET, demo_objects())
    observer = Observer()
    first = run(stack, "first", DAY_PREFIX, summary, observer)

    # `register` was deferred (the triggerer waited for the upload jobs), then resumed on a worker.
    registers = [ti for ti in first if ti["task_id"] == "register"]
    assert registers, first
    assert all(ti["hostname"] in WORKERS for ti in registers), registers
    for ti in registers:
        assert "deferred" in {state for state, _ in observer.seen[label(ti)]}, observer.seen[label(ti)]
        fired = "".join(path.read_text() for path in trigger_logs(stack, "first", ti))
        assert "Trigger fired event" in fired, fired
        assert "'status': 'done'" in fired, fired
    text = report(stack, "first")
    assert "| registered | 17 |" in text, text
    assert "| failed | 3 |" in text, text
    assert "**32**" in text, text
    registered = items(stack)
    assert {item["name"]: item["item_type"] for item in registered} == EXPECTED_KINDS

    stack.standins.emulator.admin.reset_counts()
    second = run(stack, "second", DAY_PREFIX, summary)
    assert writes(stack) == dict.fromkeys(WRITE_ROUTES, 0)
    assert "| unchanged | 17 |" in report(stack, "second")
    assert items(stack) == registered

    hosts = {ti["hostname"] for ti in first + second if ti["state"] == "success"}
    assert hosts == set(WORKERS), hosts


def test_a_run_whose_worker_is_killed_converges_without_duplicates(
    celery_stack: CeleryStack, summary: list[str]
) -> None:
    stack = celery_stack
    stack.standins.put_objects(DEMO_RAW_BUCKET, demo_objects(KILLED_PREFIX))
    killed: list[dict[str, Any]] = []
    kill_time: list[float] = []

    def kill_a_busy_worker(tis: list[dict[str, Any]]) -> None:
        """SIGKILL the whole process tree of the first worker seen running a task of this run."""
        busy = [ti for ti in tis if ti["state"] == "running" and ti["hostname"] in WORKERS]
        if busy and not killed:
            killed.append(busy[0])
            kill_time.append(time.monotonic())
            stack.processes.kill(busy[0]["hostname"])

    tis = run(stack, "killed", KILLED_PREFIX, summary, kill_a_busy_worker)
    assert killed, "no task of the run was seen running on a worker"
    victim, survivor = killed[0], next(name for name in WORKERS if name != killed[0]["hostname"])
    after = next(ti for ti in tis if label(ti) == label(victim))
    summary.append(
        f"killed {victim['hostname']} (SIGKILL, whole process group) while it ran {label(victim)} "
        f"try {victim['try_number']}; that task ended {after['state']} on {after['hostname']} at try "
        f"{after['try_number']}; the run succeeded {time.monotonic() - kill_time[0]:.0f} s after the kill"
    )
    # The lost task was failed by the heartbeat timeout and retried on the other worker.
    assert after["try_number"] > victim["try_number"], (victim, after)
    assert after["hostname"] == survivor, (victim, after)

    text = report(stack, "killed")
    assert "| registered | 17 |" in text, text
    assert "| failed | 3 |" in text, text
    everything = items(stack)
    assert sorted(
        name for name in (i["name"] for i in everything) if name.startswith(KILLED_PREFIX)
    ) == sorted(name.replace(DAY_PREFIX, KILLED_PREFIX) for name in EXPECTED_KINDS)
    urls = [item["url"] for item in stack.standins.emulator.admin.all_items() if item.get("url")]
    assert len(urls) == len(set(urls)), "an object was registered twice"
