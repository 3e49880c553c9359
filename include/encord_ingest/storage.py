"""A tiny blob store for the pipeline's own files (run folders, manifest chunks, the ledger).

One API over S3, GCS and a local directory, with keys relative to a base URI::

    store = BlobStore.from_uri("s3://bucket/encord-ingest/", s3_client=client)
    store.write_bytes("runs/<run_id>/plan.json", data)
    store.uri("runs/<run_id>/plan.json")  # 's3://bucket/encord-ingest/runs/<run_id>/plan.json'

A write replaces the whole object in one step: one PUT on S3 and GCS, a temporary file and an
``os.replace`` on a local disk, so a reader sees the old or the new bytes, never a torn file.
``read_bytes`` of a missing key raises :class:`FileNotFoundError`; ``delete`` of a missing key is a
no-op. Keys are ``/``-separated, not empty, without a leading ``/`` or ``.``/``..`` segments.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from encord_ingest.errors import ConfigError
from encord_ingest.sources.base import DELIMITER, ObjectInfo
from encord_ingest.sources.factory import split_uri
from encord_ingest.sources.gcs import GCSSource
from encord_ingest.sources.local import LocalSource
from encord_ingest.sources.s3 import S3Source


def check_key(key: str) -> str:
    """``key`` if it is a valid relative key, else ``ValueError``."""
    parts = key.split(DELIMITER)
    if not key or key.startswith(DELIMITER) or "\x00" in key or any(p in (".", "..") for p in parts):
        raise ValueError(f"{key!r} is not a valid blob key (relative, '/'-separated, no '.' or '..')")
    return key


class _Backend(Protocol):
    def read(self, key: str) -> bytes: ...

    def write(self, key: str, data: bytes, content_type: str | None) -> None: ...

    def write_file(self, key: str, path: str) -> None: ...

    def head(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...


class _S3Backend:
    def __init__(self, client: Any, bucket: str):
        self.client, self.bucket = client, bucket
        self.source = S3Source(client, bucket, url_style="uri")

    def read(self, key: str) -> bytes:
        return self.source.read_bytes(key)

    def write(self, key: str, data: bytes, content_type: str | None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)

    def write_file(self, key: str, path: str) -> None:
        with open(path, "rb") as body:  # one PUT, read from the file as it is sent
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def head(self, key: str) -> ObjectInfo | None:
        return self.source.head(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.source.iter_objects(prefix)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


class _GCSBackend:
    def __init__(self, client: Any, bucket: str):
        self.source = GCSSource(client, bucket, url_style="uri")
        self.bucket = client.bucket(bucket)

    def read(self, key: str) -> bytes:
        return self.source.read_bytes(key)

    def write(self, key: str, data: bytes, content_type: str | None) -> None:
        self.bucket.blob(key).upload_from_string(
            data, content_type=content_type or "application/octet-stream"
        )

    def write_file(self, key: str, path: str) -> None:
        self.bucket.blob(key).upload_from_filename(path, content_type="application/octet-stream")

    def head(self, key: str) -> ObjectInfo | None:
        return self.source.head(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.source.iter_objects(prefix)

    def delete(self, key: str) -> None:
        from google.api_core import exceptions as gexc

        with contextlib.suppress(gexc.NotFound):
            self.bucket.blob(key).delete()


class _LocalBackend:
    def __init__(self, root: Path):
        self.source = LocalSource(root, url_style="uri")

    def read(self, key: str) -> bytes:
        return self.source.read_bytes(key)

    def write(self, key: str, data: bytes, content_type: str | None) -> None:  # noqa: ARG002 (files have none)
        self._replace(key, lambda temporary: Path(temporary).write_bytes(data))

    def write_file(self, key: str, path: str) -> None:
        self._replace(key, lambda temporary: shutil.copyfile(path, temporary))

    def _replace(self, key: str, fill: Callable[[str], object]) -> None:
        """Fill a temporary file beside ``key``, then rename it over ``key`` (atomic)."""
        target = self.source.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(handle)
        try:
            fill(temporary)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def head(self, key: str) -> ObjectInfo | None:
        return self.source.head(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.source.iter_objects(prefix)

    def delete(self, key: str) -> None:
        self.source.path(key).unlink(missing_ok=True)


class BlobStore:
    """Files under one base URI; every key is relative to it."""

    def __init__(self, backend: _Backend, scheme: str, bucket: str, base: str):
        self._backend = backend
        self.scheme = scheme
        self.bucket = bucket
        self.base = base

    @classmethod
    def from_uri(cls, uri: str, *, s3_client: Any = None, gcs_client: Any = None) -> BlobStore:
        """``s3://bucket/path``, ``gs://bucket/path``, ``file:///abs/path`` or a plain path."""
        scheme, bucket, path = split_uri(uri, field="storage uri")
        base = path.rstrip(DELIMITER) + DELIMITER if path.strip(DELIMITER) else ""
        if scheme == "s3":
            if s3_client is None:
                raise ConfigError(f"storage uri: {uri!r} needs an S3 client (an aws connection)")
            return cls(_S3Backend(s3_client, bucket), scheme, bucket, base)
        if scheme == "gs":
            if gcs_client is None:
                raise ConfigError(f"storage uri: {uri!r} needs a GCS client (a google cloud connection)")
            return cls(_GCSBackend(gcs_client, bucket), scheme, bucket, base)
        root = Path(bucket).resolve()
        return cls(_LocalBackend(root), scheme, root.as_posix(), "")

    def child(self, prefix: str) -> BlobStore:
        """A store for the keys under ``prefix`` (e.g. one run's folder)."""
        sub = check_key(prefix.rstrip(DELIMITER)) + DELIMITER
        if self.scheme == "file":
            return BlobStore(
                _LocalBackend(Path(self.bucket) / sub), self.scheme, f"{self.bucket}/{sub}".rstrip("/"), ""
            )
        return BlobStore(self._backend, self.scheme, self.bucket, self.base + sub)

    def _full(self, key: str) -> str:
        return self.base + check_key(key)

    def uri(self, key: str = "") -> str:
        """The URI of ``key`` (of the store itself for ``""``); ``from_uri`` accepts it back."""
        path = self.base + (check_key(key) if key else "")
        if self.scheme == "file":
            return "file://" + quote(f"{self.bucket}/{path}" if path else self.bucket)
        return f"{self.scheme}://{self.bucket}/{path}"

    def read_bytes(self, key: str) -> bytes:
        """The bytes of ``key``; :class:`FileNotFoundError` if it does not exist."""
        return self._backend.read(self._full(key))

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> str:
        """Write (replace) ``key`` in one step; returns its URI."""
        self._backend.write(self._full(key), data, content_type)
        return self.uri(key)

    def write_file(self, key: str, path: str) -> str:
        """Write (replace) ``key`` in one step with the content of the local file ``path``, without
        holding it in memory; returns its URI."""
        self._backend.write_file(self._full(key), path)
        return self.uri(key)

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        return self._backend.head(self._full(key)) is not None

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys (relative to the store) that start with ``prefix``, in key order."""
        for info in self._backend.list(self.base + prefix):
            yield info.key[len(self.base) :]

    def delete(self, key: str) -> None:
        """Delete ``key``; nothing happens if it does not exist."""
        self._backend.delete(self._full(key))
