"""finish_run reads the run's outcomes chunk by chunk: the same final table, counts, report rows
and error-budget counts as one whole outcome table gave."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from encord_ingest.config import SourceConfig
from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.grouping import GroupingConfig, GroupRule
from encord_ingest.ledger import Ledger, ledger_schema, merge_outcomes
from encord_ingest.manifest import Manifest
from encord_ingest.pipeline import RunOptions, final_outcomes, finish_run, with_table_warnings
from encord_ingest.results import RegisterCounts, RegisterReport, ResultMaps, UrlResult
from encord_ingest.run_folder import (
    FINAL_OUTCOMES,
    REGISTER_SUFFIX,
    SYNC_SUFFIX,
    RunFolder,
    chunk_uris,
    result_uri,
)
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.outcomes import OUTCOME_COLUMNS
from encord_ingest.sources.sharding import plan_shards
from encord_ingest.sync import ItemResult, SyncCounts, SyncMode, SyncReport, WriteStatus, read_changes
from tests.planning.helpers import Harness, png

Local = Callable[..., Harness]


def tree() -> dict[str, object]:
    files: dict[str, object] = {"raw/a/blob.bin": b"x", "raw/b/.DS_Store": b"x"}
    for folder in ("a", "b", "c"):
        for image in range(4):
            files[f"raw/{folder}/{image}.jpg"] = png()
        files[f"raw/{folder}/bad.jpg"] = png()
        files[f"raw/{folder}/bad.jpg.json"] = {"capture.count": "many"}
        files[f"raw/{folder}/metadata.csv"] = "file,layer\n0.jpg,table\nmissing.jpg,x\n"
    return files


def report_rows(report: str, section: str) -> list[str]:
    body = report.split(f"## {section}\n", 1)[1].strip("\n").split("\n\n", 1)[0]
    return body.splitlines()[2:]


def test_a_streamed_finish_matches_the_whole_table(
    local: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = local(tree(), config=PlanningConfig(outcome_chunk_rows=4))
    summaries = harness.plan("r1", shards=3).summaries
    assert len(summaries) == 3
    assert sum(len(s["outcome_uris"]) for s in summaries) >= 6
    folder = RunFolder.of(harness.store, "r1")
    whole = pd.concat(list(folder.outcomes(summaries, columns=None)), ignore_index=True)
    results = folder.run_results(folder.registered_chunks(summaries), [], spill=str(tmp_path))
    assert results.missing_chunks  # no register results: every new item failed
    tables = {key: text for s in summaries for key, text in s["table_warnings"].items()}
    expected = with_table_warnings(final_outcomes(whole, results.items), tables).reset_index(drop=True)

    monkeypatch.setattr("encord_ingest.pipeline.REPORT_ROWS", 1)
    config = SourceConfig.model_validate(
        {
            "name": "local",
            "bucket": {"uri": "file:///data"},
            "state_uri": str(tmp_path / "state"),
            "encord": {"integration": "i", "folder": "f"},
        }
    )
    result = finish_run(config, harness.store, RunOptions(run_id="r1", prefixes=["raw/"]), summaries)

    written = pd.read_parquet(io.BytesIO(folder.read(str(result.outcomes_uri))))
    assert str(result.outcomes_uri).endswith(FINAL_OUTCOMES)
    assert written.equals(expected[list(OUTCOME_COLUMNS)].astype(written.dtypes))
    assert result.counts == dict(sorted(expected["outcome"].value_counts().items()))
    data = expected[expected["kind"].notna() & ~expected["outcome"].isin(["skipped", "gone"])]
    failed_items = data.loc[data["outcome"] == "failed", "item_url"].nunique()
    assert (result.failed, result.items) == (failed_items, data["item_url"].nunique())
    assert result.objects == len(expected)

    failed = expected[expected["outcome"] == "failed"]
    shown = f"| `{failed['key'].iloc[0]}` | {failed['message'].iloc[0]} |"
    more = f"| ... | {len(failed) - 1} more in {FINAL_OUTCOMES} |"
    assert report_rows(result.markdown, "Failed objects") == [shown, more]
    skipped = expected[expected["outcome"] == "skipped"]
    assert len(skipped) == 2
    assert report_rows(result.markdown, "Skipped objects") == [
        f"| `{skipped['key'].iloc[0]}` | {skipped['code'].iloc[0]} |  |",
        f"| ... | 1 more in {FINAL_OUTCOMES} | |",
    ]
    warned = expected[expected["warning"].notna()]
    assert len(warned) >= 2
    assert report_rows(result.markdown, "Warnings") == [
        f"| `{warned['key'].iloc[0]}` | {warned['warning'].iloc[0]} |",
        f"| ... | {len(warned) - 1} more in {FINAL_OUTCOMES} |",
    ]
    for outcome, count in result.counts.items():
        assert f"| {outcome} | {count} |" in result.markdown


def register_results(folder: RunFolder, chunks: list[str], sync_chunks: list[str]) -> dict[str, str]:
    """What the Encord steps recorded, with every case the commit must read: the first chunk has
    no register result (its task crashed), an item of the second failed (unit error), the group's
    member URL failed while its key URL has a UUID (the commit leaves the whole group out), a
    URL of the third chunk has an error in the second chunk too (a URL in two chunks), an item of
    the third chunk is missing from its result. The first metadata chunk has no sync result, the
    last change of each other one failed. Returns ``{url: uuid}`` of the registered URLs."""
    manifests = [Manifest.from_bytes(folder.read(chunk), source=chunk) for chunk in chunks]
    assert len(manifests) >= 4
    uuids: dict[str, str] = {}
    for number, (chunk, manifest) in enumerate(zip(chunks, manifests, strict=True)):
        if number == 0:
            continue
        results: dict[str, UrlResult] = {}
        for index, item in enumerate(manifest.items):
            if number == 2 and index == 0:
                continue  # missing from its chunk's result
            result = UrlResult(item_uuid=f"u-{number}-{index}")
            if number == 1 and index == 0:
                result = UrlResult(error=ItemError.of(ErrorCode.UNIT_ERROR, item.key_url, detail="refused"))
            results.update(dict.fromkeys(item.object_urls(), result))
            uuids.update((url, str(result.item_uuid)) for url in item.object_urls() if result.item_uuid)
        if number == 1:
            other = manifests[2].items[-1].key_url
            results[other] = UrlResult(error=ItemError.of(ErrorCode.UNIT_ERROR, other, detail="twice"))
        group = next((i for i in manifest.items if len(i.object_urls()) > 1), None)
        if group is not None:
            member = group.object_urls()[1]
            results[member] = UrlResult(error=ItemError.of(ErrorCode.UNIT_ERROR, member, detail="member"))
        report = RegisterReport(
            chunk_uri=chunk, job_uuid=f"job-{number}", status="DONE", counts=RegisterCounts(), results=results
        )
        folder.store.write_bytes(folder.key(result_uri(chunk, REGISTER_SUFFIX)), report.to_bytes())
    for number, chunk in enumerate(sync_chunks):
        if number == 0:
            continue
        changes = read_changes(folder.read(chunk), source=chunk)
        error = ItemError.of(ErrorCode.PATCH_FAILED, changes[-1].object_url, detail="sync refused")
        items = {c.object_url: ItemResult(status=WriteStatus.UNCHANGED) for c in changes}
        items[changes[-1].object_url] = ItemResult(status=WriteStatus.FAILED, errors=[error])
        counts = SyncCounts(examined=len(changes), failed=1)
        sync = SyncReport(chunk_uri=chunk, mode=SyncMode.MERGE, dry_run=False, counts=counts, items=items)
        folder.store.write_bytes(folder.key(result_uri(chunk, SYNC_SUFFIX)), sync.to_bytes())
    return uuids


def whole_results(folder: RunFolder, chunks: list[str], sync_chunks: list[str]) -> ResultMaps:
    """The run's results as one pair of dicts, read the way ``commit_and_report`` read them
    before it streamed (a later chunk overwrites a URL's UUID or failure; the register failure
    of a URL wins over its sync failure)."""
    uuids: dict[str, str] = {}
    failed: dict[str, str] = {}
    for chunk in chunks:
        try:
            report = RegisterReport.from_bytes(folder.read(result_uri(chunk, REGISTER_SUFFIX)))
        except FileNotFoundError:
            for item in Manifest.from_bytes(folder.read(chunk), source=chunk).items:
                failed[item.key_url] = f"registration did not complete for chunk {chunk}"
            continue
        for url, outcome in report.results.items():
            if outcome.item_uuid:
                uuids[url] = outcome.item_uuid
            elif outcome.error is not None:
                failed[url] = outcome.error.message
    synced = folder.sync_results(sync_chunks, dry_run=False)
    return ResultMaps(uuids, {**synced.failed_urls, **failed})


def test_results_looked_up_batch_by_batch_give_the_ledger_and_outcomes_of_whole_dicts(
    local: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run over 3 shards whose register and sync results hold every awkward case
    (:func:`register_results`), read in outcome batches of 3 rows (items cut across batches),
    combined chunks holding several shards' items, ledger parts of 2 rows: the same ledger as
    one :func:`merge_outcomes` with the whole dicts, and the same final outcomes; a retried
    commit_and_report gives the same ledger again."""
    files = tree()
    for frame in range(3):
        files[f"raw/b/g-1/{frame}.jpg"] = png()
    grouping = GroupingConfig(groups=[GroupRule(folders="raw/b/g-*")])
    config = PlanningConfig(outcome_chunk_rows=4, manifest_max_items=2, grouping=grouping)
    harness = local(files, config=config)
    whole_group = functools.partial(plan_shards, keep_whole=lambda folder: folder.startswith("raw/b/g-"))
    monkeypatch.setattr("tests.planning.helpers.plan_shards", whole_group)  # as plan_run_shards does
    summaries = harness.plan("r1", shards=3).summaries
    assert len(summaries) == 3
    folder = RunFolder.of(harness.store, "r1")
    chunks = folder.combine_manifests(summaries, max_items=2, max_urls=1000, max_bytes=10**6)
    assert any("/combined-" in chunk for chunk in chunks)
    sync_chunks = chunk_uris(summaries, "metadata")
    assert len(sync_chunks) >= 2
    registered = register_results(folder, chunks, sync_chunks)
    whole = pd.concat(list(folder.outcomes(summaries, columns=None)), ignore_index=True)
    maps = whole_results(folder, chunks, sync_chunks)
    tables = {key: text for s in summaries for key, text in s["table_warnings"].items()}
    expected = with_table_warnings(final_outcomes(whole, maps), tables).reset_index(drop=True)
    empty = ledger_schema().empty_table().to_pandas()
    failed = set(maps.failures)
    expected_ledger = merge_outcomes(empty, whole, "r1", item_uuids=maps.item_uuids, failed_item_urls=failed)
    group_rows = whole[whole["key"].str.startswith("raw/b/g-1/")]
    assert len(group_rows) == 3
    assert group_rows["item_url"].nunique() == 1

    monkeypatch.setattr("encord_ingest.run_folder.OUTCOME_BATCH_ROWS", 3)
    monkeypatch.setattr("encord_ingest.ledger.PART_ROWS", 2)
    source = SourceConfig.model_validate(
        {
            "name": "local",
            "bucket": {"uri": "file:///data"},
            "state_uri": str(tmp_path / "state"),
            "encord": {"integration": "i", "folder": "f"},
        }
    )
    options = RunOptions(run_id="r1", prefixes=["raw/"])
    result = finish_run(source, harness.store, options, summaries)

    written = pd.read_parquet(io.BytesIO(folder.read(str(result.outcomes_uri))))
    assert written.equals(expected[list(OUTCOME_COLUMNS)].astype(written.dtypes))
    outcomes = set(expected["outcome"])
    assert {"registered", "failed"} <= outcomes
    assert set(expected["message"].dropna()) >= {"registration did not complete for chunk " + chunks[0]}
    assert expected["item_uuid"].isin(list(registered.values())).any()
    ledger = Ledger(harness.store, "ledger")
    columns = list(expected_ledger.columns)

    def rows(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values(["key", "url"], kind="stable").reset_index(drop=True)[columns]

    got = ledger.read_frame()
    assert len(ledger.pointer().parts) >= 2  # type: ignore[union-attr]
    assert rows(got).equals(rows(expected_ledger))
    assert not got["item_url"].isin(list(group_rows["item_url"])).any()  # a member URL failed the group
    assert got["item_uuid"].notna().any()
    assert f"- upload jobs: {', '.join(f'`job-{n}`' for n in range(1, len(chunks)))}" in result.markdown

    finish_run(source, harness.store, options, summaries)  # a retried task
    assert rows(ledger.read_frame()).equals(rows(expected_ledger))


def test_a_table_cut_off_from_its_items_by_a_shard_keeps_its_unmatched_rows_warning(
    local: Local, tmp_path: Path
) -> None:
    """raw/b/metadata.csv falls in shard 2, b's images in shard 1: shard 1 reads the table and
    finds its unmatched row, the report puts that warning on the table's row as one shard does."""
    harness = local(tree())
    one = harness.plan("r1", shards=1)
    summaries = harness.plan("r3", shards=3).summaries
    tables = [key for key in one.outcomes["key"] if key.endswith("metadata.csv")]
    assert len(tables) == 3
    assert [key for s in summaries for key in s["table_warnings"]] == ["raw/b/metadata.csv"]
    config = SourceConfig.model_validate(
        {
            "name": "local",
            "bucket": {"uri": "file:///data"},
            "state_uri": str(tmp_path / "state"),
            "encord": {"integration": "i", "folder": "f"},
        }
    )
    result = finish_run(
        config, harness.store, RunOptions(run_id="r3", prefixes=["raw/"], dry_run=True), summaries
    )

    final = pd.read_parquet(io.BytesIO(RunFolder.of(harness.store, "r3").read(str(result.outcomes_uri))))
    got = final.set_index("key").loc[tables, "warning"].to_dict()
    assert got == one.outcomes.set_index("key").loc[tables, "warning"].to_dict()
    assert all("missing.jpg" in str(warning) for warning in got.values())
    assert sum(s["warnings"] for s in summaries) == sum(s["warnings"] for s in one.summaries)
