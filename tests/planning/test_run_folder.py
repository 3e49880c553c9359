"""The run folder reads back what the Encord steps recorded; a chunk without a result failed whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.manifest import ImageItem, Manifest
from encord_ingest.results import RegisterCounts, RegisterReport, UrlResult
from encord_ingest.run_folder import REGISTER_SUFFIX, SYNC_SUFFIX, RunFolder, result_uri
from encord_ingest.storage import BlobStore
from encord_ingest.sync import ItemResult, MetadataChange, SyncCounts, SyncMode, SyncReport, write_changes

B = "s3://raw"


def _manifest(folder: RunFolder, name: str, keys: list[str]) -> str:
    items = [ImageItem(object_url=f"{B}/{key}", title=key) for key in keys]
    return folder.store.write_bytes(f"manifests/{name}.json", Manifest(items).to_bytes())


def test_run_results_fail_the_items_of_a_chunk_without_a_result(tmp_path: Path) -> None:
    folder = RunFolder.of(BlobStore.from_uri(str(tmp_path / "state")), "manual__2026-12-01T00:00:00+00:00")
    done = _manifest(folder, "shard-0000-00000", ["a.jpg", "b.jpg"])
    crashed = _manifest(folder, "shard-0000-00001", ["c.jpg"])
    error = ItemError.of(ErrorCode.READ_FAILED, "b.jpg", detail="unreachable")
    report = RegisterReport(
        chunk_uri=done,
        job_uuid="job-1",
        status="DONE",
        counts=RegisterCounts(items=2, urls=2, registered_items=1, failed_items=1),
        results={f"{B}/a.jpg": UrlResult(item_uuid="u-a"), f"{B}/b.jpg": UrlResult(error=error)},
    )
    folder.store.write_bytes(folder.key(result_uri(done, REGISTER_SUFFIX)), report.to_bytes())
    rows = [MetadataChange(object_url=f"{B}/{k}", metadata={"k": 1}) for k in ("a.jpg", "b.jpg")]
    unsynced = folder.store.write_bytes("metadata/shard-0000-00000.jsonl", write_changes(rows))
    (tmp_path / "spill").mkdir()

    results = folder.run_results([done, crashed], [unsynced], spill=str(tmp_path / "spill"))

    found = results.items.lookup([f"{B}/{key}" for key in ("a.jpg", "b.jpg", "c.jpg", "d.jpg")])
    unsynced_reason = f"metadata sync did not complete for chunk {unsynced}"
    assert found.to_dict("index") == {
        f"{B}/a.jpg": {"item_uuid": "u-a", "failure": unsynced_reason},
        f"{B}/b.jpg": {"item_uuid": None, "failure": error.message},  # the register failure is shown
        f"{B}/c.jpg": {"item_uuid": None, "failure": f"registration did not complete for chunk {crashed}"},
    }
    assert results.job_uuids == ["job-1"]
    assert results.missing_chunks == [crashed]
    assert [r.job_uuid for r in folder.register_reports()] == ["job-1"]


def test_sync_results_sum_counts_and_fail_the_rows_of_a_chunk_without_a_result(tmp_path: Path) -> None:
    folder = RunFolder.of(BlobStore.from_uri(str(tmp_path)), "r1")
    rows = [MetadataChange(object_url=f"{B}/{k}", metadata={"k": 1}) for k in ("a.jpg", "b.jpg")]
    synced = folder.store.write_bytes("metadata/shard-0000-00000.jsonl", write_changes(rows[:1]))
    crashed = folder.store.write_bytes("metadata/shard-0000-00001.jsonl", write_changes(rows[1:]))
    report = SyncReport(
        chunk_uri=synced,
        mode=SyncMode.MERGE,
        dry_run=False,
        counts=SyncCounts(examined=1, changed=1, written=1, patch_calls=1),
        items={f"{B}/a.jpg": ItemResult.model_validate({"status": "updated", "item_uuid": "u-a"})},
    )
    folder.store.write_bytes(folder.key(result_uri(synced, SYNC_SUFFIX)), report.to_bytes())

    results = folder.sync_results([synced, crashed], dry_run=False)

    assert results.counts["written"] == 1
    assert results.counts["patch_calls"] == 1
    assert results.failed_urls == {f"{B}/b.jpg": f"metadata sync did not complete for chunk {crashed}"}
    assert folder.sync_results([synced, crashed], dry_run=True).failed_urls == {}


def test_a_uri_outside_the_run_folder_is_refused(tmp_path: Path) -> None:
    state = BlobStore.from_uri(str(tmp_path))
    other = RunFolder.of(state, "r2").uri("manifests/c0.json")
    with pytest.raises(ValueError, match="is not inside the run folder"):
        RunFolder.of(state, "r1").read(other)


def test_clear_results_forgets_one_shards_results_only(tmp_path: Path) -> None:
    folder = RunFolder.of(BlobStore.from_uri(str(tmp_path)), "r1")
    for name in (
        "shard-0000-00000.register.json",
        "shard-0000-00000.sync.json",
        "shard-0001-00000.sync.json",
    ):
        folder.store.write_bytes(f"results/{name}", b"{}")
    folder.clear_results(0)
    assert list(folder.store.list("results/")) == ["results/shard-0001-00000.sync.json"]


def _shard_chunks(folder: RunFolder, shard: int, sizes: list[int]) -> dict[str, list[str]]:
    uris = [
        _manifest(folder, f"shard-{shard:04d}-{n:05d}", [f"s{shard}/c{n}/{i}.jpg" for i in range(size)])
        for n, size in enumerate(sizes)
    ]
    return {"manifest_uris": uris}


def _urls(folder: RunFolder, uris: list[str]) -> list[str]:
    return [url for uri in uris for url in Manifest.from_bytes(folder.read(uri)).key_urls()]


def test_the_shards_last_chunks_are_combined_so_jobs_follow_the_item_count(tmp_path: Path) -> None:
    """113 new items in 3 shards, at most 50 per job: 3 jobs (ceil(113 / 50)), not one per shard
    remainder (4). Full chunks stay as they are; every item is in exactly one chunk; a retried step
    writes the same chunks, removes an earlier attempt's extra chunk and stale results; the commit
    reads the chunk list back; a new scan of the run forgets it."""
    folder = RunFolder.of(BlobStore.from_uri(str(tmp_path)), "r1")
    summaries = [
        _shard_chunks(folder, 0, [50, 21]),
        _shard_chunks(folder, 1, [21]),
        _shard_chunks(folder, 2, [21]),
    ]
    shard_uris = [uri for summary in summaries for uri in summary["manifest_uris"]]
    folder.store.write_bytes("manifests/combined-00005.json", b"{}")
    folder.store.write_bytes("results/combined-00000.register.json", b"{}")
    limits = {"max_items": 50, "max_urls": 1000, "max_bytes": 1 << 20}

    uris = folder.combine_manifests(summaries, **limits)

    assert uris[0] == shard_uris[0]
    assert [uri.rsplit("/", 1)[1] for uri in uris[1:]] == ["combined-00000.json", "combined-00001.json"]
    assert [len(Manifest.from_bytes(folder.read(uri))) for uri in uris] == [50, 50, 13]
    assert sorted(_urls(folder, uris)) == sorted(_urls(folder, shard_uris))
    assert not folder.store.exists("manifests/combined-00005.json")
    assert list(folder.store.list("results/")) == []
    written = [folder.read(uri) for uri in uris]
    assert folder.combine_manifests(summaries, **limits) == uris
    assert [folder.read(uri) for uri in uris] == written
    assert folder.registered_chunks(summaries) == uris
    folder.clear_results(1)
    assert folder.registered_chunks(summaries) == shard_uris


def test_one_shards_chunks_are_registered_as_they_are(tmp_path: Path) -> None:
    folder = RunFolder.of(BlobStore.from_uri(str(tmp_path)), "r1")
    summaries = [_shard_chunks(folder, 0, [3, 2]), {"manifest_uris": []}]
    uris = folder.combine_manifests(summaries, max_items=3, max_urls=100, max_bytes=1 << 20)
    assert uris == summaries[0]["manifest_uris"] == folder.registered_chunks(summaries)
    assert list(folder.store.list("manifests/combined-")) == []


def test_the_outcome_table_carries_every_ledger_column_with_the_ledgers_type() -> None:
    """The outcome columns are derived from the ledger's, so a commit finds each of them."""
    from encord_ingest.ledger import LEDGER_COLUMNS, ledger_schema
    from encord_ingest.scan.outcomes import OUTCOME_COLUMNS, outcome_schema

    carried = [name for name in LEDGER_COLUMNS if not name.startswith("last_")]
    assert set(carried) <= set(OUTCOME_COLUMNS)
    for name in carried:
        assert outcome_schema().field(name).type == ledger_schema().field(name).type, name
