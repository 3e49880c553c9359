"""The planner's output, byte for byte, on a varied tree: a golden file guards refactors of the hot path.

Three plans (empty ledger; no change after the commit; after edits) of a tree with every layer
kind (static, defaults in YAML and JSON, CSV and JSONL tables, per-file JSON and YAML, ``null``
opt-outs), groups, a DICOM series, an image sequence with its order, unknown keys (warnings),
per-item failures and rule skips. Their manifests and metadata-change chunks (bytes), outcome rows
(every column: fingerprints, sidecar versions, metadata hashes) and summary counts must equal
``golden/plan_local.json``. File times are fixed, so versions are too; the tree's root in URLs
is written ``ROOT``.

Regenerate (only for an intended change of the output, saying why in the commit):
``UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/planning/test_plan_golden.py``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from encord_ingest.grouping import GroupingConfig, GroupRule
from encord_ingest.ledger import item_urls_by_title
from encord_ingest.metadata import MetadataMapping
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.sources.local import LocalSource
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, RunResult, dicom, png, write_tree

GOLDEN = Path(__file__).parent / "golden" / "plan_local.json"
EPOCH_NS = 1_764_000_000_000_000_000
S1, S2 = "1.2.826.0.1.3680043.1", "1.2.826.0.1.3680043.2"


def _tree() -> dict[str, Any]:
    return {
        "_defaults.yaml": "layer: root-defaults\ncapture.camera: root-cam\n",
        "raw/_defaults.yaml": "layer: raw-defaults\nreview.status: pending\n",
        "raw/day/_defaults.json": {"layer": "day-defaults", "extra.note": "kept, unknown"},
        "raw/day/metadata.csv": "file,layer,capture.count\na.jpg,table,5\nb.jpg,table-b,\nmissing.jpg,x,1\n",
        "raw/day/a.jpg": png(),
        "raw/day/a.jpg.json": {"layer": "file-json", "capture.time": "2026-11-20T10:00:00+01:00"},
        "raw/day/a.json": {"layer": "stem", "capture.count": 9},
        "raw/day/b.jpg": png(),
        "raw/day/c.jpg": png(),
        "raw/day/c.jpg.yaml": "capture.camera: null\n",
        "raw/day/d.jpg": png(5, 5),
        "raw/day/d.jpg.json": {"capture.count": "many"},
        "raw/day/e.jpg": png(),
        "raw/day/e.jpg.json": "{not json",
        "raw/day/clip.mp4": b"not really a video",
        "raw/day/clip.mp4.json": {"keyframes": [5, 1, 5], "config": {"sampling_rate": 2}},
        "raw/day/k.jpg": png(),
        "raw/day/k.jpg.json": {"keyframes": [1]},
        "raw/day/orphan.json": {"capture.count": 1},
        "raw/day/.DS_Store": b"x",
        "raw/day/blob.bin": b"x",
        "raw/day/empty.jpg": b"",
        "raw/jl/metadata.jsonl": '{"file": "x.png", "capture.count": 3, "capture.site": "jsonl"}\n',
        "raw/jl/x.png": png(),
        "raw/jl/y.png": png(),
        "raw/metadata.csv": "file,capture.count\nseq-1,2\n",
        "raw/seq-1.json": {"layer": "group-sidecar"},
        "raw/seq-1/_defaults.yaml": "layer: group-defaults\nreview.status: approved\n",
        "raw/seq-1/frame_10.jpg": png(),
        "raw/seq-1/frame_2.jpg": png(),
        "raw/seq-1/frame_1.jpg": png(),
        "raw/seq-1/frame_1.jpg.json": {"layer": "ignored"},
        "raw/g/metadata.csv": "file,order\nb.png,1\nc.png,2\na.png,3\n",
        "raw/g/a.png": png(),
        "raw/g/b.png": png(),
        "raw/g/c.png": png(),
        "raw/study/a/1.dcm": dicom(S1, 2),
        "raw/study/a/2.dcm": dicom(S2, 1),
        "raw/study/a/3.dcm": dicom(S1, 1, pad=2000),
        "raw/study/b/broken.dcm": b"\x00" * 300,
        "raw/z/é name.jpg": png(),
        "raw/z/é name.jpg.json": {"capture.site": "unicode", "review.status": "nope"},
    }


def _pin_times(root: Path, start: int, keys: list[str] | None = None) -> None:
    paths = sorted(p for p in root.rglob("*") if p.is_file()) if keys is None else [root / k for k in keys]
    for index, path in enumerate(paths):
        os.utime(path, ns=(start + index * 1000, start + index * 1000))


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _snapshot(result: RunResult, root: str) -> dict[str, Any]:
    run_store = f"runs/{result.run_id}/"
    summaries = [
        {k: v for k, v in s.items() if not k.endswith("_uris") and k != "summary_uri"}
        for s in result.summaries
    ]
    rows = [
        {name: _clean(value) for name, value in row.items()} for row in result.outcomes.to_dict("records")
    ]
    text = json.dumps(
        {
            "summaries": summaries,
            "manifests": [m.to_bytes().decode() for m in result.manifests],
            "chunks": [uri.split(run_store, 1)[1] for s in result.summaries for uri in s["manifest_uris"]],
            "changes": [c.model_dump(mode="json") for c in result.changes],
            "outcomes": rows,
        },
        ensure_ascii=False,
        sort_keys=True,
        indent=1,
        default=str,
    )
    return dict(json.loads(text.replace(root, "ROOT")))


def test_plans_are_byte_identical_to_the_golden_file(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uids = iter(f"1.2.826.0.1.9.{n}" for n in range(100))
    monkeypatch.setattr("pydicom.uid.generate_uid", lambda *_args, **_kwargs: next(uids))
    write_tree(data_root, _tree())
    _pin_times(data_root, EPOCH_NS)
    config = PlanningConfig(
        mapping=MetadataMapping(static={"layer": "static", "capture.site": "static-site"}),
        grouping=GroupingConfig(groups=[GroupRule(folders="raw/seq-*", create_video=True)]),
        manifest_max_items=4,
        metadata_chunk_rows=5,
        outcome_chunk_rows=7,
    )
    harness = Harness(LocalSource(data_root), BlobStore.from_uri(str(tmp_path / "state")), config=config)
    root = "file://" + data_root.resolve().as_posix()
    plans = {}
    first = harness.plan("r1")
    plans["r1"] = _snapshot(first, root)
    titles = item_urls_by_title(first.frames)
    harness.commit(first, item_uuids={url: f"uuid-{title}" for title, url in sorted(titles.items())})
    second = harness.plan("r2", shards=2)
    plans["r2"] = _snapshot(second, root)
    harness.commit(second)
    edits = {
        "raw/day/a.jpg.json": {"layer": "file-json-2"},
        "raw/jl/metadata.jsonl": '{"file": "x.png", "capture.count": 4}\n',
        "raw/jl/y.png": png(6, 6),
        "raw/new/n.jpg": png(),
    }
    write_tree(data_root, edits)
    (data_root / "raw/day/c.jpg").unlink()
    _pin_times(data_root, EPOCH_NS + 10**12, sorted(edits))
    plans["r3"] = _snapshot(harness.plan("r3"), root)

    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(plans, ensure_ascii=False, sort_keys=True, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    for run in ("r1", "r2", "r3"):
        for part in ("summaries", "chunks", "manifests", "changes", "outcomes"):
            assert plans[run][part] == golden[run][part], f"{run}: {part} differ from {GOLDEN.name}"
