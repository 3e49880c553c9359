"""Bucket clients come from Airflow connections (the core never builds credentials itself)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from standins.gcs import gcs_emulator
from standins.s3 import moto_s3_server, s3_client

from encord_ingest.sources import GCSSource
from encord_ingest.sources.factory import open_source
from encord_ingest.storage import BlobStore
from encord_provider.clients import storage_clients
from encord_provider.run_io import RunFolderIO


def test_gcs_client_from_a_connection_lists_and_writes_through_the_emulator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with gcs_emulator() as emulator:
        emulator.create_bucket("gcs-raw")
        emulator.seed("gcs-raw", {"day/a.jpg": b"a", "day/a.jpg.json": b"{}"})
        extra = {"anonymous": True, "project": "test-project"}
        monkeypatch.setenv("AIRFLOW_CONN_GCS_TEST", json.dumps({"conn_type": "generic", "extra": extra}))
        clients = storage_clients("gs://gcs-raw", "gcs_test")
        assert set(clients) == {"gcs_client"}
        assert clients["gcs_client"].project == "test-project"
        source = open_source("gs://gcs-raw", **clients)
        assert [info.key for info in source.iter_objects("day/")] == ["day/a.jpg", "day/a.jpg.json"]
        store = BlobStore.from_uri("gs://gcs-raw/state", **clients)
        store.write_bytes("ledger/CURRENT.json", b"{}")
        assert store.read_bytes("ledger/CURRENT.json") == b"{}"
        # The operators' run-folder reader takes the same connection for a gs:// state_uri.
        io = RunFolderIO(aws_conn_id=None, gcs_conn_id="gcs_test")
        io.write("gs://gcs-raw/state/runs/r1/results/c0.register.json", b"{}")
        assert list(io.store("gs://gcs-raw/state/runs/r1").list("results/")) == ["results/c0.register.json"]


def test_s3_client_comes_from_an_aws_connection_with_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from standins.latency import LatencySettings, latency_proxy

    settings = LatencySettings(delay=0.0, jitter=0.0, seen=[])
    with moto_s3_server() as moto, latency_proxy(moto, settings=settings) as endpoint:
        s3_client(endpoint).create_bucket(Bucket="conn-raw")
        s3_client(endpoint).put_object(Bucket="conn-raw", Key="x/y.jpg", Body=b"y")
        conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "aws_session_token": "conn-token"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", json.dumps(conn))
        source = open_source(
            "s3://conn-raw", region="eu-west-2", **storage_clients("s3://conn-raw", "aws_test")
        )
        assert [info.key for info in source.iter_objects("x/")] == ["x/y.jpg"]
        assert source.object_url("x/y.jpg") == "https://conn-raw.s3.eu-west-2.amazonaws.com/x/y.jpg"
        # A sidecar's ranged read, the short way: one presigned GET (SigV4) with the connection's
        # credentials and session token.
        settings.seen.clear()
        assert source.read_bytes("x/y.jpg", 100) == b"y"
        ((method, path, _headers),) = settings.seen
        assert method == "GET"
        assert path.startswith(
            "/conn-raw/x/y.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=testing%2F"
        )
        assert "X-Amz-Security-Token=conn-token" in path


def test_an_s3_client_is_built_once_per_connection_and_again_when_the_connection_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with moto_s3_server() as first, moto_s3_server() as second:
        s3_client(second).create_bucket(Bucket="only-on-second")
        conn = {"conn_type": "aws", "login": "testing", "password": "testing"}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_CACHE", json.dumps({**conn, "extra": {"endpoint_url": first}}))
        client = storage_clients("s3://raw-bucket", "aws_cache")["s3_client"]
        assert storage_clients("s3://raw-bucket", "aws_cache")["s3_client"] is client
        assert client.meta.endpoint_url == first
        monkeypatch.setenv("AIRFLOW_CONN_AWS_CACHE", json.dumps({**conn, "extra": {"endpoint_url": second}}))
        moved = storage_clients("s3://raw-bucket", "aws_cache")["s3_client"]
        assert moved is not client
        assert [b["Name"] for b in moved.list_buckets()["Buckets"]] == ["only-on-second"]


def test_the_s3_clients_pool_holds_every_read_ahead_thread_unless_the_connection_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from encord_ingest.sources.readahead import CLIENT_POOL_CONNECTIONS, MAX_READ_CONCURRENCY

    conn: dict[str, Any] = {
        "conn_type": "aws",
        "login": "k",
        "password": "s",
        "extra": {"region_name": "eu-west-2"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_POOL", json.dumps(conn))
    client = storage_clients("s3://pool-raw", "aws_pool")["s3_client"]
    assert client.meta.config.max_pool_connections == CLIENT_POOL_CONNECTIONS > MAX_READ_CONCURRENCY
    assert client.meta.region_name == "eu-west-2"
    conn["extra"]["config_kwargs"] = {"max_pool_connections": 7, "retries": {"max_attempts": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_POOL", json.dumps(conn))
    client = storage_clients("s3://pool-raw", "aws_pool")["s3_client"]
    assert client.meta.config.max_pool_connections == 7
    assert client.meta.config.retries["total_max_attempts"] == 3  # botocore counts the first try


def test_a_gcs_clients_pool_keeps_a_connection_for_every_read_ahead_thread(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from standins.latency import latency_proxy

    from encord_ingest.sources import GCSSource
    from encord_ingest.sources.readahead import DEFAULT_READ_CONCURRENCY

    with gcs_emulator() as emulator, latency_proxy(emulator.endpoint, delay=0.005) as endpoint:
        keys = [f"k/{i:03d}.json" for i in range(3 * DEFAULT_READ_CONCURRENCY)]
        emulator.seed("gcs-pool", {key: b"{}" for key in keys})
        # The connection's client, pointed at the proxy (keep-alive, unlike the emulator itself).
        # The environment is restored before the emulator stops, so the session's emulator
        # stays the one later tests reach.
        with monkeypatch.context() as patched:
            patched.setenv("STORAGE_EMULATOR_HOST", endpoint)
            extra = {"anonymous": True, "project": "test-project"}
            patched.setenv("AIRFLOW_CONN_GCS_POOL", json.dumps({"conn_type": "generic", "extra": extra}))
            source = GCSSource(storage_clients("gs://gcs-pool", "gcs_pool")["gcs_client"], "gcs-pool")
            warnings = caplog.at_level("WARNING", logger="urllib3.connectionpool")
            with warnings, ThreadPoolExecutor(DEFAULT_READ_CONCURRENCY) as pool:
                assert set(pool.map(source.read_bytes, keys)) == {b"{}"}
        # With requests' default pool of 10, 22 connections per round are dropped, each with a warning.
        assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]


@pytest.mark.parametrize("no_proxy", ["", "127.0.0.1"])
def test_a_gcs_client_reads_the_proxy_settings_of_the_environment_once(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    from standins.latency import LatencySettings, latency_proxy

    settings = LatencySettings(delay=0.0, jitter=0.0)
    with gcs_emulator() as emulator, latency_proxy(emulator.endpoint, settings=settings) as proxy:
        emulator.seed("gcs-env", {"a.json": b"{}"})
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", no_proxy)
        extra = {"anonymous": True, "project": "test-project"}
        monkeypatch.setenv("AIRFLOW_CONN_GCS_ENV", json.dumps({"conn_type": "generic", "extra": extra}))
        client = storage_clients("gs://gcs-env", "gcs_env")["gcs_client"]
        monkeypatch.delenv("HTTP_PROXY")  # read when the client was built, not at every request
        assert client.bucket("gcs-env").blob("a.json").download_as_bytes() == b"{}"
        assert (settings.requests > 0) is (no_proxy == "")  # through the proxy unless NO_PROXY names the host
        settings.seen = []  # (the library also looks the bucket up, once, in a thread of its own)
        source = GCSSource(client, "gcs-env")  # a sidecar's ranged read, the short way (direct_reads)
        assert source.direct is not None
        assert source.read_bytes("a.json", 100) == b"{}"
        reads = [path for _method, path, _headers in settings.seen if "/o/a.json" in path]
        assert len(reads) == (1 if no_proxy == "" else 0)


def test_local_paths_need_no_client() -> None:
    assert storage_clients("file:///tmp/data", None) == {}
