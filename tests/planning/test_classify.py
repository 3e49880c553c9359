"""Classification of keys into data kinds, sidecars and unknowns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from encord_ingest.classify import (
    Classified,
    Classifier,
    ClassifyConfig,
    FileKind,
    NotData,
    kind_from_content_type,
    sniff_content_type,
)
from encord_ingest.sidecars import SidecarConventions
from tests.planning.helpers import Harness, dicom, png

CONVENTIONS = SidecarConventions()


def classifier(**config: object) -> Classifier:
    return Classifier(ClassifyConfig.model_validate(config), is_sidecar=CONVENTIONS.is_sidecar)


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("a/photo.JPG", FileKind.IMAGE),
        ("a/photo.jpeg", FileKind.IMAGE),
        ("a/scan.Tiff", FileKind.IMAGE),
        ("a/clip.MOV", FileKind.VIDEO),
        ("a/clip.mp4", FileKind.VIDEO),
        ("a/talk.wav", FileKind.AUDIO),
        ("a/notes.txt", FileKind.TEXT),
        ("a/report.PDF", FileKind.PDF),
        ("a/ct/slice.dcm", FileKind.DICOM),
        ("a/brain.nii", FileKind.NIFTI),
        ("a/brain.NII.GZ", FileKind.NIFTI),
        ("a/v1.2.final.png", FileKind.IMAGE),
    ],
)
def test_kind_by_extension_any_case(key: str, kind: FileKind) -> None:
    verdict = classifier().classify(key)
    assert verdict == Classified(kind, candidates=(kind,))


@pytest.mark.parametrize(
    "key",
    [
        "a/clip.mp4.json",
        "a/clip.json",
        "a/clip.metadata.json",
        "a/_defaults.yaml",
        "a/metadata.csv",
        "a/x.yml",
    ],
)
def test_sidecars_are_never_data(key: str) -> None:
    assert classifier().classify(key) == Classified(None, NotData.SIDECAR)


def test_a_sidecar_name_wins_over_a_data_extension() -> None:
    conventions = SidecarConventions(table_names=("metadata.csv",), per_file_patterns=("{file}.json",))
    verdict = Classifier(is_sidecar=conventions.is_sidecar).classify("a/metadata.csv")
    assert verdict.not_data is NotData.SIDECAR


def test_unknown_extension_and_gz_without_nii() -> None:
    assert classifier().classify("a/blob.bin") == Classified(None, NotData.UNKNOWN_KIND)
    assert classifier().classify("a/archive.tar.gz") == Classified(None, NotData.UNKNOWN_KIND)


def test_ambiguous_extension_defaults_to_its_first_kind_and_content_type_decides() -> None:
    subject = classifier()
    verdict = subject.classify("a/voice.webm")
    assert verdict.kind is FileKind.VIDEO
    assert verdict.ambiguous
    assert subject.resolve(verdict, "audio/webm").kind is FileKind.AUDIO
    assert subject.resolve(verdict, "video/webm; codecs=vp9").kind is FileKind.VIDEO
    assert subject.resolve(verdict, "application/pdf") == verdict
    assert subject.classify("a/song.ogg").kind is FileKind.AUDIO


def test_content_is_read_only_when_sniffing_is_enabled() -> None:
    verdict = classifier().classify("a/voice.webm")
    assert not classifier().needs_content(verdict)
    assert classifier(sniff_ambiguous=True).needs_content(verdict)
    assert not classifier(sniff_ambiguous=True).needs_content(classifier().classify("a/x.jpg"))


def test_extension_less_files_are_dicom_only_in_configured_folders() -> None:
    subject = classifier(dicom_folders=["studies/*/series-*"])
    assert subject.classify("studies/p1/series-2/IM0001").kind is FileKind.DICOM
    outside = subject.classify("studies/p1/IM0001")
    assert outside.kind is None
    assert outside.not_data is NotData.UNKNOWN_KIND


def test_extension_less_file_resolved_by_sniffing_its_bytes() -> None:
    subject = classifier(sniff_ambiguous=True)
    verdict = subject.classify("scans/IM0001")
    assert subject.needs_content(verdict)
    resolved = subject.resolve(verdict, sniff_content_type(dicom("1.2.3", 1)))
    assert resolved == Classified(FileKind.DICOM, candidates=(FileKind.DICOM,))
    unknown = subject.resolve(verdict, sniff_content_type(b"plain bytes"))
    assert unknown.kind is None


def test_configured_extensions_override_and_add() -> None:
    subject = classifier(extensions={".JSONL": ["text"], ".webm": ["audio"]})
    assert subject.classify("a/log.jsonl").kind is FileKind.TEXT
    assert subject.classify("a/voice.webm") == Classified(FileKind.AUDIO, candidates=(FileKind.AUDIO,))


def test_bad_extension_config_names_the_extension() -> None:
    with pytest.raises(ValidationError, match="extension 'jpg': expected a leading dot"):
        ClassifyConfig.model_validate({"extensions": {"jpg": ["image"]}})


def test_sniffing_real_headers() -> None:
    from pydicom.data import get_testdata_file

    ct = Path(str(get_testdata_file("CT_small.dcm", download=False))).read_bytes()[:4096]
    assert sniff_content_type(ct) == "application/dicom"
    assert sniff_content_type(png()) == "image/png"
    assert sniff_content_type(b"%PDF-1.4\n...") == "application/pdf"
    assert sniff_content_type(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "audio/wav"
    assert sniff_content_type(b"\x00\x00\x00\x18ftypisom") == "video/mp4"
    assert sniff_content_type(b"\x1a\x45\xdf\xa3....webm....V_VP9") == "video/webm"
    assert sniff_content_type(b"\x1a\x45\xdf\xa3....webm....A_OPUS") == "audio/webm"


def test_kind_from_content_type() -> None:
    assert kind_from_content_type("image/png") is FileKind.IMAGE
    assert kind_from_content_type("Application/DICOM") is FileKind.DICOM
    assert kind_from_content_type("application/octet-stream") is None


# What ledgers recorded under today's built-in rules: these must never change by accident.
PINNED_FINGERPRINTS = {
    "defaults": "bdd426f4a9b927abcb4875b3419ce4828f60565b7d1244f94cd7e9e0dba2d239",
    "globs": "4ceefb5cd76bdc85933ff4f84eaea0c0089619d544c8c56580c995ce85bd8f5f",
}


def fingerprints() -> dict[str, str]:
    from encord_ingest.scan.config import PlanningConfig, config_fingerprint
    from encord_ingest.schema import MetadataSchema
    from encord_ingest.sources.filters import FilterConfig
    from tests.planning.helpers import SCHEMA

    globs = PlanningConfig(filters=FilterConfig(exclude=["/*.jpg"]), prefix_template="raw/")
    return {
        "defaults": config_fingerprint(PlanningConfig(), SCHEMA),
        "globs": config_fingerprint(globs, MetadataSchema(keys={})),
    }


def test_todays_built_in_rules_keep_the_fingerprints_ledgers_recorded() -> None:
    assert fingerprints() == PINNED_FINGERPRINTS


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("DEFAULT_EXTENSIONS", ".webm", (FileKind.AUDIO, FileKind.VIDEO)),  # another default kind
        ("DEFAULT_EXTENSIONS", ".jxl", (FileKind.IMAGE,)),  # a new extension
        ("_MIME_EXACT", "application/x-nifti", FileKind.DICOM),
    ],
)
def test_a_change_to_a_built_in_table_changes_every_fingerprint(
    monkeypatch: pytest.MonkeyPatch, table: str, key: str, value: object
) -> None:
    from encord_ingest import classify

    monkeypatch.setitem(getattr(classify, table), key, value)
    changed = fingerprints()
    assert all(changed[name] != PINNED_FINGERPRINTS[name] for name in changed)


def test_a_change_to_a_filter_default_changes_every_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    from encord_ingest.sources import filters

    monkeypatch.setattr(filters, "DEFAULT_TEMP_SUFFIXES", (*filters.DEFAULT_TEMP_SUFFIXES, ".swp"))
    changed = fingerprints()
    assert all(changed[name] != PINNED_FINGERPRINTS[name] for name in changed)


def test_a_new_default_kind_re_plans_a_folder_the_fast_path_would_replay(
    local: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The no-change fast path trusts the kind the ledger recorded: after a table change the
    folder is planned item by item, and the item gets the new kind."""
    from encord_ingest import classify
    from tests.planning.helpers import spy_replays

    harness = local({"raw/a/clip.webm": b"x" * 10, "raw/a/clip.webm.json": {"capture.site": "s"}})
    first = harness.plan("r1")
    assert first.outcome("raw/a/clip.webm")["kind"] == "video"
    harness.commit_registered(first)
    taken = spy_replays(monkeypatch)
    harness.commit(harness.plan("r2"))
    assert taken == ["raw/a/"]
    taken.clear()
    monkeypatch.setitem(classify.DEFAULT_EXTENSIONS, ".webm", (FileKind.AUDIO, FileKind.VIDEO))
    again = harness.plan("r3")
    assert not taken
    assert again.outcome("raw/a/clip.webm")["kind"] == "audio"
