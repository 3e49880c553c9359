"""More cases for the no-change fast path (:mod:`encord_ingest.scan.unchanged`): cases the differential
test in ``test_unchanged_replay.py`` does not cover. Each plans a tree, commits it, changes one
thing (files, prefixes, shards, commit results), then plans the same ledger with and without the
fast path: everything written must be identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from encord_ingest.grouping import GroupingConfig, GroupRule
from encord_ingest.ledger import item_urls_by_title
from encord_ingest.metadata import MetadataMapping
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.sources.filters import FilterConfig
from encord_ingest.sources.local import LocalSource
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, png, spy_replays, write_tree
from tests.planning.test_unchanged_replay import EPOCH_NS, _pin_times, _view

BASE = PlanningConfig(
    mapping=MetadataMapping(static={"layer": "static"}),
    grouping=GroupingConfig(groups=[GroupRule(folders="raw/f/seq-*")]),
    outcome_chunk_rows=5,
)
TREE: dict[str, Any] = {
    "raw/_defaults.yaml": "review.status: pending\n",
    "raw/metadata.csv": "file,capture.count\na/a1.jpg,3\nb/missing.jpg,4\n",
    "raw/a/_defaults.yaml": "layer: a\n",
    "raw/a/metadata.csv": "file,capture.count\na2.jpg,2\nsub/s1.jpg,9\nnot-here.jpg,1\n",
    "raw/a/a1.jpg": png(),
    "raw/a/a1.jpg.metadata.json": {"capture.site": "meta"},
    "raw/a/a2.jpg": png(),
    "raw/a/a2.yaml": "capture.site: a2-yaml\n",
    "raw/a/a3.jpg": png(),
    "raw/a/sub/s1.jpg": png(),
    "raw/a/sub/s1.jpg.json": {"capture.site": "s1"},
    "raw/a/sub/s2.jpg": png(),
    "raw/a/zz.jpg": png(),
    "raw/e/with space #1.jpg": png(),
    "raw/e/with space #1.jpg.json": {"capture.site": "space"},
    "raw/e/\u00fcn\u00efcode.jpg": png(),
    "raw/e/empty.jpg": b"",
    "raw/f/clip.jpg": png(),
    "raw/f/clip.png": png(),
    "raw/f/clip.json": {"capture.site": "shared"},
    "raw/f/seq-1.jpg": png(),
    "raw/f/seq-1.json": {"capture.site": "group and file"},
    "raw/f/seq-1/frame_1.jpg": png(),
    "raw/f/seq-1/frame_2.jpg": png(),
}


def _run(
    tmp_path: Path,
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    config: PlanningConfig = BASE,
    written: dict[str, Any] | None = None,
    deleted: tuple[str, ...] = (),
    prefixes: tuple[str, ...] = ("raw/",),
    shards: int = 1,
    uuids: bool = True,
    middle_run_failing: tuple[str, ...] | None = None,
) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """(folders the fast path took, fast view, slow view) of a replan after the change."""
    write_tree(data_root, TREE)
    _pin_times(data_root, EPOCH_NS)
    harness = Harness(LocalSource(data_root), BlobStore.from_uri(str(tmp_path / "state")), config=config)
    first = harness.plan("r1", shards=shards)
    titles = item_urls_by_title(first.frames)
    harness.commit(first, item_uuids={url: f"uuid-{t}" for t, url in titles.items()} if uuids else None)
    if written:
        write_tree(data_root, written)
        _pin_times(data_root, EPOCH_NS + 10**12, sorted(written))
    for key in deleted:
        (data_root / key).unlink()
    if middle_run_failing is not None:
        middle = harness.plan("r2", shards=shards)
        titles = item_urls_by_title(middle.frames)
        failed = [url for title, url in titles.items() if title in middle_run_failing]
        harness.commit(middle, failed_item_urls=failed)
    harness.prefixes = list(prefixes)
    taken = spy_replays(monkeypatch)
    slow = harness.plan("slow", replay_unchanged=False, shards=shards)
    fast = harness.plan("fast", shards=shards)
    return sorted(taken), _view(fast), _view(slow)


CASES: dict[str, dict[str, Any]] = {
    "nothing changed": {},
    "same size, new version": {"written": {"raw/a/a3.jpg": png()}},
    "metadata.json sidecar edited": {"written": {"raw/a/a1.jpg.metadata.json": {"capture.site": "m2"}}},
    "metadata.json sidecar added": {"written": {"raw/a/a3.jpg.metadata.json": {"capture.site": "m3"}}},
    "yaml stem sidecar edited": {"written": {"raw/a/a2.yaml": "capture.site: other\n"}},
    "yml sidecar added next to a yaml one": {"written": {"raw/a/a2.jpg.yml": "capture.site: yml\n"}},
    "grandparent table edited": {"written": {"raw/metadata.csv": "file,capture.count\na/a1.jpg,4\n"}},
    "grandparent table added": {
        "written": {"raw/metadata.tsv": "file\tcapture.count\na/a3.jpg\t5\n"},
    },
    "sub-folder item changed reads the parent's table": {
        "written": {"raw/a/sub/s1.jpg.json": {"capture.site": "s1-new"}},
    },
    "sidecar deleted": {"deleted": ("raw/a/a2.yaml",)},
    "encoded key's sidecar edited": {"written": {"raw/e/with space #1.jpg.json": {"capture.site": "x"}}},
    "no item uuids recorded": {"uuids": False},
    "provenance key": {"config": BASE.model_copy(update={"provenance_key": "prov"})},
    "three shards": {"shards": 3},
    "three shards, a sidecar edited": {"shards": 3, "written": {"raw/a/a2.yaml": "capture.site: s\n"}},
    "prefix run cutting a folder": {"prefixes": ("raw/a/a",)},
    "prefix run on a sub-folder": {"prefixes": ("raw/a/",)},
    "metadata sync failed in the run before": {
        "written": {"raw/a/a2.yaml": "capture.site: failed-sync\n"},
        "middle_run_failing": ("raw/a/a2.jpg",),
    },
    "registration failed in the run before": {
        "written": {"raw/a/a4.jpg": png()},
        "middle_run_failing": ("raw/a/a4.jpg",),
    },
    "group next to a data file sharing its sidecar changed": {"written": {"raw/f/seq-1/frame_3.jpg": png()}},
    "shared stem sidecar edited": {"written": {"raw/f/clip.json": {"capture.site": "shared2"}}},
    "anchored exclude glob, prefix run": {
        "config": BASE.model_copy(update={"filters": FilterConfig(exclude=["/*.jpg"])}),
        "prefixes": ("raw/a/",),
    },
    "anchored include glob, prefix run": {
        "config": BASE.model_copy(update={"filters": FilterConfig(include=["/a/**", "/e/**"])}),
        "prefixes": ("raw/a/",),
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_replay_matches_the_per_item_path(
    case: str, tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken, fast, slow = _run(tmp_path, data_root, monkeypatch, **CASES[case])
    print(case, "fast path took", taken)
    assert fast == slow
