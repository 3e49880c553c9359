"""Split a manifest into upload jobs that stay under item, URL and byte limits.

Encord accepts at most 500,000 items and 1,000,000 URLs per registration and recommends smaller
jobs; the defaults here are far below. Bytes are those of the chunk file (``Manifest.to_bytes()``);
the SDK payload of the same chunk is a few dozen bytes per item larger (camelCase keys,
``externalFileType``), which the default byte limit leaves ample room for.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.manifest.items import Item
from encord_ingest.manifest.model import Manifest, ManifestError, compact_json_bytes

ENCORD_MAX_ITEMS = 500_000
ENCORD_MAX_URLS = 1_000_000
DEFAULT_MAX_ITEMS = 10_000
DEFAULT_MAX_URLS = 100_000
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


class ChunkLimitError(ManifestError):
    """One item cannot fit in any chunk; ``error`` is the per-item error naming its key URL."""

    def __init__(self, error: ItemError) -> None:
        super().__init__(error.message)
        self.error = error


@cache
def _envelope_bytes(skip_duplicate_urls: bool, upsert_metadata: bool) -> int:
    """Size of a chunk without items: braces and flags."""
    return len(
        Manifest([], skip_duplicate_urls=skip_duplicate_urls, upsert_metadata=upsert_metadata).to_bytes()
    )


def _section_bytes(item: Item) -> int:
    """Bytes the first item of a kind adds besides its entry: ``"key":[`` and ``],``."""
    return len(compact_json_bytes(item.DOCS_KEY)) + 4


def _limit_error(
    item: Item, entry_bytes: int, envelope: int, max_urls: int, max_bytes: int
) -> ItemError | None:
    urls = len(item.object_urls())
    if urls > max_urls:
        expected = f"at most {max_urls} object URLs per manifest chunk"
        return ItemError.of(ErrorCode.ITEM_TOO_LARGE, item.key_url, expected=expected, value=urls)
    alone = envelope + _section_bytes(item) + entry_bytes
    if alone > max_bytes:
        return ItemError.of(
            ErrorCode.ITEM_TOO_LARGE,
            item.key_url,
            expected=f"a manifest chunk of at most {max_bytes} bytes",
            value=alone,
            detail="a chunk with only this item is that large; shrink its clientMetadata or raise max_bytes",
        )
    return None


def check_item_limits(
    item: Item,
    *,
    max_urls: int = DEFAULT_MAX_URLS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    skip_duplicate_urls: bool = True,
    upsert_metadata: bool = False,
) -> ItemError | None:
    """The ``ITEM_TOO_LARGE`` error :func:`chunk_manifest` would raise for ``item``, else ``None``.

    Call it while planning, so an oversize item fails alone instead of failing the chunking.
    """
    envelope = _envelope_bytes(skip_duplicate_urls, upsert_metadata)
    return _limit_error(item, len(compact_json_bytes(item.to_docs())), envelope, max_urls, max_bytes)


def _check_limits(max_items: int, max_urls: int, max_bytes: int) -> None:
    if not 1 <= max_items <= ENCORD_MAX_ITEMS:
        raise ValueError(f"max_items: expected 1..{ENCORD_MAX_ITEMS}, got {max_items}")
    if not 1 <= max_urls <= ENCORD_MAX_URLS:
        raise ValueError(f"max_urls: expected 1..{ENCORD_MAX_URLS}, got {max_urls}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes: expected a positive number of bytes, got {max_bytes}")


def chunk_manifest(
    manifest: Manifest,
    *,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_urls: int = DEFAULT_MAX_URLS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Iterator[Manifest]:
    """Split ``manifest`` greedily, in item order, into manifests with the same flags, none of
    which exceeds ``max_items`` items, ``max_urls`` URLs or ``max_bytes`` bytes of ``to_bytes()``.

    Items are never split. Limits and every item are checked before the first chunk is yielded:
    bad limits raise ``ValueError``, an item that fits in no chunk raises :class:`ChunkLimitError`.
    An empty manifest yields no chunk.
    """
    _check_limits(max_items, max_urls, max_bytes)
    envelope = _envelope_bytes(manifest.skip_duplicate_urls, manifest.upsert_metadata)
    sized = [(item, len(compact_json_bytes(item.to_docs()))) for item in manifest.items]
    for item, entry_bytes in sized:
        error = _limit_error(item, entry_bytes, envelope, max_urls, max_bytes)
        if error is not None:
            raise ChunkLimitError(error)
    return _greedy_chunks(
        manifest, sized, envelope, max_items=max_items, max_urls=max_urls, max_bytes=max_bytes
    )


def _greedy_chunks(
    manifest: Manifest,
    sized: list[tuple[Item, int]],
    envelope: int,
    *,
    max_items: int,
    max_urls: int,
    max_bytes: int,
) -> Iterator[Manifest]:
    flags = {"skip_duplicate_urls": manifest.skip_duplicate_urls, "upsert_metadata": manifest.upsert_metadata}
    batch: list[Item] = []
    kinds: set[str] = set()
    urls, size = 0, envelope
    for item, entry_bytes in sized:
        item_urls = len(item.object_urls())
        added = entry_bytes + (1 if item.DOCS_KEY in kinds else _section_bytes(item))
        if batch and (len(batch) == max_items or urls + item_urls > max_urls or size + added > max_bytes):
            yield Manifest(batch, **flags)
            batch, kinds, urls, size = [], set(), 0, envelope
            added = entry_bytes + _section_bytes(item)
        batch.append(item)
        kinds.add(item.DOCS_KEY)
        urls += item_urls
        size += added
    if batch:
        yield Manifest(batch, **flags)
