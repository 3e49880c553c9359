"""Chunk writers of a shard scan: numbered blobs, manifest chunks under Encord's limits, row chunks."""

from __future__ import annotations

from typing import Any

from encord_ingest.errors import ItemError
from encord_ingest.manifest import Item, Manifest, check_item_limits
from encord_ingest.manifest.model import chunk_bytes, compact_json_bytes


class BlobWriter:
    """Writes numbered chunk files ``<folder>/<stem>-<n><suffix>`` and remembers their URIs."""

    def __init__(self, store: Any, folder: str, stem: str, suffix: str):
        self.store, self.folder, self.stem, self.suffix = store, folder, stem, suffix
        self.uris: list[str] = []

    def write(self, data: bytes) -> None:
        key = f"{self.folder}/{self.stem}-{len(self.uris):05d}{self.suffix}"
        self.uris.append(self.store.write_bytes(key, data))

    def remove_leftovers(self) -> None:
        """Delete chunks of an earlier attempt numbered past the ones written now."""
        mine = {uri.rsplit("/", 1)[-1] for uri in self.uris}
        for key in list(self.store.list(f"{self.folder}/{self.stem}-")):
            if key.rsplit("/", 1)[-1] not in mine and key.endswith(self.suffix):
                self.store.delete(key)


class ManifestWriter:
    """Streams items into manifest chunks under Encord's item, URL and byte limits."""

    def __init__(self, writer: BlobWriter, *, max_items: int, max_urls: int, max_bytes: int):
        self.writer = writer
        self.max_items, self.max_urls, self.max_bytes = max_items, max_urls, max_bytes
        self.envelope = len(Manifest([]).to_bytes())
        self.items: list[tuple[str, bytes]] = []
        """``(DOCS_KEY, entry bytes)`` of the chunk being filled."""
        self.chunk_urls: set[str] = set()
        self.kinds: set[str] = set()
        self.urls = 0
        self.size = self.envelope
        self.total_items = 0
        self.total_urls = 0
        self._sections: dict[str, int] = {}
        """The bytes a kind's section adds to a chunk besides its entries."""

    def add(self, item: Item) -> ItemError | None:
        """Queue ``item``; an item that fits in no chunk is returned as its error instead."""
        if self.add_entry(item.DOCS_KEY, item.object_urls(), item.to_docs()):
            return None
        return check_item_limits(item, max_urls=self.max_urls, max_bytes=self.max_bytes)

    def add_entry(self, docs_key: str, item_urls: list[str], docs: dict[str, Any]) -> bool:
        """Queue an item given as its ``DOCS_KEY``, object URLs and ``to_docs()`` entry; ``False``
        (nothing queued) when it fits in no chunk."""
        urls = len(item_urls)
        entry_bytes = compact_json_bytes(docs)
        entry = len(entry_bytes)
        section = self._sections.get(docs_key) or self._sections.setdefault(
            docs_key, len(compact_json_bytes(docs_key)) + 4
        )
        if urls > self.max_urls or self.envelope + section + entry > self.max_bytes:
            return False
        added = entry + (1 if docs_key in self.kinds else section)
        if self.items and (
            len(self.items) >= self.max_items
            or self.urls + urls > self.max_urls
            or self.size + added > self.max_bytes
        ):
            self.flush()
            added = entry + section
        repeated = self.chunk_urls.intersection(item_urls)
        if repeated:  # what a Manifest refuses; a scan lists each object once
            raise ValueError(f"object URL {sorted(repeated)[0]!r} appears in more than one item")
        self.chunk_urls.update(item_urls)
        self.items.append((docs_key, entry_bytes))
        self.kinds.add(docs_key)
        self.urls += urls
        self.size += added
        self.total_items += 1
        self.total_urls += urls
        return True

    def flush(self) -> None:
        if self.items:
            self.writer.write(chunk_bytes(self.items))
        self.items, self.kinds, self.urls, self.size = [], set(), 0, self.envelope
        self.chunk_urls = set()


class RowsWriter:
    """Buffers rows and writes them ``rows`` at a time with ``encode``."""

    def __init__(self, writer: BlobWriter, rows: int, encode: Any):
        self.writer, self.limit, self.encode = writer, rows, encode
        self.rows: list[Any] = []
        self.total = 0

    def add(self, row: Any) -> None:
        self.rows.append(row)
        self.total += 1
        if len(self.rows) >= self.limit:
            self.flush()

    def extend(self, rows: list[Any]) -> None:
        """:meth:`add` of each of ``rows`` (the same chunks), in one call."""
        self.rows.extend(rows)
        self.total += len(rows)
        while len(self.rows) >= self.limit:
            chunk, self.rows = self.rows[: self.limit], self.rows[self.limit :]
            self.writer.write(self.encode(chunk))

    def flush(self) -> None:
        if self.rows:
            self.writer.write(self.encode(self.rows))
        self.rows = []
