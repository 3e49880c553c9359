"""The hook under server behaviours Encord does not document (issue 9, items 5, 7, 8, 9, 10),
each set up in the emulator and driven through the real SDK: folder search that finds nothing,
request-body limits, listings that time out, a lost job-start response, item types newer than the
pinned SDK, a 403 for one item, rate limits on dataset linking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from encord_emulator.testing import EmulatorServer
from encord_provider.hooks.encord import EncordHook
from encord_provider.run_io import FolderMemory, RunFolderIO
from tests.provider.helpers import (
    BUCKET_URL,
    FAST_HOOK_PARAMS,
    TaskStateStore,
    read_result,
    register_operator,
    task_context,
    write_manifest,
)


def _fresh(conn: str, **params: Any) -> EncordHook:
    return EncordHook(conn, **{**FAST_HOOK_PARAMS, **params})


# --- item 5: folder lookup ---------------------------------------------------------------------


@pytest.mark.emulator(folder_search="unindexed")
def test_folders_are_found_without_search(emulator: EmulatorServer, encord_conn: str) -> None:
    """A search that finds nothing (a lagging index) must not make every run create new folders."""
    first = _fresh(encord_conn).get_folder("team/raw")
    emulator.admin.add_folder("raw-old", parent=str(first.parent_uuid))
    emulator.admin.reset_counts()
    again = _fresh(encord_conn).get_folder("team/raw")
    assert again.uuid == first.uuid
    assert "folders.create" not in emulator.admin.counts()
    assert "folders.search" not in emulator.admin.counts()
    assert sorted(f["name"] for f in emulator.admin.folders()) == ["raw", "raw-old", "team"]


@pytest.mark.emulator(folder_search="substring")
def test_a_name_that_is_a_substring_of_another_is_not_confused(
    emulator: EmulatorServer, encord_conn: str
) -> None:
    emulator.admin.add_folder("raw-2025")
    emulator.admin.add_folder("my-raw")
    folder = _fresh(encord_conn).get_folder("raw")
    assert folder.name == "raw"
    assert sorted(f["name"] for f in emulator.admin.folders()) == ["my-raw", "raw", "raw-2025"]


def test_resolved_folder_uuid_is_remembered_in_the_source_state(
    emulator: EmulatorServer, encord_conn: str, tmp_path: Path
) -> None:
    state = (tmp_path / "state").as_uri()
    io = RunFolderIO(aws_conn_id=None)
    folder = _fresh(encord_conn).get_folder("team/raw", memory=FolderMemory(io, state))
    saved = json.loads((tmp_path / "state" / "encord" / "folders.json").read_text())
    assert saved == {"folders": {"team/raw": str(folder.uuid)}}
    emulator.admin.reset_counts()
    again = _fresh(encord_conn).get_folder("team/raw", memory=FolderMemory(io, state))
    assert again.uuid == folder.uuid
    counts = emulator.admin.counts()
    assert counts == {"folders.get": 1}, counts
    # The folder is renamed in Encord: the path is resolved (and created) again, and remembered.
    emulator.emulator.state.folders[str(folder.uuid)].name = "renamed"
    moved = _fresh(encord_conn).get_folder("team/raw", memory=FolderMemory(io, state))
    assert moved.uuid != folder.uuid
    assert moved.name == "raw"
    saved = json.loads((tmp_path / "state" / "encord" / "folders.json").read_text())
    assert saved == {"folders": {"team/raw": str(moved.uuid)}}


def test_a_folder_uuid_in_the_config_is_used_as_is(emulator: EmulatorServer, encord_conn: str) -> None:
    uuid = emulator.admin.add_folder("anything")
    emulator.admin.reset_counts()
    assert str(_fresh(encord_conn).get_folder(uuid, create=False).uuid) == uuid
    assert emulator.admin.counts() == {"folders.get": 1}


# --- item 7: request size ------------------------------------------------------------------------


def _seed(emulator: EmulatorServer, hook: EncordHook, count: int, folder: str = "big") -> list[Any]:
    target = hook.get_folder(folder)
    specs = [{"url": f"{BUCKET_URL}/{folder}/{i}.jpg", "client_metadata": {"n": i}} for i in range(count)]
    emulator.admin.add_items(str(target.uuid), specs)
    return list(hook.iter_folder_items(target))


EMBEDDING = [0.123456789] * 200  # about 2.4 KB of JSON


@pytest.mark.emulator(max_body_bytes=20_000)
def test_a_413_splits_the_bundle_until_it_fits(emulator: EmulatorServer, encord_conn: str) -> None:
    hook = _fresh(encord_conn)
    items = _seed(emulator, hook, 40)
    emulator.admin.reset_counts()
    result = hook.patch_metadata([(item, {"n": 1, "emb": EMBEDDING}) for item in items])
    assert not result.failed
    assert len(result.written) == 40
    assert emulator.admin.counts()["items.patch_bulk"] > 2  # the first bundle was refused and split
    stored = emulator.admin.folder_items("big")
    assert all(item["client_metadata"]["emb"] == EMBEDDING for item in stored)


@pytest.mark.emulator(max_body_bytes=20_000)
def test_bundles_are_capped_by_bytes_so_no_413_happens(emulator: EmulatorServer, encord_conn: str) -> None:
    hook = _fresh(encord_conn, max_bundle_bytes=15_000)
    items = _seed(emulator, hook, 40)
    emulator.admin.reset_counts()
    result = hook.patch_metadata([(item, {"n": 1, "emb": EMBEDDING}) for item in items])
    assert len(result.written) == 40
    calls = emulator.admin.counts()["items.patch_bulk"]
    assert calls == result.calls
    assert 40 * 2_400 // 15_000 <= calls <= 10


@pytest.mark.emulator(max_body_bytes=20_000)
def test_an_item_too_large_on_its_own_fails_alone(emulator: EmulatorServer, encord_conn: str) -> None:
    hook = _fresh(encord_conn)
    items = _seed(emulator, hook, 5)
    updates = [(item, {"n": 2, "emb": EMBEDDING * (10 if i == 3 else 1)}) for i, item in enumerate(items)]
    result = hook.patch_metadata(updates)
    assert list(result.failed) == [str(items[3].uuid)]
    assert "too large" in result.failed[str(items[3].uuid)]
    assert len(result.written) == 4


@pytest.mark.emulator(max_listing_bytes=12_000)
def test_a_listing_page_that_times_out_is_read_in_smaller_pages(
    emulator: EmulatorServer, encord_conn: str
) -> None:
    hook = _fresh(encord_conn, sdk_max_retries=0)
    folder = hook.get_folder("heavy")
    specs = [{"url": f"{BUCKET_URL}/h/{i}.jpg", "client_metadata": {"emb": EMBEDDING}} for i in range(12)]
    emulator.admin.add_items(str(folder.uuid), specs)
    listed = list(hook.iter_folder_items(folder))
    assert len(listed) == 12
    assert all(item.client_metadata == {"emb": EMBEDDING} for item in listed)


@pytest.mark.emulator(max_listing_bytes=12_000)
def test_metadata_through_signed_urls_keeps_listing_pages_small(
    emulator: EmulatorServer, encord_conn: str
) -> None:
    hook = _fresh(encord_conn, sdk_max_retries=0, list_metadata_as_urls=True)
    folder = hook.get_folder("heavy")
    specs = [{"url": f"{BUCKET_URL}/h/{i}.jpg", "client_metadata": {"emb": EMBEDDING}} for i in range(12)]
    emulator.admin.add_items(str(folder.uuid), specs)
    emulator.admin.reset_counts()
    listed = list(hook.iter_folder_items(folder))
    assert [item.client_metadata for item in listed] == [{"emb": EMBEDDING}] * 12
    counts = emulator.admin.counts()
    assert counts["items.list"] == 1
    assert counts["items.metadata_url"] == 12


# --- item 9: values the pinned SDK does not know ----------------------------------------------------


def test_items_of_unknown_types_and_locations_do_not_break_a_listing(
    emulator: EmulatorServer, encord_conn: str, caplog: pytest.LogCaptureFixture
) -> None:
    hook = _fresh(encord_conn)
    folder = hook.get_folder("mixed")
    emulator.admin.add_items(
        str(folder.uuid),
        [
            {"url": f"{BUCKET_URL}/m/a.jpg", "client_metadata": {"k": 1}},
            {"url": f"{BUCKET_URL}/m/cloud.hologram", "item_type": "hologram"},
            {"url": f"{BUCKET_URL}/m/b.jpg", "storage_location": "quantumBlob"},
        ],
    )
    with caplog.at_level("WARNING"):
        listed = {item.url: item for item in hook.iter_folder_items(folder)}
    assert sorted(listed) == [f"{BUCKET_URL}/m/a.jpg", f"{BUCKET_URL}/m/b.jpg"]
    assert listed[f"{BUCKET_URL}/m/a.jpg"].client_metadata == {"k": 1}
    assert "'hologram', which the pinned encord SDK does not know" in caplog.text
    assert "'quantumBlob'" in caplog.text
    # The item in the unknown location can still be updated.
    result = hook.patch_metadata([(listed[f"{BUCKET_URL}/m/b.jpg"], {"k": 2})])
    assert len(result.written) == 1


# --- item 10: one item's 403; dataset linking retried ---------------------------------------------


def test_a_403_for_one_item_fails_that_item_only(emulator: EmulatorServer, encord_conn: str) -> None:
    hook = _fresh(encord_conn)
    items = _seed(emulator, hook, 6, folder="perm")
    gone = items[2]
    hook.get_folder("perm").delete_storage_items([gone.uuid])  # patch-bulk now answers 403
    result = hook.patch_metadata([(item, {"n": 100}) for item in items])
    assert list(result.failed) == [str(gone.uuid)]
    assert "403" in result.failed[str(gone.uuid)]
    assert len(result.written) == 5


def test_dataset_linking_is_retried_on_429_and_5xx(emulator: EmulatorServer, encord_conn: str) -> None:
    hook = _fresh(encord_conn, sdk_max_retries=0)
    items = _seed(emulator, hook, 3, folder="link")
    dataset = emulator.admin.add_dataset("training")
    emulator.admin.inject("datasets.get", 503, times=1)
    emulator.admin.inject("datasets.link_items", 429, times=2)
    emulator.admin.inject("datasets.link_items", 502, times=1)
    assert hook.link_items_to_dataset(dataset, [str(item.uuid) for item in items]) == 3
    [stored] = emulator.admin.datasets()
    assert len(stored["links"]) == 3
    assert emulator.admin.counts()["datasets.link_items"] == 4


# --- item 8: a job start whose response is lost ------------------------------------------------------


@pytest.mark.usefixtures("integration")
@pytest.mark.emulator(drop_job_start_responses=1, job_duration_s=0.3)
def test_a_lost_job_start_response_loses_no_result_and_registers_nothing_twice(
    emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    docs = {
        "images": [{"objectUrl": f"{BUCKET_URL}/lost/{i}.jpg"} for i in range(4)],
        "image_groups": [
            {
                "title": "burst",
                "objectUrl_0": f"{BUCKET_URL}/lost/g0.jpg",
                "objectUrl_1": f"{BUCKET_URL}/lost/g1.jpg",
            }
        ],
    }
    uri = write_manifest(run_folder, "chunk-0", docs)
    out = register_operator(encord_conn, [uri]).execute(task_context(TaskStateStore()))
    assert emulator.admin.counts()["upload_jobs.start"] == 2
    assert out["counts"]["registered_items"] == 5
    assert out["counts"]["failed_items"] == 0
    stored = emulator.admin.folder_items("ingest/cams")
    assert len(stored) == 5  # the first job created them; the retried one skipped every duplicate
    by_url = {item["url"]: item["uuid"] for item in stored if item["url"]}
    results = read_result(run_folder, "chunk-0.register.json")["results"]
    for url, uuid in by_url.items():
        assert results[url]["item_uuid"] == uuid
    [group] = [item for item in stored if item["item_type"] == "imageGroup"]
    assert results[f"{BUCKET_URL}/lost/g0.jpg"]["item_uuid"] == group["uuid"]


@pytest.mark.usefixtures("integration")
@pytest.mark.emulator(drop_job_start_responses=1, job_duration_s=0.5, concurrent_jobs_deduplicate=False)
def test_without_job_start_retries_a_lost_answer_fails_the_task_and_its_retry_registers_once(
    emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    """Where overlapping jobs do not see each other's items (contract check: registered-twice),
    ``retry_job_start=False`` keeps every URL to one item: the task fails, its retry comes later."""
    import time

    from encord.exceptions import UnknownException

    docs = {"images": [{"objectUrl": f"{BUCKET_URL}/race/{i}.jpg"} for i in range(3)]}
    uri = write_manifest(run_folder, "chunk-0", docs)
    params = {**FAST_HOOK_PARAMS, "retry_job_start": False}
    store = TaskStateStore()
    with pytest.raises(UnknownException):
        register_operator(encord_conn, [uri], hook_params=params).execute(task_context(store))
    time.sleep(0.7)  # the task's retry_delay_s: the lost job has finished by then
    out = register_operator(encord_conn, [uri], hook_params=params).execute(task_context(store))
    assert out["counts"]["registered_items"] == 3
    urls = [item["url"] for item in emulator.admin.folder_items("ingest/cams")]
    assert sorted(urls) == sorted(set(urls))
    assert len(urls) == 3
    # The same lost answer, retried at once while the first job runs, registers every URL twice.
    emulator.admin.configure(drop_job_start_responses=1)
    again = write_manifest(run_folder, "chunk-1", {"images": [{"objectUrl": f"{BUCKET_URL}/race/new.jpg"}]})
    register_operator(encord_conn, [again]).execute(task_context(TaskStateStore()))
    assert [i["url"] for i in emulator.admin.folder_items("ingest/cams")].count(
        f"{BUCKET_URL}/race/new.jpg"
    ) == 2


#: Keys other clients may have saved that the pinned SDK cannot model (issue 9, item 9).
UNMODELLED_SCHEMA: dict[str, Any] = {
    "o.tags": {"ty": "list", "items": {"ty": "varchar"}},
    "o.blob": {"ty": "variant", "hint": "json"},
    "o.many": {"ty": "enum", "values": [f"v{i}" for i in range(300)]},
    "o.long": {"ty": "varchar", "max_length": 20_000},
    "o.count": {"ty": "number"},
}


def test_schema_keys_the_sdk_cannot_model_break_neither_apply_schema_nor_metadata_ops(
    emulator: EmulatorServer, encord_conn: str
) -> None:
    from encord_ingest.schema import parse_schema
    from encord_provider.hooks.encord_scopes import EncordMetadataHook

    emulator.admin.set_schema(UNMODELLED_SCHEMA)
    plan = _fresh(encord_conn).apply_schema(parse_schema({"keys": {"ours.n": "number"}}, file="s.yaml"))
    assert [change.describe() for change in plan.changes] == ["+ ours.n: number"]
    saved = emulator.admin.schema() or {}
    assert {k: v for k, v in saved.items() if k != "ours.n"} == UNMODELLED_SCHEMA  # kept as read
    assert "ours.n" in saved
    typed = EncordMetadataHook(encord_conn, **FAST_HOOK_PARAMS).organisation_schema().keys
    assert {"o.count", "ours.n"} <= set(typed)
    assert "o.tags" not in typed
    assert "o.blob" not in typed
    assert "o.many" not in typed
