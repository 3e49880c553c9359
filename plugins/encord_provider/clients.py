"""Bucket clients from Airflow connections: the core library never builds credentials itself.

- ``s3://``: the amazon provider's ``S3Hook`` (an ordinary ``aws`` connection; its extra
  ``endpoint_url`` points at S3-compatible stores such as MinIO or the local moto server).
- ``gs://``: ``google.cloud.storage.Client``. With a connection, its extra may name
  ``key_path`` (a service-account JSON file), ``keyfile_dict`` (the key itself; keep it in a
  secrets backend), ``project`` and ``anonymous: true`` (emulators). Without one: Application
  Default Credentials.
- ``file://`` and plain paths: no client.

An S3 client is built once per process and connection: building one costs ~0.25 s of CPU (botocore
loads its service model, and the amazon provider walks the whole call stack with ``inspect`` to
name its caller in the user agent), and a run's tasks ask for the same client several times.
The cache key holds the connection's whole URI, so a changed connection builds a new client.
Its connection pool holds every read-ahead thread of a scan (``CLIENT_POOL_CONNECTIONS``) unless
the connection's extra sets ``config_kwargs.max_pool_connections`` itself; a GCS client's pool is
sized the same way (:func:`~encord_ingest.sources.gcs.pool_for_read_ahead`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from encord_ingest.sources.factory import split_uri
from encord_ingest.sources.gcs import pool_for_read_ahead
from encord_ingest.sources.readahead import CLIENT_POOL_CONNECTIONS

_S3_CLIENTS: dict[tuple[str | None, str], Any] = {}
_S3_LOCK = threading.Lock()


def s3_client(conn_id: str | None) -> Any:
    """The boto3 S3 client of Airflow connection ``conn_id`` (cached per connection URI; boto3
    clients are thread-safe)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    key = (conn_id, _connection_uri(conn_id))
    with _S3_LOCK:
        if key not in _S3_CLIENTS:
            hook = S3Hook(aws_conn_id=conn_id)
            # The connection's own botocore settings win over the pool size (Config.merge).
            config = Config(max_pool_connections=CLIENT_POOL_CONNECTIONS).merge(hook.config)
            _S3_CLIENTS[key] = hook.get_client_type(region_name=hook.region_name, config=config)
        return _S3_CLIENTS[key]


def _connection_uri(conn_id: str | None) -> str:
    if not conn_id:
        return ""
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).get_uri()


def gcs_client(conn_id: str | None, project: str | None = None) -> Any:
    """A storage client from connection ``conn_id``; without one, Application Default Credentials
    (and ``project``). Its connection pool holds every read-ahead thread of a scan."""
    return pool_for_read_ahead(_gcs_client(conn_id, project))


def _gcs_client(conn_id: str | None, project: str | None) -> Any:
    from google.cloud import storage

    if not conn_id:
        return storage.Client(project=project)
    from airflow.sdk import BaseHook

    extra = BaseHook.get_connection(conn_id).extra_dejson
    project = extra.get("project")
    if extra.get("anonymous"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=project or "anonymous", credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    if extra.get("keyfile_dict"):
        info = extra["keyfile_dict"]
        return storage.Client.from_service_account_info(
            json.loads(info) if isinstance(info, str) else info, project=project
        )
    if extra.get("key_path"):
        return storage.Client.from_service_account_json(extra["key_path"], project=project)
    return storage.Client(project=project)


def storage_clients(uri: str, conn_id: str | None, *, gcs_project: str | None = None) -> dict[str, Any]:
    """Keyword arguments (``s3_client=`` / ``gcs_client=``) for ``open_source``/``BlobStore``: the one
    factory of bucket clients."""
    scheme = split_uri(uri)[0]
    if scheme == "s3":
        return {"s3_client": s3_client(conn_id)}
    if scheme == "gs":
        return {"gcs_client": gcs_client(conn_id, gcs_project)}
    return {}
