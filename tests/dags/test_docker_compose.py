"""docker-compose.yaml is the scale-out stack. No Docker engine runs here, so its structure is checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


@pytest.fixture(scope="module")
def compose(repo_root: Path) -> dict[str, Any]:
    return yaml.safe_load((repo_root / "docker-compose.yaml").read_text())


def test_airflow_services_run_celery_on_postgres_and_redis(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        service = services[name]
        assert service["command"] == command, name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert service["image"] == "encord-bucket-ingest-airflow:3.3.2", name


def test_every_airflow_service_shares_one_jwt_secret_and_the_project_volumes(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    secrets = {services[name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] for name in AIRFLOW_SERVICES}
    assert len(secrets) == 1
    for name in AIRFLOW_SERVICES:
        mounts = {volume.split(":")[1] for volume in services[name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts, name


def test_image_installs_this_project_with_the_locked_versions(repo_root: Path) -> None:
    dockerfile = (repo_root / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert "-c /opt/project/constraints.txt" in dockerfile
    assert "-e /opt/project" in dockerfile


def test_standins_are_opt_in_through_a_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("s3", "encord-emulator"):
        assert services[name]["profiles"] == ["standins"], name
    for name in AIRFLOW_SERVICES:
        assert "profiles" not in services[name], name
