"""Folder scope with the real SDK against the emulator: specific items from a change table (by
object URL, item UUID, title) and the same metadata for every item, in merge and replace mode,
under either PATCH semantics of the server; write counts, idempotency, dry runs, rejected rows."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from encord_emulator.testing import EmulatorServer
from encord_ingest.errors import ConfigError, ErrorCode
from encord_ingest.metadata_ops import OpReport, WriteStatus
from encord_ingest.sync import present
from tests.metadata_ops.helpers import B, apply_operator, write_csv

HELD: dict[str, dict[str, Any]] = {
    "a.jpg": {"site": "north", "fps": 30, "team.other": "x"},
    "b.jpg": {"site": "south"},
    "c.mp4": {"site": "east", "keyframes": [0, 5], "team.other": "y"},
}
TABLE = [
    ["object_url", "site", "fps", "weather"],
    [f"{B}/cams/a.jpg", "north", "25", "rain"],
    [f"{B}/cams/b.jpg", "south", "", ""],
    [f"{B}/cams/c.mp4", "east", "24", ""],
]
EXPECTED = {
    "merge": {
        "a.jpg": {"site": "north", "fps": 25, "team.other": "x", "weather": "rain"},
        "b.jpg": {"site": "south"},
        "c.mp4": {"site": "east", "fps": 24, "keyframes": [0, 5], "team.other": "y"},
        "night/d.jpg": {"site": "west"},
    },
    "replace": {
        "a.jpg": {"site": "north", "fps": 25, "weather": "rain"},
        "b.jpg": {"site": "south"},
        "c.mp4": {"site": "east", "fps": 24, "keyframes": [0, 5]},
        "night/d.jpg": {"site": "west"},
    },
}


def seed(emulator: EmulatorServer) -> dict[str, str]:
    """cams/{a.jpg, b.jpg, c.mp4} and cams/night/d.jpg; returns name -> item UUID."""
    cams = emulator.admin.add_folder("cams")
    night = emulator.admin.add_folder("night", parent=cams)
    specs = [
        {
            "url": f"{B}/cams/{name}",
            "name": name,
            "client_metadata": metadata,
            "item_type": "video" if name.endswith(".mp4") else "image",
        }
        for name, metadata in HELD.items()
    ]
    uuids = emulator.admin.add_items(cams, specs)
    (d_uuid,) = emulator.admin.add_items(
        night, [{"url": f"{B}/cams/night/d.jpg", "name": "night/d.jpg", "client_metadata": {"site": "west"}}]
    )
    return {**dict(zip(HELD, uuids, strict=True)), "night/d.jpg": d_uuid}


def everything(emulator: EmulatorServer) -> dict[str, dict[str, Any]]:
    """Every item's metadata by name, keys whose value is null dropped (a null is an absent key)."""
    return {item["name"]: present(item["client_metadata"]) for item in emulator.admin.all_items()}


@pytest.mark.parametrize(
    "mode_server", [(m, s) for m in ("merge", "replace") for s in ("merge", "replace", "merge-recursive")]
)
def test_table_by_object_url_gives_exact_dicts_then_nothing_to_do(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path, mode_server: tuple[str, str]
) -> None:
    """``mode`` of the operation x PATCH semantics of the server: the same final dicts."""
    mode, server = mode_server
    emulator.admin.configure(patch_semantics=server)
    seed(emulator)
    # replace removes keys: the merge patch is read back and rewritten unless the server is RFC 7386
    calls = 2 if mode == "replace" and server != "merge-recursive" else 1
    table = write_csv(tmp_path / "changes.csv", TABLE)
    op = apply_operator(
        encord_conn, scope="folder", target_ids=["cams"], table_uri=table, mode=mode, schema_path=schema_path
    )
    emulator.admin.reset_counts()
    first = op.execute({})
    assert everything(emulator) == EXPECTED[mode]
    assert first["counts"] == {
        "targets": 3,
        "rows": 3,
        "rejected": 0,
        "not_found": 0,
        "examined": 3,
        "changed": 2,
        "written": 2,
        "failed": 0,
        "patch_calls": calls,
    }
    assert emulator.admin.counts().get("items.patch_bulk") == calls
    report = OpReport.from_bytes((tmp_path / "reports" / "changes.report.json").read_bytes())
    assert [(item.where, item.status) for item in report.items] == [
        ("row 1", WriteStatus.UPDATED),
        ("row 2", WriteStatus.UNCHANGED),
        ("row 3", WriteStatus.UPDATED),
    ]
    emulator.admin.reset_counts()
    second = op.execute({})
    assert second["counts"]["changed"] == second["counts"]["patch_calls"] == 0
    assert "items.patch_bulk" not in emulator.admin.counts()
    assert everything(emulator) == EXPECTED[mode]


def test_rows_by_item_uuid_and_by_title(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    uuids = seed(emulator)
    by_uuid = write_csv(tmp_path / "by-uuid.csv", [["item_uuid", "weather"], [uuids["a.jpg"].upper(), "fog"]])
    by_title = write_csv(
        tmp_path / "by-title.csv", [["title", "indoor"], ["b.jpg", "TRUE"], ["night/d.jpg", "false"]]
    )
    for table, recursive in ((by_uuid, False), (by_title, True)):
        apply_operator(
            encord_conn,
            scope="folder",
            target_ids=["cams"],
            table_uri=table,
            recursive=recursive,
            schema_path=schema_path,
        ).execute({})
    final = everything(emulator)
    assert final["a.jpg"] == {**HELD["a.jpg"], "weather": "fog"}
    assert final["b.jpg"] == {"site": "south", "indoor": True}
    assert final["night/d.jpg"] == {"site": "west", "indoor": False}


def test_dry_run_writes_nothing_and_reports_the_diffs(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    seed(emulator)
    before = everything(emulator)
    table = write_csv(tmp_path / "changes.csv", TABLE)
    emulator.admin.reset_counts()
    result = apply_operator(
        encord_conn,
        scope="folder",
        target_ids=["cams"],
        table_uri=table,
        dry_run=True,
        schema_path=schema_path,
    ).execute({})
    assert everything(emulator) == before
    assert "items.patch_bulk" not in emulator.admin.counts()
    assert result["dry_run"] is True
    assert result["counts"]["changed"] == 2
    assert result["counts"]["written"] == result["counts"]["patch_calls"] == 0
    assert result["report_uri"].endswith("/reports/changes.dry-run.report.json")
    report = json.loads((tmp_path / "reports" / "changes.dry-run.report.json").read_text())
    first = report["items"][0]
    assert first["status"] == "would_update"
    assert first["diff"] == {"added": {"weather": "rain"}, "changed": {"fps": [30, 25]}, "removed": {}}


def test_schema_violations_are_rejected_per_row_and_the_rest_applied(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    seed(emulator)
    table = write_csv(
        tmp_path / "bad.csv",
        [
            ["object_url", "site", "fps", "weather", "colour"],
            [f"{B}/cams/a.jpg", "north", "fast", "snow", ""],
            [f"{B}/cams/b.jpg", "a-site-name-far-too-long", "", "", ""],
            [f"{B}/cams/c.mp4", "", "12", "", ""],
            [f"{B}/cams/missing.jpg", "x", "", "", ""],
            [f"{B}/cams/a.jpg", "", "", "", "red"],
        ],
    )
    op = apply_operator(
        encord_conn, scope="folder", target_ids=["cams"], table_uri=table, schema_path=schema_path
    )
    with pytest.raises(AirflowException) as failure:
        op.execute({})
    assert "4 of 5 rows/items were not applied (3 rejected, 1 not found, 0 failed)" in str(failure.value)
    final = everything(emulator)
    assert final["a.jpg"] == HELD["a.jpg"]  # its two rows are duplicates: neither is applied
    assert final["b.jpg"] == HELD["b.jpg"]
    assert final["c.mp4"] == {**HELD["c.mp4"], "fps": 12}
    report = OpReport.from_bytes((tmp_path / "reports" / "bad.report.json").read_bytes())
    errors = {item.where: [(e.code, e.key) for e in item.errors] for item in report.items if item.errors}
    assert errors == {
        "row 4": [(ErrorCode.ITEM_NOT_FOUND, "object_url")],
        "row 1": [(ErrorCode.DUPLICATE_TABLE_ROW, None)],
        "row 5": [(ErrorCode.DUPLICATE_TABLE_ROW, None)],
        "row 2": [(ErrorCode.VALUE_TOO_LONG, "site")],
    }
    (too_long,) = next(item.errors for item in report.items if item.where == "row 2")
    assert too_long.message.startswith(
        f"{table}: key 'site': expected varchar of at most 16 characters, got 'a-site-name-far-too-long'"
    )
    assert f"row 2 for {B}/cams/b.jpg" in too_long.message


def test_every_bad_value_of_a_row_is_named(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    seed(emulator)
    table = write_csv(
        tmp_path / "bad.csv",
        [["title", "fps", "weather", "colour"], ["a.jpg", "fast", "snow", "red"], ["b.jpg", "5", "", ""]],
    )
    result = apply_operator(
        encord_conn,
        scope="folder",
        target_ids=["cams"],
        table_uri=table,
        schema_path=schema_path,
        max_failed_items=1,
    ).execute({})
    assert result["counts"]["rejected"] == 1
    assert result["counts"]["written"] == 1
    report = OpReport.from_bytes((tmp_path / "reports" / "bad.report.json").read_bytes())
    (rejected,) = [item for item in report.items if item.status is WriteStatus.REJECTED]
    assert [(e.code, e.key, e.value) for e in rejected.errors] == [
        (ErrorCode.TYPE_MISMATCH, "fps", "'fast'"),
        (ErrorCode.NOT_IN_ENUM, "weather", "'snow'"),
        (ErrorCode.UNKNOWN_KEY, "colour", None),
    ]
    assert everything(emulator)["a.jpg"] == HELD["a.jpg"]
    assert everything(emulator)["b.jpg"] == {"site": "south", "fps": 5}


@pytest.mark.parametrize("server", ["merge", "replace"])
def test_same_metadata_for_every_item_recursive_replace(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, server: str
) -> None:
    emulator.admin.configure(patch_semantics=server)
    seed(emulator)
    op = apply_operator(
        encord_conn,
        scope="folder",
        target_ids=["cams"],
        metadata={"site": "depot", "indoor": True},
        mode="replace",
        recursive=True,
        schema_path=schema_path,
    )
    assert op.execute({})["counts"]["written"] == 4
    expected = {"site": "depot", "indoor": True}
    assert everything(emulator) == {
        "a.jpg": expected,
        "b.jpg": expected,
        "c.mp4": {**expected, "keyframes": [0, 5]},
        "night/d.jpg": expected,
    }
    assert op.execute({})["counts"]["patch_calls"] == 0


def test_merge_for_every_item_without_recursion_leaves_subfolders(
    emulator: EmulatorServer, encord_conn: str, schema_path: str
) -> None:
    seed(emulator)
    apply_operator(
        encord_conn,
        scope="folder",
        target_ids=["cams"],
        metadata={"weather": "clear"},
        schema_path=schema_path,
    ).execute({})
    final = everything(emulator)
    assert final == {
        **{name: {**metadata, "weather": "clear"} for name, metadata in HELD.items()},
        "night/d.jpg": {"site": "west"},
    }


def test_bad_metadata_for_every_item_is_a_config_error(
    emulator: EmulatorServer, encord_conn: str, schema_path: str
) -> None:
    seed(emulator)
    op = apply_operator(
        encord_conn, scope="folder", target_ids=["cams"], metadata={"fps": "fast"}, schema_path=schema_path
    )
    with pytest.raises(
        ConfigError, match=r"EncordApplyMetadataOperator\(task_id='apply'\): metadata: key 'fps'"
    ):
        op.execute({})


def test_write_calls_are_ceil_changed_over_1000(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    folder = emulator.admin.add_folder("bulk")
    emulator.admin.add_items(
        folder, [{"url": f"{B}/bulk/{i:05d}.jpg", "client_metadata": {"fps": i}} for i in range(1500)]
    )
    # fps := max(fps, 1201): items 0..1200 change (1201 of them), the others already hold it.
    table = write_csv(
        tmp_path / "bulk.csv",
        [["title", "fps"]] + [[f"bulk/{i:05d}.jpg", str(max(i, 1201))] for i in range(1500)],
    )
    op = apply_operator(
        encord_conn, scope="folder", target_ids=["bulk"], table_uri=table, schema_path=schema_path
    )
    emulator.admin.reset_counts()
    counts = op.execute({})["counts"]
    assert counts["changed"] == counts["written"] == 1201
    assert counts["patch_calls"] == math.ceil(1201 / 1000) == emulator.admin.counts()["items.patch_bulk"]
    assert sorted(item["client_metadata"]["fps"] for item in emulator.admin.folder_items("bulk")) == [
        1201
    ] * 1202 + list(range(1202, 1500))
    emulator.admin.reset_counts()
    assert op.execute({})["counts"]["patch_calls"] == 0
    assert "items.patch_bulk" not in emulator.admin.counts()


def test_a_rate_limited_patch_is_retried_after_retry_after(
    emulator: EmulatorServer, encord_conn: str, schema_path: str
) -> None:
    """The operation writes through the hook's PATCH retries: 429 with Retry-After, then 503."""
    seed(emulator)
    emulator.admin.inject("items.patch_bulk", 429, retry_after=1)
    emulator.admin.inject("items.patch_bulk", 503)
    emulator.admin.reset_counts()
    result = apply_operator(
        encord_conn, scope="folder", target_ids=["cams"], metadata={"weather": "fog"}, schema_path=schema_path
    ).execute({})
    assert result["counts"]["written"] == 3
    assert result["counts"]["patch_calls"] == 1  # one bundle: retried attempts are not patch calls
    assert emulator.admin.counts()["items.patch_bulk"] == 3  # ... but it took 3 requests
    assert everything(emulator)["b.jpg"] == {"site": "south", "weather": "fog"}


def test_writes_encord_refuses_are_failed_items_in_the_report(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    seed(emulator)
    emulator.admin.inject("items.patch_bulk", 400, times=5)  # the bundle, then each half, then each item
    table = write_csv(tmp_path / "t.csv", [["title", "fps"], ["a.jpg", "1"], ["b.jpg", "2"], ["c.mp4", "3"]])
    op = apply_operator(
        encord_conn, scope="folder", target_ids=["cams"], table_uri=table, schema_path=schema_path
    )
    with pytest.raises(
        AirflowException, match=r"3 of 3 rows/items were not applied \(0 rejected, 0 not found, 3 failed\)"
    ):
        op.execute({})
    report = OpReport.from_bytes((tmp_path / "reports" / "t.report.json").read_bytes())
    assert {item.status for item in report.items} == {WriteStatus.FAILED}
    assert {item.errors[0].code for item in report.items} == {ErrorCode.PATCH_FAILED}
    assert everything(emulator) == {**HELD, "night/d.jpg": {"site": "west"}}
