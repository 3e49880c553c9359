"""gcp-storage-emulator on 127.0.0.1 (in-memory, in a thread of this process).

What the emulator does not do (measured, see TESTING-NOTES.md): it ignores ``start_offset`` /
``end_offset``, ``fields`` masks and ``if_generation_match``. Uploads over HTTP rewrite its whole
index, so seed many objects with :meth:`GcsEmulator.seed`, which writes its in-process store and
the index once.

Its HTTP server answers one request (one connection: HTTP/1.0) at a time; here it listens with a
backlog of 1024 (:class:`_Listener`) instead of 5, so a burst of concurrent reads waits its turn
rather than having connections dropped and retried by TCP a second later.

Listings page like a real bucket here (:func:`_paged_ls`): by itself the emulator answers a whole
listing in one page, in upload order, so a client's page size and page prefetch went untested and
a listing of 20,000 objects paid one request's latency where GCS makes 20 requests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from http.server import HTTPServer
from typing import Any

from gcp_storage_emulator import server as emulator_server
from gcp_storage_emulator.handlers import objects as objects_handler
from gcp_storage_emulator.server import APIThread, RequestHandler, create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

ENV_VAR = "STORAGE_EMULATOR_HOST"
PROJECT = "test-project"
MAX_RESULTS = 1000
"""GCS's default (and largest) page of ``objects.list``."""


class GcsEmulator:
    """A running emulator: its endpoint, clients for it, and fast seeding."""

    def __init__(self, server: Any, endpoint: str):
        self._server = server
        self.endpoint = endpoint

    def client(self) -> storage.Client:
        """A client of this emulator with anonymous credentials (its endpoint is given, so a
        ``STORAGE_EMULATOR_HOST`` pointing elsewhere does not matter)."""
        return storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

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


class _Captured:
    """The part of the emulator's response object its listing handler uses."""

    def __init__(self) -> None:
        self.status: Any = None
        self.body: dict[str, Any] | None = None

    def json(self, body: dict[str, Any]) -> None:
        self.body = body


def _paged_ls(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
    """``objects.list`` as GCS pages it: items and prefixes in name order, at most ``maxResults``
    (default and cap 1000) of them together per page, then a ``nextPageToken`` (here: the last
    name of the page) that the next request passes as ``pageToken``."""
    captured = _Captured()
    _EMULATOR_LS(request, captured, storage, *args, **kwargs)
    if captured.body is None:
        response.status = captured.status
        return

    def first(name: str) -> str | None:
        values = request.query.get(name)
        return values[0] if values else None

    size = min(int(first("maxResults") or MAX_RESULTS), MAX_RESULTS)
    after = first("pageToken") or ""
    entries = [(item["name"], item) for item in captured.body.get("items") or ()]
    entries += [(prefix, None) for prefix in captured.body.get("prefixes") or ()]
    entries = sorted((entry for entry in entries if entry[0] > after), key=lambda entry: entry[0])
    page = entries[:size]
    body: dict[str, Any] = {
        "kind": "storage#objects",
        "items": [item for _name, item in page if item is not None],
        "prefixes": [name for name, item in page if item is None],
    }
    if len(entries) > size:
        body["nextPageToken"] = page[-1][0]
    response.json(body)


_EMULATOR_LS = objects_handler.ls


def _page_listings() -> None:
    """Route the emulator's ``objects.list`` through :func:`_paged_ls` (once per process)."""
    for _regex, handlers in emulator_server.HANDLERS:
        if handlers.get(emulator_server.GET) is _EMULATOR_LS:
            handlers[emulator_server.GET] = _paged_ls


class _Listener(HTTPServer):
    request_queue_size = 1024
    """Connections waiting for the (single-threaded) emulator; Python's default of 5 makes the
    kernel drop the 6th concurrent connect, which the client retries only after a second."""


class _API(APIThread):
    """The emulator's API thread, serving through :class:`_Listener`."""

    def run(self) -> None:
        self._httpd = _Listener((self._host, self._port), partial(RequestHandler, self._storage))
        self.is_running.set()
        self._httpd.serve_forever()


@contextmanager
def gcs_emulator() -> Iterator[GcsEmulator]:
    """Run the emulator on a free port; sets ``STORAGE_EMULATOR_HOST`` while it runs."""
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)  # one line per request else
    _page_listings()
    server = create_server("127.0.0.1", 0, in_memory=True)
    server._api = _API("127.0.0.1", 0, server._storage)
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
