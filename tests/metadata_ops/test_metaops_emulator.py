"""The emulator's extensions for metadata operations, driven by the unmodified SDK: data rows of a
dataset with their backing items, projects with attached datasets, child items of groups."""

from __future__ import annotations

from pathlib import Path

import pytest
from encord import EncordUserClient
from encord.constants.enums import DataType
from encord.exceptions import ResourceNotFoundError
from encord.orm.dataset import DatasetAccessSettings
from encord.orm.storage import StorageItemType

from encord_emulator.testing import EmulatorAdminError, EmulatorServer
from tests.metadata_ops.helpers import B


@pytest.fixture
def client(emulator: EmulatorServer, keypair: tuple[str, str]) -> EncordUserClient:
    return EncordUserClient.create_with_ssh_private_key(keypair[0], domain=emulator.url)


def seed(emulator: EmulatorServer) -> dict[str, str]:
    folder = emulator.admin.add_folder("f")
    a, v = emulator.admin.add_items(
        folder,
        [
            {"url": f"{B}/f/a.jpg", "name": "a.jpg", "client_metadata": {"k": 1}},
            {"url": f"{B}/f/v.mp4", "name": "v.mp4", "item_type": "video"},
        ],
    )
    group, _ = emulator.admin.add_group(folder, "grp", [f"{B}/f/g/0.jpg", f"{B}/f/g/1.jpg"])
    dataset = emulator.admin.add_dataset("ds")
    hashes = emulator.admin.link_items(dataset, [a, v, group])
    assert emulator.admin.link_items(dataset, [a]) == []  # already linked: skipped
    project = emulator.admin.add_project("proj", [dataset])
    return {"a": a, "v": v, "group": group, "dataset": dataset, "project": project, "a_hash": hashes[0]}


def test_list_data_rows_with_backing_items_and_filters(
    emulator: EmulatorServer, client: EncordUserClient
) -> None:
    ids = seed(emulator)
    settings = DatasetAccessSettings(fetch_client_metadata=True)
    dataset = client.get_dataset(ids["dataset"], dataset_access_settings=settings, include_data_rows=False)
    rows = dataset.list_data_rows()
    assert [(r.title, r.data_type, str(r.backing_item_uuid)) for r in rows] == [
        ("a.jpg", DataType.IMAGE, ids["a"]),
        ("v.mp4", DataType.VIDEO, ids["v"]),
        ("grp", DataType.IMG_GROUP, ids["group"]),
    ]
    assert rows[0].client_metadata == {"k": 1}
    assert [r.title for r in dataset.list_data_rows(title_eq="v.mp4")] == ["v.mp4"]
    assert [r.title for r in dataset.list_data_rows(title_like="%.jpg")] == ["a.jpg"]
    assert [r.uid for r in dataset.list_data_rows(data_hashes=[ids["a_hash"]])] == [ids["a_hash"]]
    assert [r.title for r in dataset.list_data_rows(data_types=[DataType.IMG_GROUP])] == ["grp"]
    without = client.get_dataset(ids["dataset"], include_data_rows=False).list_data_rows()
    assert without[0].client_metadata is None
    assert emulator.admin.counts()["datasets.list_data_rows"] == 6


def test_projects_list_their_datasets(emulator: EmulatorServer, client: EncordUserClient) -> None:
    ids = seed(emulator)
    project = client.get_project(ids["project"])
    assert (project.project_hash, project.title) == (ids["project"], "proj")
    assert [(str(d.dataset_hash), d.title) for d in project.list_datasets()] == [(ids["dataset"], "ds")]
    assert {"projects.get", "ontologies.get", "projects.list_datasets"} <= set(emulator.admin.counts())
    with pytest.raises(ResourceNotFoundError):
        client.get_project("6f1c1f54-58f4-4b0e-9d3e-3c7b1b0b7a11")


def test_child_items_of_groups_in_frame_order(emulator: EmulatorServer, client: EncordUserClient) -> None:
    folder = emulator.admin.add_folder("g")
    group, children = emulator.admin.add_group(
        folder,
        "series",
        [f"{B}/g/{n}.dcm" for n in ("b", "a", "c")],
        item_type="dicomSeries",
        frame_metadata=[{"i": 0}, {"i": 1}, {"i": 2}],
    )
    item = client.get_storage_item(group)
    assert item.item_type is StorageItemType.DICOM_SERIES
    kids = list(item.get_child_items())
    assert [str(k.uuid) for k in kids] == children
    assert [(k.name, k.client_metadata, k.item_type) for k in kids] == [
        (f"g/{n}.dcm", {"i": i}, StorageItemType.DICOM_FILE) for i, n in enumerate("bac")
    ]
    assert [i["name"] for i in emulator.admin.folder_items("g")] == ["series"]  # frames are not listed
    with pytest.raises(EmulatorAdminError, match="frame_metadata must have one object per frame"):
        emulator.admin.add_group(folder, "bad", [f"{B}/g/x.jpg"], frame_metadata=[])
    with pytest.raises(EmulatorAdminError, match="item_type must be one of"):
        emulator.admin.add_group(folder, "bad", [f"{B}/g/x.jpg"], item_type="video")


def test_projects_survive_a_restart(keypair: tuple[str, str], tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    with EmulatorServer.start(public_keys=[keypair[1]], persist_path=state) as first:
        ids = seed(first)
    with EmulatorServer.start(public_keys=[keypair[1]], persist_path=state) as second:
        client = EncordUserClient.create_with_ssh_private_key(keypair[0], domain=second.url)
        project = client.get_project(ids["project"])
        assert [str(d.dataset_hash) for d in project.list_datasets()] == [ids["dataset"]]
        assert [p["title"] for p in second.admin.projects()] == ["proj"]
        assert len(list(client.get_storage_item(ids["group"]).get_child_items())) == 2
