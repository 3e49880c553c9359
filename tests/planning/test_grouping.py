"""The folder walk, pairing, group ordering and DICOM series (no ledger, no outputs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from encord_ingest.classify import Classifier, FileKind
from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.grouping import (
    DicomHeader,
    FolderBatch,
    FolderPlan,
    FolderWalker,
    GroupingConfig,
    GroupRule,
    ListingOrderError,
    SeriesCollector,
    iter_folders,
    natural_key,
    order_frames,
    parse_dicom_header,
    plan_folder,
    read_dicom_header,
)
from encord_ingest.sidecars import SidecarConventions, SidecarRole
from encord_ingest.sources.base import ObjectInfo
from encord_ingest.sources.local import LocalSource
from tests.planning.helpers import dicom, write_tree

CONVENTIONS = SidecarConventions()
CLASSIFIER = Classifier(is_sidecar=CONVENTIONS.is_sidecar)


def info(key: str, size: int = 1) -> ObjectInfo:
    return ObjectInfo(key=key, size=size, version=f"v-{key}")


def batch(folder: str, *names: str) -> FolderBatch:
    return FolderBatch(folder, [info(folder + name) for name in sorted(names)])


def plan(
    folder_batch: FolderBatch, config: GroupingConfig | None = None, **kwargs: Callable[[str], str | None]
) -> FolderPlan:
    return plan_folder(
        folder_batch,
        {o.key: CLASSIFIER.classify(o.key) for o in folder_batch.objects},
        config or GroupingConfig(),
        sidecar_candidates=CONVENTIONS.per_file_sidecar_keys,
        is_folder_input=lambda key: CONVENTIONS.sidecar_role(key) is not SidecarRole.PER_FILE,
        **kwargs,
    )


def test_natural_sort_orders_digit_runs_by_value() -> None:
    names = ["frame_10.jpg", "frame_2.jpg", "frame_1.jpg", "Frame_3.jpg", "frame_02b.jpg", "frame.jpg"]
    assert sorted(names, key=natural_key) == [
        "frame.jpg",
        "frame_1.jpg",
        "frame_2.jpg",
        "frame_02b.jpg",
        "Frame_3.jpg",
        "frame_10.jpg",
    ]


def test_walk_yields_each_folder_once_complete_deepest_first() -> None:
    keys = ["a/b.jpg", "a/b/c.jpg", "a/b/d/e.jpg", "a/b/f.jpg", "a/c.jpg", "z.jpg"]
    folders = [(b.folder, [o.key for o in b.objects]) for b in iter_folders(info(k) for k in keys)]
    assert folders == [
        ("a/b/d/", ["a/b/d/e.jpg"]),
        ("a/b/", ["a/b/c.jpg", "a/b/f.jpg"]),
        ("a/", ["a/b.jpg", "a/c.jpg"]),
        ("", ["z.jpg"]),
    ]


def test_walk_exposes_open_chain_and_position() -> None:
    walker = FolderWalker(info(k) for k in ["a/r.json", "a/s/1.jpg", "a/t.jpg"])
    seen = []
    for folder_batch in walker:
        open_folders = [b.folder for b in walker.open_folders]
        seen.append((folder_batch.folder, open_folders, walker.position))
    assert seen == [("a/s/", ["a/"], "a/t.jpg"), ("a/", [], None)]


def test_walk_refuses_unordered_listing() -> None:
    with pytest.raises(ListingOrderError, match=r"'a/a\.jpg' after 'a/b\.jpg'"):
        list(iter_folders(info(k) for k in ["a/b.jpg", "a/a.jpg"]))


def test_pairing_uses_every_present_candidate_lowest_precedence_first() -> None:
    result = plan(
        batch(
            "d/",
            "clip.mp4",
            "clip.json",
            "clip.mp4.json",
            "clip.mp4.yaml",
            "other.json",
            "_defaults.yaml",
            "metadata.csv",
        )
    )
    (draft,) = result.drafts
    assert (draft.kind, draft.title, draft.metadata_key) == ("video", "d/clip.mp4", "d/clip.mp4")
    assert draft.sidecars == ["d/clip.json", "d/clip.mp4.yaml", "d/clip.mp4.json"]
    assert sorted(o.key for o in result.paired) == ["d/clip.json", "d/clip.mp4.json", "d/clip.mp4.yaml"]
    assert [o.key for o in result.orphans] == ["d/other.json"]
    assert sorted(o.key for o in result.folder_inputs) == ["d/_defaults.yaml", "d/metadata.csv"]


def test_one_stem_sidecar_serves_two_data_files() -> None:
    result = plan(batch("d/", "clip.mp4", "clip.wav", "clip.json"))
    assert [d.sidecars for d in result.drafts] == [["d/clip.json"], ["d/clip.json"]]
    assert [o.key for o in result.paired] == ["d/clip.json"]


def test_unknown_kinds_and_glob_skipped_data_are_reported() -> None:
    result = plan(
        batch("d/", "a.bin", "b.jpg", "b.jpg.json", "c.png"),
        glob_skip=lambda key: "excluded" if key.endswith(".jpg") else None,
    )
    assert [d.title for d in result.drafts] == ["d/c.png"]
    assert [(o.key, reason) for o, reason in result.not_data] == [
        ("d/a.bin", "unknown_kind"),
        ("d/b.jpg", "excluded"),
    ]
    assert [(o.key, reason) for o, reason in result.unused] == [
        ("d/b.jpg.json", "its data file is skipped (excluded)")
    ]


def test_group_folder_becomes_one_sequence_in_natural_order() -> None:
    config = GroupingConfig(groups=[GroupRule(folders="cams/*/seq-*", create_video=True)])
    result = plan(
        batch(
            "cams/c1/seq-7/", "frame_10.jpg", "frame_2.jpg", "frame_1.jpg", "frame_2.jpg.json", "notes.txt"
        ),
        config,
    )
    kinds = {d.kind: d for d in result.drafts}
    group = kinds["image_group"]
    assert group.title == "cams/c1/seq-7"
    assert group.metadata_key == "cams/c1/seq-7"
    assert group.own_folder == "cams/c1/seq-7/"
    assert group.create_video is True
    assert [m.key.rsplit("/", 1)[1] for m in group.members] == ["frame_1.jpg", "frame_2.jpg", "frame_10.jpg"]
    assert kinds["text"].title == "cams/c1/seq-7/notes.txt"
    assert [(o.key, reason) for o, reason in result.unused] == [
        ("cams/c1/seq-7/frame_2.jpg.json", "per-frame sidecars of an image group are not used")
    ]


def test_folders_not_matching_a_rule_keep_single_images() -> None:
    config = GroupingConfig(groups=[GroupRule(folders="cams/*/seq-*")])
    result = plan(batch("cams/c1/", "a.jpg", "b.jpg"), config)
    assert [d.kind for d in result.drafts] == ["image", "image"]


def test_order_column_orders_frames_and_bad_orders_are_item_errors() -> None:
    frames = [info("g/a.jpg"), info("g/b.jpg"), info("g/c.jpg")]
    ordered = order_frames(
        frames, {"a.jpg": "3", "b.jpg": 1, "c.jpg": " 2 "}, table_file="g/metadata.csv", column="order"
    )
    assert [f.key for f in ordered] == ["g/b.jpg", "g/c.jpg", "g/a.jpg"]  # type: ignore[union-attr]

    missing = order_frames(frames, {"a.jpg": "1", "b.jpg": "x"}, table_file="g/metadata.csv", column="order")
    assert isinstance(missing, ItemError)
    assert missing.code is ErrorCode.INVALID_ORDER
    assert (
        missing.message
        == "g/metadata.csv: key 'order': expected an integer order for frame 'b.jpg', got 'x' [invalid_order]"
    )

    twice = order_frames(
        frames, {"a.jpg": 1, "b.jpg": 2, "c.jpg": 1}, table_file="g/metadata.csv", column="order"
    )
    assert isinstance(twice, ItemError)
    assert "frames 'a.jpg' and 'c.jpg' share it" in twice.message


def test_dicom_by_folder_is_one_series_per_folder() -> None:
    result = plan(batch("ct/s1/", "IM10.dcm", "IM2.dcm", "IM1.dcm", "IM1.dcm.json"))
    (series,) = result.drafts
    assert series.kind == "dicom_series"
    assert series.title == "ct/s1"
    assert series.keys == ["ct/s1/IM1.dcm", "ct/s1/IM2.dcm", "ct/s1/IM10.dcm"]
    assert [reason for _, reason in result.unused] == ["per-file sidecars of DICOM files are not used"]


def test_dicom_by_uid_waits_for_headers() -> None:
    result = plan(batch("ct/", "a.dcm", "b.dcm", "c.jpg"), GroupingConfig(dicom_series="series_uid"))
    assert [d.kind for d in result.drafts] == ["image"]
    assert [o.key for o in result.uid_dicom] == ["ct/a.dcm", "ct/b.dcm"]


def test_header_of_real_dicom_test_files() -> None:
    from pydicom.data import get_testdata_file

    for name, uid in [
        ("CT_small.dcm", "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"),
        ("MR_small.dcm", "1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457"),
    ]:
        data = Path(str(get_testdata_file(name, download=False))).read_bytes()
        header = parse_dicom_header(data)
        assert header is not None
        assert (header.series_uid, header.instance_number) == (uid, 1)
        assert header.study_uid is not None
        assert header.study_uid.startswith("1.3.6.1.4.1.5962.1.2.")
    assert parse_dicom_header(b"not dicom at all" * 20) is None


def test_ranged_header_reads_grow_until_the_uid_shows(tmp_path: Path) -> None:
    padded = dicom("9.8.7", 4, pad=3000)
    write_tree(tmp_path, {"s/a.dcm": padded, "s/junk.dcm": b"\x00" * 5000})
    source = LocalSource(tmp_path)
    reads: list[int | None] = []

    def read(key: str, max_bytes: int | None) -> bytes:
        reads.append(max_bytes)
        return source.read_bytes(key, max_bytes)

    header = read_dicom_header(read, source.head("s/a.dcm"), first_bytes=512, max_bytes=65536)  # type: ignore[arg-type]
    assert header == DicomHeader(series_uid="9.8.7", instance_number=4, study_uid="1.2.3.4")
    assert reads == [512, 2048, 8192]

    error = read_dicom_header(source.read_bytes, source.head("s/junk.dcm"), first_bytes=512, max_bytes=1024)  # type: ignore[arg-type]
    assert isinstance(error, ItemError)
    assert error.code is ErrorCode.INVALID_DICOM
    assert error.file == "s/junk.dcm"
    assert error.key == "SeriesInstanceUID"
    assert "not found in the first 1024 bytes" in error.message


def test_series_collector_splits_a_folder_and_joins_folders() -> None:
    collector = SeriesCollector()
    collector.add(info("p/a/1.dcm"), DicomHeader("S1", 2))
    collector.add(info("p/a/2.dcm"), DicomHeader("S2", 1))
    collector.add(info("p/a/3.dcm"), DicomHeader("S1", 1))
    collector.add(info("p/b/1.dcm"), DicomHeader("S1", 3))
    collector.add(info("p/b/2.dcm"), DicomHeader("S1", None))
    drafts = list(collector.drafts())
    assert [(d.title, d.keys) for d in drafts] == [
        ("p/S1", ["p/a/3.dcm", "p/a/1.dcm", "p/b/1.dcm", "p/b/2.dcm"]),
        ("p/a/S2", ["p/a/2.dcm"]),
    ]
    assert all(d.kind == "dicom_series" for d in drafts)
    assert len(collector) == 0


def test_group_rule_matches_folder_paths() -> None:
    rule = GroupRule(folders="cams/*/seq-*")
    assert rule.matches("cams/c1/seq-3/")
    assert not rule.matches("cams/c1/other/")
    assert FileKind.IMAGE.value == "image"
