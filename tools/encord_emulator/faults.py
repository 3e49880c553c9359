"""Route names, request counters and injected faults."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

ROUTE_NAMES: dict[str, str] = {
    "schema.get": "GET /v2/public/organisation/client-metadata-schema-v2",
    "schema.save": "POST /v2/public/organisation/client-metadata-schema-v2",
    "integrations.list": "GET /v2/public/cloud-integrations",
    "folders.create": "POST /v2/public/storage/folders",
    "folders.get": "GET /v2/public/storage/folders/{folder}",
    "folders.list": "GET /v2/public/storage/folders (top level)",
    "folders.search": "GET /v2/public/storage/search/folders",
    "folders.list_subfolders": "GET /v2/public/storage/folders/{folder}/folders",
    "folders.delete": "DELETE /v2/public/storage/folders/{folder}",
    "upload_jobs.start": "POST /v2/public/storage/folders/{folder}/data-upload-jobs",
    "upload_jobs.get": "GET /v2/public/storage/folders/{folder}/data-upload-jobs/{job}",
    "upload_jobs.cancel": "POST /v2/public/storage/folders/{folder}/data-upload-jobs/{job}/cancel",
    "items.list": "GET /v2/public/storage/folders/{folder}/items",
    "items.get": "GET /v2/public/storage/items/{item}",
    "items.get_bulk": "POST /v2/public/storage/items/get-bulk",
    "items.patch": "PATCH /v2/public/storage/folders/{folder}/items/{item}",
    "items.patch_bulk": "PATCH /v2/public/storage/items/patch-bulk",
    "items.delete": "POST /v2/public/storage/folders/{folder}/items/delete",
    "items.child_items": "GET /v2/public/storage/folders/{folder}/items/{item}/child-items",
    "items.metadata_url": "GET /_files/client-metadata/{item} (unsigned; resolve_client_metadata_locally)",
    "datasets.create": "POST /v2/public/datasets",
    "datasets.get": "POST /public query_type=dataset GET (legacy RPC)",
    "datasets.link_items": "POST /public query_type=datasetlinkitems POST (legacy RPC)",
    "datasets.list_data_rows": "POST /public query_type=datarows GET (legacy RPC, list_data_rows)",
    "projects.get": "GET /v2/public/projects/{project}",
    "projects.list_datasets": "GET /v2/public/projects/{project}/datasets",
    "ontologies.get": "GET /v2/public/ontologies/{ontology}",
    "legacy.unknown": "POST /public with any other query_type",
    "unknown": "any other /v2/public path (answers 404 after authentication)",
    "auth.rejected": "requests refused with 401 (counted here only, not under their route)",
}


@dataclass
class Fault:
    status: int
    """HTTP status to answer with; below 400 = no failure, only ``delay_s``."""
    times: int = 1
    retry_after: float | None = None
    delay_s: float = 0.0


class FaultBoard:
    """Counts requests per route name and hands out injected faults, first in first out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._faults: dict[str, list[Fault]] = {}

    def count(self, route: str) -> None:
        with self._lock:
            self._counts[route] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def inject(self, route: str, fault: Fault) -> None:
        if route not in ROUTE_NAMES:
            raise ValueError(f"unknown route name {route!r}; known: {', '.join(ROUTE_NAMES)}")
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.setdefault(route, []).append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, route: str) -> Fault | None:
        """The next fault for ``route`` (using up one of its ``times``), or ``None``."""
        with self._lock:
            queue = self._faults.get(route)
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times == 0:
                queue.pop(0)
            return fault
