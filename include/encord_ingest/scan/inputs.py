"""Sidecar reads and the folder-level inputs (defaults files, tables) along a shard's walk."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.grouping import FolderBatch, FolderWalker
from encord_ingest.sidecars import ParsedSidecar, ParsedTable, SidecarConventions
from encord_ingest.sources.base import ObjectInfo, Source, folder_of
from encord_ingest.sources.sharding import Shard, find_folder_files

Parsed = ParsedSidecar | ParsedTable | ItemError


class FolderInputs:
    """Folder defaults and tables along the walk: which exist (with versions) and their parse.

    A folder's own batch is exact once complete. Before that (a sub-folder is planned first) a
    name is known from the partial batch when the folder is still open, the name sorts below the
    walk position and lies in the shard; otherwise (and for folders already closed, say for a
    UID series planned at the end) it is looked up with one HEAD. Folders outside the shard come from the
    shard's ``context_folders`` at or below ``root``. Entries are dropped when their folder closes.
    """

    def __init__(
        self,
        source: Source,
        conventions: SidecarConventions,
        shard: Shard,
        walker: FolderWalker,
        root: str = "",
    ):
        self.source, self.conventions, self.shard, self.walker = source, conventions, shard, walker
        self.names = (*conventions.defaults_names, *conventions.table_names)
        self.context = {folder for folder in shard.context_folders if folder.startswith(root)}
        self._infos: dict[str, dict[str, ObjectInfo]] = {folder: {} for folder in self.context}
        for info in find_folder_files(source, sorted(self.context), self.names):
            self._infos.setdefault(folder_of(info.key), {})[info.key] = info
        self._parsed: dict[str, Parsed] = {}

    def of(self, folder: str) -> dict[str, ObjectInfo]:
        """``{key: info}`` of the folder-level files of ``folder``."""
        known = self._infos.get(folder)
        if known is not None:
            return known
        batch = self.walker.open_batch(folder)
        position = self.walker.position
        open_now = self.walker.is_open(folder)
        found: dict[str, ObjectInfo] = {}
        for name in self.names:
            key = folder + name
            if open_now and self.shard.contains(key) and (position is None or key < position):
                info = find_object(batch.objects, key) if batch is not None else None
            else:
                info = self.source.head(key)
            if info is not None:
                found[key] = info
        self._infos[folder] = found
        return found

    def complete(self, batch: FolderBatch, folder_inputs: Iterable[ObjectInfo]) -> None:
        """The folder's batch is final: its own folder-level files are exactly those listed."""
        found = {info.key: info for info in folder_inputs}
        if batch.folder in self.context:
            for key, info in self._infos.get(batch.folder, {}).items():
                found.setdefault(key, info)
        self._infos[batch.folder] = found

    def release(self, folder: str) -> None:
        """Forget a closed folder (context folders stay for the whole shard)."""
        if folder in self.context:
            return
        for key in self._infos.pop(folder, {}):
            self._parsed.pop(key, None)

    def parsed(self, key: str) -> Parsed:
        """The parse of a folder-level file (read once while its folder is open)."""
        if key not in self._parsed:
            info = self._infos.get(folder_of(key), {}).get(key)
            size = info.size if info is not None else None
            self._parsed[key] = read_and_parse(self.source, self.conventions, key, size)
        return self._parsed[key]

    def table_read(self, key: str) -> ParsedTable | None:
        """The parse of the table ``key`` if it was read (and parsed) in this scan."""
        parsed = self._parsed.get(key)
        return parsed if isinstance(parsed, ParsedTable) else None

    def parse_error(self, key: str) -> ItemError | None:
        """The error of a folder-level file parsed earlier, if any."""
        parsed = self._parsed.get(key)
        return parsed if isinstance(parsed, ItemError) else None


def find_object(objects: Sequence[ObjectInfo], key: str) -> ObjectInfo | None:
    index = bisect.bisect_left(objects, key, key=lambda info: info.key)
    return objects[index] if index < len(objects) and objects[index].key == key else None


def read_and_parse(
    source: Source, conventions: SidecarConventions, key: str, size: int | None = None
) -> Parsed:
    """Read a sidecar (one byte past its limit, so "too large" is detected) and parse it;
    ``size`` (the listed size) is what a "too large" error names."""
    try:
        data = source.read_bytes(key, conventions.read_limit(key))
    except Exception as exc:  # noqa: BLE001 (recorded as the sidecar's READ_FAILED error)
        return ItemError.of(ErrorCode.READ_FAILED, key, detail=f"{type(exc).__name__}: {exc}")
    return conventions.parse(key, data, object_size=size)
