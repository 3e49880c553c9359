"""Sidecar reads ahead of the planner and listing-page prefetch, behind real-bucket latency.

moto S3 (real HTTP) sits behind the latency proxy (a few ms of jittered delay per request, so
concurrent reads finish out of order). Each plan is made twice, once reading one sidecar after
another (``read_concurrency: 1``) and once reading ahead; the run folders must be identical, including a
sidecar the proxy answers with 403 (that item alone fails, with its reason) and a slow one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from standins import LatencySettings, latency_proxy, s3_client, seed_s3, unique_bucket_name

from encord_ingest.scan.config import PlanningConfig
from encord_ingest.sources.readahead import ReadAhead, prefetch
from encord_ingest.sources.s3 import S3Source
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, RunResult, as_bytes

SERIAL = PlanningConfig(read_concurrency=1)
AHEAD = PlanningConfig(read_concurrency=6)


def tree() -> dict[str, bytes]:
    files: dict[str, Any] = {}
    for folder in ("a", "b", "b/c"):
        files[f"raw/{folder}/_defaults.yaml"] = f"capture.camera: cam-{folder}\n"
        for index in range(12):
            files[f"raw/{folder}/img_{index}.jpg"] = b"\xff\xd8\xff\xe0 jpeg"
            files[f"raw/{folder}/img_{index}.jpg.json"] = {"capture.count": index, "capture.site": folder}
    files["raw/a/img_3.jpg.json"] = b"{not json"
    files["raw/b/orphan.json"] = {"capture.site": "nobody"}
    return {key: as_bytes(value) for key, value in files.items()}


@pytest.fixture
def slow_bucket(s3_endpoint: str) -> Iterator[tuple[str, str, LatencySettings]]:
    """A bucket holding :func:`tree` behind the proxy: ``raw/b/img_5.jpg.json`` is refused (403),
    ``raw/a/img_7.jpg.json`` answers 150 ms late."""
    bucket = unique_bucket_name("ahead")
    seed_s3(bucket, tree())
    settings = LatencySettings(
        delay=0.003,
        jitter=0.003,
        faults={f"/{bucket}/raw/b/img_5.jpg.json": 403},
        slow={f"/{bucket}/raw/a/img_7.jpg.json": 0.15},
    )
    with latency_proxy(s3_endpoint, settings=settings) as endpoint:
        yield endpoint, bucket, settings


def harness(endpoint: str, bucket: str, store: BlobStore, config: PlanningConfig) -> Harness:
    source = S3Source(s3_client(endpoint), bucket, page_size=7)
    return Harness(source, store, config=config)


def assert_same_plan(serial: RunResult, ahead: RunResult) -> None:
    assert ahead.outcomes.equals(serial.outcomes)  # same rows, same order, same values
    assert [m.to_bytes() for m in ahead.manifests] == [m.to_bytes() for m in serial.manifests]
    assert ahead.changes == serial.changes
    assert ahead.summaries[0]["counts"] == serial.summaries[0]["counts"]


def test_read_ahead_plans_exactly_like_serial_reads(
    slow_bucket: tuple[str, str, LatencySettings], tmp_path: Any
) -> None:
    endpoint, bucket, settings = slow_bucket
    serial = harness(endpoint, bucket, BlobStore.from_uri(str(tmp_path / "serial")), SERIAL).plan("r1")
    assert settings.peak_in_flight <= 2  # the planner waits for each read (a listing page overlaps)
    requests = settings.requests
    ahead = harness(endpoint, bucket, BlobStore.from_uri(str(tmp_path / "ahead")), AHEAD).plan("r1")
    assert settings.peak_in_flight > 2  # reads overlapped
    assert settings.requests - requests == requests + 1  # the same requests, plus the orphan sidecar
    assert_same_plan(serial, ahead)
    summary = ahead.summaries[0]
    assert summary["objects"] == len(tree())
    assert sum(summary["counts"].values()) == summary["objects"]  # accounting adds up
    refused = ahead.outcome("raw/b/img_5.jpg")
    assert (refused["outcome"], refused["code"]) == ("failed", "read_failed")
    assert refused["message"].startswith("raw/b/img_5.jpg.json: ClientError")
    assert "(403)" in refused["message"]
    assert ahead.outcome("raw/a/img_3.jpg")["outcome"] == "failed"  # the malformed sidecar
    assert ahead.outcome_of("raw/a/img_7.jpg") == "new"  # slow, not failed
    assert summary["counts"] == {"failed": 4, "new": 34, "sidecar": 37, "skipped": 1}


def test_a_full_buffer_reads_on_demand_with_the_same_plan(
    slow_bucket: tuple[str, str, LatencySettings], tmp_path: Any
) -> None:
    endpoint, bucket, _ = slow_bucket
    serial = harness(endpoint, bucket, BlobStore.from_uri(str(tmp_path / "serial")), SERIAL).plan("r1")
    store = BlobStore.from_uri(str(tmp_path / "ahead"))
    conventions = SERIAL.sidecars
    with ReadAhead(
        S3Source(s3_client(endpoint), bucket),
        lambda info: conventions.read_ahead_limit(info.key, info.version, {}),
        concurrency=3,
        max_entries=2,
    ) as source:
        ahead = Harness(source, store, config=SERIAL).plan("r1")
        assert 0 < source.used <= source.started < 40  # some reads were left to the planner
    assert_same_plan(serial, ahead)


def test_a_replan_reads_ahead_only_changed_sidecars(
    slow_bucket: tuple[str, str, LatencySettings], s3: Any, tmp_path: Any
) -> None:
    endpoint, bucket, settings = slow_bucket
    stores = {name: BlobStore.from_uri(str(tmp_path / name)) for name in ("serial", "ahead")}
    for store in stores.values():
        first = harness(endpoint, bucket, store, SERIAL)
        first.commit(first.plan("r1"))
    s3.put_object(Bucket=bucket, Key="raw/b/c/img_2.jpg.json", Body=b'{"capture.site": "moved"}')
    requests = settings.requests
    serial = harness(endpoint, bucket, stores["serial"], SERIAL).plan("r2")
    serial_requests, requests = settings.requests - requests, settings.requests
    ahead = harness(endpoint, bucket, stores["ahead"], AHEAD).plan("r2")
    assert_same_plan(serial, ahead)
    assert ahead.outcome_of("raw/b/c/img_2.jpg") == "metadata_changed"
    # Read ahead: the changed sidecar, those of the two items that failed (planned again) and the
    # orphan (no ledger row), but none of the 35 sidecars the ledger holds unchanged: the same
    # requests as the serial replan plus the orphan.
    assert settings.requests - requests == serial_requests + 1


def test_prefetch_keeps_page_order_and_raises_where_the_page_failed() -> None:
    def pages() -> Iterator[int]:
        yield from range(5)
        raise RuntimeError("page 5 failed")

    seen: list[int] = []

    def drain() -> None:
        for page in prefetch(pages()):
            seen.append(page)

    with pytest.raises(RuntimeError, match="page 5 failed"):
        drain()
    assert seen == [0, 1, 2, 3, 4]


def test_the_folder_files_a_scan_starts_with_are_looked_up_at_once_when_reading_ahead(
    slow_bucket: tuple[str, str, LatencySettings],
) -> None:
    from encord_ingest.sources.sharding import find_folder_files

    endpoint, bucket, settings = slow_bucket
    source = S3Source(s3_client(endpoint), bucket)
    folders, names = ["", "raw/", "raw/a/", "raw/b/", "raw/b/c/"], ["_defaults.yaml", "_table.csv"]
    serial = find_folder_files(source, folders, names)
    assert settings.peak_in_flight == 1  # one HEAD after another
    with ReadAhead(source, lambda _info: None, concurrency=6) as ahead:
        assert find_folder_files(ahead, folders, names) == serial
    assert settings.peak_in_flight > 1
    assert [info.key for info in serial] == [f"raw/{f}/_defaults.yaml" for f in ("a", "b", "b/c")]
