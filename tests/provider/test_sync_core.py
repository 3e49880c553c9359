"""The Airflow-free core of metadata sync: final dicts, diffs, bundles, the change-row files."""

from __future__ import annotations

import json

import pytest

from encord_ingest.sync import (
    MetadataChange,
    ReservedKeysPolicy,
    SyncMode,
    diff_metadata,
    final_metadata,
    plan_bundles,
    plan_item,
    read_changes,
    same_metadata,
    write_changes,
)

ENCORD = {"team.other": "kept?", "site": "old", "keyframes": [1, 5], "config": {"sampling_rate": 0}}
SIDECAR = {"site": "new", "weather": "rain"}


@pytest.mark.parametrize(
    ("mode", "reserved", "expected"),
    [
        (
            SyncMode.MERGE,
            ReservedKeysPolicy.PRESERVE,
            {**ENCORD, "site": "new", "weather": "rain"},
        ),
        (
            SyncMode.REPLACE,
            ReservedKeysPolicy.PRESERVE,
            {"site": "new", "weather": "rain", "keyframes": [1, 5], "config": {"sampling_rate": 0}},
        ),
        (SyncMode.REPLACE, ReservedKeysPolicy.SIDECAR, {"site": "new", "weather": "rain"}),
        (
            SyncMode.MERGE,
            ReservedKeysPolicy.SIDECAR,
            {**ENCORD, "site": "new", "weather": "rain"},
        ),
    ],
)
def test_final_metadata_per_mode_and_reserved_policy(mode, reserved, expected) -> None:
    assert final_metadata(ENCORD, SIDECAR, mode, reserved) == expected


def test_sidecar_keyframes_win_unless_encord_owns_them() -> None:
    desired = {"keyframes": [0, 9]}
    assert final_metadata(ENCORD, desired, SyncMode.REPLACE)["keyframes"] == [0, 9]
    owned = final_metadata(ENCORD, desired, SyncMode.REPLACE, ReservedKeysPolicy.ENCORD)
    assert owned == {"keyframes": [1, 5], "config": {"sampling_rate": 0}}
    assert "keyframes" not in final_metadata({}, desired, SyncMode.MERGE, ReservedKeysPolicy.ENCORD)


def test_null_counts_as_absent_and_a_sidecar_null_removes_a_key() -> None:
    assert same_metadata({"a": 1, "b": None}, {"a": 1})
    assert final_metadata({"a": 1, "b": 2}, {"b": None}, SyncMode.MERGE) == {"a": 1}


def test_comparison_is_by_json_value() -> None:
    assert same_metadata({"n": 1, "m": {"x": [1, 2]}}, {"m": {"x": [1.0, 2]}, "n": 1.0})
    assert not same_metadata({"flag": True}, {"flag": 1})
    assert not same_metadata({"l": [1, 2]}, {"l": [2, 1]})


def test_diff_and_patch_body_set_removed_keys_to_null() -> None:
    change = MetadataChange(object_url="s3://b/a.jpg", metadata={"site": "new", "weather": "rain"})
    plan = plan_item(change, "u1", {"site": "old", "gone": 3, "ignored": None}, SyncMode.REPLACE)
    assert plan.diff.added == {"weather": "rain"}
    assert plan.diff.changed == {"site": ("old", "new")}
    assert plan.diff.removed == {"gone": 3}
    assert plan.patch_body == {"site": "new", "weather": "rain", "gone": None}
    assert diff_metadata({"a": 1}, {"a": 1.0}).is_empty


def test_unchanged_item_is_planned_but_not_bundled() -> None:
    change = MetadataChange(object_url="s3://b/a.jpg", metadata={"site": "x"})
    plan = plan_item(change, "u1", {"site": "x", "other": 1}, SyncMode.MERGE)
    assert not plan.changed
    assert plan_bundles([plan]) == []


def test_bundles_hold_at_most_1000_changed_items_once_each() -> None:
    plans = [
        plan_item(MetadataChange(object_url=f"s3://b/{i}", metadata={"k": i}), f"u{i}", {}, SyncMode.MERGE)
        for i in range(2501)
    ]
    repeat = plan_item(
        MetadataChange(object_url="s3://b/0", metadata={"k": "last"}), "u0", {}, SyncMode.MERGE
    )
    bundles = plan_bundles([*plans, repeat])
    assert [len(bundle) for bundle in bundles] == [1000, 1000, 501]
    flat = [plan for bundle in bundles for plan in bundle]
    assert len({plan.item_uuid for plan in flat}) == 2501
    assert flat[-1].final == {"k": "last"}
    assert [len(b) for b in plan_bundles(plans[:5], size=2)] == [2, 2, 1]
    with pytest.raises(ValueError, match="between 1 and 1000"):
        plan_bundles(plans, size=1001)


def test_change_rows_round_trip_and_bad_lines_are_named() -> None:
    rows = [
        MetadataChange(
            object_url="s3://b/a.jpg", item_uuid=None, metadata={"a": 1}, source_files=["a.jpg.json"]
        ),
        MetadataChange(
            object_url="s3://b/b.jpg", item_uuid="0f9b6c1e-2d8a-4e5b-9c3d-7a1b2c3d4e5f", metadata={}
        ),
    ]
    data = write_changes(rows)
    assert data.count(b"\n") == 2
    assert read_changes(data) == rows
    assert write_changes([]) == b""
    bad = data + b'{"object_url": "s3://b/c.jpg"}\n'
    with pytest.raises(ValueError, match=r"runs/r1/metadata/c0\.jsonl: line 3: metadata: Field required"):
        read_changes(bad, source="runs/r1/metadata/c0.jsonl")


def test_patch_bodies_are_split_by_count_and_bytes() -> None:
    from encord_ingest.sync import patch_body_bytes, split_by_size

    assert split_by_size([10, 10, 10, 10, 10], max_count=2, max_bytes=100) == [
        range(0, 2),
        range(2, 4),
        range(4, 5),
    ]
    assert split_by_size([40, 40, 40], max_count=10, max_bytes=100) == [range(0, 2), range(2, 3)]
    # An entry over the cap on its own is sent alone; the server decides.
    assert split_by_size([10, 500, 10], max_count=10, max_bytes=100) == [
        range(0, 1),
        range(1, 2),
        range(2, 3),
    ]
    assert split_by_size([], max_count=1, max_bytes=1) == []
    body = {"u": {"clientMetadata": {"k": "é"}}}
    assert patch_body_bytes("u", {"k": "é"}) == len(json.dumps(body, separators=(",", ":")).encode())
