"""Folder item listings that survive values the pinned SDK does not know, and large metadata.

The SDK parses each listing page as a whole: one item whose ``itemType`` or
``storageLocation`` is newer than the SDK fails the page, and with it every sync, registration
lookup and reconcile. Here a page is read as plain JSON and each item is parsed on its own:

- an unknown ``itemType``: the item is skipped with a warning (the pipeline never creates
  such items, so it has nothing to do with them);
- an unknown ``storageLocation``: the item is kept, its ``storage_location`` is the raw string;
- a page the server fails to produce (a 5xx or a timeout, as with large client metadata) is
  asked for again with half the page size, down to :data:`MIN_PAGE_SIZE`;
- ``metadata_as_urls``: the server sends each item's metadata as a signed URL (the SDK's
  ``resolve_client_metadata_locally``); a URL that cannot be read fails the listing, because
  an item read as "no metadata" would have its keys overwritten.

This reads ``StorageFolder._api_client``, a private attribute of the pinned SDK (0.1.211).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from encord.exceptions import GenericServerError, RequestException, UnknownException
from encord.http.utils import download_signed_urls_as_json
from encord.orm import storage as orm_storage
from encord.storage import StorageItem
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from encord.storage import StorageFolder

log = logging.getLogger(__name__)

MIN_PAGE_SIZE = 1
#: Errors after which a smaller page is tried (the SDK has already retried 429 and 5xx).
PAGE_TOO_BIG_ERRORS: tuple[type[Exception], ...] = (UnknownException, GenericServerError, RequestException)
KNOWN_ITEM_TYPES = frozenset(t.value for t in orm_storage.StorageItemType)
KNOWN_LOCATIONS = frozenset(loc.value for loc in orm_storage.StorageLocationName)


class ListingError(Exception):
    """A listing could not be read completely."""


class _RawPage(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    results: list[dict[str, Any]]
    next_page_token: str | None = Field(default=None, alias="nextPageToken")


def iter_items(
    folder: StorageFolder,
    *,
    page_size: int = 1000,
    metadata_as_urls: bool = False,
    skipped: dict[str, int] | None = None,
) -> Iterator[StorageItem]:
    """Every item of ``folder`` with its client metadata; ``skipped`` counts items left out by type."""
    api = folder._api_client
    params = orm_storage.ListItemsParams(
        search=None,
        is_in_dataset=None,
        item_types=[],
        order=orm_storage.FoldersSortBy.NAME,
        desc=False,
        page_token=None,
        page_size=page_size,
        sign_urls=False,
        include_client_metadata=True,
        client_metadata_as_signed_url=metadata_as_urls,
    )
    counts = skipped if skipped is not None else {}
    while True:
        page = _fetch_page(api, f"storage/folders/{folder.uuid}/items", params, folder)
        raws = [raw for raw in page.results if _keep(raw, counts)]
        if metadata_as_urls:
            _inline_metadata(raws, api.requests_settings)
        for raw in raws:
            yield StorageItem(api, _parse_item(raw))
        if page.next_page_token is None:
            return
        params.page_token = page.next_page_token


def _fetch_page(api: Any, path: str, params: orm_storage.ListItemsParams, folder: Any) -> _RawPage:
    while True:
        try:
            page: _RawPage = api.get(path, params=params, result_type=_RawPage)
            return page
        except PAGE_TOO_BIG_ERRORS as exc:
            if params.page_size <= MIN_PAGE_SIZE:
                raise
            smaller = max(MIN_PAGE_SIZE, params.page_size // 2)
            log.warning(
                "Listing folder %s: a page of %d items failed (%s); trying pages of %d",
                folder.uuid,
                params.page_size,
                type(exc).__name__,
                smaller,
            )
            params.page_size = smaller


def _keep(raw: dict[str, Any], skipped: dict[str, int]) -> bool:
    item_type = raw.get("itemType")
    if item_type in KNOWN_ITEM_TYPES:
        return True
    key = str(item_type)
    if key not in skipped:
        log.warning(
            "Encord item %s has type %r, which the pinned encord SDK does not know: skipped "
            "(further items of this type are skipped silently)",
            raw.get("uuid"),
            item_type,
        )
    skipped[key] = skipped.get(key, 0) + 1
    return False


def _parse_item(raw: dict[str, Any]) -> orm_storage.StorageItem:
    location = raw.get("storageLocation")
    if location is None or location in KNOWN_LOCATIONS:
        return orm_storage.StorageItem.model_validate(raw)
    log.warning(
        "Encord item %s has storage location %r, which the pinned encord SDK does not know; kept as text",
        raw.get("uuid"),
        location,
    )
    placeholder = orm_storage.StorageLocationName.ENCORD.value
    item = orm_storage.StorageItem.model_validate({**raw, "storageLocation": placeholder})
    item.storage_location = location  # no validation on assignment: the raw text stays
    return item


def _inline_metadata(raws: list[dict[str, Any]], settings: Any) -> None:
    urls = [str(raw["clientMetadataSignedUrl"]) for raw in raws if raw.get("clientMetadataSignedUrl")]
    contents = download_signed_urls_as_json(urls, requests_settings=settings)
    for raw in raws:
        url = raw.get("clientMetadataSignedUrl")
        if not url:
            continue
        if url not in contents:
            raise ListingError(
                f"the client metadata of Encord item {raw.get('uuid')} could not be downloaded from its "
                "signed URL; the listing stops rather than read the item as having no metadata"
            )
        raw["clientMetadata"] = json.dumps(contents[url])
