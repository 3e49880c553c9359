"""Fixtures for the metadata-operation tests: a metadata hook and a schema file. The Encord
emulator (the real SDK talks to it over HTTP on 127.0.0.1; nothing of the SDK is mocked) and the
``encord`` connection to it (``encord_conn``) are in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from encord_provider.hooks.encord_scopes import EncordMetadataHook
from tests.metadata_ops.helpers import SCHEMA_YAML
from tests.provider.helpers import FAST_HOOK_PARAMS


@pytest.fixture
def hook(encord_conn: str) -> EncordMetadataHook:
    return EncordMetadataHook(encord_conn, **FAST_HOOK_PARAMS)


@pytest.fixture
def schema_path(tmp_path: Path) -> str:
    path = tmp_path / "schema.yaml"
    path.write_text(SCHEMA_YAML, encoding="utf-8")
    return str(path)
