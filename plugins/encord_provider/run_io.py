"""Read manifest / change chunks and write results in a run folder (``s3://``, ``gs://``, ``file://``).

The blob store's clients come from Airflow (:mod:`encord_provider.clients`): the amazon
provider's ``S3Hook`` (``aws_conn_id``) for ``s3://``, a ``google.cloud.storage.Client`` from
``gcs_conn_id`` (or Application Default Credentials and ``gcs_project``) for ``gs://``, nothing
for ``file://``.
Results live next to the chunk: ``.../manifests/<name>.json`` -> ``.../results/<name><suffix>``.
"""

from __future__ import annotations

from typing import Any

from encord_ingest.storage import BlobStore
from encord_provider.clients import gcs_client, s3_client

REGISTER_SUFFIX = ".register.json"
SYNC_SUFFIX = ".sync.json"


def split_uri(uri: str) -> tuple[str, str]:
    """``scheme://a/b/c.json`` -> (``scheme://a/b``, ``c.json``)."""
    head, sep, name = uri.rstrip("/").rpartition("/")
    if not sep or not name or head.endswith(":/") or head.endswith(":"):
        raise ValueError(f"{uri!r}: expected the URI of a file inside a folder")
    return head, name


def result_uri(chunk_uri: str, suffix: str) -> str:
    """Where the result of a chunk goes: ``results/`` beside the chunk's folder."""
    folder, name = split_uri(chunk_uri)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    run_folder = split_uri(folder)[0]
    return f"{run_folder}/results/{stem}{suffix}"


class RunFolderIO:
    """Byte I/O on run-folder URIs, building each scheme's client once, on first use."""

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
        self._clients: dict[str, Any] = {}

    def _client_kwargs(self, uri: str) -> dict[str, Any]:
        scheme = uri.partition("://")[0]
        if scheme not in self._clients:
            self._clients[scheme] = self._make_client(scheme)
        client = self._clients[scheme]
        if scheme == "s3":
            return {"s3_client": client}
        if scheme == "gs":
            return {"gcs_client": client}
        return {}

    def _make_client(self, scheme: str) -> Any:
        if scheme == "s3":
            return s3_client(self.aws_conn_id)
        if scheme == "gs":
            if self.gcs_conn_id:
                return gcs_client(self.gcs_conn_id)
            from google.cloud import storage

            return storage.Client(project=self.gcs_project)
        return None

    def _store(self, uri: str) -> tuple[BlobStore, str]:
        folder, name = split_uri(uri)
        return BlobStore.from_uri(folder, **self._client_kwargs(uri)), name

    def read(self, uri: str) -> bytes:
        store, name = self._store(uri)
        return store.read_bytes(name)

    def write(self, uri: str, data: bytes) -> None:
        store, name = self._store(uri)
        store.write_bytes(name, data)

    def list(self, folder_uri: str, suffix: str = "") -> list[str]:
        """URIs of the files directly or indirectly under ``folder_uri`` whose names end in ``suffix``."""
        store = BlobStore.from_uri(folder_uri.rstrip("/"), **self._client_kwargs(folder_uri))
        return [store.uri(key) for key in store.list() if key.endswith(suffix)]
