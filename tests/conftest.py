"""Session-wide test setup: an isolated Airflow home with a SQLite metadata DB.

Airflow reads its configuration when it is first imported, so the environment is set here,
at import time of the root conftest, before any test module imports airflow.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))

os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO_ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "")
# Never reach a real cloud from tests: fake credentials, no instance metadata lookups.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ.pop("ENCORD_SSH_KEY", None)
os.environ.pop("ENCORD_SSH_KEY_FILE", None)


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """Create the SQLite metadata DB once per session (only for tests that need Airflow)."""
    from airflow.utils import db

    db.resetdb(skip_init=False)
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def keypair() -> tuple[str, str]:
    """(OpenSSH private key, public key line) registered with every emulator of the session."""
    from encord_emulator.testing import generate_ssh_keypair

    return generate_ssh_keypair()


@pytest.fixture
def encord_conn(emulator: Any, keypair: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The id of an ``encord`` connection (env var, JSON form) pointing at the test's emulator."""
    from tests.provider.helpers import CONN_ID, connection_json

    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(keypair[0], emulator.url))
    return CONN_ID


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """One moto S3 server (real HTTP) for the session; tests make their own uniquely named buckets."""
    from standins import moto_s3_server

    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    """A boto3 S3 client on the session's moto server."""
    from standins import s3_client

    return s3_client(s3_endpoint)


@pytest.fixture(scope="session")
def gcs() -> Iterator[Any]:
    """One GCS emulator (``standins.GcsEmulator``) for the session; tests use their own buckets."""
    from standins import gcs_emulator

    with gcs_emulator() as emulator:
        yield emulator


@pytest.fixture
def emulator(keypair: tuple[str, str], request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh emulator per test; ``@pytest.mark.emulator(patch_semantics=...)`` sets options."""
    marker = request.node.get_closest_marker("emulator")
    options = dict(marker.kwargs) if marker else {}
    from encord_emulator.testing import EmulatorServer

    with EmulatorServer.start(public_keys=[keypair[1]], **options) as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``heavy`` run only with ``ENCORD_INGEST_HEAVY=1`` (``make test-heavy``)."""
    if os.environ.get("ENCORD_INGEST_HEAVY") == "1":
        return
    skip = pytest.mark.skip(reason="an end-to-end test of 30 s or more: `make test-heavy`, which CI runs")
    for item in items:
        if item.get_closest_marker("heavy") is not None:
            item.add_marker(skip)
