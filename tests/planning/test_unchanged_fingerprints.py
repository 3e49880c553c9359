"""The no-change fast path's pieces that must agree with the per-item path exactly."""

from __future__ import annotations

import pytest

from encord_ingest.scan.scanner import _fingerprint
from encord_ingest.scan.unchanged import ItemFingerprints, sidecar_bases
from encord_ingest.sidecars import SidecarConventions

AWKWARD = ["a/b.jpg", 'q"uote\\back.jpg', "tab\tnew\nline\x01.jpg", "ünï/日本語😀.png", "\u2028sep.jpg", ""]


@pytest.mark.parametrize("title", AWKWARD)
def test_item_fingerprints_are_the_scanners(title: str) -> None:
    """ItemFingerprints puts the JSON text together from pieces: it must be the scanner's
    fingerprint of the same inputs for any key, kind and version text."""
    config_fp = 'c0nf\u00e9ig"fp'
    pieces = ItemFingerprints(config_fp)
    for kind in ("image", "video", 'k"ind'):
        for versions in (
            {},
            {"a/_defaults.yaml": "1-2"},
            {f"{title}.json": '"v\\1', "a/m.csv": "\x00", "b": "ü"},
        ):
            pairs = sorted(pieces.pair(key, version) for key, version in versions.items())
            expected = _fingerprint(config_fp, kind, title, False, sorted(versions.items()))
            assert pieces.of(kind, title, pairs) == expected


def test_sidecar_bases_find_exactly_the_candidates() -> None:
    """The fast path finds a data file's per-file sidecars from the sidecars' side: for every
    data name and set of sidecar names it must agree with per_file_sidecar_names (the per-item
    path's candidates), and a name that fits no pattern makes it say no."""
    conventions = SidecarConventions(
        per_file_patterns=("{file}.json", "{stem}.json", "{stem}.meta.yaml", "{file}.x.yml"),
        compound_extensions=(".nii.gz",),
    )
    names = [
        *("clip.mp4", "clip", "clip.json", "clip.mp4.json", "clip.meta.yaml", "scan.nii.gz", "scan.json"),
        *("scan.nii.json", ".hidden", ".hidden.json", "a.b.c.jpg", "a.b.c.json", "a.b.c.jpg.x.yml"),
        *("a.b.meta.yaml", "x.json.json", "x.json", ".json", "A.NII.GZ", "A.json"),
    ]
    suffixes = [suffix for _, suffix in conventions.per_file_suffixes()]
    sidecars = [name for name in names if any(name.endswith(s) and len(name) > len(s) for s in suffixes)]
    assert sidecar_bases(conventions, ["clip.mp4", "clip.json"]) is None
    for data in names:
        others = [name for name in sidecars if name != data]
        bases = sidecar_bases(conventions, others)
        assert bases is not None
        by_file, by_stem = bases
        found = set(by_file.get(data, [])) | set(by_stem.get(conventions.stem(data), []))
        assert found == set(conventions.per_file_sidecar_names(data)) & set(others), data
