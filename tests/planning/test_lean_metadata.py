"""The lean metadata path (``scan/lean.py``) gives the full path's plans, byte for byte.

Each tree is planned twice from an empty ledger, then again after a commit and edits: once as the
scanner runs (lean path where it applies) and once with the lean path switched off (every item
through ``ShardScanner._metadata``). Manifest chunks, metadata-change chunks and outcome tables
are compared as bytes / every column. Items outside the lean path's scope must still go the
full way, with their errors and warnings.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from encord_ingest.classify import FileKind
from encord_ingest.errors import ItemError
from encord_ingest.grouping import GroupingConfig, GroupRule, single_draft
from encord_ingest.metadata import MetadataMapping
from encord_ingest.probe import ProbeConfig
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.items import build_item, plain_entry
from encord_ingest.scan.lean import LeanMetadata
from encord_ingest.scan.scanner import ShardScanner
from encord_ingest.sources.base import ObjectInfo
from encord_ingest.sources.local import LocalSource
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, RunResult, png, write_tree
from tests.planning.test_plan_golden import EPOCH_NS, _pin_times, _tree


def _varied_tree() -> dict[str, Any]:
    """The golden tree plus what the lean path must get right on its own."""
    return {
        **_tree(),
        # nested values merged over nested defaults, a null opt-out inside an object
        "raw/nest/_defaults.yaml": "cam: {lens: 35, iso: 100}\nreview.status: approved\n",
        "raw/nest/n1.jpg": png(),
        "raw/nest/n1.jpg.json": {"cam": {"iso": None, "mode": "auto"}, "capture.count": 2.0},
        "raw/nest/n2.jpg": png(),
        "raw/nest/n2.jpg.yaml": "capture.time: 2026-01-02 03:04:05.250000+02:00\n",
        "raw/nest/n2.json": {"capture.count": 3, "capture.site": "stem"},
        "raw/nest/n3.jpg": png(),
        # a JSON Lines table with a duplicated row (that file fails) and nulls
        "raw/rows/metadata.jsonl": (
            '{"file": "p.png", "capture.count": 1, "layer": null}\n'
            '{"file": "q.png", "capture.count": 2}\n{"file": "q.png", "capture.count": 3}\n'
        ),
        "raw/rows/p.png": png(),
        "raw/rows/q.png": png(),
        "raw/rows/r.png": png(),
        "raw/rows/r.png.json": {"capture.count": 1e400},
        # defaults that fail to parse: every item below fails with that error (full path)
        "raw/broken/_defaults.yaml": "a: [unclosed\n",
        "raw/broken/s.jpg": png(),
        "raw/broken/t.jpg": png(),
        "raw/broken/t.jpg.json": {"capture.count": 1},
        # keyframes from a folder's defaults: fine on a video, an error on an image
        "raw/kf/_defaults.json": {"keyframes": [3, 1], "config": {"keyframe_mode": "frame"}},
        "raw/kf/v.mp4": b"not really a video",
        "raw/kf/i.jpg": png(),
        # a table row for a file that is not there, a too-long varchar, a bad enum, a bad datetime
        "raw/odd/metadata.csv": "file,capture.site,review.status\nu.jpg,  spaced  ,approved\nw.jpg,x,nope\n",
        "raw/odd/u.jpg": png(),
        "raw/odd/w.jpg": png(),
        "raw/odd/v.jpg": png(),
        "raw/odd/v.jpg.json": {"capture.time": "2026-13-40T10:00:00Z"},
        # an item too large for a 1 KiB manifest chunk ("reject" config), and a plain text item
        "raw/big/huge.jpg": png(),
        "raw/big/huge.jpg.json": {"capture.site": "x" * 1200},
        "raw/big/notes.txt": "some text",
        "raw/big/notes.txt.json": {"capture.site": "é ünïcode"},
    }


CONFIGS = {
    "golden": PlanningConfig(
        mapping=MetadataMapping(static={"layer": "static", "capture.site": "static-site"}),
        grouping=GroupingConfig(groups=[GroupRule(folders="raw/seq-*", create_video=True)]),
        manifest_max_items=4,
        metadata_chunk_rows=5,
        outcome_chunk_rows=7,
    ),
    "mapped": PlanningConfig(
        mapping=MetadataMapping(flatten=True, drop=["layer"], rename={"cam.lens": "lens"}, prefix="src"),
        unknown_keys="allow",
        provenance_key="provenance",
        metadata_root="raw/",
        sync_new_items=False,
    ),
    "reject": PlanningConfig(unknown_keys="reject", manifest_max_bytes=1024),
}


def _raw(harness: Harness, result: RunResult) -> dict[str, Any]:
    """Everything a plan wrote, as bytes or plain rows (the run folder's URIs left out)."""
    marker = f"runs/{result.run_id}/"
    store = harness.run_store(result.run_id)

    def blobs(name: str) -> list[bytes]:
        return [store.read_bytes(u.split(marker, 1)[1]) for s in result.summaries for u in s[name]]

    summaries = [{k: v for k, v in s.items() if not k.endswith(("_uris", "_uri"))} for s in result.summaries]
    return {
        "summaries": summaries,
        "manifests": blobs("manifest_uris"),
        "changes": blobs("metadata_uris"),
        "outcomes": result.outcomes.astype(object).where(result.outcomes.notna(), None).to_dict("records"),
    }


def _plans(root: Path, state: Path, config: PlanningConfig) -> list[dict[str, Any]]:
    harness = Harness(LocalSource(root), BlobStore.from_uri(str(state)), config=config)
    first = harness.plan("r1")
    harness.commit(first)
    write_tree(root, {"raw/nest/n1.jpg.json": {"cam": {"lens": 50}}, "raw/odd/metadata.csv": "file\nu.jpg\n"})
    _pin_times(root, EPOCH_NS + 10**12, ["raw/nest/n1.jpg.json", "raw/odd/metadata.csv"])
    second = harness.plan("r2", shards=2)
    return [_raw(harness, first), _raw(harness, second)]


def _plan_twice(tmp_path: Path, config: PlanningConfig, *, lean: bool) -> tuple[list[dict[str, Any]], int]:
    """The plans of the varied tree with or without the lean path, and the items it typed."""
    lean_items = []
    uids = iter(f"1.2.826.0.1.9.{n}" for n in range(100))
    real = LeanMetadata.metadata

    def counted(self: LeanMetadata, draft: Any, *args: Any) -> Any:
        found = real(self, draft, *args)
        if found is not None:
            lean_items.append(draft.title)
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("pydicom.uid.generate_uid", lambda *_args, **_kwargs: next(uids))
        patch.setattr(LeanMetadata, "metadata", counted)
        if not lean:
            patch.setattr(LeanMetadata, "layers", lambda *_args: None)
        root = tmp_path / "bucket"  # one root for both: URLs (and provenance) name it
        shutil.rmtree(root, ignore_errors=True)
        write_tree(root, _varied_tree())
        _pin_times(root, EPOCH_NS)
        return _plans(root, tmp_path / ("lean" if lean else "full") / "state", config), len(lean_items)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_lean_path_plans_exactly_what_the_full_path_plans(tmp_path: Path, name: str) -> None:
    lean, lean_items = _plan_twice(tmp_path, CONFIGS[name], lean=True)
    full, none = _plan_twice(tmp_path, CONFIGS[name], lean=False)
    assert lean_items > 20, lean_items
    assert none == 0
    for run, (lean_run, full_run) in enumerate(zip(lean, full, strict=True)):
        for part in ("summaries", "manifests", "changes", "outcomes"):
            assert lean_run[part] == full_run[part], f"run {run + 1}: {part} differ (lean, full)"


def test_items_outside_the_lean_scope_take_the_full_path_with_their_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full: list[str] = []
    real = ShardScanner._metadata

    def spied(self: ShardScanner, draft: Any, inputs: Any) -> Any:
        full.append(draft.title)
        return real(self, draft, inputs)

    monkeypatch.setattr(ShardScanner, "_metadata", spied)
    root = tmp_path / "bucket"
    write_tree(root, _varied_tree())
    result = Harness(
        LocalSource(root), BlobStore.from_uri(str(tmp_path / "state")), config=CONFIGS["golden"]
    ).plan("r1")
    # groups and series with a folder of their own, and the items of a folder whose defaults do
    # not parse
    assert sorted(full) == ["raw/broken/s.jpg", "raw/broken/t.jpg", "raw/seq-1", "raw/study/a", "raw/study/b"]
    for key in ("raw/broken/s.jpg", "raw/broken/t.jpg"):
        row = result.outcome(key)
        assert (row["outcome"], row["code"]) == ("failed", "invalid_yaml")
        assert "raw/broken/_defaults.yaml" in row["message"]
    assert result.outcome("raw/broken/t.jpg.json")["outcome"] == "sidecar"
    # lean items keep their errors and warnings too
    assert result.outcome("raw/rows/q.png")["code"] == "duplicate_table_row"
    assert result.outcome("raw/rows/r.png.json")["outcome"] == "failed"
    assert result.outcome("raw/kf/i.jpg")["code"] == "invalid_video_config"  # config sorts first
    assert "unknown" in (result.outcome("raw/day/a.jpg")["warning"] or "")


@pytest.mark.parametrize("kind", ["image", "video", "audio", "text", "pdf", "nifti"])
def test_a_plain_entry_is_the_entry_of_the_item_built(kind: str) -> None:
    info = ObjectInfo(key="a/x é.bin", size=3, version="v")
    draft = single_draft(info, FileKind(kind), [])
    urls, metadata = ["s3://b/a/x%20%C3%A9.bin"], {"k": [1, {"n": None}], "s": "é"}
    plain = plain_entry(draft, urls, metadata, ProbeConfig())
    item = build_item(draft, urls, metadata, LocalSource("/nonexistent"), ProbeConfig())
    assert not isinstance(item, ItemError)
    assert plain == (item.DOCS_KEY, item.to_docs())
    assert plain_entry(draft, urls, metadata, ProbeConfig(client_only=True)) is None


def test_a_failing_sidecar_read_fails_only_its_item_on_the_lean_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk cannot be made to fail a read here (the tests run as root): the source's read of
    one sidecar raises, as a vanished or unreadable file would."""
    real = LocalSource.read_bytes

    def flaky(self: LocalSource, key: str, max_bytes: int | None = None) -> bytes:
        if key == "raw/nest/n2.jpg.yaml":
            raise PermissionError(f"{key}: permission denied")
        return real(self, key, max_bytes)

    monkeypatch.setattr(LocalSource, "read_bytes", flaky)
    lean: list[str] = []
    metadata = LeanMetadata.metadata

    def counted(self: LeanMetadata, draft: Any, *args: Any) -> Any:
        found = metadata(self, draft, *args)
        if found is not None:
            lean.append(draft.title)
        return found

    monkeypatch.setattr(LeanMetadata, "metadata", counted)
    root = tmp_path / "bucket"
    write_tree(root, _varied_tree())
    result = Harness(LocalSource(root), BlobStore.from_uri(str(tmp_path / "state"))).plan("r1")
    assert "raw/nest/n2.jpg" in lean
    failed = result.outcome("raw/nest/n2.jpg")
    assert (failed["outcome"], failed["code"]) == ("failed", "read_failed")
    assert "permission denied" in failed["message"]
    assert result.outcome("raw/nest/n2.jpg.yaml")["outcome"] == "failed"
    assert result.outcome("raw/nest/n2.json")["outcome"] == "sidecar"  # read, but the item failed
    assert [result.outcome_of(key) for key in ("raw/nest/n1.jpg", "raw/nest/n3.jpg")] == ["new", "new"]
    summary = result.summaries[0]
    assert sum(summary["counts"].values()) == summary["objects"]
