"""scan_shard on local directories: precedence, groups, DICOM, change detection, accounting."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from demo_data import mp4_clip

from encord_ingest.classify import ClassifyConfig
from encord_ingest.grouping import GroupingConfig, GroupRule
from encord_ingest.ledger import item_urls_by_title
from encord_ingest.metadata import MetadataMapping
from encord_ingest.probe import ProbeConfig
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.scanner import DATA_CHANGED_WARNING
from encord_provider.upload_items import upload_item
from tests.planning.helpers import Harness, RunResult, dicom, png

Local = Callable[..., Harness]
S1, S2 = "1.2.826.0.1.3680043.1", "1.2.826.0.1.3680043.2"


def url(root: Path, key: str) -> str:
    return f"file://{root.resolve().as_posix()}/{key}"


def assert_accounted(result: RunResult) -> None:
    for summary in result.summaries:
        counts = summary["counts"]
        assert sum(counts.values()) - counts.get("gone", 0) == summary["objects"]
    seen = result.outcomes[result.outcomes["outcome"] != "gone"]
    assert len(seen) == sum(s["objects"] for s in result.summaries)
    assert seen["key"].is_unique


PRECEDENCE_TREE = {
    "_defaults.yaml": "layer: root-defaults\ncapture.camera: root-cam\n",
    "raw/_defaults.yaml": "layer: raw-defaults\nreview.status: pending\n",
    "raw/day/_defaults.json": {"layer": "day-defaults"},
    "raw/day/metadata.csv": "file,layer,capture.count\na.jpg,table,5\nb.jpg,table-b,\n",
    "raw/day/a.jpg": png(),
    "raw/day/a.jpg.json": {"layer": "file-json"},
    "raw/day/a.json": {"layer": "stem", "capture.count": 9},
    "raw/day/b.jpg": png(),
    "raw/day/c.jpg": png(),
    "raw/day/c.jpg.yaml": "capture.camera: null\n",
}
STATIC = MetadataMapping(static={"layer": "static", "capture.site": "static-site"})


def test_precedence_per_file_over_table_over_defaults_over_static(local: Local) -> None:
    harness = local(PRECEDENCE_TREE, config=PlanningConfig(mapping=STATIC))
    result = harness.plan("r1")
    assert result.item("raw/day/a.jpg").client_metadata == {
        "capture.site": "static-site",
        "capture.camera": "root-cam",
        "review.status": "pending",
        "layer": "file-json",
        "capture.count": 9,
    }
    assert result.item("raw/day/b.jpg").client_metadata == {
        "capture.site": "static-site",
        "capture.camera": "root-cam",
        "review.status": "pending",
        "layer": "table-b",
    }
    assert result.item("raw/day/c.jpg").client_metadata == {
        "capture.site": "static-site",
        "review.status": "pending",
        "layer": "day-defaults",
    }
    change = result.change(result.item("raw/day/a.jpg").object_url)
    assert change.source_files == [
        "_defaults.yaml",
        "raw/_defaults.yaml",
        "raw/day/_defaults.json",
        "raw/day/metadata.csv",
        "raw/day/a.json",
        "raw/day/a.jpg.json",
    ]
    assert change.item_uuid is None
    assert result.outcome_of("raw/day/a.json") == "sidecar"
    assert result.outcome_of("raw/day/metadata.csv") == "sidecar"
    assert_accounted(result)


def test_metadata_root_limits_the_folder_chain(local: Local) -> None:
    harness = local(PRECEDENCE_TREE, config=PlanningConfig(metadata_root="raw/"))
    assert harness.plan("r1").item("raw/day/c.jpg").client_metadata == {
        "review.status": "pending",
        "layer": "day-defaults",
    }


def test_extension_less_dicom_found_by_sniffing(local: Local, data_root: Path) -> None:
    tree = {"raw/scan/IM1": dicom(S1, 1), "raw/scan/IM2": dicom(S1, 2), "raw/scan/README": b"notes"}
    config = PlanningConfig(classify=ClassifyConfig(sniff_ambiguous=True))
    result = local(tree, config=config).plan("r1")
    assert result.item("raw/scan").object_urls() == [
        url(data_root, "raw/scan/IM1"),
        url(data_root, "raw/scan/IM2"),
    ]
    assert result.outcome("raw/scan/README")["code"] == "unknown_kind"


def test_two_shards_plan_the_same_items_as_one(local: Local) -> None:
    tree = dict(PRECEDENCE_TREE)
    tree.update({f"raw/day{i}/x{j}.jpg": png() for i in range(3) for j in range(3)})
    harness = local(tree, config=PlanningConfig(mapping=STATIC))
    one = harness.plan("one", shards=1)
    three = harness.plan("three", shards=3)
    assert len(three.summaries) == 3
    as_dict = {i.title: i.client_metadata for i in one.items()}
    assert {i.title: i.client_metadata for i in three.items()} == as_dict
    assert sorted(three.outcomes["key"]) == sorted(one.outcomes["key"])
    assert_accounted(three)


def test_image_sequence_group_metadata_and_natural_order(local: Local, data_root: Path) -> None:
    tree = {
        "raw/metadata.csv": "file,capture.count\nseq-1,2\n",
        "raw/seq-1.json": {"layer": "group-sidecar"},
        "raw/seq-1/_defaults.yaml": "layer: group-defaults\nreview.status: approved\n",
        "raw/seq-1/frame_10.jpg": png(),
        "raw/seq-1/frame_2.jpg": png(),
        "raw/seq-1/frame_1.jpg": png(),
        "raw/seq-1/frame_1.jpg.json": {"layer": "ignored"},
        "raw/seq-1/clip.mp4": b"not really a video",
    }
    config = PlanningConfig(
        grouping=GroupingConfig(groups=[GroupRule(folders="raw/seq-*", create_video=True)])
    )
    result = local(tree, config=config).plan("r1")
    group = result.item("raw/seq-1")
    assert group.create_video is True
    assert group.object_urls() == [url(data_root, f"raw/seq-1/frame_{n}.jpg") for n in (1, 2, 10)]
    assert group.client_metadata == {
        "capture.count": 2,
        "layer": "group-sidecar",
        "review.status": "approved",
    }
    assert result.item("raw/seq-1/clip.mp4").kind == "video"
    assert result.outcome_of("raw/seq-1.json") == "sidecar"
    assert result.outcome("raw/seq-1/frame_1.jpg.json")["code"] == "unused_sidecar"
    assert {result.outcome_of(f"raw/seq-1/frame_{n}.jpg") for n in (1, 2, 10)} == {"new"}
    assert result.outcome("raw/seq-1/frame_10.jpg")["item_url"] == url(data_root, "raw/seq-1/frame_1.jpg")
    assert_accounted(result)


def test_order_column_from_the_group_folder_table(local: Local, data_root: Path) -> None:
    tree = {
        "raw/g/metadata.csv": "file,order\nb.png,1\nc.png,2\na.png,3\n",
        "raw/g/a.png": png(),
        "raw/g/b.png": png(),
        "raw/g/c.png": png(),
        "raw/h/metadata.csv": "file,order\nb.png,1\n",
        "raw/h/a.png": png(),
        "raw/h/b.png": png(),
    }
    rule = GroupRule(folders="raw/*", order_column="order")
    result = local(tree, config=PlanningConfig(grouping=GroupingConfig(groups=[rule]))).plan("r1")
    group = result.item("raw/g")
    assert group.create_video is False
    assert group.object_urls() == [url(data_root, f"raw/g/{n}.png") for n in ("b", "c", "a")]
    failed = result.outcome("raw/h/a.png")
    assert failed["outcome"] == "failed"
    assert failed["code"] == "invalid_order"
    assert failed["message"] == (
        "raw/h/metadata.csv: key 'order': expected an integer order for frame 'a.png', "
        "got None [invalid_order]"
    )
    assert result.outcome_of("raw/h/b.png") == "failed"
    assert result.summaries[0]["items"] == {"failed": 1, "new": 1}


def dicom_tree() -> dict[str, bytes]:
    return {
        "raw/study/a/1.dcm": dicom(S1, 2),
        "raw/study/a/2.dcm": dicom(S2, 1),
        "raw/study/a/3.dcm": dicom(S1, 1, pad=20000),
        "raw/study/b/1.dcm": dicom(S1, 3),
        "raw/study/b/broken.dcm": b"\x00" * 300,
    }


def test_dicom_series_by_folder(local: Local, data_root: Path) -> None:
    result = local(dicom_tree()).plan("r1")
    assert {i.title: i.object_urls() for i in result.items()} == {
        "raw/study/a": [url(data_root, f"raw/study/a/{n}.dcm") for n in (1, 2, 3)],
        "raw/study/b": [url(data_root, f"raw/study/b/{n}.dcm") for n in ("1", "broken")],
    }


def test_dicom_series_by_uid_split_and_joined(local: Local, data_root: Path) -> None:
    from pydicom.data import get_testdata_file

    tree: dict[str, bytes] = dicom_tree()
    tree["raw/study/_defaults.yaml"] = b"layer: study\n"
    tree["raw/study/a/_defaults.yaml"] = b"layer: study-a\n"
    for name in ("CT_small.dcm", "MR_small.dcm"):
        tree[f"raw/real/{name}"] = Path(str(get_testdata_file(name, download=False))).read_bytes()
    config = PlanningConfig(grouping=GroupingConfig(dicom_series="series_uid", dicom_header_bytes=4096))
    result = local(tree, config=config).plan("r1")
    series = {i.title: i.object_urls() for i in result.items()}
    assert series[f"raw/study/{S1}"] == [
        url(data_root, k) for k in ("raw/study/a/3.dcm", "raw/study/a/1.dcm", "raw/study/b/1.dcm")
    ]
    assert series[f"raw/study/a/{S2}"] == [url(data_root, "raw/study/a/2.dcm")]
    assert result.item(f"raw/study/{S1}").client_metadata == {"layer": "study"}
    assert result.item(f"raw/study/a/{S2}").client_metadata == {"layer": "study-a"}
    real = {t: u for t, u in series.items() if t.startswith("raw/real/")}
    assert sorted(real) == [
        "raw/real/1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322",
        "raw/real/1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457",
    ]
    broken = result.outcome("raw/study/b/broken.dcm")
    assert (broken["outcome"], broken["code"]) == ("failed", "invalid_dicom")
    assert broken["message"].startswith(
        "raw/study/b/broken.dcm: key 'SeriesInstanceUID': expected a DICOM file"
    )
    assert_accounted(result)


def rewrite(root: Path, key: str, content: bytes | str | dict[str, object]) -> None:
    """Rewrite a file and move its mtime forward (the local source's version is mtime + size)."""
    path = root / key
    data = json.dumps(content).encode() if isinstance(content, dict) else content
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def test_change_detection_for_every_outcome(local: Local, data_root: Path) -> None:
    tree = {
        "raw/a.jpg": png(),
        "raw/a.jpg.json": {"capture.count": 1},
        "raw/b.jpg": png(),
        "raw/b.jpg.json": {"capture.count": 2},
        "raw/c.jpg": png(),
        "raw/d.jpg": png(),
        "raw/t/metadata.csv": "file,capture.count\nf.jpg,1\ng.jpg,1\n",
        "raw/t/f.jpg": png(),
        "raw/t/g.jpg": png(),
    }
    harness = local(tree)
    first = harness.plan("r1")
    assert first.counts == {"new": 6, "sidecar": 3}
    assert len(first.changes) == 6
    by_title = item_urls_by_title(first.frames)
    harness.commit(first, item_uuids={by_title[i.title]: f"uuid-{i.title}" for i in first.items()})

    again = harness.plan("r2")
    assert again.counts == {"unchanged": 6, "sidecar": 3}
    assert (again.manifests, again.changes) == ([], [])
    harness.commit(again)

    rewrite(data_root, "raw/a.jpg.json", {"capture.count": 10})
    rewrite(data_root, "raw/b.jpg.json", '{ "capture.count" : 2 }\n')
    rewrite(data_root, "raw/c.jpg", png(8, 8))
    (data_root / "raw/d.jpg").unlink()
    rewrite(data_root, "raw/e.jpg", png())
    rewrite(data_root, "raw/t/metadata.csv", "file,capture.count\nf.jpg,2\ng.jpg,1\n")
    third = harness.plan("r3")
    outcomes = {
        k: third.outcome_of(k)
        for k in ["raw/a.jpg", "raw/b.jpg", "raw/c.jpg", "raw/e.jpg", "raw/t/f.jpg", "raw/t/g.jpg"]
    }
    assert outcomes == {
        "raw/a.jpg": "metadata_changed",
        "raw/b.jpg": "unchanged",
        "raw/c.jpg": "data_changed",
        "raw/e.jpg": "new",
        "raw/t/f.jpg": "metadata_changed",
        "raw/t/g.jpg": "unchanged",
    }
    gone = third.outcome("raw/d.jpg")
    assert (gone["outcome"], gone["item_uuid"]) == ("gone", "uuid-raw/d.jpg")
    assert third.outcome("raw/c.jpg")["warning"] == DATA_CHANGED_WARNING
    assert [i.title for i in third.items()] == ["raw/e.jpg"]
    a_url = url(data_root, "raw/a.jpg")
    assert third.change(a_url).item_uuid == "uuid-raw/a.jpg"
    assert third.change(a_url).metadata == {"capture.count": 10}
    assert third.change(url(data_root, "raw/t/f.jpg")).metadata == {"capture.count": 2}
    assert sorted(c.object_url for c in third.changes) == sorted(
        [a_url, url(data_root, "raw/e.jpg"), url(data_root, "raw/t/f.jpg")]
    )
    assert third.summaries[0]["counts"]["gone"] == 1
    assert_accounted(third)

    harness.commit(third, item_uuids={url(data_root, "raw/e.jpg"): "uuid-e"})
    ledger = harness.ledger.read_frame().set_index("key")
    assert "raw/d.jpg" not in ledger.index
    assert ledger.loc["raw/e.jpg", "item_uuid"] == "uuid-e"
    assert ledger.loc["raw/a.jpg", "item_uuid"] == "uuid-raw/a.jpg"
    settled = harness.plan("r4")
    assert settled.counts == {"unchanged": 6, "sidecar": 3}


def test_full_rescan_ignores_the_ledger(local: Local) -> None:
    harness = local({"raw/a.jpg": png(), "raw/b.jpg": png()})
    harness.commit(harness.plan("r1"))
    (harness.source.root / "raw/b.jpg").unlink()  # type: ignore[attr-defined]
    rescan = harness.plan("r2", full_rescan=True)
    assert rescan.counts == {"new": 1}
    assert [i.title for i in rescan.items()] == ["raw/a.jpg"]
    assert len(rescan.changes) == 1
    assert rescan.summaries[0]["full_rescan"] is True


def test_failures_are_per_item_and_every_object_is_accounted(local: Local) -> None:
    tree = {
        "raw/.DS_Store": b"x",
        "raw/upload.jpg.part": b"x",
        "raw/blob.bin": b"x",
        "raw/orphan.json": {"capture.count": 1},
        "raw/ok.jpg": png(),
        "raw/bad-json.jpg": png(),
        "raw/bad-json.jpg.json": "{not json",
        "raw/mistyped.jpg": png(),
        "raw/mistyped.jpg.json": {"capture.count": "many"},
        "raw/keyframes.jpg": png(),
        "raw/keyframes.jpg.json": {"keyframes": [1, 2]},
        "raw/video.mp4": b"v",
        "raw/video.mp4.json": {"keyframes": [5, 1, 5]},
    }
    result = local(tree).plan("r1")
    assert_accounted(result)
    assert result.counts == {"failed": 4, "new": 2, "sidecar": 3, "skipped": 4}
    codes = {k: (result.outcome(k)["outcome"], result.outcome(k)["code"]) for k in tree}
    assert codes == {
        "raw/.DS_Store": ("skipped", "hidden"),
        "raw/upload.jpg.part": ("skipped", "temporary"),
        "raw/blob.bin": ("skipped", "unknown_kind"),
        "raw/orphan.json": ("skipped", "orphan_sidecar"),
        "raw/ok.jpg": ("new", None),
        "raw/bad-json.jpg": ("failed", "invalid_json"),
        "raw/bad-json.jpg.json": ("failed", "invalid_json"),
        "raw/mistyped.jpg": ("failed", "type_mismatch"),
        "raw/mistyped.jpg.json": ("sidecar", None),
        "raw/keyframes.jpg": ("failed", "keyframes_not_video"),
        "raw/keyframes.jpg.json": ("sidecar", None),
        "raw/video.mp4": ("new", None),
        "raw/video.mp4.json": ("sidecar", None),
    }
    mistyped = result.outcome("raw/mistyped.jpg")["message"]
    assert mistyped.startswith("raw/mistyped.jpg.json: key 'capture.count': expected ")
    assert "got 'many'" in mistyped
    assert result.outcome("raw/keyframes.jpg")["message"].startswith(
        "raw/keyframes.jpg.json: key 'keyframes'"
    )
    assert result.item("raw/video.mp4").client_metadata == {"keyframes": [1, 5]}
    assert result.summaries[0]["errors"] == {"invalid_json": 2, "keyframes_not_video": 1, "type_mismatch": 1}


def test_new_items_get_sync_rows_only_when_configured(local: Local) -> None:
    harness = local({"raw/a.jpg": png(), "raw/a.jpg.json": {"capture.count": 1}})
    assert len(harness.plan("r1").changes) == 1
    assert harness.plan("r2", config=PlanningConfig(sync_new_items=False)).changes == []


def test_chunks_fill_as_they_go_and_a_retry_removes_leftovers(local: Local, data_root: Path) -> None:
    harness = local({f"raw/{n}.jpg": png() for n in range(5)})
    config = PlanningConfig(manifest_max_items=2, metadata_chunk_rows=2, outcome_chunk_rows=3)
    first = harness.plan("r1", config=config)
    assert [len(m) for m in first.manifests] == [2, 2, 1]
    assert [uri.rsplit("/", 1)[1] for uri in first.summaries[0]["manifest_uris"]] == [
        "shard-0000-00000.json",
        "shard-0000-00001.json",
        "shard-0000-00002.json",
    ]
    assert len(first.summaries[0]["outcome_uris"]) == 2
    for n in range(3):
        (data_root / f"raw/{n}.jpg").unlink()
    retry = harness.plan("r1", config=config)
    assert [len(m) for m in retry.manifests] == [2]
    assert sorted(harness.run_store("r1").list("manifests/")) == ["manifests/shard-0000-00000.json"]
    assert sorted(harness.run_store("r1").list("outcomes/")) == ["outcomes/shard-0000-00000.parquet"]
    summary = json.loads(harness.run_store("r1").read_bytes("summaries/shard-0000.json"))
    assert summary["counts"] == {"new": 2}


def test_oversize_item_fails_alone(local: Local) -> None:
    harness = local({"raw/big.jpg": png(), "raw/big.jpg.json": {"layer": "x" * 3000}, "raw/small.jpg": png()})
    result = harness.plan("r1", config=PlanningConfig(manifest_max_bytes=2048))
    big = result.outcome("raw/big.jpg")
    assert (big["outcome"], big["code"]) == ("failed", "item_too_large")
    assert [i.title for i in result.items()] == ["raw/small.jpg"]


def test_image_probe_adds_image_metadata(local: Local) -> None:
    harness = local({"raw/a.png": png(7, 5), "raw/broken.png": b"\x89PNG\r\n\x1a\n broken"})
    result = harness.plan("r1", config=PlanningConfig(probe=ProbeConfig(images=True)))
    media = result.item("raw/a.png").image_metadata
    assert (media.width, media.height, media.mime_type, media.file_size) == (
        7,
        5,
        "image/png",
        len(png(7, 5)),
    )
    broken = result.outcome("raw/broken.png")
    assert (broken["outcome"], broken["code"]) == ("failed", "probe_failed")
    assert broken["message"].startswith("raw/broken.png: expected an image header Pillow can read")


def test_video_probe_adds_video_metadata(local: Local) -> None:
    clip = mp4_clip(64, 48, fps=24, frames=12, codec="mpeg4")
    harness = local({"raw/v/clip.mp4": clip, "raw/v/broken.mp4": b"\x00\x00\x00\x18ftypisom"})
    result = harness.plan("r1", config=PlanningConfig(probe=ProbeConfig(videos=True, video_backend="pyav")))
    item = result.item("raw/v/clip.mp4")
    media = item.video_metadata
    assert (media.width, media.height, media.fps, media.mime_type, media.file_size) == (
        64,
        48,
        24.0,
        "video/mp4",
        len(clip),
    )
    assert media.duration == pytest.approx(0.5, abs=1 / 24)
    assert upload_item(item).video_metadata.width == 64
    broken = result.outcome("raw/v/broken.mp4")
    assert (broken["outcome"], broken["code"]) == ("failed", "probe_failed")
    assert broken["message"].startswith("raw/v/broken.mp4: expected a video PyAV can read")


def test_probing_is_off_by_default(local: Local) -> None:
    result = local({"raw/a.png": png()}).plan("r1")
    assert result.item("raw/a.png").image_metadata is None


def test_provenance_block(local: Local, data_root: Path) -> None:
    harness = local({"raw/a.jpg": png(), "raw/a.jpg.json": {"layer": "x"}})
    result = harness.plan("r1", config=PlanningConfig(provenance_key="ingest.provenance"))
    source = harness.source
    expected = {
        "source": url(data_root, "raw/a.jpg"),
        "version": source.head("raw/a.jpg").version,  # type: ignore[union-attr]
        "sidecars": {"raw/a.jpg.json": source.head("raw/a.jpg.json").version},  # type: ignore[union-attr]
    }
    assert result.item("raw/a.jpg").client_metadata == {"layer": "x", "ingest.provenance": expected}


@pytest.mark.parametrize("bad", [{"metadata_root": "raw"}, {"provenance_key": "$x"}])
def test_config_errors_name_the_field(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        PlanningConfig.model_validate(bad)


def test_long_scans_log_their_progress(local: Local, caplog: pytest.LogCaptureFixture) -> None:
    tree = {f"raw/cams/x{j:02d}.jpg": png() for j in range(25)}
    caplog.set_level("INFO", logger="encord_ingest.scan.scanner")
    local(tree, config=PlanningConfig(progress_every=10)).plan("r1")
    progress = [r.getMessage() for r in caplog.records if "listed so far" in r.getMessage()]
    assert [m.split(": ", 1)[1].split(" objects")[0] for m in progress] == ["10", "20"]
    assert progress[0].startswith("shard 1/1: 10 objects listed so far, outcomes {")
