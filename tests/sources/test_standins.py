"""The stand-ins themselves: seeding in-process is visible over HTTP; state is reset on exit."""

from __future__ import annotations

import os

import pytest
from standins import gcs_emulator, moto_s3_server, s3_client, seed_s3


def test_moto_seeding_is_served_over_http_and_reset_on_exit() -> None:
    with moto_s3_server() as endpoint:
        assert endpoint.startswith("http://127.0.0.1:")
        assert seed_s3("seeded-bucket", {"a.jpg": b"abc", "b/c.jpg": b""}) == 2
        client = s3_client(endpoint)
        listed = client.list_objects_v2(Bucket="seeded-bucket")["Contents"]
        assert [(o["Key"], o["Size"]) for o in listed] == [("a.jpg", 3), ("b/c.jpg", 0)]
        assert client.get_object(Bucket="seeded-bucket", Key="a.jpg")["Body"].read() == b"abc"
    with moto_s3_server() as endpoint:
        assert s3_client(endpoint).list_buckets()["Buckets"] == []


def test_gcs_emulator_sets_and_restores_the_env_var() -> None:
    before = os.environ.get("STORAGE_EMULATOR_HOST")
    with gcs_emulator() as emulator:
        assert os.environ["STORAGE_EMULATOR_HOST"] == emulator.endpoint
        assert emulator.seed("seeded", {"x/y.txt": b"hello"}) == 1
        blob = emulator.client().bucket("seeded").get_blob("x/y.txt")
        assert blob is not None
        assert blob.size == 5
        assert blob.download_as_bytes() == b"hello"
    assert os.environ.get("STORAGE_EMULATOR_HOST") == before


def test_the_gcs_emulator_pages_listings_in_name_order_like_gcs() -> None:
    with gcs_emulator() as emulator:
        names = [f"a/{i:04d}" for i in range(2100)] + [f"b/{i}/x" for i in range(5)] + ["c"]
        emulator.seed("paged", {name: b"x" for name in reversed(names)})  # stored out of order
        client = emulator.client()
        pages = [[blob.name for blob in page] for page in client.list_blobs("paged").pages]
        assert [len(page) for page in pages] == [1000, 1000, 106]  # GCS's default page: 1000
        assert [name for page in pages for name in page] == sorted(names)
        # Items and prefixes share a page's maxResults, in one name order.
        level = client.list_blobs("paged", delimiter="/", page_size=2)
        entries = [(sorted(page.prefixes), [blob.name for blob in page]) for page in level.pages]
        assert entries == [(["a/", "b/"], []), ([], ["c"])]


def test_a_gcs_emulators_client_reaches_it_whatever_the_env_var_says(monkeypatch: pytest.MonkeyPatch) -> None:
    # A test that patched STORAGE_EMULATOR_HOST to an emulator that has since stopped once sent
    # every later test of the session to a dead port.
    with gcs_emulator() as emulator:
        emulator.seed("reached", {"k": b"v"})
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # nothing listens there
        assert emulator.client().bucket("reached").blob("k").download_as_bytes() == b"v"
