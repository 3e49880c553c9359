"""More cases for the lean metadata path: inputs the differential test in ``test_lean_metadata.py``
does not cover, planned with the lean path and with it switched off (the full path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from encord_ingest.grouping import GroupingConfig, GroupRule
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.lean import LeanMetadata
from encord_ingest.sources.local import LocalSource
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, png, write_tree
from tests.planning.test_unchanged_replay import EPOCH_NS, _pin_times, _view

OUTSIDE_ROOT: dict[str, Any] = {
    "raw/_defaults.yaml": "review.status: pending\n",
    "raw/a/_defaults.yaml": "layer: a\n",
    "raw/a/x.jpg": png(),
    "raw/b/b1.jpg": png(),
    "raw/b/b1.jpg.json": {"capture.site": "b"},
    "raw/f/seq-1.json": {"capture.site": "group"},
    "raw/f/seq-1/frame_1.jpg": png(),
    "raw/f/seq-1/frame_2.jpg": png(),
}


def _plan(tmp_path: Path, tree: dict[str, Any], config: PlanningConfig, *, lean: bool) -> dict[str, Any]:
    root = tmp_path / "bucket"  # one root for both plans: URLs name it
    write_tree(root, tree)
    _pin_times(root, EPOCH_NS)
    state = tmp_path / ("lean" if lean else "full")
    with pytest.MonkeyPatch.context() as patch:
        if not lean:
            patch.setattr(LeanMetadata, "layers", lambda *_args: None)
        return _view(Harness(LocalSource(root), BlobStore.from_uri(str(state)), config=config).plan("r1"))


def test_items_listed_above_the_metadata_root_plan_without_folder_layers(tmp_path: Path) -> None:
    """``metadata_root`` below the listed prefix: items outside it (a single file, an image group
    with a folder of its own, which always takes the full path) get no folder defaults; the full
    path raised ``ValueError: ... is not below root`` and failed the whole shard."""
    config = PlanningConfig(
        metadata_root="raw/a/", grouping=GroupingConfig(groups=[GroupRule(folders="raw/f/seq-*")])
    )
    lean = _plan(tmp_path, OUTSIDE_ROOT, config, lean=True)
    full = _plan(tmp_path, OUTSIDE_ROOT, config, lean=False)
    assert lean == full
    changes = {c["object_url"].rsplit("/bucket/", 1)[1]: c["metadata"] for c in full["changes"]}
    assert changes == {
        "raw/a/x.jpg": {"layer": "a"},
        "raw/b/b1.jpg": {"capture.site": "b"},
        "raw/f/seq-1/frame_1.jpg": {"capture.site": "group"},
    }
