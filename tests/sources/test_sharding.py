"""Shards cover every key exactly once, keep stem groups and folders whole, and carry context."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from standins import write_tree

from encord_ingest.sources import LocalSource, ObjectInfo, Shard, Source, folder_chain
from encord_ingest.sources.sharding import (
    StemGuard,
    find_folder_files,
    iter_shard,
    normalize_prefixes,
    plan_shards,
    stem,
)

SourceFactory = Callable[..., Source]


class Recording:
    """A spy around a real source: records which listings the planner asked for."""

    def __init__(self, source: Source):
        self.source = source
        self.scheme, self.bucket = source.scheme, source.bucket
        self.levels: list[str] = []
        self.listings: list[str] = []

    def iter_objects(
        self,
        prefix: str = "",
        start_after: str | None = None,
        end_before: str | None = None,
        *,
        start_at: str | None = None,
    ) -> Iterator[ObjectInfo]:
        self.listings.append(prefix)
        return self.source.iter_objects(prefix, start_after, end_before, start_at=start_at)

    def iter_level(self, prefix: str = "") -> Iterator[ObjectInfo | str]:
        self.levels.append(prefix)
        return self.source.iter_level(prefix)

    def head(self, key: str) -> ObjectInfo | None:
        return self.source.head(key)

    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        return self.source.read_bytes(key, max_bytes)

    def object_url(self, key: str) -> str:
        return self.source.object_url(key)


def wide_tree(cams: int = 12, clips: int = 5) -> dict[str, bytes]:
    objects = {"_defaults.yaml": b"a: 1", "metadata.csv": b"file\n", "top.jpg": b"x", "top.jpg.json": b"{}"}
    objects["cams/_defaults.yaml"] = b"b: 2"
    for cam in range(cams):
        folder = f"cams/cam{cam:02d}/"
        objects[folder + "_defaults.yaml"] = b"c: 3"
        for clip in range(clips):
            for suffix in (".mp4", ".mp4.json", ".json"):
                objects[f"{folder}clip{clip}{suffix}"] = b"v"
    objects["cams/seq01.json"] = b"{}"
    objects.update({f"cams/seq01/{frame:04d}.jpg": b"f" for frame in range(30)})
    return objects


def flat_tree(stems: int = 130) -> dict[str, bytes]:
    objects = {"flat/_defaults.yaml": b"d: 4", "flat/metadata.csv": b"file\n"}
    for index in range(stems):
        for suffix in (".jpg", ".jpg.json", ".json"):
            objects[f"flat/img{index}{suffix}"] = b"i"
    objects.update({"flat/clip": b"c", "flat/clip-2.jpg": b"c", "flat/clip.json": b"{}"})
    return objects


def keys_of(objects: Any) -> list[str]:
    return [info.key for info in objects]


def entries(key: str) -> list[str]:
    parts = key.split("/")
    return [part + "/" for part in parts[:-1]] + [parts[-1]]


def check_plan(source: Source, prefixes: list[str], shards: list[Shard], max_shards: int) -> dict[str, int]:
    """Every invariant of a plan; returns the owner shard of every key."""
    expected = [
        key for prefix in normalize_prefixes(prefixes) for key in keys_of(source.iter_objects(prefix))
    ]
    assert 1 <= len(shards) <= max_shards
    assert [shard.index for shard in shards] == list(range(len(shards)))
    assert {shard.count for shard in shards} == {len(shards)}
    owner: dict[str, int] = {}
    listed: list[str] = []
    for shard in shards:
        assert Shard.model_validate_json(shard.model_dump_json()) == shard
        shard_keys = keys_of(iter_shard(source, shard))
        listed.extend(shard_keys)
        owner.update(dict.fromkeys(shard_keys, shard.index))
    assert listed == expected  # every key exactly once, shards in key order
    for key in expected:
        assert [shard.index for shard in shards if shard.contains(key)] == [owner[key]]
    groups: dict[tuple[str, str], tuple[set[str], set[int]]] = defaultdict(lambda: (set(), set()))
    below: dict[str, set[int]] = defaultdict(set)
    for key in expected:
        path = entries(key)
        for level, entry in enumerate(path):
            members, owners = groups["".join(path[:level]), stem(entry)]
            members.add(entry)
            owners.add(owner[key])
        for folder in folder_chain(key):
            below[folder].add(owner[key])
    for (folder, group), (members, owners) in groups.items():
        if len(members) > 1:  # entries sharing a stem (a file and its sidecars, a frames folder)
            assert len(owners) == 1, (folder, group, members)
    for key in expected:
        context = shards[owner[key]].context_folders
        for folder in folder_chain(key):
            assert folder in context or below[folder] == {owner[key]}, (key, folder)
    return owner


def test_stem_guard_keeps_stem_groups_and_same_named_folders_together() -> None:
    sequence = [
        ("f/clip", True),
        ("f/clip-2.jpg", False),  # 'clip' may continue ('clip.json' does)
        ("f/clip.json", False),
        ("f/clip.mp4", False),
        ("f/clip.mp4.json", False),
        ("f/clip0.jpg", True),
        ("f/seq01.json", True),
        ("f/seq01/0001.jpg", False),  # the folder 'seq01/' has the stem of 'seq01.json'
        ("f/seq01/0002.jpg", False),  # nor is 'seq01/' cut inside: it is in a group with 'seq01.json'
        ("f/seq010.jpg", True),
        ("f/sub/1.jpg", True),
        ("f/sub/2.jpg", True),  # a plain folder may be cut between stem groups
        ("g/a.jpg", True),
        ("g/a.jpg.json", False),
        ("g/b.jpg", True),
        ("g/frame1.jpg", True),
        ("g/frame10.jpg", True),  # 'frame1' is closed once 'frame10' arrives
    ]
    guard = StemGuard()
    assert [(key, guard.allows_cut_before(key)) for key, _ in sequence] == sequence


def test_stem_guard_never_cuts_inside_keep_whole_folders() -> None:
    guard = StemGuard(keep_whole=lambda folder: folder == "f/seq01/")
    flags = [
        guard.allows_cut_before(k) for k in ("f/a.jpg", "f/seq01/0001.jpg", "f/seq01/0002.jpg", "f/z.jpg")
    ]
    assert flags == [True, True, False, True]


@pytest.mark.parametrize("max_shards", [2, 4, 7])
def test_counted_plan_on_a_wide_tree(make_source: SourceFactory, max_shards: int) -> None:
    source = make_source(wide_tree())
    shards = plan_shards(source, [""], max_shards)
    owner = check_plan(source, [""], shards, max_shards)
    assert len(shards) == max_shards
    counts = [list(owner.values()).count(shard.index) for shard in shards]
    assert counts == [shard.estimated_objects for shard in shards]  # counted: exact
    assert max(counts) <= 2 * len(owner) / max_shards


def test_counted_plan_splits_a_flat_folder_between_stem_groups(make_source: SourceFactory) -> None:
    source = make_source(flat_tree())
    shards = plan_shards(source, ["flat/"], 5)
    owner = check_plan(source, ["flat/"], shards, 5)
    assert len(shards) == 5
    assert len({owner["flat/clip"], owner["flat/clip-2.jpg"], owner["flat/clip.json"]}) == 1
    assert all("flat/" in shard.context_folders for shard in shards[1:])  # its defaults lie outside
    assert shards[1].parts[0].start_at is not None
    assert shards[1].parts[0].start_at.startswith("flat/img")


def test_fan_out_plan_cuts_between_whole_folders_only(make_source: SourceFactory) -> None:
    source = Recording(make_source(wide_tree(cams=40, clips=1)))
    shards = plan_shards(source, [""], 4, count_limit=100)
    owner = check_plan(source.source, [""], shards, 4)
    assert source.levels == ["", "cams/"]  # delimiter listings down to the fan-out depth only
    assert len(shards) == 4
    for folder in {key.rsplit("/", 1)[0] for key in owner if key.startswith("cams/cam")} | {"cams/seq01"}:
        assert len({owner[key] for key in owner if key.startswith(folder + "/")}) == 1, folder
    assert sum(shard.estimated_objects for shard in shards) == pytest.approx(len(owner), rel=0.2)


def test_over_the_limit_without_enough_folders_lists_everything(make_source: SourceFactory) -> None:
    source = Recording(make_source(flat_tree()))
    shards = plan_shards(source, ["flat/"], 4, count_limit=50)
    check_plan(source.source, ["flat/"], shards, 4)
    assert len(shards) == 4
    assert source.levels == []
    assert source.listings == ["flat/", "flat/"]


def test_keep_whole_folders_are_never_cut(make_source: SourceFactory) -> None:
    objects = {f"groups/g{group}/{frame:03d}.jpg": b"f" for group in range(3) for frame in range(40)}
    source = make_source(objects)
    shards = plan_shards(source, ["groups/"], 6, keep_whole=lambda folder: folder.startswith("groups/g"))
    owner = check_plan(source, ["groups/"], shards, 6)
    assert len(shards) == 3
    for group in range(3):
        assert len({owner[key] for key in owner if key.startswith(f"groups/g{group}/")}) == 1


def test_several_prefixes_are_normalised_and_covered(make_source: SourceFactory) -> None:
    objects = {f"raw/2024/01/{day:02d}/{n}.jpg": b"x" for day in range(1, 5) for n in range(10)}
    source = make_source(objects)
    prefixes = ["raw/2024/01/03/", "raw/2024/01/02/", "raw/2024/01/02/sub", "raw/2024/01/03/"]
    assert normalize_prefixes(prefixes) == ["raw/2024/01/02/", "raw/2024/01/03/"]
    shards = plan_shards(source, prefixes, 3)
    owner = check_plan(source, prefixes, shards, 3)
    assert sorted(owner) == sorted(k for k in objects if k.startswith(("raw/2024/01/02/", "raw/2024/01/03/")))
    assert {part.prefix for shard in shards for part in shard.parts} == {"raw/2024/01/02/", "raw/2024/01/03/"}


def test_one_shard_needs_no_listing_and_empty_prefixes_work(make_source: SourceFactory) -> None:
    source = Recording(make_source(wide_tree(cams=2)))
    [only] = plan_shards(source, ["cams/"], 1)
    assert source.listings == []
    assert source.levels == []
    assert only.model_dump() == {
        "index": 0,
        "count": 1,
        "parts": [{"prefix": "cams/", "start_at": None, "end_before": None}],
        "context_folders": [""],  # 'cams/' itself is inside the shard
        "estimated_objects": 0,  # not counted: nothing was listed
        "renderings_only": False,  # a run's own prefixes: every listed key is planned
    }
    [empty] = plan_shards(source.source, ["nothing/"], 8)
    assert keys_of(iter_shard(source.source, empty)) == []
    with pytest.raises(ValueError, match="max_shards must be at least 1"):
        plan_shards(source.source, [""], 0)


def test_find_folder_files_reads_ancestor_defaults(make_source: SourceFactory) -> None:
    source = make_source(wide_tree(cams=2))
    found = find_folder_files(
        source, ["", "cams/", "cams/cam01/", "missing/"], ["_defaults.yaml", "metadata.csv"]
    )
    assert keys_of(found) == [
        "_defaults.yaml",
        "cams/_defaults.yaml",
        "cams/cam01/_defaults.yaml",
        "metadata.csv",
    ]
    assert source.read_bytes("cams/_defaults.yaml") == b"b: 2"


def test_local_flat_folder_at_scale(tmp_path: Path) -> None:
    objects: Mapping[str, bytes] = {f"big/{index:05d}.jpg": b"" for index in range(2000)}
    write_tree(tmp_path, objects)
    source = LocalSource(tmp_path)
    shards = plan_shards(source, ["big/"], 8)
    assert len(shards) == 8
    counts = [sum(1 for _ in iter_shard(source, shard)) for shard in shards]
    assert sum(counts) == 2000
    assert counts == [shard.estimated_objects for shard in shards]
    assert max(counts) - min(counts) <= 2000 / 8 / 2
    assert len(shards[3].model_dump_json()) < 300
