"""Byte I/O on run-folder URIs (``s3://``, ``gs://``, ``file://``) for the operators.

The blob store's clients come from Airflow (:func:`encord_provider.clients.storage_clients`): the
amazon provider's ``S3Hook`` (``aws_conn_id``) for ``s3://``, a ``google.cloud.storage.Client``
from ``gcs_conn_id`` (or Application Default Credentials and ``gcs_project``) for ``gs://``,
nothing for ``file://``. The layout of a run folder is :mod:`encord_ingest.run_folder`'s.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from encord_ingest.run_folder import RunFolder, parent_and_name
from encord_ingest.storage import BlobStore
from encord_provider.clients import storage_clients

log = logging.getLogger(__name__)


class RunFolderIO:
    """Stores for run-folder URIs, building each scheme's client once, on first use."""

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        gcs_project: str | None = None,
        gcs_conn_id: str | None = None,
    ) -> None:
        self.aws_conn_id = aws_conn_id
        self.gcs_project = gcs_project
        self.gcs_conn_id = gcs_conn_id
        self._clients: dict[str, dict[str, Any]] = {}

    def store(self, folder_uri: str) -> BlobStore:
        """A :class:`BlobStore` rooted at ``folder_uri``."""
        scheme = folder_uri.partition("://")[0]
        if scheme not in self._clients:
            conn_id = self.gcs_conn_id if scheme == "gs" else self.aws_conn_id
            self._clients[scheme] = storage_clients(folder_uri, conn_id, gcs_project=self.gcs_project)
        return BlobStore.from_uri(folder_uri.rstrip("/"), **self._clients[scheme])

    def run_folder(self, uri: str) -> RunFolder:
        """The run folder at ``uri``."""
        return RunFolder(self.store(uri))

    def read(self, uri: str) -> bytes:
        folder, name = parent_and_name(uri)
        return self.store(folder).read_bytes(name)

    def write(self, uri: str, data: bytes) -> None:
        folder, name = parent_and_name(uri)
        self.store(folder).write_bytes(name, data)


class FolderMemory:
    """The Encord folder UUIDs a source's folder paths resolved to: ``<state_uri>/encord/folders.json``.

    Read once, written when a path resolves to a different UUID. A lost or unreadable file only
    means the path is resolved again by listing.
    """

    NAME = "encord/folders.json"

    def __init__(self, io: RunFolderIO, state_uri: str) -> None:
        self.io = io
        self.uri = f"{state_uri.rstrip('/')}/{self.NAME}"
        self._known: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._known is None:
            try:
                data = json.loads(self.io.read(self.uri))
            except FileNotFoundError:
                data = {}
            except ValueError:
                log.warning("%s is not JSON: folder paths are resolved again", self.uri)
                data = {}
            folders = data.get("folders") if isinstance(data, dict) else None
            self._known = {str(k): str(v) for k, v in (folders or {}).items()}
        return self._known

    def get(self, path: str) -> str | None:
        return self._load().get(path)

    def put(self, path: str, folder_uuid: str) -> None:
        known = self._load()
        known[path] = folder_uuid
        self.io.write(self.uri, json.dumps({"folders": known}, indent=1, sort_keys=True).encode("utf-8"))
