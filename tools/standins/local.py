"""Local trees for tests and the demo, and unique bucket names."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path


def unique_bucket_name(prefix: str = "test") -> str:
    """A valid, unique S3/GCS bucket name (stand-in state is process-wide)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def write_tree(root: Path, objects: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> int:
    """Write ``objects`` (key -> bytes, ``/``-separated keys) as files under ``root``."""
    items = objects.items() if isinstance(objects, Mapping) else objects
    count = 0
    for key, data in items:
        path = root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        count += 1
    return count
