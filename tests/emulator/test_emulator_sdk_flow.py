"""The unmodified SDK end to end against the emulator: every call the pipeline makes."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import pytest
from encord import EncordUserClient
from encord.exceptions import AuthenticationError, AuthorisationError, InvalidArgumentsError
from encord.http.bundle import Bundle
from encord.orm.dataset import DataLinkDuplicatesBehavior, StorageLocation
from encord.orm.storage import (
    CustomerProvidedAudioMetadata,
    CustomerProvidedImageMetadata,
    CustomerProvidedPdfMetadata,
    CustomerProvidedTextMetadata,
    CustomerProvidedVideoMetadata,
    DataUploadAudio,
    DataUploadDicomSeries,
    DataUploadDicomSeriesDicomFile,
    DataUploadImage,
    DataUploadImageGroup,
    DataUploadImageGroupImage,
    DataUploadItems,
    DataUploadNifti,
    DataUploadPDF,
    DataUploadText,
    DataUploadVideo,
    StorageItemType,
)

from encord_emulator.testing import EmulatorServer, generate_ssh_keypair

ClientFactory = Callable[..., EncordUserClient]
B = "https://bkt.s3.eu-west-2.amazonaws.com"


def all_kinds() -> DataUploadItems:
    return DataUploadItems(
        videos=[
            DataUploadVideo(
                object_url=f"{B}/v/clip.mp4",
                client_metadata={"keyframes": [0, 10]},
                video_metadata=CustomerProvidedVideoMetadata(
                    fps=25.0, duration=12.0, width=1920, height=1080, file_size=1000, mime_type="video/mp4"
                ),
            )
        ],
        images=[
            DataUploadImage(
                object_url=f"{B}/img/a.jpg",
                title="a.jpg",
                client_metadata={"site": "X"},
                image_metadata=CustomerProvidedImageMetadata(
                    mime_type="image/jpeg", file_size=10, height=48, width=64
                ),
            )
        ],
        image_groups=[
            DataUploadImageGroup(
                title="seq-1",
                create_video=True,
                images=[DataUploadImageGroupImage(url=f"{B}/seq/f{i}.jpg") for i in range(3)],
            )
        ],
        dicom_series=[
            DataUploadDicomSeries(
                title="series-1",
                dicom_files=[
                    DataUploadDicomSeriesDicomFile(url=f"{B}/dcm/{i}.dcm", title=None) for i in range(2)
                ],
            )
        ],
        audio=[
            DataUploadAudio(
                object_url=f"{B}/a/x.mp3",
                audio_metadata=CustomerProvidedAudioMetadata(
                    duration=3.5,
                    file_size=5,
                    mime_type="audio/mpeg",
                    sample_rate=44100,
                    bit_depth=16,
                    codec="mp3",
                    num_channels=2,
                ),
            )
        ],
        text=[
            DataUploadText(
                object_url=f"{B}/t/x.txt",
                text_metadata=CustomerProvidedTextMetadata(file_size=3, mime_type="text/plain"),
            )
        ],
        pdf=[
            DataUploadPDF(
                object_url=f"{B}/p/x.pdf", pdf_metadata=CustomerProvidedPdfMetadata(file_size=9, num_pages=2)
            )
        ],
        nifti=[DataUploadNifti(object_url=f"{B}/n/x.nii.gz")],
        skip_duplicate_urls=True,
    )


def test_integrations_are_listed_and_filtered(emu: EmulatorServer, client: EncordUserClient) -> None:
    first = emu.admin.add_integration("shared-title")
    second = emu.admin.add_integration("shared-title", provider="GCP")
    other = emu.admin.add_integration("other")
    assert sorted(i.id for i in client.get_cloud_integrations()) == sorted([first, second, other])
    assert sorted(
        i.id for i in client.get_cloud_integrations(filter_integration_titles=["shared-title"])
    ) == sorted([first, second])
    assert [i.id for i in client.get_cloud_integrations(filter_integration_uuids=[other])] == [other]


def test_folders_create_get_find_and_list(client: EncordUserClient) -> None:
    root = client.create_storage_folder("ingest", description="d", client_metadata={"owner": "pipeline"})
    child = client.create_storage_folder("ingest", parent_folder=root.uuid)
    client.create_storage_folder("other")
    fetched = client.get_storage_folder(child.uuid)
    assert (fetched.name, fetched.parent_uuid, fetched.description) == ("ingest", root.uuid, "")
    assert [p.uuid for p in fetched.path_to_root] == [root.uuid]
    assert client.get_storage_folder(root.uuid).client_metadata == {"owner": "pipeline"}
    found = sorted((f.uuid, f.parent_uuid) for f in client.find_storage_folders(search="inges"))
    assert found == sorted([(root.uuid, None), (child.uuid, root.uuid)])
    assert [f.name for f in client.list_storage_folders()] == ["ingest", "other"]
    assert [f.uuid for f in root.list_subfolders()] == [child.uuid]
    assert [f.uuid for f in root.list_subfolders(search="nothing")] == []


def test_unknown_folder_answers_like_encord(client: EncordUserClient) -> None:
    with pytest.raises(AuthorisationError):
        client.get_storage_folder("00000000-0000-4000-8000-000000000000")


def test_registration_of_every_kind_with_data_upload_items(
    emu: EmulatorServer, client: EncordUserClient, integration: str
) -> None:
    folder = client.create_storage_folder("all-kinds")
    job = folder.add_private_data_to_folder_start(integration, all_kinds())
    result = folder.add_private_data_to_folder_get_result(job, timeout_seconds=5)
    assert (result.status.value, result.units_done_count, result.units_error_count) == ("DONE", 8, 0)
    by_name = {i.name: i for i in folder.list_items()}
    assert {n: i.item_type for n, i in by_name.items()} == {
        "v/clip.mp4": StorageItemType.VIDEO,
        "a.jpg": StorageItemType.IMAGE,
        "seq-1": StorageItemType.IMAGE_SEQUENCE,
        "series-1": StorageItemType.DICOM_SERIES,
        "a/x.mp3": StorageItemType.AUDIO,
        "t/x.txt": StorageItemType.PLAIN_TEXT,
        "p/x.pdf": StorageItemType.PDF,
        "n/x.nii.gz": StorageItemType.NIFTI,
    }
    assert {w.name: w.item_uuid for w in result.items_with_names} == {n: i.uuid for n, i in by_name.items()}
    video, image, audio = by_name["v/clip.mp4"], by_name["a.jpg"], by_name["a/x.mp3"]
    assert (video.fps, video.duration, video.width, video.frame_count, video.url) == (
        25.0,
        12.0,
        1920,
        300,
        f"{B}/v/clip.mp4",
    )
    assert video.client_metadata == {"keyframes": [0, 10]}
    assert (image.mime_type, image.width, image.height, image.client_metadata) == (
        "image/jpeg",
        64,
        48,
        {"site": "X"},
    )
    assert (audio.audio_sample_rate, audio.audio_codec, audio.audio_num_channels) == (44100, "mp3", 2)
    frames = by_name["seq-1"].get_child_items()
    assert [f.url for f in frames] == [f"{B}/seq/f{i}.jpg" for i in range(3)]
    assert emu.admin.folder_items(str(folder.uuid), include_frames=True).__len__() == 8 + 3 + 2


def test_registration_with_a_documented_json_dict(client: EncordUserClient, integration: str) -> None:
    folder = client.create_storage_folder("json")
    spec = {
        "images": [{"objectUrl": f"{B}/x/one.png", "clientMetadata": {"k": 1}}],
        "image_groups": [{"title": "grp", "objectUrl_0": f"{B}/g/0.jpg", "objectUrl_1": f"{B}/g/1.jpg"}],
        "dicom_series": [{"title": "ser", "objectUrl_0": f"{B}/d/0.dcm"}],
        "skip_duplicate_urls": True,
    }
    job = folder.add_private_data_to_folder_start(integration, spec, ignore_errors=True)
    result = folder.add_private_data_to_folder_get_result(job)
    assert sorted(w.name for w in result.items_with_names) == ["grp", "ser", "x/one.png"]
    items = {i.name: i for i in folder.list_items()}
    assert (items["grp"].item_type, items["grp"].frame_count) == (StorageItemType.IMAGE_GROUP, 2)
    assert items["x/one.png"].client_metadata == {"k": 1}


def test_bad_upload_specification_is_refused(client: EncordUserClient, integration: str) -> None:
    folder = client.create_storage_folder("bad")
    with pytest.raises(InvalidArgumentsError, match="image_group"):
        folder.add_private_data_to_folder_start(integration, {"image_group": []})
    with pytest.raises(AuthorisationError):
        folder.add_private_data_to_folder_start("00000000-0000-4000-8000-000000000000", {"images": []})


def test_listing_pages_with_client_metadata_over_1000_items(
    emu: EmulatorServer, client: EncordUserClient
) -> None:
    folder = client.create_storage_folder("big")
    seeded = emu.admin.add_items(
        str(folder.uuid), [{"url": f"{B}/big/{i:05d}.jpg", "client_metadata": {"n": i}} for i in range(1203)]
    )
    emu.admin.reset_counts()
    listed = list(folder.list_items(page_size=500))
    assert [i.uuid for i in listed] == [UUID(u) for u in seeded]  # name order = seeding order here
    assert [i.client_metadata for i in listed[:3]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert emu.admin.counts() == {"items.list": 3}
    newest_first = list(folder.list_items(page_size=1000, order="createdAt", desc=True))  # type: ignore[arg-type]
    assert len(newest_first) == 1203
    without = next(iter(folder.list_items(include_client_metadata=False)))
    assert without.client_metadata == {}
    resolved = list(folder.list_items(page_size=2, search="0000", resolve_client_metadata_locally=True))
    assert [i.client_metadata for i in resolved] == [{"n": i} for i in range(10)]


def test_bundle_patch_sends_one_request_per_1000_items(emu: EmulatorServer, client: EncordUserClient) -> None:
    folder = client.create_storage_folder("patch")
    emu.admin.add_items(
        str(folder.uuid), [{"url": f"{B}/p/{i:04d}.jpg", "client_metadata": {"a": i}} for i in range(1100)]
    )
    items = list(folder.list_items(page_size=1000))
    emu.admin.reset_counts()
    with Bundle() as bundle:
        for item in items:
            item.update(client_metadata={"b": "x"}, bundle=bundle)
    assert emu.admin.counts() == {"items.patch_bulk": 2}
    refreshed = client.get_storage_items([items[0].uuid, items[-1].uuid])
    assert [i.client_metadata for i in refreshed] == [{"a": 0, "b": "x"}, {"a": 1099, "b": "x"}]
    assert items[0].client_metadata == {"a": 0, "b": "x"}  # the bundle result updated the SDK object


def test_single_item_get_and_patch(client: EncordUserClient, emu: EmulatorServer) -> None:
    folder = client.create_storage_folder("single")
    (uuid,) = emu.admin.add_items(str(folder.uuid), [{"url": f"{B}/s.jpg", "client_metadata": {"a": 1}}])
    item = client.get_storage_item(uuid)
    item.update(name="renamed", client_metadata={"c": 3})
    assert (item.name, item.client_metadata) == ("renamed", {"a": 1, "c": 3})
    with pytest.raises(AuthorisationError):
        client.get_storage_items([uuid, "00000000-0000-4000-8000-000000000000"])


def test_metadata_schema_round_trip(emu: EmulatorServer, client: EncordUserClient) -> None:
    schema = client.metadata_schema()
    assert schema.keys() == []
    schema.add_scalar("capture.site", data_type="varchar")
    schema.add_enum("weather", values=["rain", "sunny"])
    schema.add_embedding("clip", size=512)
    schema.save()
    again = client.metadata_schema()
    assert sorted(again.keys()) == ["capture.site", "clip", "weather"]
    assert again.get_embedding_size("clip") == 512
    again.delete_key("weather", hard=True)
    again.save()
    assert (emu.admin.schema() or {})["weather"] == {"ty": "tombstone", "deleted_ty": None}


def test_metadata_schema_save_replaces_the_whole_schema(
    emu: EmulatorServer, client: EncordUserClient
) -> None:
    """Two writers that read before either saved: the second save drops the first one's key."""
    first, second = client.metadata_schema(), client.metadata_schema()
    first.add_scalar("team_a.key", data_type="number")
    first.save()
    second.add_scalar("team_b.key", data_type="boolean")
    second.save()
    assert sorted((emu.admin.schema() or {}).keys()) == ["team_b.key"]


def test_dataset_create_and_link_items(emu: EmulatorServer, client: EncordUserClient) -> None:
    folder = client.create_storage_folder("for-ds")
    uuids = emu.admin.add_items(
        str(folder.uuid), [{"url": f"{B}/d/{i}.jpg", "client_metadata": {"i": i}} for i in range(3)]
    )
    created = client.create_dataset("ds", StorageLocation.AWS, create_backing_folder=False)
    assert created.backing_folder_uuid is None
    dataset = client.get_dataset(created.dataset_hash)
    rows = dataset.link_items([UUID(u) for u in uuids[:2]])
    assert [r.backing_item_uuid for r in rows] == [UUID(u) for u in uuids[:2]]
    again = dataset.link_items([UUID(u) for u in uuids], duplicates_behavior=DataLinkDuplicatesBehavior.SKIP)
    assert [r.backing_item_uuid for r in again] == [UUID(uuids[2])]
    fetched = client.get_dataset(created.dataset_hash)
    assert sorted(str(r.backing_item_uuid) for r in fetched.data_rows) == sorted(uuids)
    assert [i.uuid for i in folder.list_items(is_in_dataset=False)] == []
    assert client.get_storage_item(uuids[0]).backed_data_units_count == 1


def test_wrong_key_fails_like_the_real_service(emu: EmulatorServer, make_client: ClientFactory) -> None:
    stranger = make_client(emu.url, generate_ssh_keypair()[0])
    with pytest.raises(AuthenticationError):
        stranger.get_cloud_integrations()
    with pytest.raises(AuthenticationError):
        stranger.get_dataset("00000000-0000-4000-8000-000000000000")
    assert emu.admin.counts() == {"auth.rejected": 2}


def test_admin_resolves_folders_by_path(emu: EmulatorServer, client: EncordUserClient) -> None:
    root = client.create_storage_folder("ingest")
    child = root.create_subfolder("cam-1")
    emu.admin.add_items(str(child.uuid), [{"url": f"{B}/c/1.jpg", "client_metadata": {"k": "v"}}])
    (item,) = emu.admin.folder_items("ingest/cam-1")
    assert (item["url"], item["name"], item["title"], item["client_metadata"]) == (
        f"{B}/c/1.jpg",
        "c/1.jpg",
        "c/1.jpg",
        {"k": "v"},
    )
    assert (item["item_type"], item["parent"]) == ("image", str(child.uuid))
    assert emu.admin.folder_items(str(root.uuid)) == []
