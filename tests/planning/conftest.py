"""Fixtures for the planning tests: local trees (the S3 and GCS stand-ins are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture
def default_config() -> PlanningConfig:
    return PlanningConfig()
