"""gcp-storage-emulator on 127.0.0.1 (in-memory, in a thread of this process).

What the emulator does not do (measured, see TESTING-NOTES.md): it ignores ``start_offset`` /
``end_offset`` and returns a whole listing in one page (no ``nextPageToken``) and ignores
``fields`` masks and ``if_generation_match``. Uploads over HTTP rewrite its whole index, so seed
many objects with :meth:`GcsEmulator.seed`, which writes its in-process store and the index once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from gcp_storage_emulator.handlers import objects as objects_handler
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

ENV_VAR = "STORAGE_EMULATOR_HOST"
PROJECT = "test-project"


class GcsEmulator:
    """A running emulator: its endpoint, clients for it, and fast seeding."""

    def __init__(self, server: Any, endpoint: str):
        self._server = server
        self.endpoint = endpoint

    def client(self) -> storage.Client:
        """A client with anonymous credentials (``STORAGE_EMULATOR_HOST`` points at us)."""
        return storage.Client(project=PROJECT, credentials=AnonymousCredentials())

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` (a no-op if it exists)."""
        client = self.client()
        if client.lookup_bucket(bucket) is None:
            client.create_bucket(bucket)

    def seed(self, bucket: str, objects: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> int:
        """Write ``objects`` straight into the emulator's store; returns how many."""
        self.create_bucket(bucket)
        store = self._server._storage
        bucket_objects = store.objects.setdefault(bucket, {})
        items = objects.items() if isinstance(objects, Mapping) else objects
        count = 0
        for name, data in items:
            store._store.write_bytes(store._object_path(bucket, name), data)
            bucket_objects[name] = _resource(self.endpoint, bucket, name, data)
            count += 1
        store._write_config_to_file()
        return count


def _resource(endpoint: str, bucket: str, name: str, data: bytes) -> dict[str, Any]:
    """The object resource the emulator itself would store for an upload of ``data``."""
    resource = objects_handler._make_object_resource(
        endpoint, bucket, name, "application/octet-stream", str(len(data))
    )
    return dict(objects_handler._checksums(data, resource))


@contextmanager
def gcs_emulator() -> Iterator[GcsEmulator]:
    """Run the emulator on a free port; sets ``STORAGE_EMULATOR_HOST`` while it runs."""
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)  # one line per request else
    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    port = server._api._httpd.server_address[1]
    endpoint = f"http://127.0.0.1:{port}"
    previous = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = endpoint
    try:
        yield GcsEmulator(server, endpoint)
    finally:
        if previous is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = previous
        server.stop()
