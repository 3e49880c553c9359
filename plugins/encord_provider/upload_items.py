"""A manifest in the SDK's form: the ``encord.orm.storage.DataUpload*`` models an upload job sends.

The manifest models live in core (``encord_ingest.manifest``), which imports no SDK; this module
is the one place that maps them onto the SDK's models (which validate and send camelCase). It
imports the SDK: import it where an upload job starts, not from a module DAG files load.
"""

from __future__ import annotations

from typing import Any

from encord.orm import storage as sdk

from encord_ingest.manifest import (
    ITEM_TYPES,
    AudioItem,
    DicomSeriesItem,
    ImageGroupItem,
    ImageItem,
    Manifest,
    NiftiItem,
    PdfItem,
    TextItem,
    VideoItem,
)
from encord_ingest.manifest.items import _Item, _MediaMetadata, _SingleFileItem

# single-file item type -> (SDK item model, SDK media metadata model or None)
_SINGLE_FILE: dict[type[_SingleFileItem], tuple[Any, Any]] = {
    VideoItem: (sdk.DataUploadVideo, sdk.CustomerProvidedVideoMetadata),
    ImageItem: (sdk.DataUploadImage, sdk.CustomerProvidedImageMetadata),
    AudioItem: (sdk.DataUploadAudio, sdk.CustomerProvidedAudioMetadata),
    TextItem: (sdk.DataUploadText, sdk.CustomerProvidedTextMetadata),
    PdfItem: (sdk.DataUploadPDF, sdk.CustomerProvidedPdfMetadata),
    NiftiItem: (sdk.DataUploadNifti, None),
}


def upload_items(manifest: Manifest) -> sdk.DataUploadItems:
    """The SDK's ``DataUploadItems`` for a manifest (validated by the SDK's own models)."""
    lists: dict[str, list[Any]] = {item_type.DOCS_KEY: [] for item_type in ITEM_TYPES}
    for item in manifest.items:
        lists[item.DOCS_KEY].append(upload_item(item))
    return sdk.DataUploadItems(
        **lists, skip_duplicate_urls=manifest.skip_duplicate_urls, upsert_metadata=manifest.upsert_metadata
    )


def upload_item(item: _Item) -> Any:
    """One item as its SDK ``DataUpload*`` model."""
    if isinstance(item, ImageGroupItem):
        images = [
            sdk.DataUploadImageGroupImage(
                url=frame.url, image_metadata=_media(sdk.CustomerProvidedImageMetadata, frame.image_metadata)
            )
            for frame in item.frames
        ]
        return sdk.DataUploadImageGroup(
            images=images,
            title=item.title,
            client_metadata=item.client_metadata,
            create_video=item.create_video,
        )
    if isinstance(item, DicomSeriesItem):
        files = [sdk.DataUploadDicomSeriesDicomFile(url=url, title=None) for url in item.files]
        return sdk.DataUploadDicomSeries(
            dicom_files=files, title=item.title, client_metadata=item.client_metadata
        )
    if isinstance(item, _SingleFileItem):
        item_model, media_model = _SINGLE_FILE[type(item)]
        fields = {"object_url": item.object_url, "title": item.title, "client_metadata": item.client_metadata}
        if item.MEDIA_FIELD is not None:
            fields[item.MEDIA_FIELD] = _media(media_model, getattr(item, item.MEDIA_FIELD))
        return item_model(**fields)
    raise TypeError(f"no SDK upload model for {type(item).__name__}")


def _media(sdk_model: Any, media: _MediaMetadata | None) -> Any:
    return None if media is None else sdk_model(**media.model_dump())
