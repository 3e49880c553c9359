"""Dataset and project scopes with the real SDK against the emulator: listing data units with their
index and title, applying by title or to all units, writes landing on the backing storage items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from encord_emulator.testing import EmulatorServer
from encord_ingest.metadata_ops import OpReport, Scope, WriteStatus
from encord_ingest.sync import present
from encord_provider.hooks.encord import EncordHookError
from encord_provider.hooks.encord_scopes import EncordMetadataHook
from tests.metadata_ops.helpers import B, apply_operator, write_csv

HELD: dict[str, dict[str, Any]] = {
    "a.jpg": {"site": "north"},
    "b.jpg": {"site": "south", "team.other": 1},
    "v.mp4": {"keyframes": [3]},
    "c.jpg": {},
}


def seed(emulator: EmulatorServer) -> dict[str, str]:
    """Items a, b, v in dataset ds1 (in that order), b and c in ds2; project p1 has both.
    Returns names -> UUIDs (items, ``ds1``, ``ds2``, ``p1``)."""
    folder = emulator.admin.add_folder("data")
    specs = [
        {
            "url": f"{B}/data/{name}",
            "name": name,
            "client_metadata": metadata,
            "item_type": "video" if name.endswith(".mp4") else "image",
        }
        for name, metadata in HELD.items()
    ]
    uuids = dict(zip(HELD, emulator.admin.add_items(folder, specs), strict=True))
    ds1 = emulator.admin.add_dataset("ds1")
    emulator.admin.link_items(ds1, [uuids["a.jpg"], uuids["b.jpg"], uuids["v.mp4"]])
    ds2 = emulator.admin.add_dataset("ds2")
    emulator.admin.link_items(ds2, [uuids["b.jpg"], uuids["c.jpg"]])
    p1 = emulator.admin.add_project("p1", [ds1, ds2])
    return {**uuids, "ds1": ds1, "ds2": ds2, "p1": p1}


def everything(emulator: EmulatorServer) -> dict[str, dict[str, Any]]:
    return {item["name"]: present(item["client_metadata"]) for item in emulator.admin.all_items()}


def test_listing_a_dataset_gives_index_title_and_backing_metadata(
    emulator: EmulatorServer, hook: EncordMetadataHook
) -> None:
    ids = seed(emulator)
    units = hook.list_dataset_metadata(ids["ds1"])
    data_hashes = [
        link["data_hash"] for d in emulator.admin.datasets() if d["uuid"] == ids["ds1"] for link in d["links"]
    ]
    assert [(u.data_index, u.title, u.item_uuid, u.data_hash, u.metadata) for u in units] == [
        (0, "a.jpg", ids["a.jpg"], data_hashes[0], {"site": "north"}),
        (1, "b.jpg", ids["b.jpg"], data_hashes[1], {"site": "south", "team.other": 1}),
        (2, "v.mp4", ids["v.mp4"], data_hashes[2], {"keyframes": [3]}),
    ]
    assert {u.dataset_hash for u in units} == {ids["ds1"]}
    assert {u.item_type for u in units} == {"image", "video"}


def test_dataset_units_by_title_are_written_to_their_backing_items(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    ids = seed(emulator)
    table = write_csv(tmp_path / "units.csv", [["title", "weather"], ["a.jpg", "fog"], ["c.jpg", "rain"]])
    emulator.admin.reset_counts()
    result = apply_operator(
        encord_conn,
        scope="dataset",
        target_ids=[ids["ds1"]],
        table_uri=table,
        schema_path=schema_path,
        max_failed_items=1,
    ).execute({})
    assert result["counts"]["written"] == 1
    assert result["counts"]["not_found"] == 1
    assert everything(emulator)["a.jpg"] == {"site": "north", "weather": "fog"}
    assert everything(emulator)["c.jpg"] == {}
    counts = emulator.admin.counts()
    assert counts["datasets.list_data_rows"] == 1
    assert counts["items.patch_bulk"] == 1
    assert "legacy.unknown" not in counts  # no deprecated data-row setter
    report = OpReport.from_bytes((tmp_path / "reports" / "units.report.json").read_bytes())
    assert [item.status for item in report.items] == [WriteStatus.NOT_FOUND, WriteStatus.UPDATED]


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_all_units_of_a_dataset(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, mode: str
) -> None:
    ids = seed(emulator)
    op = apply_operator(
        encord_conn,
        scope="dataset",
        target_ids=[ids["ds2"]],
        metadata={"indoor": False},
        mode=mode,
        schema_path=schema_path,
    )
    assert op.execute({})["counts"]["written"] == 2
    final = everything(emulator)
    if mode == "merge":
        assert final["b.jpg"] == {"site": "south", "team.other": 1, "indoor": False}
    else:
        assert final["b.jpg"] == {"indoor": False}
    assert final["c.jpg"] == {"indoor": False}
    assert final["a.jpg"] == HELD["a.jpg"]  # not in ds2
    assert op.execute({})["counts"]["patch_calls"] == 0


def test_all_units_of_a_project_each_item_once(
    emulator: EmulatorServer, encord_conn: str, schema_path: str
) -> None:
    ids = seed(emulator)
    emulator.admin.reset_counts()
    result = apply_operator(
        encord_conn,
        scope="project",
        target_ids=[ids["p1"]],
        metadata={"weather": "clear"},
        schema_path=schema_path,
    ).execute({})
    assert result["counts"]["targets"] == 4  # b.jpg is in both datasets: one target
    assert result["counts"]["written"] == 4
    assert result["counts"]["patch_calls"] == 1
    assert everything(emulator) == {name: {**metadata, "weather": "clear"} for name, metadata in HELD.items()}
    counts = emulator.admin.counts()
    assert counts["projects.get"] == 1
    assert counts["projects.list_datasets"] == 1
    assert counts["datasets.list_data_rows"] == 2


def test_project_by_title_table(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    ids = seed(emulator)
    table = write_csv(tmp_path / "p.csv", [["title", "fps"], ["c.jpg", "12.0"], ["v.mp4", "24"]])
    apply_operator(
        encord_conn, scope="project", target_ids=[ids["p1"]], table_uri=table, schema_path=schema_path
    ).execute({})
    final = everything(emulator)
    assert final["c.jpg"] == {"fps": 12}
    assert final["v.mp4"] == {"keyframes": [3], "fps": 24}


def test_unknown_dataset_and_project_are_named(emulator: EmulatorServer, hook: EncordMetadataHook) -> None:
    seed(emulator)
    missing = "6f1c1f54-58f4-4b0e-9d3e-3c7b1b0b7a11"
    with pytest.raises(EncordHookError, match=f"Encord dataset '{missing}' does not exist"):
        hook.scope_items(Scope.DATASET, [missing])
    with pytest.raises(EncordHookError, match=f"Encord project '{missing}' does not exist"):
        hook.scope_items(Scope.PROJECT, [missing])
