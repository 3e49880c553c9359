"""EncordMetadataHook: :class:`EncordHook` plus the scopes of metadata operations.

A scope turns target ids into :class:`~encord_ingest.metadata_ops.Target` values and the SDK's
``StorageItem`` objects behind them, through the SDK calls Encord considers current:

- folders: ``get_storage_folder`` / the folder path, ``find_subfolders`` (recursive listing),
  ``list_items(include_client_metadata=True)``;
- datasets: ``get_dataset(..., include_data_rows=False).list_data_rows()``, then the backing
  items of the rows (``DataRow.backing_item_uuid``) in bulk with ``get_storage_items``; writes go
  to those items (``DataRow.client_metadata``'s setter and ``save()`` are deprecated);
- projects: ``get_project(...).list_datasets()``, then each dataset as above;
- group frames: the group item (UUID, or title within a folder), then ``get_child_items()``.

Writes reuse the hook's path: :func:`~encord_ingest.sync.plan_bundles` (at most 1000 items per
bundle, only items that differ) and :meth:`EncordHook.patch_metadata` (its retries honour
``Retry-After``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from encord_ingest.errors import ConfigError
from encord_ingest.metadata_ops import (
    Desired,
    ItemResult,
    Scope,
    Target,
    item_results,
    plan_writes,
    unique_targets,
)
from encord_ingest.schema import (
    RESERVED_KEYS,
    SCALAR_TYPES,
    MetadataSchema,
    is_valid_key,
    load_schema,
    parse_schema,
)
from encord_ingest.sync import MAX_BUNDLE_SIZE, ReservedKeysPolicy, SyncMode
from encord_provider.hooks.encord import LIST_PAGE_SIZE, EncordHook, EncordHookError, is_uuid
from encord_provider.schema_merge import read_existing

if TYPE_CHECKING:
    from encord.storage import StorageFolder, StorageItem

#: ``StorageItemType`` values whose frames are child items.
GROUP_ITEM_TYPES = frozenset({"imageGroup", "imageSequence", "dicomSeries", "group"})


@dataclass
class ScopeItems:
    """What a scope reached: the targets (in scope order) and the SDK items behind them."""

    targets: list[Target] = field(default_factory=list)
    items: dict[str, StorageItem] = field(default_factory=dict)

    def add(self, item: StorageItem, **where: Any) -> None:
        self.targets.append(target_of(item, **where))
        self.items[str(item.uuid)] = item


def target_of(item: StorageItem, **where: Any) -> Target:
    """A :class:`Target` from an SDK storage item; ``where`` sets the dataset or group fields (and
    the data unit's title, when it differs from the item's name)."""
    fields: dict[str, Any] = {
        "item_uuid": str(item.uuid),
        "title": item.name,
        "object_url": item.url,
        "item_type": str(item.item_type.value),
        "metadata": dict(item.client_metadata or {}),
    }
    return Target(**{**fields, **where})


class EncordMetadataHook(EncordHook):
    """:class:`EncordHook` with the scopes of metadata operations (same ``encord`` connection)."""

    # --- scopes --------------------------------------------------------------------------------

    def scope_items(
        self,
        scope: Scope,
        target_ids: Sequence[str],
        *,
        recursive: bool = False,
        folder: str | None = None,
    ) -> ScopeItems:
        """Every item the ids reach in ``scope``; ``recursive`` (folders) includes subfolders,
        ``folder`` (group frames) is where group titles are looked up."""
        if scope is Scope.FOLDER:
            return self.folder_items(target_ids, recursive=recursive)
        if scope is Scope.DATASET:
            return self.dataset_items(target_ids)
        if scope is Scope.PROJECT:
            return self.project_items(target_ids)
        return self.group_frame_items(target_ids, folder=folder)

    def folder_items(self, folders: Sequence[str], *, recursive: bool = False) -> ScopeItems:
        """The items of each folder (path ``a/b`` or UUID), and of all its subfolders if asked."""
        reached = ScopeItems()
        for ref in folders:
            for folder in self._folder_tree(ref, recursive):
                for item in self.iter_folder_items(folder):
                    reached.add(item)
        return _unique(reached)

    def _folder_tree(self, ref: str, recursive: bool) -> Iterator[StorageFolder]:
        folder = self.get_folder(ref, create=False)
        yield folder
        if recursive:
            with self._auth_errors():
                yield from folder.find_subfolders(page_size=LIST_PAGE_SIZE)

    def dataset_items(self, dataset_hashes: Sequence[str]) -> ScopeItems:
        """The backing item of every data unit, with the unit's dataset, index and hash."""
        reached = ScopeItems()
        for dataset_hash in dataset_hashes:
            with self._missing("dataset", dataset_hash), self._auth_errors():
                dataset = self.client.get_dataset(dataset_hash, include_data_rows=False)
                rows = dataset.list_data_rows()
            backing = {}
            for row in rows:
                try:
                    backing[row.uid] = str(row.backing_item_uuid)
                except NotImplementedError:
                    self.log.warning("Data unit %s of dataset %s has no backing item", row.uid, dataset_hash)
            items = self.get_items(list(dict.fromkeys(backing.values())))
            for index, row in enumerate(rows):
                item = items.get(backing.get(row.uid, ""))
                if item is None:
                    self.log.warning("Backing item of data unit %s (%r) is not readable", row.uid, row.title)
                    continue
                reached.add(
                    item,
                    title=row.title or item.name,
                    dataset_hash=str(dataset_hash),
                    data_hash=row.uid,
                    data_index=index,
                )
        return reached

    def list_dataset_metadata(self, dataset_hash: str) -> list[Target]:
        """Encord's "read metadata" recipe: every data unit with its index, title and metadata."""
        return self.dataset_items([dataset_hash]).targets

    def project_items(self, project_hashes: Sequence[str]) -> ScopeItems:
        """Every data unit of every dataset attached to the projects, each item once."""
        dataset_hashes: list[str] = []
        for project_hash in project_hashes:
            with self._missing("project", project_hash), self._auth_errors():
                project = self.client.get_project(project_hash)
                dataset_hashes += [str(d.dataset_hash) for d in project.list_datasets()]
        return _unique(self.dataset_items(list(dict.fromkeys(dataset_hashes))))

    def group_frame_items(self, groups: Sequence[str], *, folder: str | None = None) -> ScopeItems:
        """The frames (child items, in order) of each image group / sequence / DICOM series, given
        by item UUID, or by title within ``folder``."""
        reached = ScopeItems()
        for group in self._groups(groups, folder):
            with self._auth_errors():
                children = list(group.get_child_items())
            for index, child in enumerate(children):
                reached.add(child, group_uuid=str(group.uuid), group_title=group.name, frame_index=index)
        return reached

    def _groups(self, refs: Sequence[str], folder: str | None) -> list[StorageItem]:
        by_uuid = self.get_items([ref for ref in refs if is_uuid(ref)])
        titled = [ref for ref in refs if not is_uuid(ref)]
        listed: list[StorageItem] = []
        if titled:
            if not folder:
                raise EncordHookError(f"group titles {titled} need 'folder' (the folder that holds them)")
            listed = [i for i in self.iter_folder_items(self.get_folder(folder, create=False))]
        found = []
        for ref in refs:
            key = str(uuid.UUID(ref)) if is_uuid(ref) else ref
            matches = [by_uuid[key]] if key in by_uuid else [i for i in listed if i.name == ref]
            matches = [i for i in matches if is_uuid(ref) or i.item_type.value in GROUP_ITEM_TYPES]
            if len(matches) != 1:
                where = f" in folder {folder!r}" if not is_uuid(ref) else ""
                raise EncordHookError(
                    f"group {ref!r}: expected one image group, image sequence or DICOM series{where}, "
                    f"found {len(matches)}"
                )
            if matches[0].item_type.value not in GROUP_ITEM_TYPES:
                raise EncordHookError(
                    f"group {ref!r} is an item of type {matches[0].item_type.value!r}, not an image group, "
                    "image sequence or DICOM series"
                )
            found.append(matches[0])
        return found

    @contextlib.contextmanager
    def _missing(self, what: str, ref: str) -> Iterator[None]:
        from encord.exceptions import AuthorisationError, ResourceNotFoundError

        try:
            yield
        except (ResourceNotFoundError, AuthorisationError) as exc:
            raise EncordHookError(
                f"Encord {what} {ref!r} does not exist or this key cannot read it ({type(exc).__name__})"
            ) from None

    # --- writes --------------------------------------------------------------------------------

    def write_metadata(
        self,
        reached: ScopeItems,
        desired: Sequence[Desired],
        *,
        mode: SyncMode,
        reserved: ReservedKeysPolicy = ReservedKeysPolicy.PRESERVE,
        dry_run: bool = False,
        bundle_size: int = MAX_BUNDLE_SIZE,
    ) -> tuple[list[ItemResult], int]:
        """Plan every desired target, write those that differ through the hook's one write path
        (:meth:`EncordHook.write_plans`); returns (results, PATCH calls)."""
        plans = plan_writes(desired, mode, reserved)
        patch = self.write_plans(plans, reached.items, dry_run=dry_run, bundle_size=bundle_size)
        results = item_results(desired, plans, dry_run=dry_run, written=patch.written, failed=patch.failed)
        return results, patch.calls

    # --- schema --------------------------------------------------------------------------------

    def operation_schema(self, schema_path: str | Path | None) -> MetadataSchema:
        """The schema that values are checked against: the YAML file, or with no path the
        organisation's schema as Encord holds it."""
        if schema_path:
            return load_schema(schema_path)
        return self.organisation_schema()

    def organisation_schema(self) -> MetadataSchema:
        """The organisation's schema as typed keys (``varchar`` without a known length gets 8192;
        deleted, geospatial and unknown keys are left out, so they count as unknown keys)."""
        document: dict[str, Any] = {}
        for key, existing in read_existing(self.schema_document()).items():
            if key in RESERVED_KEYS or not is_valid_key(key):
                continue
            if existing.type in SCALAR_TYPES:
                document[key] = existing.type
            elif existing.type == "enum" and existing.values:
                document[key] = {"type": "enum", "values": list(existing.values)}
            elif existing.type == "embedding" and existing.size:
                document[key] = {"type": "embedding", "size": existing.size}
        where = f"the Encord organisation schema ({self.domain})"
        return parse_schema({"keys": self._modelled_keys(document, where)}, file=where)

    def _modelled_keys(self, document: dict[str, Any], where: str) -> dict[str, Any]:
        """The keys the pipeline's schema model accepts; any other (e.g. an enum of more than 255
        values that another client saved) is left out with a warning and counts as unknown."""
        kept: dict[str, Any] = {}
        for key, spec in document.items():
            try:
                parse_schema({"keys": {key: spec}}, file=where)
            except ConfigError as error:
                self.log.warning("Schema key %r is treated as unknown: %s", key, str(error)[:300])
                continue
            kept[key] = spec
        return kept


def _unique(reached: ScopeItems) -> ScopeItems:
    return ScopeItems(targets=unique_targets(reached.targets), items=reached.items)
