"""A grouping draft turned into the manifest item Encord registers."""

from __future__ import annotations

from typing import Any

from encord_ingest.errors import ItemError
from encord_ingest.grouping import Draft
from encord_ingest.manifest import (
    AudioItem,
    DicomSeriesItem,
    GroupFrame,
    ImageGroupItem,
    ImageItem,
    Item,
    NiftiItem,
    PdfItem,
    TextItem,
    VideoItem,
)
from encord_ingest.metadata import check_keyframes_in_video
from encord_ingest.probe import (
    NOT_DESCRIBABLE,
    ProbeConfig,
    client_only_error,
    probe_image,
    probe_video,
    text_metadata,
)
from encord_ingest.sources.base import Source


def build_item(
    draft: Draft, urls: list[str], metadata: dict[str, Any], source: Source, probe: ProbeConfig
) -> Item | ItemError:
    """The manifest item of ``draft`` (media probed when ``probe`` says so), or why there is none.
    ``metadata`` is typed (JSON values only)."""
    common: dict[str, Any] = {"title": draft.title, "client_metadata": metadata}
    member = draft.members[0]
    if probe.client_only and draft.kind in NOT_DESCRIBABLE:
        return client_only_error(draft.kind, member.key)
    if draft.kind == "image_group":
        return _image_group(draft, urls, common, source, probe)
    if draft.kind == "dicom_series":
        return DicomSeriesItem.of_typed(files=urls, **common)
    if draft.kind == "image":
        media = probe_image(source.read_bytes, member.key, member.size, probe) if probe.probe_images else None
        if isinstance(media, ItemError):
            return media
        return ImageItem.of_typed(object_url=urls[0], image_metadata=media, **common)
    if draft.kind == "video":
        return _video(draft, urls, common, source, probe)
    if draft.kind == "text" and probe.client_only:
        return TextItem.of_typed(
            object_url=urls[0], text_metadata=text_metadata(member.key, member.size), **common
        )
    singles: dict[str, type[AudioItem | TextItem | PdfItem | NiftiItem]] = {
        "audio": AudioItem,
        "text": TextItem,
        "pdf": PdfItem,
        "nifti": NiftiItem,
    }
    single = singles[draft.kind]
    return single.of_typed(object_url=urls[0], **common)


_SINGLE_FILE: dict[str, type[Item]] = {
    "image": ImageItem,
    "video": VideoItem,
    "audio": AudioItem,
    "text": TextItem,
    "pdf": PdfItem,
    "nifti": NiftiItem,
}


def plain_entry(
    draft: Draft, urls: list[str], metadata: dict[str, Any], probe: ProbeConfig
) -> tuple[str, dict[str, Any]] | None:
    """``(DOCS_KEY, to_docs())`` of the item :func:`build_item` would build, without building it,
    for a one-file item with nothing to probe or describe, whose URL was checked
    (``check_object_url``); ``None`` for any other item (build it)."""
    kind = draft.kind
    if (
        probe.client_only
        or len(urls) != 1
        or not draft.title
        or (kind == "image" and probe.probe_images)
        or (kind == "video" and probe.probe_videos)
        or kind not in _SINGLE_FILE
    ):
        return None
    return _SINGLE_FILE[kind].DOCS_KEY, {
        "objectUrl": urls[0],
        "title": draft.title,
        "clientMetadata": metadata,
    }


def _image_group(
    draft: Draft, urls: list[str], common: dict[str, Any], source: Source, probe: ProbeConfig
) -> ImageGroupItem | ItemError:
    frames = []
    for info, url in zip(draft.members, urls, strict=True):
        media = probe_image(source.read_bytes, info.key, info.size, probe) if probe.probe_images else None
        if isinstance(media, ItemError):
            return media
        frames.append(GroupFrame(url=url, image_metadata=media))
    return ImageGroupItem.of_typed(frames=frames, create_video=draft.create_video, **common)


def _video(
    draft: Draft, urls: list[str], common: dict[str, Any], source: Source, probe: ProbeConfig
) -> VideoItem | ItemError:
    """The video item, probed when ``probe`` says so; keyframes must lie inside the probed video."""
    member = draft.members[0]
    video = None
    if probe.probe_videos:
        local = getattr(source, "path", None)
        video = probe_video(
            source.read_bytes,
            member.key,
            member.size,
            probe,
            str(local(member.key)) if local else None,
        )
        if isinstance(video, ItemError):
            return video
        outside = check_keyframes_in_video(
            common["client_metadata"],
            frames=round(video.fps * video.duration),
            duration=video.duration,
            file=member.key,
        )
        if outside is not None:
            return outside
    return VideoItem.of_typed(object_url=urls[0], video_metadata=video, **common)
