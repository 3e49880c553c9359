"""Listing, reading and URLs on the three backends: moto S3 over HTTP, the GCS emulator, a directory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from standins import GcsEmulator, unique_bucket_name

from encord_ingest.sources import GCSSource, LocalSource, ObjectInfo, S3Source, Source

SourceFactory = Callable[..., Source]

# Keys chosen so that naive orderings disagree: '.' (0x2E) and '-' sort before '/' (0x2F), which
# sorts before digits; U+FF61 sorts before U+1F600 in UTF-8 (not in UTF-16).
ORDER_KEYS = [
    "a+",
    "a-b.jpg",
    "a.txt",
    "a/x.jpg",
    "a/y/z.jpg",
    "a0.jpg",
    "b c/d.jpg",
    "plus+sign.jpg",
    "z\uff61.jpg",
    "z\U0001f600.jpg",
]
AWKWARD_KEYS = [
    "dir with space/file name.jpg",
    "plus+sign.jpg",
    "percent%20literal.jpg",
    "hash#frag.jpg",
    "question?.jpg",
    "ünïcödé/日本語.jpg",
    "emoji😀.png",
    "a&b=c;d,e:f@g$h!i'j(k)l.jpg",
]


def keys_of(objects: Any) -> list[str]:
    return [info.key for info in objects]


def test_keys_come_in_utf8_byte_order(make_source: SourceFactory) -> None:
    source = make_source({key: b"x" for key in reversed(ORDER_KEYS)})
    listed = keys_of(source.iter_objects())
    assert listed == ORDER_KEYS
    assert listed == sorted(ORDER_KEYS, key=lambda key: key.encode("utf-8"))


def test_object_info_fields(make_source: SourceFactory) -> None:
    source = make_source({"d/a.bin": b"12345", "d/b.bin": b""})
    first, second = list(source.iter_objects("d/"))
    assert (first.key, first.size, second.size) == ("d/a.bin", 5, 0)
    assert first.version
    assert first.last_modified is not None
    assert first.last_modified.tzinfo is not None
    assert source.head("d/a.bin") == first


def test_pagination_over_more_than_a_thousand_keys(make_source: SourceFactory, backend: str) -> None:
    keys = [f"p/{index:05d}.jpg" for index in range(2345)]
    source = make_source(dict.fromkeys(keys, b""))
    assert keys_of(source.iter_objects("p/")) == keys
    if backend != "local":
        small_pages = make_source(dict.fromkeys(keys[:250], b""), page_size=100)
        assert keys_of(small_pages.iter_objects()) == keys[:250]


def test_s3_listing_fetches_at_most_one_page_ahead(s3_endpoint: str) -> None:
    from standins import s3_client, seed_s3

    name = unique_bucket_name()
    seed_s3(name, {f"k/{index:04d}": b"" for index in range(2500)})
    calls: list[dict[str, Any]] = []
    client = s3_client(s3_endpoint)
    client.meta.events.register("before-call.s3.ListObjectsV2", lambda params, **_: calls.append(params))
    stream = S3Source(client, name).iter_objects("k/")
    assert [next(stream).key for _ in range(1001)][-1] == "k/1000"
    assert 2 <= len(calls) <= 3  # the second page is in use, the third at most requested
    assert sum(1 for _ in stream) == 1499
    assert len(calls) == 3
    stopped = list(S3Source(client, name).iter_objects("k/", end_before="k/0010"))
    assert len(stopped) == 10
    assert len(calls) == 4  # the first page holds the bound: no page past it is requested


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"prefix": "a"}, ["a+", "a-b.jpg", "a.txt", "a/x.jpg", "a/y/z.jpg", "a0.jpg"]),
        ({"prefix": "a/"}, ["a/x.jpg", "a/y/z.jpg"]),
        ({"prefix": "a/y"}, ["a/y/z.jpg"]),
        ({"prefix": "nothing/"}, []),
        ({"start_after": "a.txt"}, ORDER_KEYS[3:]),
        ({"start_at": "a.txt"}, ORDER_KEYS[2:]),
        ({"start_at": "a/"}, ORDER_KEYS[3:]),
        ({"end_before": "a/"}, ORDER_KEYS[:3]),
        ({"end_before": "a/y/z.jpg"}, ORDER_KEYS[:4]),
        ({"prefix": "a", "start_at": "a/", "end_before": "a0"}, ["a/x.jpg", "a/y/z.jpg"]),
        ({"start_after": "a/x.jpg", "start_at": "a.txt"}, ORDER_KEYS[4:]),
        ({"start_at": "z\uff61.jpg", "end_before": "z\U0001f600.jpg"}, ["z\uff61.jpg"]),
    ],
)
def test_bounds(make_source: SourceFactory, kwargs: dict[str, str], expected: list[str]) -> None:
    source = make_source(dict.fromkeys(ORDER_KEYS, b"x"))
    assert keys_of(source.iter_objects(**kwargs)) == expected


def test_gcs_bounds_are_checked_client_side_because_the_emulator_ignores_offsets(gcs: GcsEmulator) -> None:
    name = unique_bucket_name()
    gcs.seed(name, dict.fromkeys(ORDER_KEYS, b"x"))
    raw = [blob.name for blob in gcs.client().list_blobs(name, start_offset="a/", end_offset="a0")]
    assert raw == ORDER_KEYS  # the emulator returns everything
    assert keys_of(GCSSource(gcs.client(), name).iter_objects(start_at="a/", end_before="a0")) == [
        "a/x.jpg",
        "a/y/z.jpg",
    ]


def test_iter_level(make_source: SourceFactory) -> None:
    source = make_source(dict.fromkeys(ORDER_KEYS, b"x"))
    level = [entry if isinstance(entry, str) else entry.key for entry in source.iter_level("")]
    assert level == [
        "a+",
        "a-b.jpg",
        "a.txt",
        "a/",
        "a0.jpg",
        "b c/",
        "plus+sign.jpg",
        "z\uff61.jpg",
        "z\U0001f600.jpg",
    ]
    assert [e if isinstance(e, str) else e.key for e in source.iter_level("a/")] == ["a/x.jpg", "a/y/"]
    assert [e if isinstance(e, str) else e.key for e in source.iter_level("a")] == [
        "a+",
        "a-b.jpg",
        "a.txt",
        "a/",
        "a0.jpg",
    ]
    assert all(isinstance(e, ObjectInfo) for e in source.iter_level("a/y/"))


def test_read_bytes_full_ranged_empty_and_missing(make_source: SourceFactory) -> None:
    source = make_source({"f/data.bin": b"0123456789", "f/empty.bin": b""})
    assert source.read_bytes("f/data.bin") == b"0123456789"
    assert source.read_bytes("f/data.bin", max_bytes=4) == b"0123"
    assert source.read_bytes("f/data.bin", max_bytes=100) == b"0123456789"
    assert source.read_bytes("f/data.bin", max_bytes=0) == b""
    assert source.read_bytes("f/empty.bin") == b""
    assert source.read_bytes("f/empty.bin", max_bytes=8) == b""
    with pytest.raises(FileNotFoundError, match=r"f/missing\.bin does not exist"):
        source.read_bytes("f/missing.bin")
    assert source.head("f/missing.bin") is None


def test_awkward_keys_written_over_http_list_read_and_encode(
    backend: str, s3: Any, gcs: GcsEmulator, tmp_path: Any
) -> None:
    """Awkward keys go through each backend's real write path, not the in-process seeding."""
    name = unique_bucket_name()
    if backend == "s3":
        s3.create_bucket(Bucket=name)
        for key in AWKWARD_KEYS:
            s3.put_object(Bucket=name, Key=key, Body=key.encode())
        source: Any = S3Source(s3, name, region="eu-west-1")
        base = f"https://{name}.s3.eu-west-1.amazonaws.com/"
    elif backend == "gcs":
        client = gcs.client()
        bucket = client.create_bucket(name)
        for key in AWKWARD_KEYS:
            bucket.blob(key).upload_from_string(key.encode())
        source = GCSSource(client, name)
        base = f"https://storage.cloud.google.com/{name}/"
    else:
        for key in AWKWARD_KEYS:
            path = tmp_path.joinpath(*key.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(key.encode())
        source = LocalSource(tmp_path)
        base = f"file://{tmp_path.resolve().as_posix()}/"
    assert keys_of(source.iter_objects()) == sorted(AWKWARD_KEYS)
    for key in AWKWARD_KEYS:
        assert source.read_bytes(key) == key.encode()
        assert source.head(key) is not None
    assert source.object_url("dir with space/file name.jpg") == base + "dir%20with%20space/file%20name.jpg"
    assert source.object_url("hash#frag.jpg") == base + "hash%23frag.jpg"
    assert (
        source.object_url("ünïcödé/日本語.jpg")
        == base + "%C3%BCn%C3%AFc%C3%B6d%C3%A9/%E6%97%A5%E6%9C%AC%E8%AA%9E.jpg"
    )


def test_url_template_override(make_source: SourceFactory) -> None:
    source = make_source({"a b.jpg": b""}, url_style="https://cdn.example.com/{key}")
    assert source.object_url("a b.jpg") == "https://cdn.example.com/a%20b.jpg"


def test_s3_region_comes_from_the_client(s3: Any) -> None:
    source = S3Source(s3, "some-bucket")
    assert source.object_url("k.jpg") == "https://some-bucket.s3.us-east-1.amazonaws.com/k.jpg"


def test_local_source_skips_what_cannot_be_a_key(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    import os

    (tmp_path / "ok.jpg").write_bytes(b"x")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "in.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "real", tmp_path / "linked-dir")
    os.symlink(tmp_path / "ok.jpg", tmp_path / "linked.jpg")
    os.mkfifo(tmp_path / "pipe")
    bad = os.fsencode(tmp_path) + b"/bad\xff.jpg"
    with open(bad, "wb") as handle:
        handle.write(b"x")
    source = LocalSource(tmp_path)
    with caplog.at_level("WARNING"):
        assert keys_of(source.iter_objects()) == ["linked.jpg", "ok.jpg", "real/in.jpg"]
    assert "not valid UTF-8" in caplog.text
    with pytest.raises(ValueError, match="not a valid key"):
        source.read_bytes("../etc/passwd")
    assert source.head("../etc/passwd") is None


def test_local_walk_applies_every_bound_exactly(tmp_path: Any) -> None:
    """The local walk checks bounds key by key only in the directories they cut (no client-side
    filter after it): every combination of bounds lists exactly the keys they select."""
    from itertools import product

    from standins import write_tree

    from encord_ingest.sources.base import KeyBounds

    keys = sorted([*ORDER_KEYS, "a/y/w/v.jpg", "a/y0.jpg", "a/yz/q.jpg", "b c/e/f.jpg", "b.jpg"])
    write_tree(tmp_path, dict.fromkeys(keys, b"x"))
    source = LocalSource(tmp_path)
    marks = [None, "", "a", "a/", "a/y", "a/y/", "a/y/w/", "a/y/z.jpg", "a/y0", "a0", "b c/", "b c/e/", "z"]
    for prefix, start_after, start_at, end_before in product(
        ["", "a", "a/", "a/y", "b c/"], marks, marks, marks
    ):
        bounds = KeyBounds(prefix or "", start_after, end_before, start_at)
        expected = [key for key in keys if key in bounds]
        listed = keys_of(source.iter_objects(prefix or "", start_after, end_before, start_at=start_at))
        assert listed == expected, bounds


def test_object_info_built_the_fast_way_is_an_object_info() -> None:
    """object_info (what the local walk builds) gives the very ObjectInfo the constructor gives:
    equal, same hash and repr, still frozen."""
    import dataclasses
    from datetime import UTC, datetime

    from encord_ingest.sources.base import object_info

    when = datetime(2026, 12, 3, tzinfo=UTC)
    for args in (("a/b.jpg", 5, "v1", when), ("c", 0, "")):
        fast, plain = object_info(*args), ObjectInfo(*args)
        assert type(fast) is ObjectInfo
        assert (fast, hash(fast), repr(fast)) == (plain, hash(plain), repr(plain))
        assert dataclasses.astuple(fast) == dataclasses.astuple(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.key = "x"  # type: ignore[misc]
