"""Fixtures for the source tests: a bucket of each backend (moto S3 and the GCS emulator, both
started once per session in tests/conftest.py, or a local directory)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from standins import (
    GcsEmulator,
    s3_client,
    seed_s3,
    unique_bucket_name,
    write_tree,
)

from encord_ingest.sources import GCSSource, LocalSource, S3Source, Source

BACKENDS = ("s3", "gcs", "local")
SourceFactory = Callable[..., Source]
"""``make_source(objects, **source_kwargs)`` (the type is repeated in the test modules)."""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_source(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> SourceFactory:
    """``make_source(objects, **source_kwargs)``: a fresh bucket of ``backend`` holding ``objects``."""

    def build(objects: Mapping[str, bytes], **kwargs: Any) -> Source:
        if backend == "s3":
            endpoint = request.getfixturevalue("s3_endpoint")
            name = unique_bucket_name()
            seed_s3(name, objects)
            return S3Source(s3_client(endpoint), name, **kwargs)
        if backend == "gcs":
            emulator: GcsEmulator = request.getfixturevalue("gcs")
            name = unique_bucket_name()
            emulator.seed(name, objects)
            return GCSSource(emulator.client(), name, **kwargs)
        root = tmp_path / f"root-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        write_tree(root, objects)
        return LocalSource(root, **kwargs)

    return build
