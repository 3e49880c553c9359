"""Open a source from its URI: ``s3://bucket``, ``gs://bucket``, ``file:///abs/dir`` or a path.

The URI names the bucket (or the local root directory) only; what to list under it is the run's
prefix (see :mod:`encord_ingest.sources.prefix`). Clients are injected: the core never builds
cloud credentials itself.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from encord_ingest.errors import ConfigError
from encord_ingest.sources.base import Source
from encord_ingest.sources.gcs import GCSSource
from encord_ingest.sources.local import LocalSource
from encord_ingest.sources.s3 import DEFAULT_PAGE_SIZE, S3Source

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


def split_uri(uri: str, *, field: str = "uri") -> tuple[str, str, str]:
    """``(scheme, bucket or root, path)`` of a storage URI; a plain path is ``file``."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("s3", "gs"):
        if not _BUCKET_NAME.fullmatch(parts.netloc):
            raise ConfigError(
                f"{field}: {uri!r} has no valid bucket name; expected '{scheme}://<bucket>[/<path>]'"
            )
        return scheme, parts.netloc, parts.path.lstrip("/")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{field}: {uri!r} names a host; expected 'file:///<absolute path>'")
        return "file", unquote(parts.path), ""
    if scheme == "" or (len(scheme) == 1 and uri[1:3] in (":\\", ":/")):
        return "file", uri, ""
    raise ConfigError(f"{field}: unsupported scheme in {uri!r}; expected s3://, gs://, file:// or a path")


def open_source(
    uri: str,
    *,
    s3_client: Any = None,
    gcs_client: Any = None,
    region: str | None = None,
    url_style: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    direct_reads: bool = True,
    field: str = "uri",
) -> Source:
    """The source for a bucket URI (no path: put it in the run's prefix)."""
    scheme, bucket, path = split_uri(uri, field=field)
    if path:
        raise ConfigError(
            f"{field}: {uri!r} has a path; a source URI names the bucket only, put {path!r} in the prefix"
        )
    if scheme == "s3":
        if s3_client is None:
            raise ConfigError(f"{field}: {uri!r} needs an S3 client (an aws connection)")
        return S3Source(
            s3_client,
            bucket,
            region=region,
            url_style=url_style,
            page_size=page_size,
            direct_reads=direct_reads,
        )
    if scheme == "gs":
        if gcs_client is None:
            raise ConfigError(f"{field}: {uri!r} needs a GCS client (a google cloud connection)")
        return GCSSource(
            gcs_client, bucket, url_style=url_style, page_size=page_size, direct_reads=direct_reads
        )
    return LocalSource(bucket, url_style=url_style)
