"""The no-change fast path (:mod:`encord_ingest.scan.unchanged`) writes exactly what the per-item
path writes, and only for folders where nothing that path looks at changed.

Each case plans a tree, commits it, changes one thing, then plans the same ledger twice: with the
fast path and without it. Outputs (summaries, outcome rows in order with every column, metadata
changes, manifests) must be identical, and the folders the fast path took must be exactly the
expected ones (so a check that let a changed folder through fails the comparison, and a check
that refused everything fails the folder list).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from encord_ingest.grouping import GroupingConfig, GroupRule
from encord_ingest.ledger import item_urls_by_title
from encord_ingest.metadata import MetadataMapping
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.schema import parse_schema
from encord_ingest.sources.filters import FilterConfig
from encord_ingest.sources.local import LocalSource
from encord_ingest.storage import BlobStore
from tests.planning.helpers import SCHEMA, Harness, RunResult, png, spy_replays, write_tree

SCHEMA_KEYS = SCHEMA.to_dict()["keys"]
EPOCH_NS = 1_764_000_000_000_000_000
CONFIG = PlanningConfig(
    mapping=MetadataMapping(static={"layer": "static"}),
    grouping=GroupingConfig(groups=[GroupRule(folders="raw/seq-*")]),
    outcome_chunk_rows=6,
    metadata_chunk_rows=3,
    manifest_max_items=3,
)
TREE: dict[str, Any] = {
    "_defaults.yaml": "capture.camera: root-cam\n",
    "raw/_defaults.yaml": "review.status: pending\n",
    "raw/a/_defaults.yaml": "layer: a-defaults\n",
    "raw/a/metadata.csv": "file,capture.count\na1.jpg,1\na2.jpg,2\n",
    "raw/a/a1.jpg": png(),
    "raw/a/a1.jpg.json": {"capture.site": "a1"},
    "raw/a/a2.jpg": png(),
    "raw/a/a2.json": {"capture.site": "a2-stem"},
    "raw/a/a3.jpg": png(),
    "raw/a/.DS_Store": b"x",
    "raw/a/sub/s1.jpg": png(),
    "raw/a/sub/s1.jpg.yaml": "capture.site: s1\n",
    "raw/a/sub/s2.jpg": png(),
    "raw/b/b1.jpg": png(),
    "raw/b/b1.jpg.json": {"capture.count": 7},
    "raw/b/b2.png": png(),
    "raw/c/c1.jpg": png(),
    "raw/c/orphan.json": {"capture.count": 1},
    "raw/seq-1/frame_1.jpg": png(),
    "raw/seq-1/frame_2.jpg": png(),
}


def _pin_times(root: Path, start: int, keys: list[str] | None = None) -> None:
    paths = sorted(p for p in root.rglob("*") if p.is_file()) if keys is None else [root / k for k in keys]
    for index, path in enumerate(paths):
        os.utime(path, ns=(start + index * 1000, start + index * 1000))


def _value(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _view(result: RunResult) -> dict[str, Any]:
    """Everything a plan wrote, independent of its run id."""
    summaries = [
        {k: v for k, v in summary.items() if not k.endswith("_uris") and k not in ("summary_uri", "run_id")}
        for summary in result.summaries
    ]
    rows = [
        {name: _value(value) for name, value in row.items()} for row in result.outcomes.to_dict("records")
    ]
    return {
        "summaries": summaries,
        "outcomes": rows,
        "changes": [change.model_dump(mode="json") for change in result.changes],
        "manifests": [manifest.to_bytes() for manifest in result.manifests],
        "outcome_chunks": [len(summary["outcome_uris"]) for summary in result.summaries],
    }


A_SUB_B = ["raw/a/", "raw/a/sub/", "raw/b/"]
"""The folders the fast path takes when nothing changed (``raw/c/`` has an orphan sidecar,
``raw/seq-1/`` is an image group, ``raw/`` and the root hold no data file)."""
CASES: dict[str, tuple[dict[str, Any], list[str], list[str], dict[str, Any]]] = {
    # case: (files written, files deleted, folders the fast path takes, plan options)
    "nothing changed": ({}, [], A_SUB_B, {}),
    "a per-file sidecar edited": (
        {"raw/a/a1.jpg.json": {"capture.site": "x"}},
        [],
        ["raw/a/sub/", "raw/b/"],
        {},
    ),
    "a stem sidecar edited": ({"raw/a/a2.json": {"capture.site": "y"}}, [], ["raw/a/sub/", "raw/b/"], {}),
    "a sidecar added": ({"raw/b/b2.png.json": {"capture.count": 3}}, [], ["raw/a/", "raw/a/sub/"], {}),
    "a sidecar deleted": ({}, ["raw/a/sub/s1.jpg.yaml"], ["raw/a/", "raw/b/"], {}),
    "a data file added": ({"raw/b/b3.jpg": png()}, [], ["raw/a/", "raw/a/sub/"], {}),
    "a data file deleted": ({}, ["raw/b/b2.png"], ["raw/a/", "raw/a/sub/"], {}),
    "a data file rewritten": ({"raw/a/sub/s2.jpg": png(5, 5)}, [], ["raw/a/", "raw/b/"], {}),
    "an unknown file added": ({"raw/b/notes.bin": b"x"}, [], ["raw/a/", "raw/a/sub/"], {}),
    "parent defaults edited": ({"raw/a/_defaults.yaml": "layer: a2\n"}, [], ["raw/b/"], {}),
    "parent defaults added": ({"raw/a/_defaults.json": {"layer": "j"}}, [], ["raw/b/"], {}),
    "root defaults deleted": ({}, ["_defaults.yaml"], [], {}),
    "parent table edited": ({"raw/a/metadata.csv": "file,capture.count\na1.jpg,5\n"}, [], ["raw/b/"], {}),
    "schema changed": (
        {},
        [],
        [],
        {"schema": parse_schema({"keys": {**SCHEMA_KEYS, "x.y": "varchar"}}, file="s")},
    ),
    "mapping changed": ({}, [], [], {"config": CONFIG.model_copy(update={"mapping": MetadataMapping()})}),
    "filters changed": (
        {},
        [],
        [],
        {"config": CONFIG.model_copy(update={"filters": FilterConfig(exclude=["*.bin"])})},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_fast_path_writes_what_the_per_item_path_writes_for_the_folders_it_takes(
    case: str, tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written, deleted, expected, options = CASES[case]
    write_tree(data_root, TREE)
    _pin_times(data_root, EPOCH_NS)
    harness = Harness(LocalSource(data_root), BlobStore.from_uri(str(tmp_path / "state")), config=CONFIG)
    first = harness.plan("r1")
    titles = item_urls_by_title(first.frames)
    harness.commit(first, item_uuids={url: f"uuid-{title}" for title, url in sorted(titles.items())})
    if written:
        write_tree(data_root, written)
        _pin_times(data_root, EPOCH_NS + 10**12, sorted(written))
    for key in deleted:
        (data_root / key).unlink()

    taken = spy_replays(monkeypatch)
    slow = harness.plan("slow", replay_unchanged=False, **options)
    assert taken == []
    fast = harness.plan("fast", **options)
    assert sorted(taken) == expected
    assert _view(fast) == _view(slow)
    if case == "nothing changed":
        assert set(fast.outcomes["outcome"]) >= {"unchanged", "sidecar", "skipped"}


def test_a_replayed_folder_still_reports_the_unmatched_rows_of_its_table_read_in_another_shard(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two shards cut ``raw/t/``: its table lies in the first, half its items in the second. A
    changed item of ``raw/t/sub/`` makes the second shard read the table; the replayed ``raw/t/``
    of that shard puts the table's unmatched rows in its summary, as the per-item path does."""
    tree: dict[str, Any] = {"raw/t/metadata.csv": "file,capture.count\nn1.jpg,1\nmissing.jpg,2\nsub,3\n"}
    tree.update({f"raw/t/n{i}.jpg": png() for i in range(1, 7)})
    tree.update(
        {"raw/t/a.jpg": png(), "raw/t/sub/s.jpg": png(), "raw/t/sub/s.jpg.json": {"capture.site": "a"}}
    )
    write_tree(data_root, tree)
    harness = Harness(LocalSource(data_root), BlobStore.from_uri(str(tmp_path / "state")))
    harness.commit(harness.plan("r1", shards=2))
    write_tree(data_root, {"raw/t/sub/s.jpg.json": {"capture.site": "b"}})

    taken = spy_replays(monkeypatch)
    slow = harness.plan("slow", shards=2, replay_unchanged=False)
    fast = harness.plan("fast", shards=2)
    assert taken == ["raw/t/", "raw/t/"]
    assert fast.summaries[1]["table_warnings"]  # the case this test is about
    assert _view(fast) == _view(slow)
