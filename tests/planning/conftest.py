"""Fixtures for the planning tests: local trees, and the S3 (moto) and GCS stand-ins over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from standins import gcs_emulator, moto_s3_server, s3_client
from standins.gcs import GcsEmulator

from encord_ingest.scan.config import PlanningConfig
from encord_ingest.sources.local import LocalSource
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, write_tree


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "bucket"
    root.mkdir()
    return root


@pytest.fixture
def local(tmp_path: Path, data_root: Path) -> Callable[..., Harness]:
    """``local(files, config=..., prefixes=...)``: a tree under ``data_root`` and a harness on it."""

    def make(files: dict[str, Any], **kwargs: Any) -> Harness:
        write_tree(data_root, files)
        store = BlobStore.from_uri(str(tmp_path / "state"))
        return Harness(LocalSource(data_root), store, **kwargs)

    return make


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return s3_client(s3_endpoint)


@pytest.fixture(scope="module")
def gcs() -> Iterator[GcsEmulator]:
    with gcs_emulator() as emulator:
        yield emulator


@pytest.fixture
def default_config() -> PlanningConfig:
    return PlanningConfig()
