"""End-to-end fixtures: the real DAG file, moto S3 over HTTP, the Encord emulator, SQLite Airflow.

Nothing of our own is mocked: ``dag.test()`` parses ``dags/encord_sources.py``, which reads the
source YAML written here (the demo source, pointed at the stand-ins), and every task talks to
S3 and to the emulator over real HTTP through the real ``encord`` SDK and boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from standins.stack import DEMO_RAW_BUCKET, DEMO_STATE_BUCKET, StandinStack, standin_stack

ENCORD_FOLDER = "demo/fleet/raw"
CAM_FRONT_0001_METADATA = {
    "fleet.capture.site": "depot-7",
    "fleet.capture.indoor": False,
    "fleet.capture.weather": "rain",
    "fleet.capture.time": "2026-11-20T07:15:00Z",
    "fleet.review.status": "approved",
    "fleet.camera.model": "fc-100",
    "fleet.camera.exposure_ms": 8.5,
}
"""What the demo's cam_front_0001.jpg carries in Encord after a run of its day (any DAG): folder
defaults < table row < per-file sidecar, flattened and namespaced."""


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Iterator[StandinStack]:  # noqa: ARG001 (the DB)
    with standin_stack() as running:
        for name, value in running.airflow_env().items():
            monkeypatch.setenv(name, value)
        yield running


@pytest.fixture
def source_file(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo source, with no task retries (a failure shows at once) and its own sources dir."""
    document = yaml.safe_load((repo_root / "include" / "sources" / "demo_media.yaml").read_text())
    document.update(retries=0, retry_delay_s=0)
    folder = tmp_path / "sources"
    folder.mkdir()
    path = folder / "demo_media.yaml"
    path.write_text(yaml.safe_dump(document))
    monkeypatch.setenv("ENCORD_INGEST_SOURCES_DIR", str(folder))
    return path


def load_dag(dag_id: str, repo_root: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(repo_root / "dags"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


class Runner:
    """Runs a DAG of the demo source with ``dag.test()`` and reads what it left behind."""

    def __init__(self, stack: StandinStack, repo_root: Path) -> None:
        self.stack = stack
        self.repo_root = repo_root

    def run(self, dag_id: str = "encord_ingest__demo_media", day: datetime | None = None, **conf: Any) -> Any:
        dag = load_dag(dag_id, self.repo_root)
        if day is None:
            return dag.test(logical_date=None, run_conf=conf or None)
        return dag.test(logical_date=day, run_conf=conf or None)

    def states(self, dag_run: Any) -> dict[str, str]:
        return {
            ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state)
            for ti in dag_run.get_task_instances()
        }

    def report(self, dag_run: Any, source: str = "demo_media") -> str:
        from encord_ingest.run_folder import REPORT_NAME, run_key

        key = f"{source}/runs/{run_key(dag_run.run_id)}/{REPORT_NAME}"
        return self.stack.s3.get_object(Bucket=DEMO_STATE_BUCKET, Key=key)["Body"].read().decode()

    def items(self) -> dict[str, dict[str, Any]]:
        """Top-level items of the Encord folder by title."""
        return {item["name"]: item for item in self.stack.emulator.admin.folder_items(ENCORD_FOLDER)}

    def put(self, objects: dict[str, bytes]) -> None:
        self.stack.put_objects(DEMO_RAW_BUCKET, objects)

    def delete(self, bucket: str, prefix: str) -> None:
        client = self.stack.s3
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=entry["Key"])


@pytest.fixture
def runner(stack: StandinStack, source_file: Path, repo_root: Path) -> Runner:  # noqa: ARG001 (the source YAML)
    return Runner(stack, repo_root)


@pytest.fixture
def counts(stack: StandinStack) -> Callable[[], dict[str, int]]:
    """Requests per emulator route since the last call (resets the counters)."""

    def delta() -> dict[str, int]:
        seen = stack.emulator.admin.counts()
        stack.emulator.admin.reset_counts()
        return seen

    return delta


def covering(d: int) -> datetime:
    """The logical date of the run whose data interval is 2026-11-<d> (daily cron intervals: the
    run after day D ends covers day D; ``dag.test`` infers the interval ending at its date)."""
    return datetime(2026, 11, d + 1, tzinfo=UTC)
