"""Group frames (child items of image groups / sequences / DICOM series) and keyframes-only imports,
with the real SDK against the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from encord_emulator.testing import EmulatorServer
from encord_ingest.errors import ConfigError, ErrorCode
from encord_ingest.metadata_ops import OpReport, Scope, WriteStatus
from encord_ingest.sync import present
from encord_provider.hooks.encord import EncordHookError
from encord_provider.hooks.encord_scopes import EncordMetadataHook
from tests.metadata_ops.helpers import B, apply_operator, write_csv


def seed_groups(emulator: EmulatorServer) -> dict[str, Any]:
    """Two image groups in folder ``seq`` whose frames share file names; the frames of g1 hold
    ``frame.note``."""
    folder = emulator.admin.add_folder("seq")
    g1, k1 = emulator.admin.add_group(
        folder,
        "g1",
        [f"{B}/seq/g1/f{i}.jpg" for i in range(3)],
        frame_metadata=[{"frame.note": f"n{i}"} for i in range(3)],
    )
    g2, k2 = emulator.admin.add_group(
        folder, "g2", [f"{B}/seq/g2/f{i}.jpg" for i in range(2)], item_type="imageSequence"
    )
    (image,) = emulator.admin.add_items(folder, [{"url": f"{B}/seq/still.jpg", "name": "still.jpg"}])
    return {"folder": folder, "g1": g1, "g2": g2, "k1": k1, "k2": k2, "image": image}


def frames(emulator: EmulatorServer) -> dict[str, dict[str, Any]]:
    """Frame metadata by frame URL."""
    return {
        item["url"]: present(item["client_metadata"])
        for item in emulator.admin.all_items()
        if item["group"] is not None
    }


def test_frames_by_index_of_one_group(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    ids = seed_groups(emulator)
    table = write_csv(
        tmp_path / "frames.csv", [["frame_index", "frame.note", "fps"], ["0", "first", "10"], ["2", "", "12"]]
    )
    result = apply_operator(
        encord_conn, scope="group_frames", target_ids=[ids["g1"]], table_uri=table, schema_path=schema_path
    ).execute({})
    assert result["counts"]["written"] == 2
    assert frames(emulator) == {
        f"{B}/seq/g1/f0.jpg": {"frame.note": "first", "fps": 10},
        f"{B}/seq/g1/f1.jpg": {"frame.note": "n1"},
        f"{B}/seq/g1/f2.jpg": {"frame.note": "n2", "fps": 12},
        f"{B}/seq/g2/f0.jpg": {},
        f"{B}/seq/g2/f1.jpg": {},
    }


def test_frames_by_file_name_need_the_group_column_when_names_repeat(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    ids = seed_groups(emulator)
    ambiguous = write_csv(tmp_path / "ambiguous.csv", [["frame_file", "fps"], ["f1.jpg", "5"]])
    op = apply_operator(
        encord_conn,
        scope="group_frames",
        target_ids=["g1", "g2"],
        folder="seq",
        table_uri=ambiguous,
        schema_path=schema_path,
        max_failed_items=1,
    )
    assert op.execute({})["counts"]["rejected"] == 1
    (item,) = OpReport.from_bytes((tmp_path / "reports" / "ambiguous.report.json").read_bytes()).items
    assert item.errors[0].code is ErrorCode.AMBIGUOUS_TARGET
    named = write_csv(
        tmp_path / "named.csv",
        [["group", "frame_file", "fps"], ["g2", "f1.jpg", "5"], [ids["g1"], "f1.jpg", "6"]],
    )
    op = apply_operator(
        encord_conn,
        scope="group_frames",
        target_ids=["g1", "g2"],
        folder="seq",
        table_uri=named,
        schema_path=schema_path,
    )
    assert op.execute({})["counts"]["written"] == 2
    assert frames(emulator)[f"{B}/seq/g2/f1.jpg"] == {"fps": 5}
    assert frames(emulator)[f"{B}/seq/g1/f1.jpg"] == {"frame.note": "n1", "fps": 6}


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_same_metadata_for_every_frame_of_a_group(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, mode: str
) -> None:
    """Encord's recipe "add clientMetadata to all images in an image group"."""
    ids = seed_groups(emulator)
    result = apply_operator(
        encord_conn,
        scope="group_frames",
        target_ids=[ids["g1"]],
        metadata={"site": "lab"},
        mode=mode,
        schema_path=schema_path,
    ).execute({})
    assert result["counts"]["written"] == 3
    # replace removes frame.note: read back and rewritten on this shallow-merge server
    assert result["counts"]["patch_calls"] == (2 if mode == "replace" else 1)
    for i in range(3):
        expected = {"site": "lab"} if mode == "replace" else {"frame.note": f"n{i}", "site": "lab"}
        assert frames(emulator)[f"{B}/seq/g1/f{i}.jpg"] == expected
    assert frames(emulator)[f"{B}/seq/g2/f0.jpg"] == {}


def test_a_group_reference_must_be_a_group(emulator: EmulatorServer, hook: EncordMetadataHook) -> None:
    ids = seed_groups(emulator)
    with pytest.raises(EncordHookError, match="is an item of type 'image', not an image group"):
        hook.scope_items(Scope.GROUP_FRAMES, [ids["image"]])
    with pytest.raises(EncordHookError, match=r"group titles \['g1'\] need 'folder'"):
        hook.scope_items(Scope.GROUP_FRAMES, ["g1"])
    with pytest.raises(
        EncordHookError, match=r"group 'nope': expected one image group.* in folder 'seq', found 0"
    ):
        hook.scope_items(Scope.GROUP_FRAMES, ["nope"], folder="seq")


# --- keyframes only -------------------------------------------------------------------------------

VIDEOS: dict[str, dict[str, Any]] = {
    "v1.mp4": {"site": "a", "keyframes": [1], "config": {"sampling_rate": 1}},
    "v2.mp4": {"site": "b"},
    "p.jpg": {"site": "c"},
}


def seed_videos(emulator: EmulatorServer) -> None:
    folder = emulator.admin.add_folder("vids")
    specs = [
        {
            "url": f"{B}/vids/{name}",
            "name": name,
            "client_metadata": metadata,
            "item_type": "video" if name.endswith(".mp4") else "image",
        }
        for name, metadata in VIDEOS.items()
    ]
    emulator.admin.add_items(folder, specs)


def held_videos(emulator: EmulatorServer) -> dict[str, dict[str, Any]]:
    return {item["name"]: present(item["client_metadata"]) for item in emulator.admin.folder_items("vids")}


def test_keyframes_import_touches_no_other_key_even_in_replace_mode(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    seed_videos(emulator)
    table = write_csv(
        tmp_path / "keyframes.csv",
        [
            ["title", "keyframes", "config"],
            ["v1.mp4", "[40, 0, 12, 12]", ""],
            ["v2.mp4", "0;30", json.dumps({"sampling_rate": 0, "keyframe_mode": "frame"})],
        ],
    )
    op = apply_operator(
        encord_conn,
        scope="folder",
        target_ids=["vids"],
        table_uri=table,
        keyframes_only=True,
        mode="replace",
        schema_path=schema_path,
    )
    assert op.execute({})["counts"]["written"] == 2
    assert held_videos(emulator) == {
        "v1.mp4": {"site": "a", "keyframes": [0, 12, 40], "config": {"sampling_rate": 1}},
        "v2.mp4": {
            "site": "b",
            "keyframes": [0, 30],
            "config": {"sampling_rate": 0, "keyframe_mode": "frame"},
        },
        "p.jpg": {"site": "c"},
    }
    assert op.execute({})["counts"]["patch_calls"] == 0


def test_keyframes_are_validated_and_only_for_videos(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    seed_videos(emulator)
    table = write_csv(
        tmp_path / "keyframes.csv",
        [
            ["title", "keyframes", "config"],
            ["v1.mp4", "[-1, 2]", ""],
            ["v2.mp4", "", '{"sampling_rate": -2}'],
            ["p.jpg", "[1]", ""],
        ],
    )
    result = apply_operator(
        encord_conn,
        scope="folder",
        target_ids=["vids"],
        table_uri=table,
        keyframes_only=True,
        schema_path=schema_path,
        max_failed_items=3,
    ).execute({})
    assert result["counts"]["rejected"] == 3
    assert result["counts"]["written"] == 0
    report = OpReport.from_bytes((tmp_path / "reports" / "keyframes.report.json").read_bytes())
    assert [(i.where, i.status, [(e.code, e.key) for e in i.errors]) for i in report.items] == [
        ("row 1", WriteStatus.REJECTED, [(ErrorCode.INVALID_KEYFRAMES, "keyframes")]),
        ("row 2", WriteStatus.REJECTED, [(ErrorCode.INVALID_VIDEO_CONFIG, "config")]),
        ("row 3", WriteStatus.REJECTED, [(ErrorCode.KEYFRAMES_NOT_VIDEO, "keyframes")]),
    ]
    assert held_videos(emulator) == VIDEOS


def test_keyframes_import_refuses_other_columns(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    seed_videos(emulator)
    table = write_csv(tmp_path / "kf.csv", [["title", "keyframes", "site"], ["v1.mp4", "[1]", "x"]])
    op = apply_operator(
        encord_conn,
        scope="folder",
        target_ids=["vids"],
        table_uri=table,
        keyframes_only=True,
        schema_path=schema_path,
    )
    with pytest.raises(
        ConfigError, match=r"kf.csv: a keyframes import sets only the columns keyframes, config .*\['site'\]"
    ):
        op.execute({})
    assert held_videos(emulator) == VIDEOS
