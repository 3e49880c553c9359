"""The lean metadata path of a shard scan: what the items of one folder share is worked out once.

Every item of a folder has the same folder chain, the same folder-level inputs (defaults files,
tables) and so the same typed defaults layers. :class:`LeanMetadata` keeps them for the folder
being planned and, per item, only reads and types its per-file sidecars and its table rows, then
merges through the same :func:`~.item_metadata.merge_typed` as the full path
(:meth:`~.scanner.ShardScanner._metadata`). The result is the full path's, by construction and
by test (``tests/planning/test_lean_metadata.py``). Items outside its scope go the full way:
groups and series with a folder of their own, a folder whose defaults or tables failed to
parse, and per-file sidecar names that are also folder-level names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from encord_ingest.errors import ItemError
from encord_ingest.grouping import Draft
from encord_ingest.metadata import TypedMetadata
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.inputs import FolderInputs, Parsed, read_and_parse
from encord_ingest.scan.item_metadata import ItemMetadata, TypedCache, merge_typed, type_layers
from encord_ingest.schema import MetadataSchema
from encord_ingest.sidecars import MetadataLayer, ParsedSidecar, ParsedTable, SidecarRole
from encord_ingest.sources.base import ObjectInfo, Source, folder_of

_DEFAULTS = SidecarRole.FOLDER_DEFAULTS.value
_TABLE = SidecarRole.FOLDER_TABLE.value
_PER_FILE = SidecarRole.PER_FILE.value
_FOLDER_ROLES = (SidecarRole.FOLDER_DEFAULTS, SidecarRole.FOLDER_TABLE)


@dataclass(slots=True)
class FolderLayers:
    """The folder-level part of the metadata of the items of one folder."""

    chain: list[str]
    """The folders whose defaults and tables apply, nearest first."""
    inputs: dict[str, ObjectInfo]
    """``{key: info}`` of their folder-level files, as the full path collects them."""
    ready: bool = False
    usable: bool = False
    """Every folder-level file parsed (else each item takes the full path, which fails it)."""
    typed: list[TypedMetadata] = field(default_factory=list)
    """The static layer, then the defaults layers typed, lowest precedence first."""
    files: list[str] = field(default_factory=list)
    """The file of each defaults layer."""
    tables: list[ParsedTable] = field(default_factory=list)
    """The parsed tables, nearest folder first."""


class LeanMetadata:
    """Per-item metadata from per-folder layers (see the module docstring)."""

    def __init__(
        self,
        source: Source,
        inputs: FolderInputs,
        config: PlanningConfig,
        schema: MetadataSchema,
        *,
        chain: Callable[[str], list[str]],
        static: TypedMetadata,
        cache: TypedCache,
        parse_errors: dict[str, ItemError],
    ):
        self.source, self.folder_inputs, self.config, self.schema = source, inputs, config, schema
        self.conventions = config.sidecars
        self.chain, self.static, self.cache, self.parse_errors = chain, static, cache, parse_errors
        self._key: tuple[str, Mapping[str, ObjectInfo]] | None = None
        self._layers: FolderLayers | None = None

    def layers(self, draft: Draft, index: Mapping[str, ObjectInfo]) -> FolderLayers | None:
        """The layers shared by ``draft``'s folder (``index``: the folder batch's objects), or
        ``None`` when the draft takes the full path."""
        if draft.own_folder is not None:
            return None
        folder = folder_of(draft.metadata_key)
        key = self._key
        if key is None or key[1] is not index or key[0] != folder:  # the index is kept: its id stays its own
            chain = self.chain(draft.metadata_key)
            found: dict[str, ObjectInfo] = {}
            for step in chain:
                found.update(self.folder_inputs.of(step))
            self._key, self._layers = (folder, index), FolderLayers(chain=chain, inputs=found)
        return self._layers

    def inputs(
        self, draft: Draft, index: Mapping[str, ObjectInfo], layers: FolderLayers
    ) -> dict[str, ObjectInfo]:
        """Every sidecar that may feed ``draft``, in the full path's order."""
        found = {key: info for key in draft.sidecars if (info := index.get(key)) is not None}
        found.update(layers.inputs)
        return found

    def metadata(
        self, draft: Draft, inputs: Mapping[str, ObjectInfo], layers: FolderLayers
    ) -> ItemMetadata | None:
        """The item's metadata; ``None`` (before any read) when it must take the full path."""
        if not layers.ready:
            self._prepare(layers)
        candidates = self.conventions.per_file_sidecar_keys(draft.metadata_key)
        own = self._own_sidecars(inputs, layers, candidates)
        if own is None:
            return None
        parsed: dict[str, Parsed] = {}
        for key in own:
            document = read_and_parse(self.source, self.conventions, key, inputs[key].size)
            if isinstance(document, ItemError):
                self.parse_errors[key] = document
            parsed[key] = document
        item_layers = self._item_layers(draft.metadata_key, parsed, candidates, layers)
        if isinstance(item_layers, ItemError):
            return ItemMetadata(error=item_layers)
        typed, files = type_layers(item_layers, self.config, self.schema)
        return merge_typed(
            [*layers.typed, *typed], [*layers.files, *files], draft.kind, item_file=draft.title
        )

    def _own_sidecars(
        self, inputs: Mapping[str, ObjectInfo], layers: FolderLayers, candidates: list[str]
    ) -> list[str] | None:
        """The item's own (per-file) sidecars among ``inputs``; ``None``: not in scope."""
        if not layers.usable:
            return None
        shared = layers.inputs
        own = [key for key in inputs if key not in shared]
        for key in candidates:
            if key in shared:  # a per-file name that is a folder-level file too
                return None
        for key in own:
            if self.conventions.sidecar_role(key) in _FOLDER_ROLES:
                return None
        return own

    @staticmethod
    def _item_layers(
        data_key: str, parsed: Mapping[str, Parsed], candidates: list[str], layers: FolderLayers
    ) -> list[MetadataLayer] | ItemError:
        """The item's own layers (table rows, then per-file sidecars), lowest precedence first, or
        the first error, checked from the highest precedence down as ``collect_layers`` does."""
        found: list[MetadataLayer] = []
        for key in candidates:
            document = parsed.get(key)
            if isinstance(document, ItemError):
                return document
            if isinstance(document, ParsedSidecar):
                found.append(
                    MetadataLayer(document.file, _PER_FILE, document.fingerprint, False, document.values)
                )
        for table in layers.tables:
            row = table.lookup(data_key)
            if isinstance(row, ItemError):
                return row
            if row is not None:
                found.append(MetadataLayer(table.file, _TABLE, table.fingerprint, table.untyped, row))
        found.reverse()
        return found

    def _prepare(self, layers: FolderLayers) -> None:
        """Parse and type the folder-level files (once, when the first item needs metadata)."""
        layers.ready = True
        parsed = {key: self.folder_inputs.parsed(key) for key in layers.inputs}
        if any(isinstance(document, ItemError) for document in parsed.values()):
            return
        conventions = self.conventions
        defaults: list[MetadataLayer] = []
        for step in layers.chain:
            for key in conventions.table_keys(step):
                table = parsed.get(key)
                if isinstance(table, ParsedTable):
                    layers.tables.append(table)
            for key in conventions.defaults_keys(step):
                document = parsed.get(key)
                if isinstance(document, ParsedSidecar):
                    defaults.append(
                        MetadataLayer(document.file, _DEFAULTS, document.fingerprint, False, document.values)
                    )
        defaults.reverse()
        typed, files = type_layers(defaults, self.config, self.schema, self.cache)
        layers.typed, layers.files, layers.usable = [self.static, *typed], files, True
