"""Fixtures for the metadata-operation tests: the Encord emulator (the real SDK talks to it over
HTTP on 127.0.0.1; nothing of the SDK is mocked), an ``encord`` connection, a schema file."""

from __future__ import annotations

from pathlib import Path

import pytest

from encord_emulator.testing import EmulatorServer
from encord_provider.hooks.encord_scopes import EncordMetadataHook
from tests.metadata_ops.helpers import CONN_ID, FAST_HOOK_PARAMS, SCHEMA_YAML, connection_json


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
