"""A real CeleryExecutor stack on this machine, for ``make test-distributed``.

Debian's Postgres and Redis, then Airflow 3.3.2: scheduler, dag-processor, triggerer, api-server
and two Celery workers with distinct hostnames, each a process of its own with its own log under
one temporary directory. S3 (moto) and the Encord emulator run in threads of this process; the
demo connections reach every Airflow process as ``AIRFLOW_CONN_*`` variables. Everything started
here is stopped by PID. When a test fails, the end of every component's log is added to its report.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from standins.services import (
    HOSTNAME_ENV,
    Processes,
    free_port,
    port_open,
    start_postgres,
    start_redis,
    wait_for,
)
from standins.stack import StandinStack, standin_stack

REPO = Path(__file__).resolve().parents[2]
WORKERS = ("worker-a", "worker-b")
SOURCE = "demo_media"
DAG_ID = f"encord_ingest__{SOURCE}"
# Timeouts are generous: these machines are shared, with load averages of 20-40 on 2 cores.
START_TIMEOUT_S = 300
RUN_TIMEOUT_S = 900
# Heartbeat timeout for the killed-worker test (the default, 300 s, is what makes recovery slow).
HEARTBEAT_TIMEOUT_S = 60
CLI_TIMEOUT_S = 300

if os.environ.get("ENCORD_INGEST_DISTRIBUTED") != "1":
    collect_ignore_glob = ["test_*.py"]


@dataclass
class CeleryStack:
    processes: Processes
    env: dict[str, str]
    db_url: str
    standins: StandinStack

    def airflow(self, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> str:
        """Run an ``airflow`` command with the stack's configuration; its output, or an error with it."""
        command = [str(Path(sys.executable).parent / "airflow"), *args]
        result = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"`airflow {' '.join(args)}` failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg2

        dsn = self.db_url.replace("postgresql+psycopg2", "postgresql")
        with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
            cursor.execute(query, params)
            return list(cursor.fetchall()) if cursor.description else []

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.sql(
            "SELECT task_id, map_index, state, hostname, try_number FROM task_instance "
            "WHERE dag_id = %s AND run_id = %s",
            DAG_ID,
            run_id,
        )
        keys = ("task_id", "map_index", "state", "hostname", "try_number")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def run_state(self, run_id: str) -> str | None:
        rows = self.sql("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", DAG_ID, run_id)
        return str(rows[0][0]) if rows else None

    def trigger(self, run_id: str, prefix: str) -> None:
        conf = json.dumps({"prefix": prefix})
        self.airflow("dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", conf)

    def wait_for_run(
        self,
        run_id: str,
        on_poll: Callable[[list[dict[str, Any]]], None] | None = None,
        timeout_s: float = RUN_TIMEOUT_S,
    ) -> str:
        """Poll until the run ends; ``on_poll`` sees its task instances every second."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if on_poll is not None:
                on_poll(self.task_instances(run_id))
            state = self.run_state(run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(1)
        raise TimeoutError(f"run {run_id} did not end within {timeout_s} s: {self.task_instances(run_id)}")


def source_dir(root: Path) -> Path:
    """The demo source, unscheduled (runs are triggered here), with retries that recover a lost worker."""
    document = yaml.safe_load((REPO / "include" / "sources" / f"{SOURCE}.yaml").read_text())
    document.update(schedule=None, retries=2, retry_delay_s=5)
    folder = root / "sources"
    folder.mkdir()
    (folder / f"{SOURCE}.yaml").write_text(yaml.safe_dump(document))
    return folder


def airflow_env(
    root: Path, db_url: str, broker_url: str, api_port: int, standins: StandinStack
) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(REPO / "tools"), os.environ.get("PYTHONPATH", "")]),
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "standins.services.hostname",
        "AIRFLOW__CORE__FERNET_KEY": "",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "300",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db_url}",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        # A lost worker's task is failed (then retried) after this many seconds without a heartbeat.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        # Longer than any task here runs; a message a lost worker had taken comes back after it.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "600",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AWS_EC2_METADATA_DISABLED": "true",
        "ENCORD_INGEST_SOURCES_DIR": str(source_dir(root)),
        **standins.airflow_env(),
    }


def start_airflow(processes: Processes, env: dict[str, str], api_port: int) -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    processes.start(
        "api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port)], env
    )
    processes.start("scheduler", [airflow, "scheduler", "--skip-serve-logs"], env)
    processes.start("dag-processor", [airflow, "dag-processor"], env)
    processes.start("triggerer", [airflow, "triggerer", "--skip-serve-logs"], env)
    for name in WORKERS:
        worker = [airflow, "celery", "worker", "--concurrency", "2", "--skip-serve-logs"]
        worker += ["--celery-hostname", f"{name}@%h", "--pid", str(processes.root / f"{name}.pid")]
        processes.start(name, worker, {**env, HOSTNAME_ENV: name})


@pytest.fixture(scope="module")
def celery_stack(request: pytest.FixtureRequest) -> Iterator[CeleryStack]:
    root = Path(tempfile.mkdtemp(prefix="celery-stack-"))
    processes = Processes(root)
    request.node.stash[PROCESSES] = processes
    with ExitStack() as cleanup:
        cleanup.callback(processes.stop_all)  # last: Postgres and Redis
        db_url = start_postgres(processes)
        broker_url = start_redis(processes)
        standins = cleanup.enter_context(standin_stack(job_duration_s=5.0))
        cleanup.callback(processes.stop_all)  # first: every Airflow process
        api_port = free_port()
        env = airflow_env(root, db_url, broker_url, api_port, standins)
        stack = CeleryStack(processes, env, db_url, standins)
        stack.airflow("db", "migrate")
        stack.airflow("pools", "set", "encord_api", "4", "Concurrent Encord API calls")
        start_airflow(processes, env, api_port)
        wait_for("api-server", lambda: port_open(api_port), START_TIMEOUT_S)
        wait_for("workers", lambda: all(_worker_ready(processes, name) for name in WORKERS), START_TIMEOUT_S)
        wait_for(
            f"{DAG_ID} parsed",
            lambda: bool(stack.sql("SELECT 1 FROM serialized_dag WHERE dag_id = %s", DAG_ID)),
            START_TIMEOUT_S,
            interval_s=2,
        )
        processes.check_alive()
        yield stack


def _worker_ready(processes: Processes, name: str) -> bool:
    """Celery prints ``celery@<hostname> ready.`` once the worker consumes its queue."""
    processes.check_alive()
    return re.search(rf"{name}@\S+ ready\.", processes.log(name).read_text(errors="replace")) is not None


PROCESSES = pytest.StashKey[Processes]()
SUMMARY: list[str] = []
"""Lines for the end of the pytest output: run times, which task was killed and how it recovered."""


@pytest.fixture(scope="session")
def summary() -> list[str]:
    """SUMMARY itself (a test module importing this conftest by name would get a second copy)."""
    return SUMMARY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY:
        terminalreporter.section("CeleryExecutor stack")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    module = item.getparent(pytest.Module)
    if report.failed and module is not None and PROCESSES in module.stash:
        report.sections.append(("component logs (tail)", module.stash[PROCESSES].tails(60)))
