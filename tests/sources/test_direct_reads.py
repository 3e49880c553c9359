"""Ranged reads the short way (S3: a presigned GET on the client's HTTP session; GCS: the media URL
on the client's transport adapter), against moto S3 and the GCS emulator behind the latency proxy
(0 ms), which records every request and injects faults.

Each read the short way is ONE request; a read that falls back to the ordinary client call makes
a second one. So "one request per read" proves the short way answered, and every error must be
the one the ordinary call raises (``direct_reads=False``), text included.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from standins import DROP, GcsEmulator, LatencySettings, latency_proxy, s3_client, unique_bucket_name

from encord_ingest.sources import GCSSource, S3Source, Source
from encord_ingest.sources.direct import TRIAL_READS, DirectReads
from encord_ingest.sources.gcs import pool_for_read_ahead
from tests.sources.test_listing import AWKWARD_KEYS

OBJECTS = {**{key: key.encode() * 3 for key in AWKWARD_KEYS}, "f/empty.json": b"", "f/ok.json": b'{"a": 1}'}


@dataclass
class Proxied:
    """A bucket holding :data:`OBJECTS` (written over HTTP) behind a recording proxy."""

    bucket: str
    endpoint: str
    settings: LatencySettings
    make: Callable[..., Source]
    """``make(direct_reads=...)``: a source of the bucket through the proxy."""

    def read(self, source: Source, key: str, limit: int) -> tuple[bytes, list[str]]:
        """``source.read_bytes(key, limit)`` and the paths of the requests it made (not the GCS
        library's own bucket lookups, which it makes once per client in a thread of its own)."""
        assert self.settings.seen is not None
        before = len(self.settings.seen)
        data = source.read_bytes(key, limit)
        lookup = f"/storage/v1/b/{self.bucket}?"
        return data, [
            path for _method, path, _headers in self.settings.seen[before:] if not path.startswith(lookup)
        ]


def _s3_bucket(endpoint: str) -> str:
    client, name = s3_client(endpoint), unique_bucket_name("direct")
    client.create_bucket(Bucket=name)
    for key, data in OBJECTS.items():
        client.put_object(Bucket=name, Key=key, Body=data)
    return name


def _gcs_bucket(emulator: GcsEmulator) -> str:
    name = unique_bucket_name("direct")
    bucket = emulator.client().create_bucket(name)
    for key, data in OBJECTS.items():
        bucket.blob(key).upload_from_string(data)
    return name


def gcs_client(endpoint: str, credentials: Any = None) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="test-project",
        credentials=credentials or AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoint},
    )


@pytest.fixture(params=["s3", "gcs"])
def proxied(request: pytest.FixtureRequest) -> Iterator[Proxied]:
    settings = LatencySettings(delay=0.0, jitter=0.0, seen=[])
    if request.param == "s3":
        upstream = request.getfixturevalue("s3_endpoint")
        bucket = _s3_bucket(upstream)
    else:
        emulator: GcsEmulator = request.getfixturevalue("gcs")
        upstream, bucket = emulator.endpoint, _gcs_bucket(emulator)
    with latency_proxy(upstream, settings=settings) as endpoint:

        def make(**kwargs: Any) -> Source:
            if request.param == "s3":
                return S3Source(s3_client(endpoint), bucket, **kwargs)
            # As the provider builds it (the environment read once; see the last test for a client
            # that reads it per request).
            return GCSSource(pool_for_read_ahead(gcs_client(endpoint)), bucket, **kwargs)

        yield Proxied(bucket, endpoint, settings, make)


def test_ranged_reads_take_the_short_way_with_any_key_and_read_the_same_bytes(proxied: Proxied) -> None:
    direct, ordinary = proxied.make(), proxied.make(direct_reads=False)
    assert vars(direct)["direct"] is not None
    assert vars(ordinary)["direct"] is None
    for key, data in OBJECTS.items():
        for limit in (1, 5, 4 * 1024**2 + 1):
            read, paths = proxied.read(direct, key, limit)
            assert read == ordinary.read_bytes(key, limit) == data[:limit], key
            if data:  # one request, the short way (an empty object's ranged read is a 416: ordinary way)
                assert len(paths) == 1, (key, paths)
                assert "X-Amz-Signature=" in paths[0] or "/download/storage/v1/b/" in paths[0]
        assert direct.read_bytes(key) == ordinary.read_bytes(key) == data  # whole reads: the ordinary way


def _error(source: Source, key: str) -> BaseException:
    try:
        source.read_bytes(key, 100)
    except Exception as error:  # noqa: BLE001 (compared below)
        return error
    raise AssertionError(f"reading {key} did not fail")


def test_a_missing_or_refused_object_fails_alone_with_the_ordinary_error(proxied: Proxied) -> None:
    proxied.settings.faults = {"hash%23frag": 403}
    direct, ordinary = proxied.make(), proxied.make(direct_reads=False)
    for key in ("f/missing.json", "hash#frag.jpg"):
        mine, theirs = _error(direct, key), _error(ordinary, key)
        assert (type(mine), str(mine)) == (type(theirs), str(theirs))
    assert isinstance(_error(direct, "f/missing.json"), FileNotFoundError)
    assert "403" in str(_error(direct, "hash#frag.jpg"))
    assert proxied.read(direct, "f/ok.json", 100) == (
        b'{"a": 1}',
        [proxied.read(direct, "f/ok.json", 100)[1][0]],
    )


def test_a_transient_failure_is_retried_by_the_ordinary_call(proxied: Proxied) -> None:
    """503 twice: the short way's answer and the ordinary call's first attempt; its retry reads."""
    proxied.settings.faults, proxied.settings.fault_times = {"ok.json": 503}, {"ok.json": 2}
    data, paths = proxied.read(proxied.make(), "f/ok.json", 100)
    assert data == b'{"a": 1}'
    assert len(paths) == 3


def test_a_dropped_connection_is_read_again_the_ordinary_way_and_logs_no_url(
    proxied: Proxied, caplog: pytest.LogCaptureFixture
) -> None:
    """The short way's connection closes without an answer: the ordinary call reads the object,
    and the debug log names the key and the error's type only. The error's text holds the request
    URL, which for S3 is the presigned URL with its signature and session token."""
    proxied.settings.faults, proxied.settings.fault_times = {"ok.json": DROP}, {"ok.json": 1}
    with caplog.at_level("DEBUG", logger="encord_ingest.sources"):
        data, paths = proxied.read(proxied.make(), "f/ok.json", 100)
    assert (data, len(paths)) == (b'{"a": 1}', 2)
    ours = [r for r in caplog.records if r.name.startswith("encord_ingest")]  # not the libraries'
    failures = [r.getMessage() for r in ours if "reading it the ordinary way" in r.getMessage()]
    assert len(failures) == 1
    assert "f/ok.json" in failures[0]
    assert all(r.exc_info is None for r in ours)
    text = "\n".join(r.getMessage() for r in ours)
    assert not any(secret in text for secret in ("X-Amz-", "Signature", "alt=media", "http"))


def test_presigned_reads_carry_the_session_token_of_refreshed_credentials(s3_endpoint: str) -> None:
    """The client's credentials expire in 5 minutes: botocore refreshes them before signing (its
    mandatory refresh window is 10 minutes), and the presigned URL carries the fresh token."""
    import boto3
    import botocore.session
    from botocore.credentials import RefreshableCredentials

    def metadata(access_key: str, token: str, minutes: int) -> dict[str, str]:
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
        return {
            "access_key": access_key,
            "secret_key": "secret",
            "token": token,
            "expiry_time": expiry.isoformat(),
        }

    bucket, settings = _s3_bucket(s3_endpoint), LatencySettings(delay=0.0, jitter=0.0, seen=[])
    core = botocore.session.get_session()
    core._credentials = RefreshableCredentials.create_from_metadata(
        metadata("AKIDSTALE", "stale-token", 5), lambda: metadata("AKIDFRESH", "fresh-token", 60), "test"
    )
    with latency_proxy(s3_endpoint, settings=settings) as endpoint:
        client = boto3.Session(botocore_session=core).client(
            "s3", endpoint_url=endpoint, region_name="us-east-1"
        )
        assert S3Source(client, bucket).read_bytes("f/ok.json", 100) == b'{"a": 1}'
    assert settings.seen is not None
    assert len(settings.seen) == 1
    path = settings.seen[0][1]
    assert "X-Amz-Security-Token=fresh-token" in path
    assert "X-Amz-Credential=AKIDFRESH" in path


def test_media_reads_carry_the_clients_refreshed_token(gcs: GcsEmulator) -> None:
    """The client's credentials have no token yet: they are refreshed before the read (no token
    server here: the credentials class is ours, the refresh is google-auth's own logic)."""
    from google.auth.credentials import Credentials

    class Refreshing(Credentials):
        def refresh(self, _request: Any) -> None:
            self.token = "fresh-token"

    bucket, settings = _gcs_bucket(gcs), LatencySettings(delay=0.0, jitter=0.0, seen=[])
    with latency_proxy(gcs.endpoint, settings=settings) as endpoint:
        source = GCSSource(gcs_client(endpoint, Refreshing()), bucket)  # type: ignore[no-untyped-call]
        assert source.read_bytes("f/ok.json", 100) == b'{"a": 1}'
    assert settings.seen is not None
    assert len(settings.seen) == 1
    method, path, headers = settings.seen[0]
    assert method == "GET"
    assert path == f"/download/storage/v1/b/{bucket}/o/f%2Fok.json?alt=media"
    sent = {name.lower(): value for name, value in headers.items()}
    assert sent["authorization"] == "Bearer fresh-token"
    assert sent["range"] == "bytes=0-99"


def test_media_reads_of_a_client_reading_the_environment_per_request_use_its_proxy(
    gcs: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client not set up by the provider reads the environment at every request (``requests``'
    ``trust_env``): so does the short way. Here the proxy is the environment's HTTP proxy, set
    after the client was built."""
    bucket, settings = _gcs_bucket(gcs), LatencySettings(delay=0.0, jitter=0.0, seen=[])
    with latency_proxy(gcs.endpoint, settings=settings) as proxy:
        source = GCSSource(gcs_client(gcs.endpoint), bucket)
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(name, "")
        assert source.read_bytes("f/ok.json", 100) == b'{"a": 1}'
    assert settings.seen is not None
    assert [path for _method, path, _headers in settings.seen] == [
        f"{gcs.endpoint}/download/storage/v1/b/{bucket}/o/f%2Fok.json?alt=media"
    ]


def test_media_reads_go_through_a_transport_adapter_with_a_send_of_its_own(gcs: GcsEmulator) -> None:
    """A session whose adapter sends requests its own way (here: counting them) keeps it."""
    from requests.adapters import HTTPAdapter

    sent: list[str] = []

    class Counting(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(str(request.url))
            return super().send(request, *args, **kwargs)

    bucket, client = _gcs_bucket(gcs), gcs_client(gcs.endpoint)
    client._http.mount("http://", Counting())
    assert GCSSource(client, bucket).read_bytes("f/ok.json", 100) == b'{"a": 1}'
    assert sent == [f"{gcs.endpoint}/download/storage/v1/b/{bucket}/o/f%2Fok.json?alt=media"]


@pytest.mark.parametrize("proxied", ["s3"], indirect=True)
def test_a_short_way_that_never_answers_is_switched_off_after_its_trial(
    proxied: Proxied, caplog: pytest.LogCaptureFixture
) -> None:
    """Every presigned GET refused (as for a bucket outside the connection's region, whose URLs
    are signed for the wrong one): each read costs two requests until :data:`TRIAL_READS` reads
    have failed the short way, then one, with one warning. A short way that answered once stays
    on whatever follows. (S3 only: the proxy tells the short way from the ordinary call by the
    path, and on GCS both use the same media path; the guard is the same object there.)"""
    extra = TRIAL_READS + 5
    proxied.settings.faults = {"X-Amz-Signature=": 400}
    never = proxied.make()
    with caplog.at_level("WARNING", logger="encord_ingest.sources"):
        reads = [proxied.read(never, "f/ok.json", 100) for _ in range(extra)]
    assert {data for data, _paths in reads} == {b'{"a": 1}'}
    assert [len(paths) for _data, paths in reads] == [2] * TRIAL_READS + [1] * 5
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("encord_ingest")]
    assert len(warnings) == 1
    assert proxied.bucket in warnings[0]
    assert "direct_reads: false" in warnings[0]

    proxied.settings.faults = {}
    answered = proxied.make()
    assert len(proxied.read(answered, "f/ok.json", 100)[1]) == 1
    proxied.settings.faults = {"X-Amz-Signature=": 400}
    assert [len(proxied.read(answered, "f/ok.json", 100)[1]) for _ in range(extra)] == [2] * extra


def test_both_backends_give_the_short_way_its_trial(proxied: Proxied) -> None:
    direct = vars(proxied.make())["direct"]
    assert isinstance(direct, DirectReads)
    assert direct.trial == TRIAL_READS
