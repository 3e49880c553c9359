"""docker-compose.yaml is the scale-out stack. No Docker engine runs here, so its structure is checked."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


# SQLAlchemy driver named in a URL -> the locked distribution that provides it.
DRIVER_DISTRIBUTIONS = {"psycopg2": "psycopg2-binary", "asyncpg": "asyncpg"}


def url_driver(url: str) -> str:
    """The explicit SQLAlchemy driver of a URL: 'db+postgresql+psycopg2://...' -> 'psycopg2'."""
    scheme = url.split("://", 1)[0].removeprefix("db+")
    dialect, _, driver = scheme.partition("+")
    assert dialect == "postgresql" and driver, f"{url!r} must name its driver (postgresql+<driver>)"
    return driver


def test_database_urls_name_drivers_that_are_locked(compose: dict[str, Any], repo_root: Path) -> None:
    """Without an explicit driver the locked SQLAlchemy picks psycopg 3, which is not installed."""
    pins = locked_versions(repo_root)
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
            assert DRIVER_DISTRIBUTIONS[url_driver(env[key])] in pins, (name, key)


def test_every_airflow_service_shares_one_jwt_secret_and_the_project_volumes(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    secrets = {services[name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] for name in AIRFLOW_SERVICES}
    assert len(secrets) == 1
    for name in AIRFLOW_SERVICES:
        mounts = {volume.split(":")[1] for volume in services[name]["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts, name


def locked_versions(repo_root: Path) -> dict[str, str]:
    """constraints.txt as {canonical name: pinned version}."""
    pins: dict[str, str] = {}
    for line in (repo_root / "constraints.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, version = requirement.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def dockerfile_instructions(repo_root: Path) -> list[list[str]]:
    """The Dockerfile's instructions, continuation lines joined, each split into shell words."""
    text = (repo_root / "Dockerfile").read_text().replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_celery_extra_is_pinned_in_the_lock(repo_root: Path) -> None:
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    extra = [Requirement(line) for line in pyproject["project"]["optional-dependencies"]["celery"]]
    pins = locked_versions(repo_root)
    names = {canonicalize_name(requirement.name) for requirement in extra}
    assert {"apache-airflow-providers-celery", "celery", "redis", "psycopg2-binary", "asyncpg"} <= names
    for requirement in extra:
        pinned = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pinned), (requirement, pinned)
    assert pins["apache-airflow-providers-celery"] == "3.26.0"
    # celery 5.7.0 breaks provider 3.26.0 (`cannot import name 'retry' from celery.backends.database`).
    assert pins["celery"].startswith("5.6.")


def test_image_installs_this_project_with_the_celery_extra_from_the_lock(repo_root: Path) -> None:
    instructions = dockerfile_instructions(repo_root)
    assert instructions[0] == ["FROM", "apache/airflow:3.3.2-python3.11"]
    installs = [words for words in instructions if words[:3] == ["RUN", "pip", "install"]]
    assert len(installs) == 1, installs
    words = installs[0]
    assert words[words.index("-c") + 1] == "/opt/project/constraints.txt"
    assert words[words.index("-e") + 1] == "/opt/project[celery]"
    assert words[words.index("-r") + 1] == "/opt/project/requirements.txt"


def test_standins_are_opt_in_through_a_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("s3", "encord-emulator"):
        assert services[name]["profiles"] == ["standins"], name
    for name in AIRFLOW_SERVICES:
        assert "profiles" not in services[name], name
