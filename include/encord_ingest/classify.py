"""What a listed object is: a data file of some kind, a sidecar, or something to skip.

Kinds come from the extension (case-insensitive, longest match first, so ``.nii.gz`` beats
``.gz``). A few extensions are ambiguous (``.webm`` and ``.ogg`` hold audio or video) and
extension-less files have no extension at all: for those a content type decides, either one
the caller already has or one sniffed from the first bytes (:func:`sniff_content_type`, a
ranged read the planner does only when ``sniff_ambiguous`` is on). Without a content type an
ambiguous extension falls back to its first candidate kind (``.webm`` -> video), and an
extension-less file is unknown, except inside a configured DICOM folder.

Sidecar files are never data: the caller passes the sidecar recogniser of
:mod:`encord_ingest.sidecars`, and a key it accepts is classified as a sidecar whatever its
extension.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SNIFF_BYTES = 4096
"""How many leading bytes :func:`sniff_content_type` needs (one ranged read)."""


class FileKind(StrEnum):
    """The kind of one data file (groups and series are built from these)."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    PDF = "pdf"
    DICOM = "dicom"
    NIFTI = "nifti"


class NotData(StrEnum):
    """Why an object is not a data file (skip rules such as hidden files live in ``sources.filters``)."""

    SIDECAR = "sidecar"
    UNKNOWN_KIND = "unknown_kind"


# Any change to these tables changes ``scan.config.config_fingerprint`` (:func:`built_in_tables`),
# so unchanged folders are planned again: the no-change fast path trusts the recorded kind.
DEFAULT_EXTENSIONS: dict[str, tuple[FileKind, ...]] = {
    **dict.fromkeys(
        (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".heic"),
        (FileKind.IMAGE,),
    ),
    **dict.fromkeys((".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ogv", ".mpeg", ".mpg"), (FileKind.VIDEO,)),
    **dict.fromkeys((".mp3", ".wav", ".flac", ".m4a", ".aac", ".eac3", ".opus", ".oga"), (FileKind.AUDIO,)),
    ".webm": (FileKind.VIDEO, FileKind.AUDIO),
    ".ogg": (FileKind.AUDIO, FileKind.VIDEO),
    **dict.fromkeys((".txt", ".md", ".html", ".htm", ".xml"), (FileKind.TEXT,)),
    ".pdf": (FileKind.PDF,),
    **dict.fromkeys((".dcm", ".dicom"), (FileKind.DICOM,)),
    **dict.fromkeys((".nii", ".nii.gz"), (FileKind.NIFTI,)),
}
"""Extension -> candidate kinds, first = the default. Ambiguous ones list more than one."""

_MIME_MAJOR = {
    "image": FileKind.IMAGE,
    "video": FileKind.VIDEO,
    "audio": FileKind.AUDIO,
    "text": FileKind.TEXT,
}
_MIME_EXACT = {
    "application/pdf": FileKind.PDF,
    "application/dicom": FileKind.DICOM,
    "application/x-nifti": FileKind.NIFTI,
    "application/ogg": FileKind.AUDIO,
}


def built_in_tables() -> dict[str, dict[str, Any]]:
    """The classifier's built-in tables in JSON form (sorted): the kinds of each extension and of
    sniffed content types. Part of ``scan.config.config_fingerprint``."""
    return {
        "extensions": {
            ext: [kind.value for kind in kinds] for ext, kinds in sorted(DEFAULT_EXTENSIONS.items())
        },
        "mime_major": {mime: kind.value for mime, kind in sorted(_MIME_MAJOR.items())},
        "mime_exact": {mime: kind.value for mime, kind in sorted(_MIME_EXACT.items())},
    }


class ClassifyConfig(BaseModel):
    """How keys map to data kinds.

    ``extensions`` adds or overrides entries of :data:`DEFAULT_EXTENSIONS` (keys with a leading
    dot, matched case-insensitively; a list value = ambiguous candidates, first is the default).
    ``dicom_folders`` are glob patterns (``fnmatch``) over folder paths without a trailing slash
    whose extension-less files are DICOM. ``sniff_ambiguous`` reads the first bytes of ambiguous
    and extension-less files to decide their kind.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    extensions: dict[str, list[FileKind]] = Field(default_factory=dict)
    dicom_folders: list[str] = Field(default_factory=list)
    sniff_ambiguous: bool = False

    @field_validator("extensions")
    @classmethod
    def _dotted_lowercase(cls, value: dict[str, list[FileKind]]) -> dict[str, list[FileKind]]:
        for ext, kinds in value.items():
            if not ext.startswith(".") or len(ext) < 2:
                raise ValueError(f"extension {ext!r}: expected a leading dot, e.g. '.jpg'")
            if not kinds:
                raise ValueError(f"extension {ext!r}: expected at least one kind")
        return {ext.lower(): kinds for ext, kinds in value.items()}


@dataclass(frozen=True, slots=True)
class Classified:
    """The verdict on one key: a data ``kind`` or a ``not_data`` reason, never both.

    ``candidates`` holds more than one kind when only the content can decide; ``kind`` is then
    the default candidate until :meth:`Classifier.resolve` says otherwise.
    """

    kind: FileKind | None
    not_data: NotData | None = None
    candidates: tuple[FileKind, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1


_SIDECAR = Classified(None, NotData.SIDECAR)
_VERDICTS_KEPT = 4096
"""Extensions whose verdict a classifier keeps (a bucket has few; odd names are not kept past this)."""


def _extension(name: str, table: Mapping[str, tuple[FileKind, ...]], longest: int) -> str | None:
    """The longest known extension of ``name`` (lower-cased), or its last one if none is known."""
    lower = name.lower()
    parts = lower.split(".")
    for count in range(min(longest, len(parts) - 1), 0, -1):
        ext = "." + ".".join(parts[-count:])
        if ext in table:
            return ext
    return "." + parts[-1] if len(parts) > 1 and parts[-1] else None


class Classifier:
    """Classifies keys with one configuration and one sidecar recogniser."""

    def __init__(self, config: ClassifyConfig | None = None, is_sidecar: Callable[[str], bool] | None = None):
        self.config = config or ClassifyConfig()
        self._is_sidecar = is_sidecar or (lambda _key: False)
        self._table = {**DEFAULT_EXTENSIONS, **{k: tuple(v) for k, v in self.config.extensions.items()}}
        self._longest = max(ext.count(".") for ext in self._table)
        self._by_extension: dict[str, Classified] = {}
        """Verdicts by extension (immutable, so shared): one per extension, not one per key."""

    def classify(self, key: str) -> Classified:
        """Classify ``key`` from its name alone (no I/O)."""
        if self._is_sidecar(key):
            return _SIDECAR
        ext = _extension(key[key.rfind("/") + 1 :], self._table, self._longest)
        if ext is None:
            if self._in_dicom_folder(posixpath.split(key)[0]):
                return Classified(FileKind.DICOM, candidates=(FileKind.DICOM,))
            return Classified(None, NotData.UNKNOWN_KIND, candidates=tuple(FileKind))
        verdict = self._by_extension.get(ext)
        if verdict is None:
            kinds = self._table.get(ext)
            verdict = (
                Classified(None, NotData.UNKNOWN_KIND)
                if kinds is None
                else Classified(kinds[0], candidates=kinds)
            )
            if len(self._by_extension) < _VERDICTS_KEPT:
                self._by_extension[ext] = verdict
        return verdict

    def needs_content(self, verdict: Classified) -> bool:
        """True when the content could change the verdict and sniffing is enabled."""
        return self.config.sniff_ambiguous and verdict.ambiguous

    def resolve(self, verdict: Classified, content_type: str | None) -> Classified:
        """Settle an ambiguous verdict with a content type; unambiguous verdicts pass through."""
        if not verdict.ambiguous or content_type is None:
            return verdict
        kind = kind_from_content_type(content_type)
        if kind is None or kind not in verdict.candidates:
            return verdict
        return Classified(kind, candidates=(kind,))

    def _in_dicom_folder(self, folder: str) -> bool:
        return any(fnmatch.fnmatchcase(folder, pattern) for pattern in self.config.dicom_folders)


def kind_from_content_type(content_type: str) -> FileKind | None:
    """The data kind of a MIME type (``video/webm`` -> video), or ``None``."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in _MIME_EXACT:
        return _MIME_EXACT[mime]
    return _MIME_MAJOR.get(mime.split("/", 1)[0])


_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (128, b"DICM", "application/dicom"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF8", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"fLaC", "audio/flac"),
    (344, b"n+1\x00", "application/x-nifti"),
)


def sniff_content_type(head: bytes) -> str | None:
    """A MIME type guessed from the first bytes of a file (:data:`SNIFF_BYTES` are enough)."""
    for offset, magic, mime in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return mime
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI ", b"WEBP"):
        return {b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo", b"WEBP": "image/webp"}[head[8:12]]
    if head[4:8] == b"ftyp":
        return "audio/mp4" if head[8:11] == b"M4A" else "video/mp4"
    if head[:4] == b"OggS":
        return "video/ogg" if b"theora" in head else "audio/ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return (
            "video/webm" if any(codec in head for codec in (b"V_VP", b"V_AV1", b"V_MPEG")) else "audio/webm"
        )
    return None
