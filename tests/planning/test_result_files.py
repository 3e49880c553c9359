"""The commit reads result files with one shape check per file (no model per URL): the same
results as the models give, and a malformed file fails its chunk's items with a reason that names
the file, the field and the expected form, while the other chunks commit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.manifest import Manifest
from encord_ingest.results import (
    RegisterCounts,
    RegisterReport,
    ResultFileError,
    UrlResult,
    register_url_results,
)
from encord_ingest.run_folder import REGISTER_SUFFIX, SYNC_SUFFIX, RunFolder, chunk_uris, result_uri
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.sync import ItemResult, SyncCounts, SyncMode, SyncReport, WriteStatus, sync_failures
from tests.planning.helpers import Harness, png

URL = "s3://b/raw/a.jpg"
ERROR = ItemError.of(ErrorCode.UNIT_ERROR, URL, detail="refused")


def register_report(results: dict[str, UrlResult]) -> RegisterReport:
    return RegisterReport(
        chunk_uri="c", job_uuid="job-1", status="DONE", counts=RegisterCounts(), results=results
    )


def sync_report(items: dict[str, ItemResult]) -> SyncReport:
    counts = SyncCounts(examined=len(items), failed=1)
    return SyncReport(chunk_uri="c", mode=SyncMode.MERGE, dry_run=False, counts=counts, items=items)


def test_the_lean_readers_give_what_the_models_give() -> None:
    report = register_report(
        {
            URL: UrlResult(error=ERROR),
            "s3://b/raw/b.jpg": UrlResult(item_uuid="u-b"),
            "s3://b/raw/c.jpg": UrlResult(item_uuid="u-c", error=ERROR),  # a UUID wins
            "s3://b/raw/d.jpg": UrlResult(),
        }
    )
    assert register_url_results(report.to_bytes(), source="r.json") == ("job-1", list(report.url_results()))
    sync = sync_report(
        {
            URL: ItemResult(status=WriteStatus.FAILED, errors=[ERROR]),
            "s3://b/raw/b.jpg": ItemResult(status=WriteStatus.UNCHANGED),
        }
    )
    legacy = (
        sync.to_bytes()
        .replace(b'"errors": [\n    {', b'"error": {')
        .replace(b'}\n   ],\n   "warnings"', b'},\n   "warnings"')
    )
    assert b'"error": {' in legacy  # a sync report written before results were unified
    for data in (sync.to_bytes(), legacy):
        assert sync_failures(data, source="s.json") == (sync.counts.model_dump(), {URL: ERROR.message})


@pytest.mark.parametrize(
    ("read", "data", "field", "form"),
    [
        (
            register_url_results,
            b'{"job_uuid": "j", "results": {"s3://b/raw/a.jpg": {"item_uuid": 7}}}',
            "results['s3://b/raw/a.jpg'].item_uuid: Input should be a valid string (got '7')",
            "a register result",
        ),
        (register_url_results, b'{"job_uuid": "j"}', "results: Field required", "a register result"),
        (
            sync_failures,
            b'{"counts": {}, "items": {"s3://b/raw/a.jpg": {"errors": [{"code": "nope", "file": "f"}]}}}',
            "items['s3://b/raw/a.jpg'].errors[0].code: Input should be",
            "a sync result",
        ),
        (sync_failures, b'{"counts": {}, "items": [', "(top level): Invalid JSON", "a sync result"),
    ],
    ids=["register-uuid-type", "register-no-results", "sync-error-code", "sync-truncated"],
)
def test_a_malformed_result_file_is_named_with_its_field_and_expected_form(
    read: Callable[..., object], data: bytes, field: str, form: str
) -> None:
    with pytest.raises(ResultFileError) as raised:
        read(data, source="results/x.json")
    message = str(raised.value)
    assert message.startswith(f"results/x.json: {field}")
    assert f"; expected {form}: {{" in message


def test_a_malformed_model_file_names_the_file() -> None:
    with pytest.raises(
        ResultFileError, match=r"^results/x.json: status: Input should be .*; expected a RegisterReport"
    ):
        RegisterReport.from_bytes(
            register_report({}).to_bytes().replace(b'"DONE"', b'"LOST"'), source="results/x.json"
        )


def test_a_malformed_result_file_fails_its_chunk_and_the_other_chunks_commit(
    local: Callable[..., Harness], tmp_path: Path
) -> None:
    files = {f"raw/{name}.jpg": png() for name in "abcd"} | {
        f"raw/{n}.jpg.json": {"capture.site": "s"} for n in "abcd"
    }
    harness = local(files, config=PlanningConfig(manifest_max_items=2, metadata_chunk_rows=2))
    summaries = harness.plan("r1").summaries
    folder = RunFolder.of(harness.store, "r1")
    chunks, changes = folder.registered_chunks(summaries), chunk_uris(summaries, "metadata")
    assert len(chunks) == 2
    assert len(changes) == 2
    urls = []
    for number, chunk in enumerate(chunks):
        uri = result_uri(chunk, REGISTER_SUFFIX)
        items = Manifest.from_bytes(folder.read(chunk), source=chunk).items
        urls.append([item.key_url for item in items])
        report = register_report({u: UrlResult(item_uuid=f"u-{u[-5]}") for u in urls[-1]})
        data = report.to_bytes() if number else report.to_bytes().replace(b'"job_uuid"', b'"job"')
        folder.store.write_bytes(folder.key(uri), data)
    for number, chunk in enumerate(changes):
        sync = sync_report({})
        data = sync.to_bytes() if number else sync.to_bytes().replace(b'"items": {}', b'"items": []')
        folder.store.write_bytes(folder.key(result_uri(chunk, SYNC_SUFFIX)), data)

    results = folder.run_results(chunks, changes, spill=str(tmp_path))
    found = results.items.lookup([u for group in urls for u in group])
    assert results.job_uuids == ["job-1"]
    for url in urls[1]:
        assert found.loc[url, "item_uuid"] == f"u-{url[-5]}"
    bad_register = result_uri(chunks[0], REGISTER_SUFFIX)
    for url in urls[0]:
        assert found.loc[url, "item_uuid"] is None
        reason = found.loc[url, "failure"]
        assert f"its register result is malformed: {bad_register}: job_uuid: Field required" in reason
        assert "expected a register result: {" in reason
    synced = folder.sync_results(changes, dry_run=False)
    bad_sync = result_uri(changes[0], SYNC_SUFFIX)
    assert synced.failed_urls
    assert all(
        f"its sync result is malformed: {bad_sync}: items: Input should be an object" in reason
        for reason in synced.failed_urls.values()
    )
