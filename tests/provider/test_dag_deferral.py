"""Deferral, part two: a small DAG run with ``dag.test()`` in which the register operator defers,
the trigger runs (inline, as ``dag.test`` does) against the emulator, and the task resumes.

How the DAG is found: ``dag.test()`` in Airflow 3.3 syncs the configured DAG *bundles* to the
metadata DB and needs the DAG to be in one of them. The repo's ``dags/`` folder (the default
``dags-folder`` bundle) must not hold test DAGs, so for these tests only the bundle list
(``[dag_processor] dag_bundle_config_list``, read from the environment each time) gets a second
local bundle, ``tests/provider/dags``, listed first so the walk stops there and never parses the
product DAGs. ``dags-folder`` stays in the list so nothing is deactivated for other tests.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from encord_emulator.testing import EmulatorServer
from tests.provider.helpers import BUCKET_URL, read_result, write_manifest

DAG_FILE = Path(__file__).parent / "dags" / "encord_register_deferral.py"
IMAGES = {"images": [{"objectUrl": f"{BUCKET_URL}/d/a.jpg"}, {"objectUrl": f"{BUCKET_URL}/d/b.jpg"}]}


@pytest.fixture
def test_bundle(monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> ModuleType:  # noqa: ARG001 (the DB must exist)
    bundles = [
        {
            "name": "encord-provider-tests",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(DAG_FILE.parent)},
        },
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    spec = importlib.util.spec_from_file_location("encord_register_deferral", DAG_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_dag(module: ModuleType, uri: str) -> tuple[Any, Any]:
    from airflow.utils.state import DagRunState

    run = module.dag.test(run_conf={"manifest_uri": uri, "integration": "ingest-s3"})
    [ti] = run.get_task_instances()
    assert run.state in (DagRunState.SUCCESS, DagRunState.FAILED)
    return run, ti


@pytest.mark.usefixtures("encord_conn", "integration")
def test_register_defers_and_resumes_in_a_dag_run(
    test_bundle: ModuleType, emulator: EmulatorServer, run_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri = write_manifest(run_folder, "c0", IMAGES)
    caplog.set_level(logging.INFO)
    run, ti = run_dag(test_bundle, uri)
    assert "[DAG TEST] running trigger in line" in caplog.text
    assert run.state == "success"
    assert ti.state == "success"
    assert ti.try_number == 1
    assert ti.next_method is None
    xcom = ti.xcom_pull(task_ids="register")
    assert xcom["counts"] == {"items": 2, "urls": 2, "registered_items": 2, "failed_items": 0}
    assert emulator.admin.counts()["upload_jobs.start"] == 1
    assert emulator.admin.counts()["upload_jobs.get"] == 1  # only the trigger polled
    report = read_result(run_folder, "c0.register.json")
    assert report["job_uuid"] == xcom["chunks"][0]["job_uuid"]


@pytest.mark.usefixtures("encord_conn", "integration")
def test_a_retry_after_the_job_started_resumes_the_same_job(
    test_bundle: ModuleType, emulator: EmulatorServer, run_folder: Path
) -> None:
    """The trigger's first poll is refused (400, not retried), so try 1 fails after the job
    started; try 2 finds the job UUID in Airflow's task state store and does not start another."""
    uri = write_manifest(run_folder, "c0", IMAGES)
    emulator.admin.inject("upload_jobs.get", 400, times=1)
    run, ti = run_dag(test_bundle, uri)
    assert run.state == "success"
    assert ti.try_number == 2
    assert emulator.admin.counts()["upload_jobs.start"] == 1
    assert len(emulator.admin.jobs()) == 1
    assert ti.xcom_pull(task_ids="register")["counts"]["registered_items"] == 2
