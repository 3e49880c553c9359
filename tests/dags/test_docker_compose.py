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
    assert dialect == "postgresql", f"{url!r} must be a PostgreSQL URL"
    assert driver, f"{url!r} must name its driver (postgresql+<driver>)"
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


def dockerfile_stages(repo_root: Path) -> dict[str, list[list[str]]]:
    """The Dockerfile's stages by name: their instructions, continuation lines joined, split into words."""
    text = (repo_root / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            words = shlex.split(line)
            if words[0] == "FROM":
                assert words[2:3] == ["AS"], f"Dockerfile: name every stage ({line!r})"
                stages[words[3]] = []
            list(stages.values())[-1].append(words)
    return stages


def pip_install(instructions: list[list[str]]) -> list[str]:
    installs = [words for words in instructions if words[:3] == ["RUN", "pip", "install"]]
    assert len(installs) == 1, installs
    return installs[0]


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


def test_image_installs_this_project_with_the_celery_extra_from_the_lock(
    repo_root: Path, compose: dict[str, Any]
) -> None:
    stages = dockerfile_stages(repo_root)
    assert stages["airflow"][0] == ["FROM", "apache/airflow:3.3.2-python3.11", "AS", "airflow"]
    words = pip_install(stages["airflow"])
    assert words[words.index("-c") + 1] == "/opt/project/constraints.txt"
    assert words[words.index("-e") + 1] == "/opt/project[celery]"
    assert words[words.index("-r") + 1] == "/opt/project/requirements.txt"
    # The stand-ins image is the same image plus the `standins` extra, from the same lock.
    assert stages["standins"][0] == ["FROM", "airflow", "AS", "standins"]
    words = pip_install(stages["standins"])
    assert words[words.index("-c") + 1] == "/opt/project/constraints.txt"
    assert words[words.index("-e") + 1] == "/opt/project[celery,standins]"
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["build"]["target"] in stages, name


def test_standins_are_opt_in_through_a_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("s3", "standins-init", "encord-emulator"):
        assert services[name]["profiles"] == ["standins"], name
    for name in AIRFLOW_SERVICES:
        assert "profiles" not in services[name], name


def test_recovery_timeouts_are_set_and_explained(repo_root: Path, compose: dict[str, Any]) -> None:
    """A lost worker's tasks are retried within a minute or two, not after Airflow's 5 min / 24 h."""
    env = compose["services"]["airflow-scheduler"]["environment"]
    heartbeat = int(env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"])
    visibility = int(env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"])
    assert 30 <= heartbeat < 300
    assert 600 <= visibility < 86400  # longer than any task runs on a worker, far below the default
    for name in AIRFLOW_SERVICES:  # every process reads the same values
        service_env = compose["services"][name]["environment"]
        assert int(service_env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"]) == heartbeat, name
    text = (repo_root / "docker-compose.yaml").read_text()
    lines = text.splitlines()
    for key in (
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT",
    ):
        # set once (in the shared anchor); every alias of it is the same node, hence the set
        (line,) = set(key_lines(yaml.compose(text), key))
        assert lines[line - 1].strip().startswith("#"), f"docker-compose.yaml: say why {key} is set"


def key_lines(node: yaml.Node | None, key: str) -> list[int]:
    """The 0-based lines where ``key`` is a mapping key anywhere in a composed YAML document.

    YAML drops comments, so the explanation above a key is read from the line before it.
    """
    if isinstance(node, yaml.MappingNode):
        found = [name.start_mark.line for name, _ in node.value if name.value == key]
        return found + [line for _, value in node.value for line in key_lines(value, key)]
    if isinstance(node, yaml.SequenceNode):
        return [line for value in node.value for line in key_lines(value, key)]
    return []


def entrypoint_args(service: dict[str, Any], module: str) -> list[str]:
    """The arguments after ``python -m <module>`` of a service's entrypoint."""
    entrypoint = service["entrypoint"]
    assert entrypoint[:3] == ["python", "-m", module], entrypoint
    return list(entrypoint[3:])


def mounted_at(service: dict[str, Any], container_path: str) -> str:
    """The host path mounted at ``container_path`` (or at a folder holding it)."""
    for volume in service["volumes"]:
        host, target = volume.split(":")[:2]
        if container_path == target or container_path.startswith(target + "/"):
            return host
    raise AssertionError(f"nothing is mounted at {container_path}")


def test_standins_profile_wires_the_demo_end_to_end(repo_root: Path, compose: dict[str, Any]) -> None:
    from standins.compose_init import PUBLIC_KEY
    from standins.compose_init import build_parser as init_parser
    from standins.stack import demo_connections

    from encord_emulator.__main__ import build_parser as emulator_parser

    services = compose["services"]
    init, emulator = services["standins-init"], services["encord-emulator"]
    init_args = init_parser().parse_args(entrypoint_args(init, "standins.compose_init"))
    emulator_args = emulator_parser().parse_args(entrypoint_args(emulator, "encord_emulator"))
    demo = yaml.safe_load((repo_root / "include" / "sources" / "demo_media.yaml").read_text())

    # The emulator starts after the init and accepts the public key the init wrote.
    assert emulator["depends_on"]["standins-init"]["condition"] == "service_completed_successfully"
    assert init["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert "s3" in init["depends_on"]
    (key_file,) = emulator_args.public_key_file
    assert key_file == f"{init_args.key_dir}/{PUBLIC_KEY}"
    assert mounted_at(emulator, key_file) == mounted_at(init, key_file)
    # ... creates the integration the demo source names ...
    assert [title for title, _, _ in emulator_args.integration] == [demo["encord"]["integration"]]
    # ... and the connections point at the services by their compose names and ports.
    assert init_args.s3_endpoint == "http://s3:5000"
    assert "5000:5000" in services["s3"]["ports"]
    assert init_args.emulator_url == f"http://encord-emulator:{emulator_args.port}"
    connections = demo_connections(init_args.s3_endpoint, init_args.emulator_url, "key")
    assert {demo["bucket"]["conn_id"], demo["encord"]["conn_id"]} <= set(connections)


@pytest.mark.usefixtures("airflow_db")
def test_standins_init_makes_the_key_pair_seeds_the_bucket_and_stores_working_connections(
    tmp_path: Path,
) -> None:
    """The init service's script against moto, the emulator and the (SQLite) metadata DB."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from demo_data import demo_objects
    from standins.compose_init import PUBLIC_KEY, main
    from standins.s3 import moto_s3_server, s3_client
    from standins.services import free_port
    from standins.stack import DEMO_RAW_BUCKET, DEMO_STATE_BUCKET

    from encord_emulator.auth import parse_public_keys_text
    from encord_emulator.testing import EmulatorServer
    from encord_provider.hooks.encord import EncordHook

    port = free_port()
    with moto_s3_server() as endpoint:
        args = ["--s3-endpoint", endpoint, "--emulator-url", f"http://127.0.0.1:{port}"]
        assert main([*args, "--key-dir", str(tmp_path)]) == 0
        client = s3_client(endpoint)
        buckets = {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}
        keys = {o["Key"] for o in client.list_objects_v2(Bucket=DEMO_RAW_BUCKET, MaxKeys=1000)["Contents"]}
    assert {DEMO_RAW_BUCKET, DEMO_STATE_BUCKET} <= buckets
    assert keys == set(demo_objects())
    with create_session() as session:
        stored = {c.conn_id: c for c in session.query(Connection).all()}
    assert stored["aws_demo"].extra_dejson["endpoint_url"] == endpoint
    public_keys = parse_public_keys_text((tmp_path / PUBLIC_KEY).read_text())
    with EmulatorServer.start(public_keys, port=port):
        ok, message = EncordHook("encord_demo", connection=stored["encord_demo"]).test_connection()
    assert ok, message
