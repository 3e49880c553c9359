"""Every object's fate is right and visible (issue 11), end to end on the stand-ins."""

from __future__ import annotations

import io
import json
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from demo_data import DAY_PREFIX, demo_objects
from standins.stack import DEMO_STATE_BUCKET

from encord_ingest.run_folder import FINAL_OUTCOMES, run_key
from tests.dags.conftest import Runner, covering

pytestmark = pytest.mark.e2e
POINTER = "demo_media/ledger/CURRENT.json"
URL = "https://encord-demo-raw.s3.eu-west-2.amazonaws.com/"


def _pointer(runner: Runner) -> dict[str, object]:
    body = runner.stack.s3.get_object(Bucket=DEMO_STATE_BUCKET, Key=POINTER)["Body"].read()
    return dict(json.loads(body))


def _put_state(runner: Runner, key: str, data: bytes) -> None:
    runner.stack.s3.put_object(Bucket=DEMO_STATE_BUCKET, Key=key, Body=data)


@pytest.mark.heavy
def test_a_corrupt_ledger_falls_back_loudly_or_fails_with_a_report_that_says_how_to_recover(
    runner: Runner, counts: Callable[[], dict[str, int]]
) -> None:
    runner.put({"raw/2026/11/20/a/one.jpg": b"jpeg"})
    assert runner.run(day=covering(20)).state == "success"
    runner.put({"raw/2026/11/20/a/two.jpg": b"jpeg"})
    assert runner.run(day=covering(20)).state == "success"

    # 1. The version CURRENT.json names is truncated: the run reads the previous one and says so.
    latest = str(_pointer(runner)["version_key"])
    body = runner.stack.s3.get_object(Bucket=DEMO_STATE_BUCKET, Key=f"demo_media/{latest}")["Body"].read()
    _put_state(runner, f"demo_media/{latest}", body[: len(body) // 2])
    counts()
    recovered = runner.run(day=covering(20))
    assert recovered.state == "success", runner.states(recovered)
    report = runner.report(recovered)
    assert f"> **LEDGER RECOVERED: ledger/CURRENT.json names version {latest}" in report
    assert "| registered | 1 |" in report
    assert "| unchanged | 1 |" in report
    assert counts()["upload_jobs.start"] == 1  # ... and Encord skipped its duplicate URL
    assert len(runner.items()) == 2
    assert "LEDGER RECOVERED" not in runner.report(runner.run(day=covering(20)))

    # 2. CURRENT.json names a version that does not exist and has no previous one: the run fails
    #    with a report that says how to recover; the reconcile DAG rebuilds; the next run is clean.
    _put_state(
        runner,
        POINTER,
        json.dumps(
            {
                **_pointer(runner),
                "version_key": "ledger/versions/gone.parquet",
                "previous_version_key": None,
            }
        ).encode(),
    )
    broken = runner.run(day=covering(20))
    assert broken.state == "failed"
    assert runner.states(broken)["commit_and_report"] == "failed"
    report = runner.report(broken)
    assert "> **LEDGER UNREADABLE, nothing committed: ledger/CURRENT.json names version" in report
    assert "trigger the source's encord_reconcile__<source> DAG" in report
    reconcile = runner.run("encord_reconcile__demo_media")
    assert reconcile.state == "success", runner.states(reconcile)
    assert "the ledger could not be read and was rebuilt from Encord" in runner.report(reconcile)
    after = runner.run(day=covering(20))
    assert after.state == "success", runner.states(after)
    assert "LEDGER" not in runner.report(after)
    assert len(runner.items()) == 2  # no duplicates in Encord


def _set_source(source_file: Path, **fields: Any) -> None:
    document = yaml.safe_load(source_file.read_text())
    document.update(fields)
    source_file.write_text(yaml.safe_dump(document))


def _report_rows(report: str, section: str) -> list[list[str]]:
    """The body rows of the Markdown table under ``## <section>``, as lists of cells."""
    if f"## {section}\n" not in report:
        return []
    lines = report.split(f"## {section}\n", 1)[1].strip("\n").split("\n\n", 1)[0].splitlines()
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def test_every_objects_final_outcome_is_in_a_parquet_file_that_matches_the_report(
    runner: Runner, source_file: Path
) -> None:
    """A bucket holding each case: bad sidecars, an empty file, an object Encord cannot read, a
    table row naming no file and one spelled in NFD next to an NFC object."""
    nfc, nfd = unicodedata.normalize("NFC", "café.jpg"), unicodedata.normalize("NFD", "café.jpg")
    extra = f"{DAY_PREFIX}extra/"
    objects = demo_objects()
    objects.update(
        {
            f"{extra}empty.jpg": b"",
            f"{extra}{nfc}": b"jpeg",
            f"{extra}unreadable.jpg": b"jpeg",
            f"{extra}metadata.csv": f"file,review.status\n{nfd},approved\nmissing.jpg,pending\n".encode(),
        }
    )
    runner.put(objects)
    runner.stack.emulator.admin.set_unreadable(f"{URL}{extra}unreadable.jpg")
    # 4 data items fail (two bad sidecars, the empty file, the unreadable one); 5 objects do.
    _set_source(source_file, error_budget={"max_failed_items": 4, "max_failed_fraction": None})
    run = runner.run(day=covering(20))
    assert run.state == "success", runner.states(run)
    report = runner.report(run)
    key = f"demo_media/runs/{run_key(run.run_id)}/{FINAL_OUTCOMES}"
    body = runner.stack.s3.get_object(Bucket=DEMO_STATE_BUCKET, Key=key)["Body"].read()
    table = pd.read_parquet(io.BytesIO(body))

    counts = table["outcome"].value_counts().to_dict()
    assert counts["failed"] == 5
    assert "new" not in counts
    assert "registered" in counts
    for outcome, count in counts.items():
        assert f"| {outcome} | {count} |" in report
    failed = table[table["outcome"] == "failed"]
    expected = sorted(
        [f"`{k}`", str(m).replace("|", "/")] for k, m in zip(failed["key"], failed["message"], strict=True)
    )
    assert sorted(_report_rows(report, "Failed objects")) == expected
    skipped = table[table["outcome"] == "skipped"]
    assert sorted(row[0] for row in _report_rows(report, "Skipped objects")) == sorted(
        f"`{k}`" for k in skipped["key"]
    )

    rows = table.set_index("key")
    assert rows.loc[f"{extra}empty.jpg", "code"] == "empty_object"
    assert str(rows.loc[f"{extra}unreadable.jpg", "message"]).endswith("[unit_error]")
    assert pd.isna(rows.loc[f"{extra}unreadable.jpg", "item_uuid"])
    items = runner.items()
    registered = rows[rows["outcome"] == "registered"]
    assert {title: items[title]["uuid"] for title in registered["title"]} == dict(
        zip(registered["title"], registered["item_uuid"], strict=True)
    )
    assert items[f"{extra}{nfc}"]["client_metadata"]["fleet.review.status"] == "approved"
    warning = f"1 row(s) of {extra}metadata.csv match no object: row 2 names 'missing.jpg'"
    assert rows.loc[f"{extra}metadata.csv", "warning"] == warning
    assert f"| `{extra}metadata.csv` | {warning} |" in report
    assert report.startswith(f"# Encord ingestion report: `demo_media`, `{DAY_PREFIX}`\n")
    assert "from the data interval 2026-11-20 00:00 to 2026-11-21 00:00 UTC" in report

    event = _asset_event(run.run_id)
    assert event["report_uri"].endswith(f"/runs/{run_key(run.run_id)}/report.md")
    assert event["counts"] == counts
    assert event["prefixes"] == [DAY_PREFIX]

    # Extra links (the demo connection's templates point at the emulator's admin views, and the
    # report at the moto endpoint, path style).
    emulator, s3 = runner.stack.emulator.url, runner.stack.s3_endpoint
    [(job, folder)] = [(j["uuid"], j["folder"]) for j in runner.stack.emulator.admin.jobs()]
    assert {f["uuid"]: f["name"] for f in runner.stack.emulator.admin.folders()}[folder] == "raw"
    assert _links(run, "register", map_index=0) == {
        "Encord folder": f"{emulator}/_admin/folder-items?folder={folder}",
        "Encord upload job": f"{emulator}/_admin/jobs#{job}",
    }
    report_key = f"demo_media/runs/{run_key(run.run_id)}/report.md"
    assert _links(run, "commit_and_report") == {"Run report": f"{s3}/{DEMO_STATE_BUCKET}/{report_key}"}


def _asset_event(run_id: str) -> dict[str, Any]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = [e for e in session.query(AssetEvent).all() if e.source_run_id == run_id]
        assert len(events) == 1
        return dict(events[0].extra)


def _links(dag_run: Any, task_id: str, map_index: int = -1) -> dict[str, str | None]:
    """A task instance's extra links as the UI's API route computes them: from the DAG the
    scheduler serialised, through each link's ``get_link`` (an empty URL is no link)."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        serialized = SerializedDagModel.get(dag_run.dag_id, session=session)
        assert serialized is not None
        task = serialized.dag.get_task(task_id)
    [ti] = [t for t in dag_run.get_task_instances() if t.task_id == task_id and t.map_index == map_index]
    return {name: task.get_extra_links(ti, name) or None for name in task.extra_links}


def test_a_run_that_lists_nothing_says_so_loudly_and_can_be_made_to_fail(
    runner: Runner, source_file: Path
) -> None:
    quiet = runner.run(day=covering(19))
    assert quiet.state == "success", runner.states(quiet)
    report = runner.report(quiet)
    assert "> **NO OBJECTS: the run listed 0 objects under raw/2026/11/19/ in s3://encord-demo-raw" in report
    _set_source(source_file, empty_run="fail")
    strict = runner.run(day=covering(18))
    assert strict.state == "failed"
    assert runner.states(strict)["commit_and_report"] == "failed"
    assert "this fails the run (empty_run: fail)" in runner.report(strict)


def test_a_register_task_that_fails_names_the_cause_for_each_of_its_items(runner: Runner) -> None:
    runner.put({"raw/2026/11/20/a/one.jpg": b"jpeg"})
    runner.stack.emulator.admin.inject("upload_jobs.start", 401, times=5)
    failed = runner.run(day=covering(20))
    assert failed.state == "failed"
    [row] = _report_rows(runner.report(failed), "Failed objects")
    assert row[0] == "`raw/2026/11/20/a/one.jpg`"
    assert row[1].startswith("registration did not complete for chunk s3://encord-demo-state/")
    assert ": the register task failed: EncordAuthError: Encord connection 'encord_demo':" in row[1]
    # No job was started: no job link, and no error either; the folder and report links stay.
    links = _links(failed, "register", map_index=0)
    assert links["Encord upload job"] is None
    assert links["Encord folder"]
    assert _links(failed, "commit_and_report")["Run report"]
