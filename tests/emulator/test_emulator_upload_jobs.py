"""Upload-job semantics: duplicates, upserts, unit errors, timing, cancel, injected job failures,
and patch semantics (merge / replace)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from encord import EncordUserClient
from encord.exceptions import InvalidArgumentsError, ResourceNotFoundError
from encord.http.bundle import Bundle
from encord.orm.dataset import LongPollingStatus
from encord.orm.storage import (
    DataUploadImage,
    DataUploadImageGroup,
    DataUploadImageGroupImage,
    DataUploadItems,
    UploadLongPollingState,
)
from encord.storage import StorageFolder

from encord_emulator.testing import EmulatorServer

ClientFactory = Callable[..., EncordUserClient]
B = "https://bkt.s3.eu-west-2.amazonaws.com"


def images(
    *names: str, metadata: dict[str, Any] | None = None, skip: bool = True, upsert: bool = False
) -> DataUploadItems:
    return DataUploadItems(
        images=[DataUploadImage(object_url=f"{B}/{n}", client_metadata=metadata or {}) for n in names],
        skip_duplicate_urls=skip,
        upsert_metadata=upsert,
    )


def register(
    folder: StorageFolder, integration: str, spec: Any, ignore_errors: bool = False
) -> UploadLongPollingState:
    job = folder.add_private_data_to_folder_start(integration, spec, ignore_errors=ignore_errors)
    return folder.add_private_data_to_folder_get_result(job, timeout_seconds=10)


def urls_in(folder: StorageFolder) -> list[str]:
    return sorted(str(i.url) for i in folder.list_items())


@pytest.fixture
def folder(client: EncordUserClient) -> StorageFolder:
    return client.create_storage_folder("jobs")


def test_skip_duplicate_urls_by_exact_url_per_folder(
    client: EncordUserClient, folder: StorageFolder, integration: str
) -> None:
    first = register(folder, integration, images("a.jpg", "b.jpg"))
    second = register(folder, integration, images("a.jpg", "b.jpg", "c.jpg", "c.jpg", "A.jpg"))
    assert [w.name for w in first.items_with_names] == ["a.jpg", "b.jpg"]
    assert [w.name for w in second.items_with_names] == ["c.jpg", "A.jpg"]
    assert (second.status, second.units_done_count) == (LongPollingStatus.DONE, 5)
    assert urls_in(folder) == sorted(f"{B}/{n}" for n in ("a.jpg", "b.jpg", "c.jpg", "A.jpg"))
    other = client.create_storage_folder("other")
    assert [w.name for w in register(other, integration, images("a.jpg")).items_with_names] == ["a.jpg"]


def test_without_skip_duplicate_urls_duplicates_are_created(folder: StorageFolder, integration: str) -> None:
    register(folder, integration, images("a.jpg", skip=False))
    register(folder, integration, images("a.jpg", skip=False))
    assert urls_in(folder) == [f"{B}/a.jpg", f"{B}/a.jpg"]


def test_skipped_duplicates_can_be_reported(make_client: ClientFactory, keypair: tuple[str, str]) -> None:
    with EmulatorServer.start(public_keys=[keypair[1]], report_skipped_duplicates=True) as emu:
        client = make_client(emu.url)
        folder = client.create_storage_folder("f")
        integration = emu.admin.add_integration("s3")
        first = register(folder, integration, images("a.jpg"))
        second = register(folder, integration, images("a.jpg"))
    assert [w.item_uuid for w in second.items_with_names] == [first.items_with_names[0].item_uuid]


@pytest.mark.parametrize(
    ("semantics", "expected"), [("merge", {"old": 1, "new": 2}), ("replace", {"new": 2})]
)
def test_upsert_metadata_updates_existing_items(
    make_client: ClientFactory, keypair: tuple[str, str], semantics: str, expected: dict[str, int]
) -> None:
    with EmulatorServer.start(public_keys=[keypair[1]], patch_semantics=semantics) as emu:  # type: ignore[arg-type]
        folder = make_client(emu.url).create_storage_folder("f")
        integration = emu.admin.add_integration("s3")
        register(folder, integration, images("a.jpg", metadata={"old": 1}))
        register(folder, integration, images("a.jpg", metadata={"new": 2}, upsert=False))
        unchanged = [i["client_metadata"] for i in emu.admin.folder_items(str(folder.uuid))]
        register(folder, integration, images("a.jpg", metadata={"new": 2}, upsert=True))
        upserted = [i["client_metadata"] for i in emu.admin.folder_items(str(folder.uuid))]
    assert unchanged == [{"old": 1}]
    assert upserted == [expected]


def test_ignore_errors_true_ends_done_with_unit_errors(
    emu: EmulatorServer, folder: StorageFolder, integration: str
) -> None:
    emu.admin.set_unreadable(f"{B}/bad.jpg")
    result = register(folder, integration, images("good.jpg", "bad.jpg"), ignore_errors=True)
    assert (result.status, result.units_done_count, result.units_error_count) == (
        LongPollingStatus.DONE,
        1,
        1,
    )
    assert [e.object_urls for e in result.unit_errors] == [[f"{B}/bad.jpg"]]
    assert result.unit_errors[0].action_description == "Uploading image"
    assert "cannot read object" in result.errors[0]
    assert urls_in(folder) == [f"{B}/good.jpg"]


def test_ignore_errors_false_ends_error_and_keeps_good_units_by_default(
    emu: EmulatorServer, folder: StorageFolder, integration: str
) -> None:
    emu.admin.set_unreadable(f"{B}/bad.jpg")
    result = register(folder, integration, images("good.jpg", "bad.jpg"))
    assert (result.status, result.units_done_count, result.units_error_count) == (
        LongPollingStatus.ERROR,
        1,
        1,
    )
    assert [w.name for w in result.items_with_names] == ["good.jpg"]
    assert urls_in(folder) == [f"{B}/good.jpg"]


def test_error_job_can_discard_good_units(make_client: ClientFactory, keypair: tuple[str, str]) -> None:
    with EmulatorServer.start(public_keys=[keypair[1]], error_job_keeps_good_units=False) as emu:
        folder = make_client(emu.url).create_storage_folder("f")
        integration = emu.admin.add_integration("s3")
        emu.admin.set_unreadable(f"{B}/bad.jpg")
        result = register(folder, integration, images("good.jpg", "bad.jpg"))
        assert urls_in(folder) == []
    assert (result.status, result.units_cancelled_count, result.items_with_names) == (
        LongPollingStatus.ERROR,
        1,
        [],
    )


def test_group_with_one_unreadable_frame_fails_as_one_unit(
    emu: EmulatorServer, folder: StorageFolder, integration: str
) -> None:
    frames = [f"{B}/g/{i}.jpg" for i in range(3)]
    emu.admin.set_unreadable(frames[1])
    spec = DataUploadItems(
        image_groups=[
            DataUploadImageGroup(title="g", images=[DataUploadImageGroupImage(url=u) for u in frames])
        ]
    )
    result = register(folder, integration, spec, ignore_errors=True)
    assert [e.object_urls for e in result.unit_errors] == [frames]
    assert result.unit_errors[0].action_description == "Uploading image group"


def test_invalid_urls_are_unit_errors(folder: StorageFolder, integration: str) -> None:
    result = register(folder, integration, images("with space.jpg", "ok.jpg"), ignore_errors=True)
    assert [e.object_urls for e in result.unit_errors] == [[f"{B}/with space.jpg"]]
    assert "whitespace" in result.unit_errors[0].error


def test_job_takes_configured_time_and_long_poll_returns_when_done(
    make_client: ClientFactory, keypair: tuple[str, str]
) -> None:
    with EmulatorServer.start(public_keys=[keypair[1]], job_duration_s=0.6) as emu:
        folder = make_client(emu.url).create_storage_folder("f")
        integration = emu.admin.add_integration("s3")
        job = folder.add_private_data_to_folder_start(integration, images("a.jpg", "b.jpg"))
        pending = folder.add_private_data_to_folder_get_result(job, timeout_seconds=0)
        listed_while_pending = urls_in(folder)
        started = time.monotonic()
        done = folder.add_private_data_to_folder_get_result(job, timeout_seconds=30)
        waited = time.monotonic() - started
    assert (pending.status, pending.units_pending_count, pending.items_with_names) == (
        LongPollingStatus.PENDING,
        2,
        [],
    )
    assert listed_while_pending == []
    assert (done.status, done.units_done_count) == (LongPollingStatus.DONE, 2)
    assert 0.2 < waited < 3.0


def test_job_finishes_on_schedule_without_polling(
    make_client: ClientFactory, keypair: tuple[str, str]
) -> None:
    with EmulatorServer.start(public_keys=[keypair[1]], job_duration_s=0.2) as emu:
        folder = make_client(emu.url).create_storage_folder("f")
        folder.add_private_data_to_folder_start(emu.admin.add_integration("s3"), images("a.jpg"))
        assert urls_in(folder) == []
        time.sleep(0.3)
        assert urls_in(folder) == [f"{B}/a.jpg"]


def test_cancel_pending_job(make_client: ClientFactory, keypair: tuple[str, str]) -> None:
    with EmulatorServer.start(public_keys=[keypair[1]], job_duration_s=30) as emu:
        folder = make_client(emu.url).create_storage_folder("f")
        job = folder.add_private_data_to_folder_start(
            emu.admin.add_integration("s3"), images("a.jpg", "b.jpg")
        )
        cancelled = folder.add_data_to_folder_job_cancel(job)
        result = folder.add_private_data_to_folder_get_result(job, timeout_seconds=0)
        assert urls_in(folder) == []
    assert cancelled.units_cancelled_count == 2
    assert (result.status, result.units_cancelled_count) == (LongPollingStatus.CANCELLED, 2)


def test_fail_next_job(emu: EmulatorServer, folder: StorageFolder, integration: str) -> None:
    emu.admin.fail_next_job()
    failed = register(folder, integration, images("a.jpg"))
    healthy = register(folder, integration, images("a.jpg"))
    assert (failed.status, failed.units_error_count, len(failed.errors)) == (LongPollingStatus.ERROR, 1, 1)
    assert healthy.status == LongPollingStatus.DONE
    assert urls_in(folder) == [f"{B}/a.jpg"]


def test_job_of_another_folder_is_not_found(
    client: EncordUserClient, folder: StorageFolder, integration: str
) -> None:
    job = folder.add_private_data_to_folder_start(integration, images("a.jpg"))
    other = client.create_storage_folder("other")
    with pytest.raises(ResourceNotFoundError):
        other.add_private_data_to_folder_get_result(job, timeout_seconds=0)


PATCHED = {
    "replace": {"n": {"x": 3}, "gone": None},
    "merge": {"a": 1, "n": {"x": 3}, "gone": None},
    "merge-recursive": {"a": 1, "n": {"x": 3, "y": 2}},
}


@pytest.fixture(params=list(PATCHED))
def semantics_emu(request: pytest.FixtureRequest, keypair: tuple[str, str]) -> Iterator[EmulatorServer]:
    with EmulatorServer.start(public_keys=[keypair[1]], patch_semantics=request.param) as server:
        yield server


def test_patch_semantics_single_and_bundled(
    semantics_emu: EmulatorServer, make_client: ClientFactory
) -> None:
    client = make_client(semantics_emu.url)
    folder = client.create_storage_folder("f")
    held = {"a": 1, "n": {"x": 1, "y": 2}, "gone": 1}
    first, second = semantics_emu.admin.add_items(
        str(folder.uuid),
        [{"url": f"{B}/1.jpg", "client_metadata": held}, {"url": f"{B}/2.jpg", "client_metadata": held}],
    )
    patch = {"n": {"x": 3}, "gone": None}
    client.get_storage_item(first).update(client_metadata=patch)
    with Bundle() as bundle:
        client.get_storage_item(second).update(client_metadata=patch, bundle=bundle)
    stored = {i["uuid"]: i["client_metadata"] for i in semantics_emu.admin.folder_items(str(folder.uuid))}
    expected = PATCHED[semantics_emu.admin.config()["patch_semantics"]]
    assert stored == {first: expected, second: expected}


def test_skipped_duplicates_as_unit_errors(make_client: ClientFactory, keypair: tuple[str, str]) -> None:
    with EmulatorServer.start(public_keys=[keypair[1]], duplicates_as="unit-error") as emu:
        folder = make_client(emu.url).create_storage_folder("f")
        integration = emu.admin.add_integration("s3")
        first = register(folder, integration, images("a.jpg", metadata={"v": 1}))
        second = register(
            folder, integration, images("a.jpg", "b.jpg", metadata={"v": 2}, upsert=True), ignore_errors=True
        )
        stored = {i["url"]: i["client_metadata"] for i in emu.admin.folder_items(str(folder.uuid))}
    assert (second.units_done_count, second.units_error_count) == (1, 1)
    assert [e.object_urls for e in second.unit_errors] == [[f"{B}/a.jpg"]]
    assert str(first.items_with_names[0].item_uuid) in second.unit_errors[0].error
    assert [w.name for w in second.items_with_names] == ["b.jpg"]
    assert stored == {f"{B}/a.jpg": {"v": 1}, f"{B}/b.jpg": {"v": 2}}


def test_urls_can_be_stored_normalised(make_client: ClientFactory, keypair: tuple[str, str]) -> None:
    with EmulatorServer.start(public_keys=[keypair[1]], normalise_urls=True) as emu:
        folder = make_client(emu.url).create_storage_folder("f")
        integration = emu.admin.add_integration("s3")
        sent = "https://Bucket.S3.eu-west-2.amazonaws.com/caf%C3%A9%20x.jpg"
        register(folder, integration, {"images": [{"objectUrl": sent}], "skip_duplicate_urls": True})
        again = register(
            folder,
            integration,
            {"images": [{"objectUrl": sent.replace("%C3%A9", "%c3%a9")}], "skip_duplicate_urls": True},
        )
        stored = [i["url"] for i in emu.admin.folder_items(str(folder.uuid))]
    assert stored == ["https://bucket.s3.eu-west-2.amazonaws.com/café x.jpg"]
    assert again.items_with_names == []


def test_schema_enforcement_rejects_bad_values(make_client: ClientFactory, keypair: tuple[str, str]) -> None:
    with EmulatorServer.start(public_keys=[keypair[1]], schema_enforcement="reject") as emu:
        client = make_client(emu.url)
        schema = client.metadata_schema()
        schema.add_scalar("count", data_type="number")
        schema.add_enum("weather", values=["rain"])
        schema.save()
        folder = client.create_storage_folder("f")
        result = register(
            folder,
            emu.admin.add_integration("s3"),
            images("a.jpg", metadata={"count": "three"}),
            ignore_errors=True,
        )
        (uuid,) = emu.admin.add_items(str(folder.uuid), [{"url": f"{B}/b.jpg"}])
        with pytest.raises(InvalidArgumentsError, match="'weather'"):
            client.get_storage_item(uuid).update(client_metadata={"weather": "snow"})
        client.get_storage_item(uuid).update(client_metadata={"weather": "rain", "count": 2})
    assert "'count'" in result.unit_errors[0].error
