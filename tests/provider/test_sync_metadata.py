"""EncordSyncMetadataOperator against the emulator: the same final dicts whether Encord merges or
replaces on PATCH, zero writes on a second run, dry runs, faults, items that are missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from encord_emulator.testing import EmulatorServer
from encord_ingest.errors import ErrorCode
from encord_ingest.metadata import MetadataMapping
from encord_ingest.sync import MetadataChange, present
from encord_provider.hooks.encord import EncordHook
from tests.provider.helpers import BUCKET_URL, read_result, sync_operator, write_change_rows

B = BUCKET_URL
HELD: dict[str, dict[str, Any]] = {
    f"{B}/m/a.jpg": {"site": "old", "team.other": 7, "keyframes": [1, 2]},
    f"{B}/m/b.jpg": {"site": "same"},
    f"{B}/m/c.mp4": {},
}
SIDECARS = {
    f"{B}/m/a.jpg": {"site": "new", "weather": "rain"},
    f"{B}/m/b.jpg": {"site": "same"},
    f"{B}/m/c.mp4": {"site": "c", "keyframes": [0, 5]},
}
EXPECTED = {
    "merge": {
        f"{B}/m/a.jpg": {"site": "new", "team.other": 7, "keyframes": [1, 2], "weather": "rain"},
        f"{B}/m/b.jpg": {"site": "same"},
        f"{B}/m/c.mp4": {"site": "c", "keyframes": [0, 5]},
    },
    "replace": {
        f"{B}/m/a.jpg": {"site": "new", "keyframes": [1, 2], "weather": "rain"},
        f"{B}/m/b.jpg": {"site": "same"},
        f"{B}/m/c.mp4": {"site": "c", "keyframes": [0, 5]},
    },
}


def seed(emulator: EmulatorServer, hook: EncordHook) -> dict[str, str]:
    """The items as Encord holds them; returns object URL -> item UUID."""
    folder = hook.get_folder("ingest/cams")
    specs = [{"url": url, "client_metadata": metadata} for url, metadata in HELD.items()]
    uuids = emulator.admin.add_items(str(folder.uuid), specs)
    return dict(zip(HELD, uuids, strict=True))


def changes(uuids: dict[str, str]) -> list[MetadataChange]:
    """a.jpg has a UUID from the ledger; the others are resolved by listing the folder."""
    return [
        MetadataChange(
            object_url=url,
            item_uuid=uuids[url] if url.endswith("a.jpg") else None,
            metadata=metadata,
            source_files=[f"{url}.json"],
        )
        for url, metadata in SIDECARS.items()
    ]


def stored(emulator: EmulatorServer) -> dict[str, dict[str, Any]]:
    return {
        item["url"]: present(item["client_metadata"]) for item in emulator.admin.folder_items("ingest/cams")
    }


def raw_stored(emulator: EmulatorServer) -> dict[str, dict[str, Any]]:
    """What the emulator holds, stored nulls included."""
    return {item["url"]: item["client_metadata"] for item in emulator.admin.folder_items("ingest/cams")}


#: Every PATCH semantics the emulator plays (the real one is unknown).
SERVERS = ["replace", "merge", "merge-recursive"]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_every_server_semantics_converges_and_a_second_run_writes_nothing(
    server: str, mode: str, emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    emulator.admin.configure(patch_semantics=server)
    uri = write_change_rows(run_folder, "c0", changes(seed(emulator, EncordHook(encord_conn))))
    first = sync_operator(encord_conn, [uri], mode=mode).execute({})
    # replace mode removes team.other: the merge patch is checked, and rewritten unless RFC 7386
    rewritten = mode == "replace" and server != "merge-recursive"
    assert first["counts"] == {
        "examined": 3,
        "changed": 2,
        "written": 2,
        "failed": 0,
        "not_found": 0,
        "patch_calls": 2 if rewritten else 1,
        "patch_attempts": 2 if rewritten else 1,
    }
    assert stored(emulator) == EXPECTED[mode]
    if server != "merge":  # a shallow merge keeps a null it was sent; nothing can remove it
        assert raw_stored(emulator) == EXPECTED[mode]
    report = read_result(run_folder, "c0.sync.json")
    statuses = {url: item["status"] for url, item in report["items"].items()}
    assert statuses == {f"{B}/m/a.jpg": "updated", f"{B}/m/b.jpg": "unchanged", f"{B}/m/c.mp4": "updated"}
    assert report["items"][f"{B}/m/a.jpg"]["diff"]["changed"] == {"site": ["old", "new"]}
    emulator.admin.reset_counts()
    second = sync_operator(encord_conn, [uri], mode=mode).execute({})
    assert second["counts"]["changed"] == 0
    assert second["counts"]["patch_calls"] == 0
    assert "items.patch_bulk" not in emulator.admin.counts()
    assert stored(emulator) == EXPECTED[mode]


@pytest.mark.parametrize("server", SERVERS)
def test_removed_nested_keys_are_gone_under_every_server_semantics(
    server: str, emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    """Issue 9.3: replace mode removes a nested key and a top-level key; no stored nulls under
    replace semantics, nothing left over under RFC 7386, and a second run writes nothing."""
    emulator.admin.configure(patch_semantics=server)
    url = f"{B}/m/a.jpg"
    held = {"camera": {"model": "a", "qa_note": "x"}, "site": "s", "tags": [1]}
    final = {"camera": {"model": "b"}, "tags": [2]}
    folder = EncordHook(encord_conn).get_folder("ingest/cams")
    emulator.admin.add_items(str(folder.uuid), [{"url": url, "client_metadata": held}])
    uri = write_change_rows(run_folder, "c0", [MetadataChange(object_url=url, metadata=final)])
    first = sync_operator(encord_conn, [uri], mode="replace").execute({})
    assert first["counts"]["written"] == 1
    assert stored(emulator) == {url: final}
    leftover = {"site": None} if server == "merge" else {}
    assert raw_stored(emulator) == {url: {**final, **leftover}}
    emulator.admin.reset_counts()
    second = sync_operator(encord_conn, [uri], mode="replace").execute({})
    assert second["counts"]["patch_calls"] == 0
    assert "items.patch_bulk" not in emulator.admin.counts()


def test_dry_run_reports_the_diff_and_writes_nothing(
    hook: EncordHook, emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    uri = write_change_rows(run_folder, "c0", changes(seed(emulator, hook)))
    emulator.admin.reset_counts()
    xcom = sync_operator(encord_conn, [uri], mode="replace", dry_run=True).execute({})
    assert xcom["dry_run"] is True
    assert xcom["counts"]["changed"] == 2
    assert xcom["counts"]["written"] == 0
    assert "items.patch_bulk" not in emulator.admin.counts()
    assert stored(emulator) == {url: present(metadata) for url, metadata in HELD.items()}
    assert not (run_folder / "results" / "c0.sync.json").exists()
    report = read_result(run_folder, "c0.sync.dry-run.json")
    a_diff = report["items"][f"{B}/m/a.jpg"]
    assert a_diff["status"] == "would_update"
    assert a_diff["diff"] == {
        "added": {"weather": "rain"},
        "changed": {"site": ["old", "new"]},
        "removed": {"team.other": 7},
    }


def test_sync_survives_rate_limits_and_server_errors(
    hook: EncordHook, emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    uri = write_change_rows(run_folder, "c0", changes(seed(emulator, hook)))
    emulator.admin.inject("items.patch_bulk", 429, times=2)
    emulator.admin.inject("items.patch_bulk", 503, times=2)
    emulator.admin.reset_counts()
    xcom = sync_operator(encord_conn, [uri]).execute({})
    assert xcom["counts"]["written"] == 2
    assert xcom["counts"]["patch_calls"] == 1  # one bundle: retries are attempts, not calls
    assert xcom["counts"]["patch_attempts"] == 5
    assert emulator.admin.counts()["items.patch_bulk"] == 5
    assert stored(emulator) == EXPECTED["merge"]


def test_a_burst_longer_than_the_retry_budget_fails_the_items_not_the_batch(
    hook: EncordHook, emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    uri = write_change_rows(run_folder, "c0", changes(seed(emulator, hook)))
    emulator.admin.inject("items.patch_bulk", 503, times=50)
    with pytest.raises(AirflowException, match="2 of 3 metadata updates failed"):
        sync_operator(encord_conn, [uri]).execute({})
    assert emulator.admin.counts()["items.patch_bulk"] == 6
    report = read_result(run_folder, "c0.sync.json")
    failed = report["items"][f"{B}/m/a.jpg"]
    assert failed["status"] == "failed"
    assert failed["errors"][0]["code"] == ErrorCode.PATCH_FAILED.value
    assert "UnknownException after retries" in failed["errors"][0]["detail"]


def test_items_missing_from_encord_are_counted_against_the_budget(
    hook: EncordHook, emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    rows = [
        *changes(seed(emulator, hook)),
        MetadataChange(object_url=f"{B}/m/ghost.jpg", metadata={"site": "x"}),
    ]
    uri = write_change_rows(run_folder, "c0", rows)
    with pytest.raises(AirflowException, match=r"1 of 4 metadata updates failed \(1 items not found\)"):
        sync_operator(encord_conn, [uri]).execute({})
    ghost = read_result(run_folder, "c0.sync.json")["items"][f"{B}/m/ghost.jpg"]
    assert ghost["status"] == "not_found"
    assert ghost["errors"][0]["code"] == ErrorCode.ITEM_NOT_FOUND.value
    xcom = sync_operator(encord_conn, [uri], max_failed_items=1).execute({})
    assert xcom["counts"]["not_found"] == 1
    assert xcom["counts"]["written"] == 0


def test_a_stale_item_uuid_falls_back_to_the_folder_listing(
    hook: EncordHook, emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    seed(emulator, hook)
    stale = MetadataChange(
        object_url=f"{B}/m/a.jpg",
        item_uuid="00000000-0000-4000-8000-000000000000",
        metadata={"site": "fixed"},
    )
    uri = write_change_rows(run_folder, "c0", [stale])
    xcom = sync_operator(encord_conn, [uri]).execute({})
    assert xcom["counts"]["written"] == 1
    assert stored(emulator)[f"{B}/m/a.jpg"]["site"] == "fixed"


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("flat", [False, True], ids=["nested", "flatten"])
def test_merge_mode_keeps_nested_keys_someone_else_set(
    flat: bool, server: str, emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    """Issue 9.1: a sidecar that changes one nested key keeps the sibling a person set in Encord."""
    emulator.admin.configure(patch_semantics=server)
    mapping = MetadataMapping(flatten=flat)
    held, _ = mapping.apply({"camera": {"model": "a", "qa_note": "x"}, "tags": [1, 2]}, file="held")
    desired, _ = mapping.apply({"camera": {"model": "b"}, "tags": [3]}, file="a.jpg.json")
    url = f"{B}/m/a.jpg"
    folder = EncordHook(encord_conn).get_folder("ingest/cams")
    emulator.admin.add_items(str(folder.uuid), [{"url": url, "client_metadata": held}])
    uri = write_change_rows(run_folder, "c0", [MetadataChange(object_url=url, metadata=desired)])
    first = sync_operator(encord_conn, [uri], mode="merge").execute({})
    assert first["counts"]["written"] == 1
    expected, _ = mapping.apply({"camera": {"model": "b", "qa_note": "x"}, "tags": [3]}, file="expected")
    assert stored(emulator) == {url: expected}
    emulator.admin.reset_counts()
    second = sync_operator(encord_conn, [uri], mode="merge").execute({})
    assert second["counts"]["patch_calls"] == 0


def test_new_items_are_synced_by_the_uuids_their_register_results_give(
    hook: EncordHook, emulator: EmulatorServer, encord_conn: str, run_folder: Path
) -> None:
    """The register results are looked up per change chunk (spilled, not held whole); with the
    right UUIDs the sync never lists the folder, and a later result file wins over an earlier."""
    from encord_ingest.errors import ItemError
    from encord_ingest.results import RegisterCounts, RegisterReport, UrlResult

    uuids = seed(emulator, hook)
    stale = "00000000-0000-4000-8000-000000000000"
    failed = UrlResult(error=ItemError(code=ErrorCode.UNIT_ERROR, file="m/b.jpg"))
    results = [  # (file, {url: result}) in the order the run wrote them
        (
            "c0",
            {
                f"{B}/m/a.jpg": UrlResult(item_uuid=stale),
                f"{B}/m/b.jpg": UrlResult(item_uuid=uuids[f"{B}/m/b.jpg"]),
            },
        ),
        ("c1", {f"{B}/m/a.jpg": UrlResult(item_uuid=uuids[f"{B}/m/a.jpg"]), f"{B}/m/b.jpg": failed}),
    ]
    (run_folder / "results").mkdir()
    for name, by_url in results:
        report = RegisterReport(
            chunk_uri=f"{name}.json",
            job_uuid=f"job-{name}",
            status="DONE",
            counts=RegisterCounts(),
            results=by_url,
        )
        (run_folder / "results" / f"{name}.register.json").write_bytes(report.to_bytes())
    rows = [
        MetadataChange(object_url=url, metadata=SIDECARS[url]) for url in (f"{B}/m/a.jpg", f"{B}/m/b.jpg")
    ]
    uri = write_change_rows(run_folder, "m0", rows)
    emulator.admin.reset_counts()
    xcom = sync_operator(encord_conn, [uri], register_results_uri=run_folder.as_uri(), mode="merge").execute(
        {}
    )
    assert xcom["counts"]["written"] == 1
    assert stored(emulator)[f"{B}/m/a.jpg"] == EXPECTED["merge"][f"{B}/m/a.jpg"]
    counts = emulator.admin.counts()
    assert counts["items.get_bulk"] == 1
    assert "items.list" not in counts, f"the sync fell back to listing the folder: {counts}"
