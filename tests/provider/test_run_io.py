"""Run-folder I/O of the operators on file://, s3:// (moto server, client from the amazon
provider's S3Hook) and gs:// (gcp-storage-emulator), and where results go."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from standins.gcs import gcs_emulator
from standins.s3 import create_bucket, moto_s3_server

from encord_ingest.run_folder import REGISTER_SUFFIX, SYNC_SUFFIX, result_uri
from encord_provider.run_io import RunFolderIO


@pytest.mark.parametrize(
    ("chunk", "suffix", "expected"),
    [
        (
            "s3://b/state/runs/r1/manifests/c0007.json",
            REGISTER_SUFFIX,
            "s3://b/state/runs/r1/results/c0007.register.json",
        ),
        ("gs://b/runs/r1/metadata/c0.jsonl", SYNC_SUFFIX, "gs://b/runs/r1/results/c0.sync.json"),
        (
            "file:///tmp/s/runs/r%201/manifests/c0.json",
            SYNC_SUFFIX,
            "file:///tmp/s/runs/r%201/results/c0.sync.json",
        ),
    ],
)
def test_results_go_beside_the_chunk_folder(chunk: str, suffix: str, expected: str) -> None:
    assert result_uri(chunk, suffix) == expected


def test_a_uri_without_a_folder_is_refused() -> None:
    with pytest.raises(ValueError, match="expected the URI of a file inside a folder"):
        result_uri("s3://bucket-only", SYNC_SUFFIX)


def test_file_uris_round_trip(tmp_path: Path) -> None:
    io = RunFolderIO(aws_conn_id=None)
    uri = (tmp_path / "runs" / "r 1" / "results" / "c0.sync.json").as_uri()
    io.write(uri, b"{}")
    assert io.read(uri) == b"{}"
    assert (tmp_path / "runs" / "r 1" / "results" / "c0.sync.json").read_bytes() == b"{}"


def test_s3_uris_use_the_aws_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_s3_server() as endpoint:
        create_bucket("run-state")
        extra = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_RUNS", json.dumps({"conn_type": "aws", "extra": extra}))
        io = RunFolderIO(aws_conn_id="aws_runs")
        io.write("s3://run-state/runs/r1/results/c0.register.json", b'{"ok": true}')
        assert io.read("s3://run-state/runs/r1/results/c0.register.json") == b'{"ok": true}'


def test_gs_uris_use_a_storage_client() -> None:
    with gcs_emulator() as gcs:
        gcs.create_bucket("run-state")
        io = RunFolderIO(gcs_project="test-project")
        io.write("gs://run-state/runs/r1/results/c0.sync.json", b"[]")
        assert io.read("gs://run-state/runs/r1/results/c0.sync.json") == b"[]"
