"""commit_and_report's batch-by-batch result lookups (ResultIndex) on a SECOND run: a
ledger with history, items replayed unchanged, a metadata change whose sync failed, a data change,
a deleted object, a new item whose registration failed, a metadata chunk without a sync result.
The committed ledger and the final outcomes must be those of one ``merge_outcomes`` /
``final_outcomes`` with the run's whole result dicts (what commit_and_report did before)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from encord_ingest.config import SourceConfig
from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.ledger import Ledger, merge_outcomes
from encord_ingest.manifest import Manifest
from encord_ingest.pipeline import RunOptions, final_outcomes, finish_run
from encord_ingest.results import RegisterCounts, RegisterReport, UrlResult
from encord_ingest.run_folder import REGISTER_SUFFIX, SYNC_SUFFIX, RunFolder, chunk_uris, result_uri
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.outcomes import OUTCOME_COLUMNS
from encord_ingest.sources.local import LocalSource
from encord_ingest.storage import BlobStore
from encord_ingest.sync import ItemResult, SyncCounts, SyncMode, SyncReport, WriteStatus, read_changes
from tests.planning.helpers import Harness, png, write_tree
from tests.planning.test_finish_run import tree, whole_results


def _write_results(
    folder: RunFolder, summaries: list[dict[str, Any]], failing: set[str], *, skip_sync: int = -1
) -> None:
    """Register results (UUID ``u:<url>``, or an error for URLs in ``failing``) and sync results
    (a failure for URLs in ``failing``; metadata chunk number ``skip_sync`` gets none)."""
    for chunk in chunk_uris(summaries, "manifest"):
        results = {}
        for item in Manifest.from_bytes(folder.read(chunk), source=chunk).items:
            for url in item.object_urls():
                error = ItemError.of(ErrorCode.UNIT_ERROR, url, detail="refused")
                results[url] = UrlResult(error=error) if url in failing else UrlResult(item_uuid=f"u:{url}")
        report = RegisterReport(
            chunk_uri=chunk, job_uuid="job", status="DONE", counts=RegisterCounts(), results=results
        )
        folder.store.write_bytes(folder.key(result_uri(chunk, REGISTER_SUFFIX)), report.to_bytes())
    for number, chunk in enumerate(chunk_uris(summaries, "metadata")):
        if number == skip_sync:
            continue
        items = {}
        for change in read_changes(folder.read(chunk), source=chunk):
            if change.object_url in failing:
                error = ItemError.of(ErrorCode.PATCH_FAILED, change.object_url, detail="sync refused")
                items[change.object_url] = ItemResult(status=WriteStatus.FAILED, errors=[error])
            else:
                items[change.object_url] = ItemResult(status=WriteStatus.UPDATED)
        sync = SyncReport(
            chunk_uri=chunk, mode=SyncMode.MERGE, dry_run=False, counts=SyncCounts(), items=items
        )
        folder.store.write_bytes(folder.key(result_uri(chunk, SYNC_SUFFIX)), sync.to_bytes())


def test_a_second_run_commits_the_ledger_of_whole_dicts(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(data_root, tree())
    store = BlobStore.from_uri(str(tmp_path / "state"))
    config = PlanningConfig(outcome_chunk_rows=4, manifest_max_items=2, metadata_chunk_rows=2)
    harness = Harness(LocalSource(data_root), store, config=config)
    harness.ledger = Ledger(store, "ledger")  # the one finish_run commits to
    source = SourceConfig.model_validate(
        {
            "name": "local",
            "bucket": {"uri": "file:///data"},
            "state_uri": str(tmp_path / "state"),
            "encord": {"integration": "i", "folder": "f"},
        }
    )
    first = harness.plan("r1", shards=2).summaries
    _write_results(RunFolder.of(store, "r1"), first, set())
    finish_run(source, store, RunOptions(run_id="r1", prefixes=["raw/"]), first)
    previous = harness.ledger.read_frame()
    assert previous["item_uuid"].notna().all()
    assert len(previous) >= 12

    url = LocalSource(data_root).object_url
    write_tree(
        data_root,
        {
            "raw/a/metadata.csv": "file,layer\n0.jpg,edited\n1.jpg,new-row\n",
            "raw/b/1.jpg": png(7, 7),
            "raw/c/new.jpg": png(),
            "raw/c/new2.jpg": png(),
        },
    )
    (data_root / "raw/c/2.jpg").unlink()
    second = harness.plan("r2", shards=2).summaries
    folder = RunFolder.of(store, "r2")
    whole = pd.concat(list(folder.outcomes(second, columns=None)), ignore_index=True)
    assert {"metadata_changed", "data_changed", "new", "unchanged", "gone"} <= set(whole["outcome"])
    failing = {url("raw/a/0.jpg"), url("raw/c/new.jpg")}
    sync_chunks = chunk_uris(second, "metadata")
    in_chunk = [
        {c.object_url for c in read_changes(folder.read(chunk), source=chunk)} for chunk in sync_chunks
    ]
    crashed = next(
        n for n, urls in enumerate(in_chunk) if url("raw/c/new2.jpg") not in urls and urls - failing
    )
    _write_results(folder, second, failing, skip_sync=crashed)
    maps = whole_results(folder, chunk_uris(second, "manifest"), chunk_uris(second, "metadata"))
    expected_ledger = merge_outcomes(
        previous, whole, "r2", item_uuids=maps.item_uuids, failed_item_urls=set(maps.failures)
    )
    expected = final_outcomes(whole, maps).reset_index(drop=True)

    monkeypatch.setattr("encord_ingest.run_folder.OUTCOME_BATCH_ROWS", 5)
    monkeypatch.setattr("encord_ingest.ledger.PART_ROWS", 10)
    result = finish_run(source, store, RunOptions(run_id="r2", prefixes=["raw/"]), second)

    written = pd.read_parquet(io.BytesIO(folder.read(str(result.outcomes_uri))))
    assert written.equals(expected[list(OUTCOME_COLUMNS)].astype(written.dtypes))
    columns = list(expected_ledger.columns)

    def rows(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values(["key", "url"], kind="stable").reset_index(drop=True)[columns]

    got = harness.ledger.read_frame()
    assert len(harness.ledger.pointer().parts) >= 2  # type: ignore[union-attr]
    assert rows(got).equals(rows(expected_ledger))
    kept = got.set_index("key")
    assert kept.loc["raw/a/0.jpg", "item_uuid"] == "u:" + url("raw/a/0.jpg")  # from run 1
    assert kept.loc["raw/a/0.jpg", "last_run_id"] == "r1"  # sync failed: the old row stays
    assert "raw/c/new.jpg" not in kept.index
    assert "raw/c/2.jpg" not in kept.index
    assert kept.loc["raw/c/new2.jpg", "item_uuid"] == "u:" + url("raw/c/new2.jpg")
    lost = {u for u in in_chunk[crashed] if u not in failing}  # their sync did not complete
    assert (
        not got["url"].isin(list(lost)).any()
        or got[got["url"].isin(list(lost))]["last_run_id"].eq("r1").all()
    )

    finish_run(source, store, RunOptions(run_id="r2", prefixes=["raw/"]), second)  # a retried task
    assert rows(harness.ledger.read_frame()).equals(rows(expected_ledger))
