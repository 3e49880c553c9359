"""Turn an upload-job body (``dataItems`` in the SDK's camelCase form, or ``externalFiles`` in
Encord's documented JSON form) into job units.

Both spellings of every key are accepted (``image_groups`` / ``imageGroups``, ``objectUrl_0`` /
``images: [{url}]``). Unknown top-level keys are refused with 400 so that a typo in a pipeline's
JSON shows up here instead of being silently ignored.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from encord_emulator.errors import ApiError
from encord_emulator.models import Frame, Unit

MAX_URLS_PER_JOB = 1_000_000
MAX_ITEMS_PER_JOB = 500_000
MAX_URL_BYTES = 16 * 1024

_SIMPLE_KINDS = {
    "videos": ("video", "Uploading video", "videoMetadata"),
    "images": ("image", "Uploading image", "imageMetadata"),
    "audio": ("audio", "Uploading audio", "audioMetadata"),
    "text": ("plainText", "Uploading text", "textMetadata"),
    "pdf": ("pdf", "Uploading PDF", "pdfMetadata"),
    "nifti": ("nifti", "Uploading NIfTI", None),
    "timeSeries": ("timeseries", "Uploading time series", None),
}
_GROUP_KINDS = ("imageGroups", "dicomSeries", "imageGroupsFromItems", "scenes")
_FLAGS = ("skipDuplicateUrls", "upsertMetadata")
TOP_LEVEL_KEYS = (*_SIMPLE_KINDS, *_GROUP_KINDS, *_FLAGS)
_FRAME_KEY = re.compile(r"^object_?url_(\d+)$", re.IGNORECASE)
_MEDIA_RENAMES = {
    "sampleRate": "audioSampleRate",
    "bitDepth": "audioBitDepth",
    "codec": "audioCodec",
    "numChannels": "audioNumChannels",
}
_MEDIA_FIELDS = (
    "fileSize",
    "mimeType",
    "duration",
    "fps",
    "height",
    "width",
    "audioSampleRate",
    "audioBitDepth",
    "audioCodec",
    "audioNumChannels",
)


@dataclass(frozen=True)
class UploadRequest:
    units: list[Unit]
    skip_duplicate_urls: bool
    upsert_metadata: bool


def camel(key: str) -> str:
    """``image_groups`` -> ``imageGroups``; camelCase keys are returned unchanged."""
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def parse_upload(files: dict[str, Any]) -> UploadRequest:
    """Units of a ``dataItems`` / ``externalFiles`` object; raises :class:`ApiError` (400)."""
    if not isinstance(files, dict):
        raise ApiError(400, "the upload specification must be a JSON object")
    spec = {camel(k): v for k, v in files.items()}
    unknown = sorted(k for k in files if camel(k) not in TOP_LEVEL_KEYS)
    if unknown:
        raise ApiError(400, f"unknown keys in the upload specification: {', '.join(unknown)}")
    units: list[Unit] = []
    for key, entries in spec.items():
        if key in _FLAGS:
            continue
        if not isinstance(entries, list):
            raise ApiError(400, f"'{key}' must be a list")
        units.extend(_parse_entry(key, index, entry) for index, entry in enumerate(entries))
    _check_limits(units)
    return UploadRequest(units, _flag(spec, "skipDuplicateUrls"), _flag(spec, "upsertMetadata"))


def default_title(url: str) -> str:
    """The object path of ``url`` (the key inside the bucket / container), percent-decoded."""
    parts = urlsplit(url)
    path = unquote(parts.path).lstrip("/")
    host = parts.netloc.lower()
    bucket_in_path = (
        host in ("storage.cloud.google.com", "storage.googleapis.com")
        or host.startswith("s3.")
        or host.endswith(".blob.core.windows.net")
    )
    if bucket_in_path:
        path = path.partition("/")[2]
    return path or url


def normalised_url(url: str) -> str:
    """One way a server may store URLs: scheme and host lower-cased, the path percent-decoded."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, parts.fragment))


def url_problem(url: str) -> str | None:
    """Why the service would refuse ``url`` outright, or ``None``."""
    if not url or any(ch.isspace() for ch in url):
        return f"invalid object URL {url!r}: empty or contains whitespace"
    if len(url.encode()) > MAX_URL_BYTES:
        return f"object URL longer than {MAX_URL_BYTES} bytes"
    return None


def guess_mime_type(url: str) -> str | None:
    return mimetypes.guess_type(urlsplit(url).path)[0]


def _flag(spec: dict[str, Any], key: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise ApiError(400, f"'{key}' must be true or false")
    return value


def _parse_entry(kind: str, index: int, raw: Any) -> Unit:
    where = f"{kind}[{index}]"
    if not isinstance(raw, dict):
        raise ApiError(400, f"{where} must be an object")
    entry = {(k if _FRAME_KEY.match(k) else camel(k)): v for k, v in raw.items()}
    metadata = entry.get("clientMetadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ApiError(400, f"{where}.clientMetadata must be an object")
    if kind in _SIMPLE_KINDS:
        return _simple_unit(kind, where, entry, metadata)
    if kind == "imageGroups":
        return _group_unit(where, entry, metadata)
    if kind == "dicomSeries":
        return _dicom_unit(where, entry, metadata)
    if kind == "imageGroupsFromItems":
        return _group_from_items_unit(where, entry, metadata)
    return _scene_unit(where, entry, metadata)


def _simple_unit(kind: str, where: str, entry: dict[str, Any], metadata: dict[str, Any]) -> Unit:
    item_type, action, media_key = _SIMPLE_KINDS[kind]
    url = _required_str(entry, "objectUrl", where)
    media = _media(entry.get(media_key) if media_key else None, where, url)
    if item_type == "pdf":
        media["mimeType"] = media.get("mimeType") or "application/pdf"
    return Unit(
        item_type=item_type,
        title=_title(entry, where, url),
        url=url,
        client_metadata=metadata,
        media=media,
        action=action,
    )


def _group_unit(where: str, entry: dict[str, Any], metadata: dict[str, Any]) -> Unit:
    create_video = entry.get("createVideo", False)
    if not isinstance(create_video, bool):
        raise ApiError(400, f"{where}.createVideo must be true or false")
    frames = _frames(entry, where, "images", "imageMetadata", "image")
    item_type = "imageSequence" if create_video else "imageGroup"
    action = "Uploading image sequence" if create_video else "Uploading image group"
    return Unit(
        item_type=item_type,
        title=_group_title(entry, where, frames),
        frames=frames,
        client_metadata=metadata,
        action=action,
    )


def _dicom_unit(where: str, entry: dict[str, Any], metadata: dict[str, Any]) -> Unit:
    frames = _frames(entry, where, "dicomFiles", None, "dicomFile")
    return Unit(
        item_type="dicomSeries",
        title=_group_title(entry, where, frames),
        frames=frames,
        client_metadata=metadata,
        action="Uploading DICOM series",
    )


def _group_from_items_unit(where: str, entry: dict[str, Any], metadata: dict[str, Any]) -> Unit:
    items = entry.get("imageItems")
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ApiError(400, f"{where}.imageItems must be a non-empty list of item UUIDs")
    title = entry.get("title")
    if not isinstance(title, str) or not title:
        raise ApiError(400, f"{where}.title is required")
    item_type = "imageSequence" if entry.get("createVideo") else "imageGroup"
    return Unit(
        item_type=item_type,
        title=title,
        source_items=items,
        client_metadata=metadata,
        action="Creating image group from items",
    )


def _scene_unit(where: str, entry: dict[str, Any], metadata: dict[str, Any]) -> Unit:
    title = entry.get("title")
    if not isinstance(title, str) or not title:
        raise ApiError(400, f"{where}.title is required")
    return Unit(item_type="scene", title=title, client_metadata=metadata, action="Uploading scene")


def _frames(
    entry: dict[str, Any], where: str, list_key: str, media_key: str | None, item_type: str
) -> list[Frame]:
    numbered = sorted(
        ((int(m.group(1)), v) for k, v in entry.items() if (m := _FRAME_KEY.match(k))),
        key=lambda pair: pair[0],
    )
    frames = [Frame(url=_frame_url(v, f"{where}.objectUrl_{i}"), item_type=item_type) for i, v in numbered]
    listed = entry.get(list_key) or []
    if not isinstance(listed, list):
        raise ApiError(400, f"{where}.{list_key} must be a list")
    for index, raw in enumerate(listed):
        frame_where = f"{where}.{list_key}[{index}]"
        if not isinstance(raw, dict):
            raise ApiError(400, f"{frame_where} must be an object")
        frame = {camel(k): v for k, v in raw.items()}
        url = _required_str(frame, "url", frame_where)
        media = _media(frame.get(media_key) if media_key else None, frame_where, url)
        title = frame.get("title") if isinstance(frame.get("title"), str) else None
        frames.append(Frame(url=url, title=title, item_type=item_type, media=media))
    if not frames:
        raise ApiError(400, f"{where} has no frames (objectUrl_0.. or {list_key})")
    return frames


def _frame_url(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"{where} must be a string")
    return value


def _required_str(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise ApiError(400, f"{where}.{key} is required and must be a string")
    return value


def _title(entry: dict[str, Any], where: str, url: str) -> str:
    title = entry.get("title")
    if title is None:
        return default_title(url)
    if not isinstance(title, str):
        raise ApiError(400, f"{where}.title must be a string")
    return title


def _group_title(entry: dict[str, Any], where: str, frames: list[Frame]) -> str:
    title = entry.get("title")
    if title is None:
        return default_title(frames[0].url)
    if not isinstance(title, str):
        raise ApiError(400, f"{where}.title must be a string")
    return title


def _media(raw: Any, where: str, url: str) -> dict[str, Any]:
    media: dict[str, Any] = {"mimeType": guess_mime_type(url)}
    if raw is None:
        return media
    if not isinstance(raw, dict):
        raise ApiError(400, f"{where}: media metadata must be an object")
    for key, value in raw.items():
        name = _MEDIA_RENAMES.get(camel(key), camel(key))
        if name in _MEDIA_FIELDS and value is not None:
            media[name] = value
    if isinstance(media.get("fps"), int | float) and isinstance(media.get("duration"), int | float):
        media["frameCount"] = round(media["fps"] * media["duration"])
    return media


def _check_limits(units: list[Unit]) -> None:
    if len(units) > MAX_ITEMS_PER_JOB:
        raise ApiError(400, f"too many items in one upload job: {len(units)} > {MAX_ITEMS_PER_JOB}")
    url_count = sum(len(u.object_urls) for u in units)
    if url_count > MAX_URLS_PER_JOB:
        raise ApiError(400, f"too many URLs in one upload job: {url_count} > {MAX_URLS_PER_JOB}")
