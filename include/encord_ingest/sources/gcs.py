"""Google Cloud Storage source over a ``google.cloud.storage.Client``.

The client is injected: inside Airflow it is built from Application Default Credentials or a
service-account key named in the source's connection; in tests it talks to the emulator via
``STORAGE_EMULATOR_HOST``. Listing uses ``list_blobs`` with a ``fields`` mask, page by page (the
next page is requested while the current one is used), and passes key ranges as
``start_offset`` / ``end_offset``; the bounds are checked client-side as well because the
emulator ignores the offsets. :func:`pool_for_read_ahead` sizes a client's connection pool for a
scan's concurrent reads. Ranged reads (the sidecars a scan reads) go the short way when the client
allows (:class:`MediaReads`); any other answer than a plain success takes the ordinary download,
so errors, retries and checksums stay the client library's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from encord_ingest.sources.base import DELIMITER, BoundedListing, KeyBounds, LevelEntry, ObjectInfo
from encord_ingest.sources.direct import DirectReads
from encord_ingest.sources.readahead import CLIENT_POOL_CONNECTIONS, prefetch
from encord_ingest.sources.urls import UrlBuilder

DEFAULT_PAGE_SIZE = 1000
ITEM_FIELDS = "items(name,size,etag,generation,updated)"
LIST_FIELDS = f"{ITEM_FIELDS},nextPageToken"
LEVEL_FIELDS = f"{ITEM_FIELDS},prefixes,nextPageToken"
DOWNLOAD_TIMEOUT_S = 60.0
"""The storage library's own default timeout of a download."""
log = logging.getLogger(__name__)


def pool_for_read_ahead(client: Any, connections: int = CLIENT_POOL_CONNECTIONS) -> Any:
    """``client`` set up for a scan's concurrent reads; returned. Two things of its ``requests``
    session, which sends every request:

    - its pool keeps 10 connections per host: with 32 read-ahead threads, 22 connections are opened
      and dropped again in every round of reads (urllib3 warns "Connection pool is full" each time).
      It gets ``connections``; a session whose adapters are not plain ``HTTPAdapter`` objects (e.g.
      mutual TLS) keeps its own.
    - it reads the environment on every request (proxies: every variable of ``os.environ`` is
      scanned; ``~/.netrc``; the CA bundle), ~0.2 ms of CPU per read. The environment is read once
      here instead, as ``requests`` itself would read it for the client's endpoint: proxies unless
      ``NO_PROXY`` names its host, and ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``. A ``.netrc``
      login is not used (every request carries the client's own credentials)."""
    import os

    from requests.adapters import HTTPAdapter
    from requests.utils import get_environ_proxies

    session = client._http  # the client's transport (built on first use; a public constructor arg)
    for scheme, adapter in list(session.adapters.items()):
        if type(adapter) is HTTPAdapter and getattr(adapter, "_pool_maxsize", 0) < connections:
            session.mount(scheme, HTTPAdapter(connections, connections, max_retries=adapter.max_retries))
    if session.trust_env:
        endpoint = getattr(client, "api_endpoint", None) or "https://storage.googleapis.com"
        session.proxies = {**session.proxies, **get_environ_proxies(endpoint)}
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle and session.verify is True:
            session.verify = bundle
        session.trust_env = False
    return client


def _info(blob: Any) -> ObjectInfo:
    return ObjectInfo(
        key=blob.name,
        size=int(blob.size or 0),
        version=str(blob.generation or blob.etag or ""),
        last_modified=blob.updated,
    )


class MediaReads:
    """Ranged media downloads of a bucket's objects at ~2x less client CPU than the ``Blob`` path.

    A scan reads one small sidecar per item, and ``Blob.download_as_bytes`` spends ~1 ms of CPU
    on each (the blob, the download object, ``requests``' request preparation: cookies, hooks,
    header merging, URL parsing): with one GIL per planner, that CPU, not the bucket's latency,
    bounds how fast a shard reads. Here the same media URL (``.../download/storage/v1/b/<bucket>
    /o/<name>?alt=media``) is sent by the client's own transport adapter (its pool, mutual TLS,
    TLS verification and proxies, the environment's too unless :func:`pool_for_read_ahead` read
    it once already), with the client's credentials applied (and refreshed) by the credentials
    object itself, and the client's user agent.

    :meth:`read` answers ``None`` for anything but a complete 206 answer (or a 200 one without a
    checksum to verify) with no content encoding: the caller then makes the ordinary download,
    whose retries, credential refresh on 401, checksum validation and errors (per object, as
    today) are the library's own. A client whose transport is not google-auth's
    ``AuthorizedSession`` gets no short way (``usable`` is false)."""

    def __init__(self, client: Any, bucket: str, user_project: str | None = None):
        from google.auth.transport.requests import AuthorizedSession

        session: Any = getattr(client, "_http", None)
        connection: Any = getattr(client, "_connection", None)
        base = getattr(connection, "API_BASE_URL", None)
        self.usable = (
            isinstance(session, AuthorizedSession)
            and isinstance(base, str)
            and hasattr(session, "_auth_request")
        )
        self.session = session
        self.prefix = f"{base}/download/storage/v1/b/{quote(bucket, safe='')}/o/"
        if self.usable:  # requests would send the prefix as it is (so it need not prepare each URL)
            self.usable = _prepared_url(self.prefix) == self.prefix
        self.query = "?alt=media" + (f"&userProject={quote(user_project, safe='')}" if user_project else "")
        agent = str(getattr(connection, "user_agent", "") or "")
        self.headers = {
            **(session.headers if self.usable else {}),
            "Accept-Encoding": "gzip, deflate",
            **({"User-Agent": agent, "X-Goog-API-Client": agent} if agent else {}),
        }

    def read(self, key: str, max_bytes: int) -> bytes | None:
        """The first ``max_bytes`` of ``key``, or ``None``: read it the ordinary way."""
        session: Any = self.session
        url = self.prefix + quote(key, safe="~") + self.query
        headers = {**self.headers, "Range": f"bytes=0-{max_bytes - 1}"}
        try:
            session.credentials.before_request(session._auth_request, "GET", url, headers)
            status, answer, data = self._send(session, url, headers)
        except Exception as exc:  # noqa: BLE001 (like the S3 short way: the error's name, not its text)
            failure = type(exc).__name__
            log.debug("media read of %s failed (%s); reading it the ordinary way", key, failure)
            return None
        if status not in (200, 206) or "content-encoding" in answer:
            return None
        if status == 200 and "x-goog-hash" in answer:
            return None
        return data

    @staticmethod
    def _send(session: Any, url: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        """GET ``url`` as the session would send it; (status, headers, body).

        The session's adapter for ``url`` picks the connection pool (its TLS context, mutual TLS
        included, and proxy) and the request target, as its own ``send`` does; the response is
        read whole from that pool, without the ``Response`` object ``requests`` builds around it.
        An adapter with a ``send`` of its own is called through it instead."""
        from requests import PreparedRequest
        from requests.adapters import HTTPAdapter
        from requests.structures import CaseInsensitiveDict
        from urllib3.util import Timeout

        request = PreparedRequest()  # as ``prepare`` would make it: no body, cookies or hooks
        request.method, request.url, request.body = "GET", url, None
        request.headers = CaseInsensitiveDict(headers)
        if session.trust_env:  # the environment, as ``requests`` reads it per request
            settings = session.merge_environment_settings(url, {}, None, None, None)
            proxies, verify, cert = settings["proxies"], settings["verify"], settings["cert"]
        else:  # read once already (:func:`pool_for_read_ahead`)
            proxies, verify, cert = session.proxies, session.verify, session.cert
        adapter: Any = session.get_adapter(url)
        if not isinstance(adapter, HTTPAdapter) or type(adapter).send is not HTTPAdapter.send:
            response = adapter.send(
                request, timeout=DOWNLOAD_TIMEOUT_S, verify=verify, proxies=proxies, cert=cert
            )
            return response.status_code, response.headers, response.content
        pool: Any = adapter.get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
        adapter.cert_verify(pool, url, verify, cert)  # type: ignore[no-untyped-call]
        answer = pool.urlopen(
            "GET",
            adapter.request_url(request, proxies),
            headers=request.headers,
            redirect=False,
            assert_same_host=False,
            preload_content=True,
            decode_content=False,
            retries=adapter.max_retries,
            timeout=Timeout(connect=DOWNLOAD_TIMEOUT_S, read=DOWNLOAD_TIMEOUT_S),
        )
        return answer.status, answer.headers, answer.data


def _prepared_url(url: str) -> str | None:
    from requests import PreparedRequest

    request = PreparedRequest()
    try:
        request.prepare_url(url, None)
    except Exception:  # noqa: BLE001 (not a URL requests sends: no short way)
        return None
    return request.url


class GCSSource(BoundedListing):
    """One GCS bucket."""

    scheme = "gs"

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        url_style: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        direct_reads: bool = True,
    ):
        self.client = client
        self.bucket = bucket
        self.page_size = page_size
        self.urls = UrlBuilder.for_source(self.scheme, bucket, url_style)
        self._bucket = client.bucket(bucket)
        media = (
            MediaReads(client, bucket, getattr(self._bucket, "user_project", None)) if direct_reads else None
        )
        self.direct = DirectReads(media, self.uri()) if media is not None and media.usable else None

    def uri(self, key: str = "") -> str:
        """``gs://bucket/key`` (for messages; not the canonical object URL)."""
        return f"gs://{self.bucket}/{key}"

    def _listed(self, bounds: KeyBounds) -> Iterator[ObjectInfo]:
        blobs = self.client.list_blobs(
            self.bucket,
            prefix=bounds.prefix or None,
            start_offset=bounds.inclusive_lower(),
            end_offset=bounds.end_before,
            page_size=self.page_size,
            fields=LIST_FIELDS,
        )
        for page in prefetch(iter(blobs.pages)):
            for blob in page:
                yield _info(blob)

    def iter_level(self, prefix: str = "") -> Iterator[LevelEntry]:
        """Yield the files directly under ``prefix`` and its sub-folder prefixes, in key order."""
        blobs = self.client.list_blobs(
            self.bucket,
            prefix=prefix or None,
            delimiter=DELIMITER,
            page_size=self.page_size,
            fields=LEVEL_FIELDS,
        )
        for page in prefetch(iter(blobs.pages)):
            entries: list[LevelEntry] = [_info(blob) for blob in page]
            entries.extend(page.prefixes)
            entries.sort(key=lambda entry: entry if isinstance(entry, str) else entry.key)
            yield from entries

    def head(self, key: str) -> ObjectInfo | None:
        """The object ``key``, or ``None`` if it does not exist."""
        blob = self._bucket.get_blob(key)
        return None if blob is None else _info(blob)

    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes (its first ``max_bytes`` with a ranged download, the short way
        when it can: :class:`MediaReads`)."""
        if max_bytes is not None and max_bytes <= 0:
            return b""
        if max_bytes is not None and self.direct is not None:
            short = self.direct.read(key, max_bytes)
            if short is not None:
                return short
        from google.api_core import exceptions as gexc

        blob = self._bucket.blob(key)
        try:
            if max_bytes is None:
                data: bytes = blob.download_as_bytes()
            else:
                data = blob.download_as_bytes(start=0, end=max_bytes - 1)
        except gexc.NotFound:
            raise FileNotFoundError(f"{self.uri(key)} does not exist") from None
        except gexc.RequestRangeNotSatisfiable:  # a ranged read of an empty object
            return b""
        return data

    def object_url(self, key: str) -> str:
        """The canonical object URL of ``key``."""
        return self.urls.url(key)

    def key_from_url(self, url: str) -> str | None:
        """The key whose canonical URL is ``url`` (``None``: not an object of this source)."""
        return self.urls.key_from_url(url)
