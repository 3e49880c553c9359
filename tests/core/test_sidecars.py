"""Sidecar naming conventions, the folder chain, layer collection and the merge rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.sidecars import (
    MetadataLayer,
    ParsedSidecar,
    ParsedTable,
    SidecarConventions,
    SidecarRole,
    collect_layers,
    merge_layers,
    sidecar_inputs,
)

CONV = SidecarConventions()


# --- stems and per-file candidates ---------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "stem"),
    [
        ("clip.mp4", "clip"),
        ("a/b/a.b.c.jpg", "a.b.c"),
        ("scans/scan.nii.gz", "scan"),
        ("SCAN.NII.GZ", "SCAN"),
        ("archive.tar.gz", "archive.tar"),
        ("CLIP.MP4", "CLIP"),
        ("my folder/my clip.mov", "my clip"),
        ("README", "README"),
        (".hidden", ".hidden"),
        ("slide.ome.tiff", "slide"),
        (".nii.gz", ".nii"),
    ],
)
def test_stem(key: str, stem: str) -> None:
    assert CONV.stem(key) == stem


def test_per_file_candidates_in_precedence_order() -> None:
    assert CONV.per_file_sidecar_keys("a/b/clip.mp4") == [
        "a/b/clip.mp4.json",
        "a/b/clip.mp4.metadata.json",
        "a/b/clip.mp4.yaml",
        "a/b/clip.mp4.yml",
        "a/b/clip.json",
        "a/b/clip.yaml",
        "a/b/clip.yml",
    ]


def test_per_file_candidates_awkward_names() -> None:
    assert CONV.per_file_sidecar_keys("x/a.b.c.jpg")[0] == "x/a.b.c.jpg.json"
    assert "x/a.b.c.json" in CONV.per_file_sidecar_keys("x/a.b.c.jpg")
    assert CONV.per_file_sidecar_keys("scan.nii.gz")[4:] == ["scan.json", "scan.yaml", "scan.yml"]
    assert CONV.per_file_sidecar_keys("UP/CLIP.MP4")[:2] == ["UP/CLIP.MP4.json", "UP/CLIP.MP4.metadata.json"]
    assert CONV.per_file_sidecar_keys("UP/CLIP.MP4")[4] == "UP/CLIP.json"
    assert CONV.per_file_sidecar_keys("my folder/my clip.mp4")[4] == "my folder/my clip.json"


def test_per_file_candidates_have_no_repeats_and_never_the_data_key() -> None:
    # no extension: {file}.json and {stem}.json are the same key
    assert CONV.per_file_sidecar_keys("README") == [
        "README.json",
        "README.metadata.json",
        "README.yaml",
        "README.yml",
    ]
    # a data file that itself ends in .json is not its own sidecar
    assert "notes.json" not in CONV.per_file_sidecar_keys("notes.json")


def test_configured_patterns_order_and_validation() -> None:
    conv = SidecarConventions(per_file_patterns=["{stem}.yaml", "{file}.meta.json"])
    assert conv.per_file_sidecar_keys("d/v.mp4") == ["d/v.yaml", "d/v.mp4.meta.json"]
    assert conv.sidecar_role("d/v.mp4.meta.json") is SidecarRole.PER_FILE
    assert conv.sidecar_role("d/v.mp4.json") is None
    for bad in ["clip.json", "{file}.txt", "{name}.json", "{file}/x.json", "{stem}"]:
        with pytest.raises(ValidationError) as info:
            SidecarConventions(per_file_patterns=[bad])
        assert "per_file_patterns" in str(info.value)


def test_other_fields_validate() -> None:
    with pytest.raises(ValidationError, match="defaults_names"):
        SidecarConventions(defaults_names=["a/_defaults.yaml"])
    with pytest.raises(ValidationError, match="table_names"):
        SidecarConventions(table_names=["metadata.xlsx"])
    with pytest.raises(ValidationError, match="compound_extensions"):
        SidecarConventions(compound_extensions=[".gz"])
    with pytest.raises(ValidationError):
        SidecarConventions(table_file_columns=[])
    with pytest.raises(ValidationError):
        SidecarConventions(max_sidecar_bytes=0)
    with pytest.raises(ValidationError):
        SidecarConventions(unknown_field=1)  # type: ignore[call-arg]


# --- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "role"),
    [
        ("a/clip.mp4.json", SidecarRole.PER_FILE),
        ("a/clip.json", SidecarRole.PER_FILE),
        ("a/clip.mp4.metadata.json", SidecarRole.PER_FILE),
        ("clip.yml", SidecarRole.PER_FILE),
        ("a/_defaults.yaml", SidecarRole.FOLDER_DEFAULTS),
        ("_defaults.json", SidecarRole.FOLDER_DEFAULTS),
        ("a/b/metadata.csv", SidecarRole.FOLDER_TABLE),
        ("metadata.parquet", SidecarRole.FOLDER_TABLE),
        ("a/metadata.jsonl", SidecarRole.FOLDER_TABLE),
        ("a/metadata.json", SidecarRole.PER_FILE),  # not a table name: a stem sidecar of metadata.*
        ("a/clip.mp4", None),
        ("a/clip.JSON", None),  # suffixes are case-sensitive as configured
        ("a/.json", None),
        ("a/other.csv", None),
        ("a/_defaults.yaml/clip.mp4", None),
    ],
)
def test_sidecar_role(key: str, role: SidecarRole | None) -> None:
    assert CONV.sidecar_role(key) is role
    assert CONV.is_sidecar(key) is (role is not None)


def test_size_limit_by_role() -> None:
    conv = SidecarConventions(max_sidecar_bytes=10, max_table_bytes=20)
    assert conv.max_bytes("a/metadata.csv") == 20
    assert conv.max_bytes("a/clip.json") == 10


# --- folders ----------------------------------------------------------------------------------


def test_folder_chain_nearest_first() -> None:
    assert CONV.folder_chain("a/b/c.jpg") == ["a/b/", "a/", ""]
    assert CONV.folder_chain("c.jpg") == [""]
    assert CONV.folder_chain("a/b/c.jpg", root="a/") == ["a/b/", "a/"]
    assert CONV.folder_chain("a/b/c.jpg", root="a/b/") == ["a/b/"]
    assert CONV.folder_chain("my dir/sub dir/x y.png") == ["my dir/sub dir/", "my dir/", ""]
    assert CONV.folder_chain("a//b.jpg") == ["a//", "a/", ""]


def test_folder_chain_rejects_bad_root() -> None:
    with pytest.raises(ValueError, match="must be"):
        CONV.folder_chain("a/b.jpg", root="a")
    with pytest.raises(ValueError, match="not below"):
        CONV.folder_chain("a/b.jpg", root="z/")


def test_defaults_and_table_keys() -> None:
    assert CONV.defaults_keys("a/") == ["a/_defaults.yaml", "a/_defaults.yml", "a/_defaults.json"]
    assert CONV.table_keys("") == ["metadata.csv", "metadata.tsv", "metadata.jsonl", "metadata.parquet"]


# --- merge rule -------------------------------------------------------------------------------


def test_merge_higher_layer_wins_and_objects_merge_recursively() -> None:
    low = {"site": "lab", "camera": {"model": "X", "lens": {"mm": 35, "f": 2.8}}, "tags": ["a", "b"]}
    high = {"camera": {"lens": {"mm": 50}}, "tags": ["c"], "new": 1}
    assert merge_layers([low, high]) == {
        "site": "lab",
        "camera": {"model": "X", "lens": {"mm": 50, "f": 2.8}},
        "tags": ["c"],
        "new": 1,
    }


def test_merge_replaces_across_types() -> None:
    assert merge_layers([{"a": {"x": 1}}, {"a": 5}]) == {"a": 5}
    assert merge_layers([{"a": 5}, {"a": {"x": 1}}]) == {"a": {"x": 1}}
    assert merge_layers([{"a": [1, 2, 3]}, {"a": [9]}]) == {"a": [9]}
    assert merge_layers([{"a": [{"x": 1}]}, {"a": [{"y": 2}]}]) == {"a": [{"y": 2}]}


def test_merge_null_removes_key_at_any_depth() -> None:
    layers: list[dict[str, Any]] = [
        {"a": 1, "b": {"x": 1, "y": 2}, "c": 3},
        {"a": None, "b": {"x": None}, "d": None, "e": {"n": None, "m": 1}, "l": [None, 1]},
    ]
    assert merge_layers(layers) == {"b": {"y": 2}, "c": 3, "e": {"m": 1}, "l": [None, 1]}
    # a null removes only what is below it; a higher layer can bring the key back
    assert merge_layers([{"a": 1}, {"a": None}, {"a": 2}]) == {"a": 2}


def test_merge_precedence_over_five_layers_and_no_aliasing() -> None:
    static = {"k": "static", "only_static": 1, "nested": {"s": 1}}
    far = {"k": "far", "nested": {"f": 1}}
    near = {"k": "near", "nested": {"n": 1}}
    row = {"k": "row"}
    per_file = {"k": "file", "nested": {"s": 2}}
    merged = merge_layers([static, far, near, row, per_file])
    assert merged == {"k": "file", "only_static": 1, "nested": {"s": 2, "f": 1, "n": 1}}
    merged["nested"]["s"] = 99
    assert static["nested"] == {"s": 1}
    assert per_file["nested"] == {"s": 2}
    assert merge_layers([]) == {}


# --- collecting the layers of one file -------------------------------------------------------


def _all(entries: dict[str, bytes]) -> dict[str, ParsedSidecar | ParsedTable | ItemError]:
    return {key: CONV.parse(key, data) for key, data in entries.items()}


def test_collect_layers_precedence_end_to_end() -> None:
    parsed = _all(
        {
            "_defaults.yaml": b"k: root\nroot_only: r\ncam: {model: A, iso: 100}\n",
            "d/_defaults.json": b'{"k": "d", "cam": {"iso": 200}}',
            "d/metadata.csv": b"file,k,csv_only\ne/clip.mp4,row_d,yes\n",
            "d/e/metadata.jsonl": b'{"file": "clip.mp4", "k": "row_e", "jsonl_only": 1}\n',
            "d/e/clip.json": b'{"k": "stem", "stem_only": true}',
            "d/e/clip.mp4.json": b'{"k": "file", "cam": {"model": null}}',
            "d/e/other.mp4.json": b'{"k": "other"}',
        }
    )
    layers = collect_layers("d/e/clip.mp4", parsed, conventions=CONV, static={"k": "static", "s": 1})
    assert isinstance(layers, list)
    assert [layer.file for layer in layers] == [
        "static config",
        "_defaults.yaml",
        "d/_defaults.json",
        "d/metadata.csv",
        "d/e/metadata.jsonl",
        "d/e/clip.json",
        "d/e/clip.mp4.json",
    ]
    assert [layer.untyped for layer in layers] == [False, False, False, True, False, False, False]
    assert layers[3].fingerprint == parsed["d/metadata.csv"].fingerprint  # type: ignore[union-attr]
    assert layers[0].fingerprint is None
    merged = merge_layers([layer.values for layer in layers])
    assert merged == {
        "k": "file",
        "s": 1,
        "root_only": "r",
        "cam": {"iso": 200},
        "csv_only": "yes",
        "jsonl_only": 1,
        "stem_only": True,
    }


def test_collect_layers_root_limits_folders() -> None:
    parsed = _all({"_defaults.yaml": b"a: 1", "d/_defaults.yaml": b"b: 2"})
    layers = collect_layers("d/x.jpg", parsed, conventions=CONV, root="d/")
    assert isinstance(layers, list)
    assert [layer.values for layer in layers] == [{"b": 2}]


def test_collect_layers_no_sidecars_is_empty() -> None:
    assert collect_layers("x.jpg", {}, conventions=CONV) == []
    static_only = collect_layers("x.jpg", {}, conventions=CONV, static={"a": 1}, static_file="cfg.yaml")
    assert static_only == [
        MetadataLayer(file="cfg.yaml", role="static", fingerprint=None, untyped=False, values={"a": 1})
    ]


def test_collect_layers_returns_first_error_from_the_top() -> None:
    parsed = _all(
        {
            "_defaults.yaml": b"a: [1",
            "d/clip.mp4.json": b'{"a": 1, "a": 2}',
            "d/metadata.csv": b"file,n\nclip.mp4,1\nclip.mp4,2\nok.mp4,3\n",
        }
    )
    error = collect_layers("d/clip.mp4", parsed, conventions=CONV)
    assert isinstance(error, ItemError)
    assert (error.code, error.file, error.key) == (ErrorCode.DUPLICATE_KEY, "d/clip.mp4.json", "a")
    # no per-file sidecar and no table row: the broken root defaults fail this file too
    error = collect_layers("d/other.mp4", parsed, conventions=CONV)
    assert isinstance(error, ItemError)
    assert (error.code, error.file) == (ErrorCode.INVALID_YAML, "_defaults.yaml")
    del parsed["_defaults.yaml"], parsed["d/clip.mp4.json"]
    error = collect_layers("d/clip.mp4", parsed, conventions=CONV)
    assert isinstance(error, ItemError)
    assert (error.code, error.file, error.key) == (ErrorCode.DUPLICATE_TABLE_ROW, "d/metadata.csv", "file")
    ok = collect_layers("d/ok.mp4", parsed, conventions=CONV)
    assert isinstance(ok, list)
    assert [layer.values for layer in ok] == [{"n": "3"}]


def test_sidecar_inputs_lists_everything_that_feeds_a_file() -> None:
    present = {
        "d/clip.mp4.json": "v1",
        "d/clip.yml": "v2",
        "d/metadata.csv": "v3",
        "_defaults.yaml": "v4",
        "d/other.json": "v5",
        "e/_defaults.yaml": "v6",
    }
    assert sidecar_inputs("d/clip.mp4", present, conventions=CONV) == [
        "d/clip.mp4.json",
        "d/clip.yml",
        "d/metadata.csv",
        "_defaults.yaml",
    ]
