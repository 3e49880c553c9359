"""One model per kind of item Encord registers, and its documented serial form.

``to_docs()`` gives Encord's documented import-file form (``objectUrl``, ``objectUrl_0..N``,
``clientMetadata``, media metadata written snake_case). The SDK's ``DataUpload*`` form is built
in the provider (``encord_provider.upload_items``): core imports no SDK.
"""

from __future__ import annotations

import json
import re
from abc import abstractmethod
from typing import Annotated, Any, ClassVar, Literal, Self, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from encord_ingest.errors import ErrorCode, ItemError, value_repr

MAX_URL_BYTES = 16 * 1024
#: Manifest kinds whose Encord item has no URL of its own (found by title in a listing).
GROUP_KINDS: frozenset[str] = frozenset({"image_group", "image_sequence", "dicom_series"})
"""Encord's limit on one object URL (16 KB), measured in UTF-8 bytes."""

_URL_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\x00-\x20\x7f]+")
_URL_FORM = "scheme://... without whitespace or control characters"
_FRAME_KEY = re.compile(r"(objectUrl|imageMetadata)_(0|[1-9][0-9]*)")


# --- object URLs -------------------------------------------------------------------------------


def _url_problem(url: str) -> tuple[ErrorCode, str] | None:
    """``(code, expected form)`` when ``url`` cannot be registered, else ``None``."""
    if len(url) * 4 > MAX_URL_BYTES and len(url.encode("utf-8")) > MAX_URL_BYTES:  # <= 4 bytes a character
        return ErrorCode.URL_TOO_LONG, f"an object URL of at most {MAX_URL_BYTES} bytes"
    if not _URL_SHAPE.fullmatch(url):
        return ErrorCode.INVALID_URL, f"an object URL of the form {_URL_FORM}"
    return None


def check_object_url(url: str, file: str | None = None) -> ItemError | None:
    """The per-item error for an object URL Encord would refuse, or ``None`` when it is fine.

    ``file`` is the object key to name in the error (default: the URL itself).
    """
    problem = _url_problem(url)
    if problem is None:
        return None
    code, expected = problem
    return ItemError.of(code, file or url, expected=expected, value=url, has_value=True)


def _valid_url(url: str) -> str:
    problem = _url_problem(url)
    if problem is not None:
        raise ValueError(f"object URL {value_repr(url)}: expected {problem[1]}")
    return url


def _unique_urls(urls: list[str]) -> None:
    seen: set[str] = set()
    for url in urls:
        if url in seen:
            raise ValueError(f"object URL {value_repr(url)} is listed twice")
        seen.add(url)


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as it reads back from JSON (tuples become lists); refuses what JSON cannot hold."""
    try:
        normalised: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"clientMetadata must be plain JSON (no NaN, no objects): {exc}") from exc
    return normalised


_TYPED: dict[str, bool] = {"typed_metadata": True}


# --- media metadata ----------------------------------------------------------------------------

_MimeType = Annotated[str, Field(pattern=r"^[^\s/]+/\S")]


class _MediaMetadata(BaseModel):
    """Media facts Encord trusts instead of probing the file. Input may be snake_case or camelCase."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )


class VideoMetadata(_MediaMetadata):
    """Lets Encord skip probing a video; required by strict client-only integrations."""

    fps: float = Field(gt=0)
    duration: float = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    file_size: int = Field(ge=0)
    mime_type: _MimeType


class ImageMetadata(_MediaMetadata):
    """Lets Encord skip probing an image (also per frame of an image group)."""

    mime_type: _MimeType
    file_size: int = Field(ge=0)
    height: int = Field(gt=0)
    width: int = Field(gt=0)


class AudioMetadata(_MediaMetadata):
    """Lets Encord skip probing an audio file."""

    duration: float = Field(gt=0)
    file_size: int = Field(ge=0)
    mime_type: _MimeType
    sample_rate: int = Field(gt=0)
    bit_depth: int = Field(gt=0)
    codec: str = Field(min_length=1)
    num_channels: int = Field(gt=0)


class TextMetadata(_MediaMetadata):
    """Lets Encord skip probing a text file."""

    file_size: int = Field(ge=0)
    mime_type: _MimeType


class PdfMetadata(_MediaMetadata):
    """Lets Encord skip probing a PDF."""

    file_size: int = Field(ge=0)
    num_pages: int = Field(gt=0)


# --- items -------------------------------------------------------------------------------------


class _Item(BaseModel):
    """Fields and behaviour every item shares. ``DOCS_KEY`` is its list in both manifest forms."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    DOCS_KEY: ClassVar[str]

    title: str | None = Field(default=None, min_length=1)
    client_metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("client_metadata")
    @classmethod
    def _plain_json(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if info.context is _TYPED:
            return value
        return _json_object(value)

    @classmethod
    def of_typed(cls, **fields: Any) -> Self:
        """An item whose ``client_metadata`` the planner typed (JSON values only, by construction):
        validated like any other, without the JSON round trip of the metadata."""
        return cls.model_validate(fields, context=_TYPED)

    @abstractmethod
    def object_urls(self) -> list[str]:
        """Every object URL of the item, in order: its identity in Encord."""

    @property
    def key_url(self) -> str:
        """The first object URL: the item's key in the ledger."""
        return self.object_urls()[0]

    @abstractmethod
    def to_docs(self) -> dict[str, Any]:
        """The item as an entry of Encord's documented import JSON."""

    @classmethod
    @abstractmethod
    def from_docs(cls, entry: dict[str, Any]) -> Self:
        """Parse an entry of the documented import JSON (raises ``ValueError``)."""


class _SingleFileItem(_Item):
    """An item backed by one object. ``MEDIA_FIELD`` names its optional media metadata field."""

    MEDIA_FIELD: ClassVar[str | None] = None

    object_url: str

    @field_validator("object_url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        return _valid_url(url)

    def object_urls(self) -> list[str]:
        return [self.object_url]

    def to_docs(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"objectUrl": self.object_url}
        if self.title is not None:
            entry["title"] = self.title
        entry["clientMetadata"] = self.client_metadata
        media: _MediaMetadata | None = getattr(self, self.MEDIA_FIELD) if self.MEDIA_FIELD else None
        if self.MEDIA_FIELD and media is not None:
            entry[to_camel(self.MEDIA_FIELD)] = media.model_dump()
        return entry

    @classmethod
    def from_docs(cls, entry: dict[str, Any]) -> Self:
        names = {"objectUrl": "object_url", "title": "title", "clientMetadata": "client_metadata"}
        if cls.MEDIA_FIELD:
            names[to_camel(cls.MEDIA_FIELD)] = cls.MEDIA_FIELD
        unknown = sorted(set(entry) - set(names))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; expected some of {sorted(names)}")
        return cls.model_validate({names[key]: value for key, value in entry.items()})


class VideoItem(_SingleFileItem):
    DOCS_KEY = "videos"
    MEDIA_FIELD = "video_metadata"

    kind: Literal["video"] = "video"
    video_metadata: VideoMetadata | None = None


class ImageItem(_SingleFileItem):
    DOCS_KEY = "images"
    MEDIA_FIELD = "image_metadata"

    kind: Literal["image"] = "image"
    image_metadata: ImageMetadata | None = None


class AudioItem(_SingleFileItem):
    DOCS_KEY = "audio"
    MEDIA_FIELD = "audio_metadata"

    kind: Literal["audio"] = "audio"
    audio_metadata: AudioMetadata | None = None


class TextItem(_SingleFileItem):
    DOCS_KEY = "text"
    MEDIA_FIELD = "text_metadata"

    kind: Literal["text"] = "text"
    text_metadata: TextMetadata | None = None


class PdfItem(_SingleFileItem):
    DOCS_KEY = "pdf"
    MEDIA_FIELD = "pdf_metadata"

    kind: Literal["pdf"] = "pdf"
    pdf_metadata: PdfMetadata | None = None


class NiftiItem(_SingleFileItem):
    DOCS_KEY = "nifti"

    kind: Literal["nifti"] = "nifti"


class GroupFrame(BaseModel):
    """One frame of an image group or sequence. A plain URL string is accepted in its place."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    image_metadata: ImageMetadata | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        return _valid_url(url)


def _numbered(entry: dict[str, Any], allowed: set[str]) -> dict[str, dict[int, Any]]:
    """Split ``objectUrl_N`` / ``imageMetadata_N`` keys of a docs entry by name, then index."""
    numbered: dict[str, dict[int, Any]] = {}
    for key, value in entry.items():
        match = _FRAME_KEY.fullmatch(key)
        if match is None or match[1] not in allowed:
            continue
        numbered.setdefault(match[1], {})[int(match[2])] = value
    return numbered


def _frame_urls(numbered: dict[int, Any]) -> list[Any]:
    if sorted(numbered) != list(range(len(numbered))):
        raise ValueError(f"objectUrl_N keys must run 0..N without gaps, got indexes {sorted(numbered)}")
    return [numbered[index] for index in range(len(numbered))]


def _reject_unknown(entry: dict[str, Any], fixed: set[str], allowed_numbered: set[str]) -> None:
    unknown = sorted(
        key
        for key in entry
        if key not in fixed
        and not ((m := _FRAME_KEY.fullmatch(key)) is not None and m[1] in allowed_numbered)
    )
    if unknown:
        numbered = [f"{name}_N" for name in sorted(allowed_numbered)]
        raise ValueError(f"unknown key(s) {unknown}; expected some of {sorted(fixed) + numbered}")


class ImageGroupItem(_Item):
    """An image group (``create_video=False``) or image sequence (``create_video=True``).

    In the documented form frames are ``objectUrl_0..N``. Per-frame media metadata, which only
    the SDK form documents, is written as ``imageMetadata_N`` so that chunk files read back whole.
    """

    DOCS_KEY = "image_groups"

    kind: Literal["image_group"] = "image_group"
    title: str = Field(min_length=1)
    create_video: bool = False
    frames: list[GroupFrame] = Field(min_length=1)

    @field_validator("frames")
    @classmethod
    def _distinct_frames(cls, frames: list[GroupFrame]) -> list[GroupFrame]:
        _unique_urls([frame.url for frame in frames])
        return frames

    @property
    def is_sequence(self) -> bool:
        return self.create_video

    def object_urls(self) -> list[str]:
        return [frame.url for frame in self.frames]

    def to_docs(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"title": self.title, "createVideo": self.create_video}
        entry.update({f"objectUrl_{i}": frame.url for i, frame in enumerate(self.frames)})
        for i, frame in enumerate(self.frames):
            if frame.image_metadata is not None:
                entry[f"imageMetadata_{i}"] = frame.image_metadata.model_dump()
        entry["clientMetadata"] = self.client_metadata
        return entry

    @classmethod
    def from_docs(cls, entry: dict[str, Any]) -> Self:
        _reject_unknown(entry, {"title", "createVideo", "clientMetadata"}, {"objectUrl", "imageMetadata"})
        numbered = _numbered(entry, {"objectUrl", "imageMetadata"})
        urls = _frame_urls(numbered.get("objectUrl", {}))
        media = numbered.get("imageMetadata", {})
        stray = sorted(set(media) - set(range(len(urls))))
        if stray:
            raise ValueError(f"imageMetadata_N without a matching objectUrl_N: indexes {stray}")
        frames = [{"url": url, "image_metadata": media.get(i)} for i, url in enumerate(urls)]
        fields = {
            "frames": frames,
            "title": entry.get("title"),
            "create_video": entry.get("createVideo", False),
        }
        if "clientMetadata" in entry:
            fields["client_metadata"] = entry["clientMetadata"]
        return cls.model_validate(fields)


class DicomSeriesItem(_Item):
    """A DICOM series: its ``.dcm`` files in order (documented form: ``objectUrl_0..N``)."""

    DOCS_KEY = "dicom_series"

    kind: Literal["dicom_series"] = "dicom_series"
    title: str = Field(min_length=1)
    files: list[str] = Field(min_length=1)

    @field_validator("files")
    @classmethod
    def _check_files(cls, files: list[str]) -> list[str]:
        _unique_urls([_valid_url(url) for url in files])
        return files

    def object_urls(self) -> list[str]:
        return list(self.files)

    def to_docs(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"title": self.title}
        entry.update({f"objectUrl_{i}": url for i, url in enumerate(self.files)})
        entry["clientMetadata"] = self.client_metadata
        return entry

    @classmethod
    def from_docs(cls, entry: dict[str, Any]) -> Self:
        _reject_unknown(entry, {"title", "clientMetadata"}, {"objectUrl"})
        urls = _frame_urls(_numbered(entry, {"objectUrl"}).get("objectUrl", {}))
        fields: dict[str, Any] = {"files": urls, "title": entry.get("title")}
        if "clientMetadata" in entry:
            fields["client_metadata"] = entry["clientMetadata"]
        return cls.model_validate(fields)


Item: TypeAlias = Annotated[
    VideoItem | ImageItem | ImageGroupItem | DicomSeriesItem | AudioItem | TextItem | PdfItem | NiftiItem,
    Field(discriminator="kind"),
]
"""Any registrable item; ``kind`` tells which."""

ItemKind: TypeAlias = Literal[
    "video", "image", "image_group", "dicom_series", "audio", "text", "pdf", "nifti"
]

ITEM_TYPES: tuple[type[_Item], ...] = (
    VideoItem,
    ImageItem,
    ImageGroupItem,
    DicomSeriesItem,
    AudioItem,
    TextItem,
    PdfItem,
    NiftiItem,
)
"""Every item model, in the order both manifest forms list them."""
