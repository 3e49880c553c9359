"""Fixtures for the provider tests (the Encord emulator over HTTP and the ``encord`` connection to it,
``encord_conn``, are in tests/conftest.py).

The real ``encord`` SDK talks to the emulator on 127.0.0.1; nothing of the SDK is mocked.
Retries are made fast (tiny backoff) so fault-injection tests stay quick.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from encord_emulator.testing import EmulatorServer
from encord_provider.hooks.encord import EncordHook
from tests.provider.helpers import FAST_HOOK_PARAMS


@pytest.fixture
def hook(encord_conn: str) -> EncordHook:
    return EncordHook(encord_conn, **FAST_HOOK_PARAMS)


@pytest.fixture
def integration(emulator: EmulatorServer) -> str:
    return emulator.admin.add_integration("ingest-s3", provider="AWS")


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A run folder (``{state}/runs/{run_key}/``) on the local file system."""
    folder = tmp_path / "state" / "runs" / "run-1"
    (folder / "manifests").mkdir(parents=True)
    (folder / "metadata").mkdir()
    return folder
