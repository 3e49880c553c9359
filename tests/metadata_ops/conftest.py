"""Fixtures for the metadata-operation tests: the Encord emulator (the real SDK talks to it over
HTTP on 127.0.0.1; nothing of the SDK is mocked), an ``encord`` connection, a schema file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from encord_emulator.testing import EmulatorServer, generate_ssh_keypair
from encord_provider.hooks.encord_scopes import EncordMetadataHook
from tests.metadata_ops.helpers import CONN_ID, FAST_HOOK_PARAMS, SCHEMA_YAML, connection_json


@pytest.fixture(scope="session")
def keypair() -> tuple[str, str]:
    return generate_ssh_keypair()


@pytest.fixture
def emulator(keypair: tuple[str, str], request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    """A fresh emulator; ``@pytest.mark.emulator(patch_semantics="replace")`` sets its options."""
    marker = request.node.get_closest_marker("emulator")
    options = dict(marker.kwargs) if marker else {}
    with EmulatorServer.start(public_keys=[keypair[1]], **options) as server:
        yield server


@pytest.fixture
def encord_conn(emulator: EmulatorServer, keypair: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(keypair[0], emulator.url))
    return CONN_ID


@pytest.fixture
def hook(encord_conn: str) -> EncordMetadataHook:
    return EncordMetadataHook(encord_conn, **FAST_HOOK_PARAMS)


@pytest.fixture
def schema_path(tmp_path: Path) -> str:
    path = tmp_path / "schema.yaml"
    path.write_text(SCHEMA_YAML, encoding="utf-8")
    return str(path)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "emulator(**options): options of the Encord emulator for this test")
