"""The ingestion DAG end to end: real DAG file, moto S3 over HTTP, Encord emulator, SQLite Airflow."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from demo_data import DAY_PREFIX, demo_objects
from standins.stack import DEMO_STATE_BUCKET

from tests.dags.conftest import CAM_FRONT_0001_METADATA, Runner, covering

pytestmark = pytest.mark.e2e
URL = "https://encord-demo-raw.s3.eu-west-2.amazonaws.com/"
EXPECTED_KINDS = {
    "raw/2026/11/20/video/drive_0001.mp4": "video",
    "raw/2026/11/20/images/cam_front_0001.jpg": "image",
    "raw/2026/11/20/images/cam_front_0002.jpg": "image",
    "raw/2026/11/20/images/cam_rear_0001.png": "image",
    "raw/2026/11/20/audio/call_0001.wav": "audio",
    "raw/2026/11/20/docs/inspection_0001.pdf": "pdf",
    "raw/2026/11/20/text/notes_0001.txt": "plainText",
    "raw/2026/11/20/sequences/seq_0001": "imageSequence",
    "raw/2026/11/20/groups/group_0001": "imageGroup",
    "raw/2026/11/20/dicom/study_0001": "dicomSeries",
}


def test_first_run_registers_every_valid_object_once_then_only_changes_are_written(
    runner: Runner, counts: Callable[[], dict[str, int]]
) -> None:
    runner.put(demo_objects())
    first = runner.run(day=covering(20))
    assert first.state == "success", runner.states(first)
    assert {"scan_shard[0]", "scan_shard[1]"} <= set(runner.states(first))  # `shards: 2`
    calls = counts()
    assert calls["upload_jobs.start"] == 1  # the two shards' 17 new items share one upload job
    items = runner.items()
    assert {title: item["item_type"] for title, item in items.items()} == EXPECTED_KINDS
    assert (
        items["raw/2026/11/20/images/cam_front_0001.jpg"]["url"]
        == URL + "raw/2026/11/20/images/cam_front_0001.jpg"
    )
    # Typed metadata: folder defaults < table row < per-file sidecar, flattened and namespaced.
    assert items["raw/2026/11/20/images/cam_front_0001.jpg"]["client_metadata"] == CAM_FRONT_0001_METADATA
    video = items["raw/2026/11/20/video/drive_0001.mp4"]["client_metadata"]
    assert video["keyframes"] == [0, 30, 60]
    assert video["config"] == {"sampling_rate": 2, "keyframe_mode": "frame"}
    assert items["raw/2026/11/20/groups/group_0001"]["client_metadata"]["fleet.capture.indoor"] is True
    # Two bad sidecars fail only their own images, with the file, the key and the reason.
    report = runner.report(first)
    assert "| registered | 17 |" in report
    assert "| failed | 3 |" in report
    assert "**32**" in report
    assert "cam_side_0001.jpg.json: expected valid JSON" in report
    assert (
        "cam_side_0002.jpg.json: key 'fleet.camera.exposure_ms': expected a finite number, got 'fast'"
        in report
    )

    second = runner.run(day=covering(20))
    assert second.state == "success", runner.states(second)
    calls = counts()
    assert calls.get("upload_jobs.start", 0) == 0
    assert calls.get("items.patch_bulk", 0) == calls.get("items.patch", 0) == 0
    assert "| unchanged | 17 |" in runner.report(second)

    runner.put(
        {f"{DAY_PREFIX}images/cam_front_0002.json": json.dumps({"review": {"status": "approved"}}).encode()}
    )
    third = runner.run(day=covering(20))
    assert third.state == "success", runner.states(third)
    calls = counts()
    assert calls.get("upload_jobs.start", 0) == 0
    assert calls["items.patch_bulk"] == 1
    after = runner.items()
    changed = {t for t in items if after[t]["client_metadata"] != items[t]["client_metadata"]}
    assert changed == {"raw/2026/11/20/images/cam_front_0002.jpg"}
    assert (
        after["raw/2026/11/20/images/cam_front_0002.jpg"]["client_metadata"]["fleet.review.status"]
        == "approved"
    )
    # merge mode: a key the sidecar no longer has is kept in Encord (replace mode would drop it)
    assert (
        after["raw/2026/11/20/images/cam_front_0002.jpg"]["client_metadata"]["fleet.camera.model"] == "fc-100"
    )
    assert "| metadata_updated | 1 |" in runner.report(third)

    runner.put({f"{DAY_PREFIX}images/cam_front_0003.jpg": b"\xff\xd8\xff\xe0 a new frame"})
    fourth = runner.run(day=covering(20))
    assert fourth.state == "success", runner.states(fourth)
    calls = counts()
    assert calls["upload_jobs.start"] == 1
    assert calls.get("items.patch_bulk", 0) == 0
    assert set(runner.items()) - set(after) == {"raw/2026/11/20/images/cam_front_0003.jpg"}


def test_a_manual_run_lists_the_prefix_from_its_form_and_keys_its_folder_on_the_run_id(
    runner: Runner, counts: Callable[[], dict[str, int]]
) -> None:
    runner.put(
        {"adhoc/batch-7/x.jpg": b"jpeg", "adhoc/batch-7/x.jpg.json": b'{"review": {"status": "pending"}}'}
    )
    runner.put({"raw/2026/11/20/images/y.jpg": b"jpeg"})
    without_prefix = runner.run(day=None)
    assert without_prefix.state == "failed"
    assert runner.states(without_prefix)["resolve"] == "failed"

    manual = runner.run(day=None, prefix="adhoc/batch-7/")
    assert manual.logical_date is None
    assert manual.state == "success", runner.states(manual)
    assert set(runner.items()) == {"adhoc/batch-7/x.jpg"}
    assert runner.items()["adhoc/batch-7/x.jpg"]["client_metadata"]["fleet.review.status"] == "pending"
    assert "`adhoc/batch-7/`" in runner.report(manual)

    dry = runner.run(day=None, prefix="raw/2026/11/20/", dry_run=True)
    assert dry.state == "success", runner.states(dry)
    assert counts().get("upload_jobs.start", 0) == 1  # the manual run's job; the dry run started none
    assert "(dry run" in runner.report(dry)
    assert "| new | 1 |" in runner.report(dry)
    assert set(runner.items()) == {"adhoc/batch-7/x.jpg"}

    runner.put(
        {"adhoc/batch-8/a.jpg": b"jpeg", "adhoc/batch-8/b.jpg": b"jpeg", "adhoc/batch-8/c.jpg": b"jpeg"}
    )
    limited = runner.run(day=None, prefix="adhoc/batch-8/", limit=2)
    assert limited.state == "success", runner.states(limited)
    assert "| registered | 2 |" in runner.report(limited)
    assert "| skipped | 1 |" in runner.report(limited)
    assert "| over_limit | not registered: the run's limit on new items was reached" in runner.report(limited)
    rest = runner.run(day=None, prefix="adhoc/batch-8/")
    assert "| registered | 1 |" in runner.report(rest)
    assert "| unchanged | 2 |" in runner.report(rest)
    assert {t for t in runner.items() if t.startswith("adhoc/batch-8/")} == {
        "adhoc/batch-8/a.jpg",
        "adhoc/batch-8/b.jpg",
        "adhoc/batch-8/c.jpg",
    }


def test_a_dry_run_before_anything_exists_in_encord_plans_and_writes_nothing(
    runner: Runner, counts: Callable[[], dict[str, int]]
) -> None:
    runner.put(demo_objects())
    dry = runner.run(day=covering(20), dry_run=True)
    assert dry.state == "success", runner.states(dry)
    calls = counts()
    writes = ("upload_jobs.start", "items.patch_bulk", "folders.create", "schema.save", "datasets.link_items")
    assert {name: calls.get(name, 0) for name in writes} == dict.fromkeys(writes, 0)
    assert "| new | 17 |" in runner.report(dry)
    assert "ledger: not committed" in runner.report(dry)
    assert runner.stack.emulator.admin.folders() == []


def test_a_task_that_fails_outright_fails_the_run_after_reporting_and_the_next_run_recovers(
    runner: Runner, counts: Callable[[], dict[str, int]]
) -> None:
    """An error that is not per item (here Encord refuses the upload job with a 400, which is
    never retried) fails the run; the report is still written, nothing unconfirmed reaches the
    ledger, and the next run registers what was missed."""
    runner.put({"raw/2026/11/20/a/one.jpg": b"jpeg", "raw/2026/11/20/a/two.jpg": b"jpeg"})
    runner.stack.emulator.admin.inject("upload_jobs.start", 400, times=5)
    failed = runner.run(day=covering(20))
    assert failed.state == "failed"
    states = runner.states(failed)
    assert states["register[0]"] == "failed"
    assert states["commit_and_report"] == "failed"
    report = runner.report(failed)
    assert "**incomplete run**" in report
    assert "`register" in report
    assert "| failed | 2 |" in report
    assert "registration did not complete" in report
    runner.stack.emulator.admin.clear_faults()
    counts()
    again = runner.run(day=covering(20))
    assert again.state == "success", runner.states(again)
    assert counts()["upload_jobs.start"] == 1
    assert "| registered | 2 |" in runner.report(again)
    assert set(runner.items()) == {"raw/2026/11/20/a/one.jpg", "raw/2026/11/20/a/two.jpg"}


def test_a_three_interval_backfill_touches_only_its_own_prefixes(runner: Runner) -> None:
    for d in (17, 18, 19, 20):
        runner.put({f"raw/2026/11/{d}/cam/frame.jpg": b"jpeg", f"raw/2026/11/{d}/cam/frame.jpg.json": b"{}"})
    for d in (17, 18, 19):
        run = runner.run(day=covering(d))
        assert run.state == "success", runner.states(run)
        report = runner.report(run)
        assert f"`raw/2026/11/{d}/`" in report
        assert "| registered | 1 |" in report
    assert set(runner.items()) == {f"raw/2026/11/{d}/cam/frame.jpg" for d in (17, 18, 19)}


@pytest.mark.parametrize("duplicates_as", ["success", "unit-error"])
def test_a_crash_between_registration_and_ledger_commit_converges_without_duplicates(
    runner: Runner, counts: Callable[[], dict[str, int]], duplicates_as: str
) -> None:
    """Registration happened in Encord but the ledger commit did not: the state a crash (or a
    killed worker) leaves. We reach it for real by removing the ledger the run committed, so the
    rerun sees every object as new again. No code of ours is patched. Encord may report the
    skipped duplicates as successes or as unit errors (issue 9.6): both converge."""
    runner.stack.emulator.admin.configure(duplicates_as=duplicates_as)
    runner.put(demo_objects())
    first = runner.run(day=covering(20))
    assert first.state == "success", runner.states(first)
    before = runner.items()
    runner.delete(DEMO_STATE_BUCKET, "demo_media/ledger/")
    counts()

    rerun = runner.run(day=covering(20))
    assert rerun.state == "success", runner.states(rerun)
    calls = counts()
    assert calls["upload_jobs.start"] == 1  # one again: Encord skips every duplicate URL
    assert calls.get("items.patch_bulk", 0) == 0  # and what it holds already matches
    after = runner.items()
    assert len(after) == len(before) == len(runner.stack.emulator.admin.folder_items("demo/fleet/raw"))
    assert {t: i["uuid"] for t, i in after.items()} == {t: i["uuid"] for t, i in before.items()}
    assert "| registered | 17 |" in runner.report(rerun)

    third = runner.run(day=covering(20))
    assert counts().get("upload_jobs.start", 0) == 0
    assert "| unchanged | 17 |" in runner.report(third)
