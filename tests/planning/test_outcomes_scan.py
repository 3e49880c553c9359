"""Every object's fate in the scan (issue 11): empty files, sequence kinds, table rows, sizes."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from demo_data import mp4_clip

from encord_ingest.grouping import GroupingConfig, GroupRule
from encord_ingest.probe import ProbeConfig
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.sidecars import SidecarConventions
from encord_ingest.sources.filters import FilterConfig
from tests.planning.helpers import Harness, png

Local = Callable[..., Harness]


def test_an_empty_data_file_fails_with_empty_object_or_is_skipped_by_skip_empty(local: Local) -> None:
    tree = {
        "raw/ok.jpg": png(),
        "raw/empty.jpg": b"",
        "raw/empty.jpg.json": {"layer": "x"},
        "raw/seq/frame_1.jpg": png(),
        "raw/seq/frame_2.jpg": b"",
    }
    grouping = GroupingConfig(groups=[GroupRule(folders="raw/seq")])
    harness = local(tree, config=PlanningConfig(grouping=grouping))
    result = harness.plan("r1")
    assert result.outcome("raw/empty.jpg")["outcome"] == "failed"
    assert result.outcome("raw/empty.jpg")["code"] == "empty_object"
    assert result.outcome("raw/empty.jpg")["message"] == (
        "raw/empty.jpg: expected a data file with content, got 0, size in bytes; set "
        "filters.skip_empty to skip empty files instead [empty_object]"
    )
    assert {result.outcome(f"raw/seq/frame_{n}.jpg")["code"] for n in (1, 2)} == {"empty_object"}
    assert [item.title for item in result.items()] == ["raw/ok.jpg"]

    skipping = PlanningConfig(grouping=grouping, filters=FilterConfig(skip_empty=True))
    again = harness.plan("r2", config=skipping)
    assert (again.outcome("raw/empty.jpg")["outcome"], again.outcome("raw/empty.jpg")["code"]) == (
        "skipped",
        "empty",
    )
    assert again.outcome("raw/seq/frame_1.jpg")["outcome"] == "new"


def test_the_kind_of_an_image_sequence_is_image_sequence(local: Local) -> None:
    tree = {"raw/seq/frame_1.jpg": png(), "raw/grp/frame_1.jpg": png()}
    grouping = GroupingConfig(
        groups=[GroupRule(folders="raw/seq", create_video=True), GroupRule(folders="raw/grp")]
    )
    result = local(tree, config=PlanningConfig(grouping=grouping)).plan("r1")
    assert result.outcome("raw/seq/frame_1.jpg")["kind"] == "image_sequence"
    assert result.outcome("raw/grp/frame_1.jpg")["kind"] == "image_group"


def test_a_too_large_sidecar_names_its_listed_size(local: Local) -> None:
    big = b'{"layer": "' + b"x" * 5000 + b'"}'
    config = PlanningConfig(sidecars=SidecarConventions(max_sidecar_bytes=1024))
    result = local({"raw/a.jpg": png(), "raw/a.jpg.json": big}, config=config).plan("r1")
    message = result.outcome("raw/a.jpg")["message"]
    assert (
        message
        == f"raw/a.jpg.json: expected at most 1024 bytes, got {len(big)}, size in bytes [file_too_large]"
    )


def test_table_rows_match_after_nfc_and_unmatched_rows_are_warnings_on_the_table(local: Local) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "café.jpg"), unicodedata.normalize("NFD", "café.jpg")
    table = f"file,layer\na.jpg,A\nmissing.jpg,M\n{nfd},C\nday1/x.jpg,X\nday1/gone.jpg,G\nseq-1,S\n"
    tree = {
        "raw/metadata.csv": table,
        "raw/a.jpg": png(),
        f"raw/{nfc}": png(),
        "raw/day1/x.jpg": png(),
        "raw/seq-1/frame_1.jpg": png(),
    }
    grouping = GroupingConfig(groups=[GroupRule(folders="raw/seq-1")])
    result = local(tree, config=PlanningConfig(grouping=grouping)).plan("r1")
    assert result.item(f"raw/{nfc}").client_metadata == {"layer": "C"}
    assert result.item("raw/day1/x.jpg").client_metadata == {"layer": "X"}
    assert result.item("raw/seq-1").client_metadata == {"layer": "S"}
    row = result.outcome("raw/metadata.csv")
    assert row["outcome"] == "sidecar"
    assert row["warning"] == (
        "2 row(s) of raw/metadata.csv match no object: row 2 names 'missing.jpg'; row 5 names 'day1/gone.jpg'"
    )
    assert result.summaries[0]["warnings"] == 1


def test_keyframes_past_the_end_of_a_probed_video_fail_the_item(local: Local) -> None:
    clip = mp4_clip(64, 48, fps=24, frames=12, codec="mpeg4")
    tree = {
        "raw/v/inside.mp4": clip,
        "raw/v/inside.mp4.json": {"keyframes": [0, 11]},
        "raw/v/past.mp4": clip,
        "raw/v/past.mp4.json": {"keyframes": [0, 500]},
    }
    config = PlanningConfig(probe=ProbeConfig(videos=True, video_backend="pyav"))
    result = local(tree).plan("r1", config=config)
    assert result.item("raw/v/inside.mp4").client_metadata == {"keyframes": [0, 11]}
    past = result.outcome("raw/v/past.mp4")
    assert (past["outcome"], past["code"]) == ("failed", "invalid_keyframes")
    assert past["message"] == (
        "raw/v/past.mp4: key 'keyframes': expected keyframes below the frame count 12 (probed), "
        "got 500 [invalid_keyframes]"
    )
