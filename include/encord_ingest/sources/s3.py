"""S3 (and S3-compatible) source over a boto3 client.

The client is injected: inside Airflow it comes from the amazon provider's ``S3Hook``
(``S3Hook(aws_conn_id).get_conn()``), so ordinary ``aws`` connections work, and an
``endpoint_url`` in the connection reaches S3-compatible stores. Listing uses ListObjectsV2 page
by page (``MaxKeys`` = ``page_size``), requests the next page while the current one is used
(:func:`~.readahead.prefetch`), and stops as soon as a key passes ``end_before``.

Ranged reads (the sidecars a scan reads) go the short way when the client allows
(:class:`PresignedReads`); any other answer than a plain success takes the ordinary ``get_object``
call, so errors, retries and redirects stay the client's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from encord_ingest.sources.base import DELIMITER, BoundedListing, KeyBounds, LevelEntry, ObjectInfo
from encord_ingest.sources.direct import DirectReads
from encord_ingest.sources.readahead import prefetch
from encord_ingest.sources.urls import UrlBuilder

DEFAULT_PAGE_SIZE = 1000
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_CHECKSUM_HEADER = "x-amz-checksum-"
PRESIGNED_EXPIRY_S = 300
"""A short-way URL is used at once; short-lived in case a debug log (urllib3's) shows it. S3
tolerates 15 minutes of clock skew for signed requests; a clock more than 5 minutes behind gets
403s here, and every read then goes the ordinary way."""
log = logging.getLogger(__name__)
_PRESIGNING = threading.local()
_SIGV4_HANDLER_ID = "encord-ingest-presigned-reads-sigv4"


def _sign_our_presigns_with_sigv4(signature_version: Any, **_: Any) -> str | None:
    """botocore presigns S3 URLs with SigV2 when the client's config names no signature version
    (``BaseClient._default_s3_presign_to_sigv2``); S3 refuses SigV2 for buckets made since 2020.
    The URLs of :class:`PresignedReads` (only those: flagged per thread) get SigV4, which the
    client's ordinary requests use; a version the config names (or SigV4a, S3 Express) is kept."""
    if getattr(_PRESIGNING, "active", False) and signature_version in ("s3v4-query", "v4-query"):
        return "s3v4-query"
    return None


def _info(item: dict[str, Any]) -> ObjectInfo:
    # botocore already parsed and typed the listing: no second validation per key.
    return ObjectInfo(
        key=item["Key"],
        size=item.get("Size", item.get("ContentLength", 0)),
        version=str(item.get("ETag", "")).strip('"'),
        last_modified=item.get("LastModified"),
    )


def _error_code(exc: Exception) -> str | None:
    """The S3 error code of a botocore ``ClientError`` (``None`` for other exceptions)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return str(response.get("Error", {}).get("Code"))


class PresignedReads:
    """Ranged GETs of a bucket's objects at ~1.5x less client CPU than ``get_object``.

    A scan reads one small sidecar per item, and boto3 spends ~1.6 ms of CPU on each
    ``get_object`` (parameter validation, endpoint rules, signing, user agent, parsing the
    response into a dict, its dates included): with one GIL per planner, that CPU, not the
    bucket's latency, bounds how fast a shard reads. Here the client signs a presigned URL of the
    same ``get_object`` call (its own credentials, refreshed as usual, session token, region,
    endpoint and addressing style) and the request goes out on the client's own HTTP session
    (its pool, TLS verification, proxies and timeouts); nothing is parsed but the status.

    :meth:`read` answers ``None`` for anything but a complete 200/206 answer without a checksum
    to verify: the caller then makes the ordinary ``get_object`` call, whose retries, redirects,
    checksum validation and error (per object, as today) are the client's own. A client without
    the parts used here (not a botocore client) gets no short way (``usable`` is false)."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket
        self._http: Any = getattr(getattr(client, "_endpoint", None), "http_session", None)
        events: Any = getattr(getattr(client, "meta", None), "events", None)
        self.usable = (
            callable(getattr(self._http, "send", None))
            and callable(getattr(client, "generate_presigned_url", None))
            and callable(getattr(events, "register_first", None))
        )
        if self.usable:  # once per client (the unique id makes a second registration a no-op)
            events.register_first(
                "choose-signer.s3.GetObject", _sign_our_presigns_with_sigv4, unique_id=_SIGV4_HANDLER_ID
            )

    def read(self, key: str, max_bytes: int) -> bytes | None:
        """The first ``max_bytes`` of ``key``, or ``None``: read it the ordinary way."""
        from botocore.awsrequest import AWSPreparedRequest

        try:
            _PRESIGNING.active = True
            try:
                url = self.client.generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=PRESIGNED_EXPIRY_S
                )
            finally:
                _PRESIGNING.active = False
            request = AWSPreparedRequest("GET", url, {"Range": f"bytes=0-{max_bytes - 1}"}, None, False)
            response = self._http.send(request)
            if response.status_code not in (200, 206):
                return None
            headers = response.headers
            data: bytes = response.content
        except Exception as exc:  # noqa: BLE001 (its text can hold the presigned URL: not logged)
            failure = type(exc).__name__
            log.debug("presigned read of %s failed (%s); reading it the ordinary way", key, failure)
            return None
        length = headers.get("content-length")
        if (length is not None and int(length) != len(data)) or any(
            name.lower().startswith(_CHECKSUM_HEADER) for name in headers
        ):
            return None
        return data


class S3Source(BoundedListing):
    """One S3 bucket. ``region`` defaults to the client's region (needed by the default URL)."""

    scheme = "s3"

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        region: str | None = None,
        url_style: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        direct_reads: bool = True,
    ):
        self.client = client
        self.bucket = bucket
        self.region = region or getattr(getattr(client, "meta", None), "region_name", None) or "us-east-1"
        self.page_size = page_size
        self.urls = UrlBuilder.for_source(self.scheme, bucket, url_style, region=self.region)
        presigned = PresignedReads(client, bucket) if direct_reads else None
        self.direct = (
            DirectReads(presigned, self.uri()) if presigned is not None and presigned.usable else None
        )

    def uri(self, key: str = "") -> str:
        """``s3://bucket/key`` (for messages; not the canonical object URL)."""
        return f"s3://{self.bucket}/{key}"

    def _pages(
        self, prefix: str, start_after: str | None, delimiter: str | None, bounds: KeyBounds | None = None
    ) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages; none past the page holding the first key beyond ``bounds``."""
        params: dict[str, Any] = {"Bucket": self.bucket, "MaxKeys": self.page_size}
        if prefix:
            params["Prefix"] = prefix
        if start_after:
            params["StartAfter"] = start_after
        if delimiter:
            params["Delimiter"] = delimiter
        while True:
            page = self.client.list_objects_v2(**params)
            yield page
            contents = page.get("Contents")
            if bounds is not None and contents and bounds.past_end(contents[-1]["Key"]):
                return
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            params["ContinuationToken"] = token

    def _listed(self, bounds: KeyBounds) -> Iterator[ObjectInfo]:
        for page in prefetch(self._pages(bounds.prefix, bounds.exclusive_lower(), None, bounds)):
            for item in page.get("Contents", ()):
                yield _info(item)

    def iter_level(self, prefix: str = "") -> Iterator[LevelEntry]:
        """Yield the files directly under ``prefix`` and its sub-folder prefixes, in key order."""
        for page in prefetch(self._pages(prefix, None, DELIMITER)):
            entries: list[LevelEntry] = [_info(item) for item in page.get("Contents", ())]
            entries.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
            entries.sort(key=lambda entry: entry if isinstance(entry, str) else entry.key)
            yield from entries

    def head(self, key: str) -> ObjectInfo | None:
        """The object ``key``, or ``None`` if it does not exist."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise
        return _info({**response, "Key": key})

    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes (its first ``max_bytes`` with a ranged GET, the short way when it
        can: :class:`PresignedReads`)."""
        if max_bytes is not None and max_bytes <= 0:
            return b""
        if max_bytes is not None and self.direct is not None:
            short = self.direct.read(key, max_bytes)
            if short is not None:
                return short
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if max_bytes is not None:
            params["Range"] = f"bytes=0-{max_bytes - 1}"
        try:
            response = self.client.get_object(**params)
        except Exception as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise FileNotFoundError(f"{self.uri(key)} does not exist") from None
            if _error_code(exc) == "InvalidRange":  # a ranged read of an empty object
                return b""
            raise
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def object_url(self, key: str) -> str:
        """The canonical object URL of ``key``."""
        return self.urls.url(key)

    def key_from_url(self, url: str) -> str | None:
        """The key whose canonical URL is ``url`` (``None``: not an object of this source)."""
        return self.urls.key_from_url(url)
