"""Fault injection and request counters, seen through the unmodified SDK's retry behaviour."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import urllib3.util.retry
from encord import EncordUserClient
from encord.exceptions import RateLimitExceededError, UnknownException
from encord.http.bundle import Bundle
from encord.orm.dataset import StorageLocation
from encord.orm.storage import DataUploadImage, DataUploadItems

from encord_emulator.testing import EmulatorAdminError, EmulatorServer

ClientFactory = Callable[..., EncordUserClient]
URL = "https://bkt.s3.eu-west-2.amazonaws.com/a.jpg"


def test_sdk_retries_get_after_429_honouring_retry_after(
    emu: EmulatorServer, client: EncordUserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's retry policy (urllib3 ``Retry``) waits the ``Retry-After`` the emulator sent."""
    folder = client.create_storage_folder("f")
    emu.admin.add_items(str(folder.uuid), [{"url": URL}])
    emu.admin.reset_counts()
    emu.admin.inject("items.list", 429, times=1, retry_after=1)
    waits: list[float] = []
    # urllib3's own clock, replaced for this test only: its sleeps are recorded instead of slept.
    monkeypatch.setattr(urllib3.util.retry, "time", SimpleNamespace(sleep=waits.append, time=time.time))
    listed = list(folder.list_items())
    assert [i.url for i in listed] == [URL]
    assert emu.admin.counts() == {"items.list": 2}
    assert waits == [1]


def test_429_beyond_the_sdk_retries_raises_rate_limit_error(
    emu: EmulatorServer, make_client: ClientFactory
) -> None:
    client = make_client(emu.url, max_retries=1, backoff_factor=0.0)
    emu.admin.inject("integrations.list", 429, times=2, retry_after=0)
    with pytest.raises(RateLimitExceededError) as raised:
        client.get_cloud_integrations()
    assert raised.value.retry_after == 0
    assert emu.admin.counts() == {"integrations.list": 2}
    assert client.get_cloud_integrations() == []


def test_patch_bulk_failure_is_not_retried_and_changes_nothing(
    emu: EmulatorServer, client: EncordUserClient
) -> None:
    folder = client.create_storage_folder("f")
    (uuid,) = emu.admin.add_items(str(folder.uuid), [{"url": URL, "client_metadata": {"a": 1}}])
    item = client.get_storage_item(uuid)
    emu.admin.reset_counts()
    emu.admin.inject("items.patch_bulk", 503, times=1)
    with pytest.raises(UnknownException), Bundle() as bundle:
        item.update(client_metadata={"a": 2}, bundle=bundle)
    assert emu.admin.counts() == {"items.patch_bulk": 1}
    assert emu.admin.folder_items(str(folder.uuid))[0]["client_metadata"] == {"a": 1}


@pytest.mark.parametrize("route", ["folders.create", "upload_jobs.start", "datasets.create"])
def test_non_retried_posts_fail_after_one_request(
    emu: EmulatorServer, make_client: ClientFactory, route: str
) -> None:
    client = make_client(emu.url, backoff_factor=0.0)
    folder = client.create_storage_folder("f")
    integration = emu.admin.add_integration("s3")
    emu.admin.reset_counts()
    emu.admin.inject(route, 500, times=1)
    calls = {
        "folders.create": lambda: client.create_storage_folder("g"),
        "upload_jobs.start": lambda: folder.add_private_data_to_folder_start(
            integration, DataUploadItems(images=[DataUploadImage(object_url=URL)])
        ),
        "datasets.create": lambda: client.create_dataset(
            "ds", StorageLocation.AWS, create_backing_folder=False
        ),
    }
    with pytest.raises(UnknownException):
        calls[route]()
    assert emu.admin.counts() == {route: 1}
    assert emu.admin.folder_items(str(folder.uuid)) == []


def test_sdk_retries_get_after_503(emu: EmulatorServer, make_client: ClientFactory) -> None:
    client = make_client(emu.url, backoff_factor=0.0)
    emu.admin.inject("schema.get", 503, times=2)
    assert client.metadata_schema().keys() == []
    assert emu.admin.counts() == {"schema.get": 3}


def test_legacy_rpc_faults(emu: EmulatorServer, client: EncordUserClient) -> None:
    dataset = client.create_dataset("ds", StorageLocation.AWS, create_backing_folder=False)
    emu.admin.inject("datasets.get", 429, times=1, retry_after=0)
    emu.admin.inject("datasets.link_items", 503, times=1)
    ds = client.get_dataset(dataset.dataset_hash)  # the legacy GET is retried by the SDK
    with pytest.raises(UnknownException):
        ds.link_items([])
    assert emu.admin.counts()["datasets.get"] == 2
    assert emu.admin.counts()["datasets.link_items"] == 1


def test_slow_response(emu: EmulatorServer, client: EncordUserClient) -> None:
    """An injected delay holds the next request only (observed through the emulator's pause hook)."""
    paused: list[float] = []

    async def observe(seconds: float) -> None:
        paused.append(seconds)

    emu.emulator.pause = observe
    emu.admin.inject("integrations.list", 200, times=1, delay_s=0.4)
    assert client.get_cloud_integrations() == []
    assert paused == [0.4]
    assert client.get_cloud_integrations() == []
    assert paused == [0.4]
    assert emu.admin.counts() == {"integrations.list": 2}


def test_unknown_route_name_is_refused(emu: EmulatorServer) -> None:
    with pytest.raises(EmulatorAdminError, match=r"unknown route name 'items\.patchbulk'"):
        emu.admin.inject("items.patchbulk", 503)
    assert "items.patch_bulk" in emu.admin.routes()


def test_counts_reset_and_cleared_faults(emu: EmulatorServer, client: EncordUserClient) -> None:
    emu.admin.inject("integrations.list", 500, times=5)
    emu.admin.clear_faults()
    client.get_cloud_integrations()
    client.get_cloud_integrations()
    assert emu.admin.counts() == {"integrations.list": 2}
    emu.admin.reset_counts()
    assert emu.admin.counts() == {}
