"""scan_shard against moto's S3 in server mode and the GCS emulator, over real HTTP on 127.0.0.1.

Sources, the run folder and the ledger all live in the stand-in buckets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from standins import seed_s3
from standins.gcs import GcsEmulator

from encord_ingest.grouping import GroupingConfig, GroupRule
from encord_ingest.ledger import Ledger
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.scanner import DATA_CHANGED_WARNING
from encord_ingest.sources.gcs import GCSSource
from encord_ingest.sources.s3 import S3Source
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, as_bytes, dicom, png

S1 = "1.2.826.0.1.3680043.9"
TREE: dict[str, Any] = {
    "raw/_defaults.yaml": "review.status: pending\n",
    "raw/day/metadata.csv": "file,capture.count\nshot 1.jpg,4\n",
    "raw/day/shot 1.jpg": png(),
    "raw/day/shot 1.jpg.json": {"capture.site": "lab"},
    "raw/day/clip.mp4": b"video",
    "raw/day/clip.json": {"keyframes": [0, 3]},
    "raw/day/orphan.metadata.json": {"capture.site": "x"},
    "raw/seq/frame_10.jpg": png(),
    "raw/seq/frame_9.jpg": png(),
    "raw/ct/a/1.dcm": dicom(S1, 2),
    "raw/ct/b/2.dcm": dicom(S1, 1),
}
CONFIG = PlanningConfig(
    grouping=GroupingConfig(
        groups=[GroupRule(folders="raw/seq", create_video=True)], dicom_series="series_uid"
    )
)


def check_first_plan(harness: Harness, base_url: str) -> None:
    result = harness.plan("r1", shards=2)
    assert len(result.summaries) == 2
    titles = {item.title: item for item in result.items()}
    assert sorted(titles) == ["raw/ct/" + S1, "raw/day/clip.mp4", "raw/day/shot 1.jpg", "raw/seq"]
    shot = titles["raw/day/shot 1.jpg"]
    assert shot.object_url == f"{base_url}/raw/day/shot%201.jpg"
    assert shot.client_metadata == {"review.status": "pending", "capture.count": 4, "capture.site": "lab"}
    assert titles["raw/day/clip.mp4"].client_metadata == {"review.status": "pending", "keyframes": [0, 3]}
    assert titles["raw/seq"].object_urls() == [
        f"{base_url}/raw/seq/frame_9.jpg",
        f"{base_url}/raw/seq/frame_10.jpg",
    ]
    assert titles["raw/ct/" + S1].object_urls() == [
        f"{base_url}/raw/ct/b/2.dcm",
        f"{base_url}/raw/ct/a/1.dcm",
    ]
    assert result.counts == {"new": 6, "sidecar": 4, "skipped": 1}
    assert result.outcome("raw/day/orphan.metadata.json")["code"] == "orphan_sidecar"
    harness.commit(result, item_uuids={item.key_url: f"uuid-{item.title}" for item in result.items()})
    assert harness.plan("r2", shards=2).counts == {"unchanged": 6, "sidecar": 4, "skipped": 1}


def check_changes(harness: Harness, put: Any, delete: Any, base_url: str) -> None:
    put("raw/day/shot 1.jpg.json", as_bytes({"capture.site": "field"}))
    put("raw/day/clip.mp4", b"video, re-encoded")
    delete("raw/seq/frame_10.jpg")
    result = harness.plan("r3", shards=2)
    assert result.outcome_of("raw/day/shot 1.jpg") == "metadata_changed"
    assert result.outcome("raw/day/clip.mp4")["warning"] == DATA_CHANGED_WARNING
    assert result.outcome_of("raw/day/clip.mp4") == "data_changed"
    assert result.outcome_of("raw/seq/frame_9.jpg") == "data_changed"
    assert result.outcome_of("raw/seq/frame_10.jpg") == "gone"
    change = result.change(f"{base_url}/raw/day/shot%201.jpg")
    assert (change.item_uuid, change.metadata["capture.site"]) == ("uuid-raw/day/shot 1.jpg", "field")
    assert result.manifests == []


@pytest.fixture
def s3_harness(s3: Any, request: pytest.FixtureRequest) -> Harness:
    bucket = f"src-{request.node.name[:20].replace('_', '-').lower()}"
    seed_s3(bucket, {key: as_bytes(value) for key, value in TREE.items()})
    s3.create_bucket(Bucket="state-" + bucket)
    store = BlobStore.from_uri(f"s3://state-{bucket}/ingest/", s3_client=s3)
    return Harness(S3Source(s3, bucket, region="us-east-1"), store, config=CONFIG)


def test_plan_and_change_detection_on_s3(s3_harness: Harness, s3: Any) -> None:
    bucket = s3_harness.source.bucket
    base = f"https://{bucket}.s3.us-east-1.amazonaws.com"
    check_first_plan(s3_harness, base)
    check_changes(
        s3_harness,
        lambda key, data: s3.put_object(Bucket=bucket, Key=key, Body=data),
        lambda key: s3.delete_object(Bucket=bucket, Key=key),
        base,
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="state-" + bucket)["Contents"]]
    assert "ingest/ledger/test-source/CURRENT.json" in keys
    assert "ingest/runs/r3/summaries/shard-0001.json" in keys


class DyingStore:
    """The S3 run store, killed after writing a new ledger version and before the pointer."""

    def __init__(self, store: BlobStore):
        self.store = store

    def read_bytes(self, key: str) -> bytes:
        return self.store.read_bytes(key)

    def exists(self, key: str) -> bool:
        return self.store.exists(key)

    def write_bytes(self, key: str, data: bytes) -> str:
        if key.endswith("CURRENT.json"):
            raise SystemExit("worker killed")
        return self.store.write_bytes(key, data)


def test_crash_between_ledger_version_and_pointer_on_s3(s3_harness: Harness) -> None:
    first = s3_harness.plan("r1")
    s3_harness.commit(first)
    s3_harness.ledger = Ledger(DyingStore(s3_harness.store), "ledger/test-source")
    client: Any = s3_harness.source.client  # type: ignore[attr-defined]
    client.put_object(Bucket=s3_harness.source.bucket, Key="raw/new.jpg", Body=png())
    second = s3_harness.plan("r2")
    assert second.outcome_of("raw/new.jpg") == "new"
    with pytest.raises(SystemExit):
        s3_harness.commit(second)
    s3_harness.ledger = Ledger(s3_harness.store, "ledger/test-source")
    assert s3_harness.ledger.pointer().run_id == "r1"  # type: ignore[union-attr]
    assert len(list(s3_harness.store.list("ledger/test-source/versions/"))) == 2
    rerun = s3_harness.plan("r2")
    assert rerun.outcome_of("raw/new.jpg") == "new"
    assert rerun.counts["unchanged"] == first.counts["new"]


def test_plan_and_change_detection_on_gcs(gcs: GcsEmulator, tmp_path: Path) -> None:
    bucket = "plan-src-gcs"
    gcs.seed(bucket, {key: as_bytes(value) for key, value in TREE.items()})
    client = gcs.client()
    store = BlobStore.from_uri(str(tmp_path / "state"))
    harness = Harness(GCSSource(client, bucket), store, config=CONFIG)
    base = f"https://storage.cloud.google.com/{bucket}"
    check_first_plan(harness, base)
    check_changes(
        harness,
        lambda key, data: client.bucket(bucket).blob(key).upload_from_string(data),
        lambda key: client.bucket(bucket).blob(key).delete(),
        base,
    )
