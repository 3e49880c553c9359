"""BlobStore: the pipeline's own files on S3 (moto over HTTP), GCS (emulator) and a directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from standins import GcsEmulator, unique_bucket_name

from encord_ingest.errors import ConfigError
from encord_ingest.storage import BlobStore


@pytest.fixture
def store_uri(backend: str, s3: Any, gcs: GcsEmulator, tmp_path: Path) -> str:
    name = unique_bucket_name()
    if backend == "s3":
        s3.create_bucket(Bucket=name)
        return f"s3://{name}/ingest/state"
    if backend == "gcs":
        gcs.create_bucket(name)
        return f"gs://{name}/ingest/state/"
    return (tmp_path / "my state").as_uri()


def open_store(uri: str, s3: Any, gcs: GcsEmulator) -> BlobStore:
    return BlobStore.from_uri(uri, s3_client=s3, gcs_client=gcs.client())


def test_write_read_exists_list_delete(store_uri: str, s3: Any, gcs: GcsEmulator, tmp_path: Path) -> None:
    store = open_store(store_uri, s3, gcs)
    assert not store.exists("runs/r1/plan.json")
    assert list(store.list()) == []
    uri = store.write_bytes("runs/r1/plan.json", b'{"a": 1}', content_type="application/json")
    store.write_bytes("runs/r1/chunks/0001.json", b"[]")
    store.write_bytes("runs/r2/plan.json", b"{}")
    store.write_bytes("ledger/CURRENT.json", b"{}")
    assert uri == store.uri("runs/r1/plan.json")
    assert store.read_bytes("runs/r1/plan.json") == b'{"a": 1}'
    assert store.exists("runs/r1/plan.json")
    assert list(store.list("runs/r1/")) == ["runs/r1/chunks/0001.json", "runs/r1/plan.json"]
    assert list(store.list()) == [
        "ledger/CURRENT.json",
        "runs/r1/chunks/0001.json",
        "runs/r1/plan.json",
        "runs/r2/plan.json",
    ]
    store.write_bytes("runs/r1/plan.json", b"replaced")
    assert store.read_bytes("runs/r1/plan.json") == b"replaced"
    local = tmp_path / "upload.parquet"
    local.write_bytes(b"PAR1 from a local file")
    assert store.write_file("runs/r1/final.parquet", str(local)) == store.uri("runs/r1/final.parquet")
    assert store.read_bytes("runs/r1/final.parquet") == b"PAR1 from a local file"
    store.delete("runs/r1/final.parquet")
    store.delete("runs/r1/plan.json")
    store.delete("runs/r1/plan.json")  # deleting what is gone is fine
    assert not store.exists("runs/r1/plan.json")
    with pytest.raises(FileNotFoundError, match=r"runs/r1/plan\.json does not exist"):
        store.read_bytes("runs/r1/plan.json")


def test_uri_round_trips_and_child_stores(store_uri: str, s3: Any, gcs: GcsEmulator) -> None:
    store = open_store(store_uri, s3, gcs)
    store.write_bytes("runs/r 1/a#b.json", b"x")
    again = open_store(store.uri(), s3, gcs)
    assert again.read_bytes("runs/r 1/a#b.json") == b"x"
    run = store.child("runs/r 1")
    assert run.read_bytes("a#b.json") == b"x"
    assert list(run.list()) == ["a#b.json"]
    assert run.uri("a#b.json") == store.uri("runs/r 1/a#b.json")
    assert open_store(run.uri("a#b.json").rsplit("/", 1)[0], s3, gcs).read_bytes("a#b.json") == b"x"


def test_uris_look_like_their_scheme(store_uri: str, s3: Any, gcs: GcsEmulator, backend: str) -> None:
    store = open_store(store_uri, s3, gcs)
    bucket = store.bucket
    expected = {
        "s3": f"s3://{bucket}/ingest/state/x/y.json",
        "gcs": f"gs://{bucket}/ingest/state/x/y.json",
        "local": "file://" + bucket.replace(" ", "%20") + "/x/y.json",
    }[backend]
    assert store.uri("x/y.json") == expected


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "./a", "a/./b", "nul\x00"])
def test_invalid_keys_are_refused(tmp_path: Path, key: str) -> None:
    store = BlobStore.from_uri(str(tmp_path))
    with pytest.raises(ValueError, match="not a valid blob key"):
        store.write_bytes(key, b"x")


def test_local_writes_replace_atomically_and_leave_no_temporaries(tmp_path: Path) -> None:
    store = BlobStore.from_uri(str(tmp_path / "state"))
    store.write_bytes("a/b.bin", b"one")
    store.write_bytes("a/b.bin", b"two")
    assert sorted(p.name for p in (tmp_path / "state" / "a").iterdir()) == ["b.bin"]
    assert (tmp_path / "state" / "a" / "b.bin").read_bytes() == b"two"


def test_cloud_uris_need_their_client() -> None:
    with pytest.raises(ConfigError, match="storage uri: 's3://bkt/x' needs an S3 client"):
        BlobStore.from_uri("s3://bkt/x")
    with pytest.raises(ConfigError, match="storage uri: 'gs://bkt' needs a GCS client"):
        BlobStore.from_uri("gs://bkt")
    with pytest.raises(ConfigError, match="unsupported scheme"):
        BlobStore.from_uri("ftp://host/x")
