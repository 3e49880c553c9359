"""The no-change fast path of a shard scan: a folder whose every object is as the ledger recorded
it gets its outcome rows straight from the ledger, without classifying, pairing or diffing item
by item.

:meth:`UnchangedFolders.replay` is asked first for every complete folder; when it says no, the
folder goes through the per-item path (:meth:`~.scanner.ShardScanner._folder`). It says yes only
when the per-item path could not decide anything but ``unchanged`` for every item and ``sidecar``
for every other object, and it then writes the very rows that path would write, in its order:

- the folder is not an image-group folder (``grouping.groups``), and every ledger row of the
  shard that lies directly in it is listed now (a deleted data file falls back);
- every listed object (rule skips are written before, by the listing) either has a ledger row of
  a single-object item (``item_url`` is its ``url``, not a group or series kind, no other row
  names it as its item) with the same key, version and size, not empty; or has a sidecar name:
  a folder defaults file or table, or a per-file sidecar that is a candidate of one of those
  data files (an orphan, a DICOM file, anything unknown falls back);
- for every data file, the input fingerprint the per-item path would compute now (the planning
  configuration's fingerprint, :func:`~.config.config_fingerprint`, which covers the schema and
  every setting that shapes a plan, the kind, the title, and the versions of its per-file
  sidecars and of the folder defaults and tables along its folder chain, found exactly as the
  per-item path finds them) equals the recorded ``input_fingerprint``, and the sidecar versions
  equal the recorded ``sidecars``. A row a reconcile wrote (no fingerprint), a changed sidecar,
  a new or removed sidecar, a defaults file edited, added or removed in a parent folder, or a
  changed configuration or schema makes the fingerprint differ, so the folder falls back.

No I/O besides what the per-item path does too (the folder-level files along the chain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from encord_ingest.grouping import FolderBatch, FolderPlan
from encord_ingest.ledger import LedgerRow, Outcome, sidecar_versions_json
from encord_ingest.sidecars import SidecarRole
from encord_ingest.sources.base import ObjectInfo, folder_of

if TYPE_CHECKING:
    from encord_ingest.scan.scanner import ShardScanner

GROUP_KINDS = frozenset({"image_group", "image_sequence", "dicom_series"})
"""Row kinds of items made of several objects, or whose title is not their key: never replayed."""


@dataclass(slots=True)
class _Data:
    info: ObjectInfo
    url: str
    row: LedgerRow


class UnchangedFolders:
    """Replays unchanged folders of one shard scan from its ledger snapshot."""

    def __init__(self, scanner: ShardScanner):
        self.scanner = scanner
        self._rows_per_folder: dict[str, int] | None = None
        self.replayed = 0
        """Folders written by the fast path (for logs and tests)."""

    def _folder_rows(self, folder: str) -> int:
        """The number of ledger rows of the shard whose key lies directly in ``folder``."""
        if self._rows_per_folder is None:
            counts: dict[str, int] = {}
            for row in self.scanner.ledger.rows.values():
                parent = folder_of(row.key)
                counts[parent] = counts.get(parent, 0) + 1
            self._rows_per_folder = counts
        return self._rows_per_folder.get(folder, 0)

    def replay(self, batch: FolderBatch) -> bool:
        """Write the rows of ``batch`` if nothing in it changed (see the module docstring);
        ``False`` (nothing written) when the per-item path must plan it."""
        scanner = self.scanner
        if not scanner.ledger.rows or scanner.ctx.full_rescan:
            return False
        if scanner.ctx.config.grouping.group_rule(batch.folder) is not None:
            return False
        expected = self._folder_rows(batch.folder)
        if not expected:
            return False
        split = self._split(batch)
        if split is None:
            return False
        data, folder_inputs, per_file = split
        if len(data) != expected:
            return False
        scanner.inputs.complete(batch, folder_inputs)
        paired = self._check_inputs(batch.folder, data, per_file)
        if paired is None:
            return False
        self._write(batch, data, folder_inputs, [info for key, info in per_file.items() if key in paired])
        self.replayed += 1
        return True

    def _split(
        self, batch: FolderBatch
    ) -> tuple[list[_Data], list[ObjectInfo], dict[str, ObjectInfo]] | None:
        """The batch's recorded data files, folder inputs and per-file sidecars (in listing
        order), or ``None`` when an object is none of those, or a data file differs."""
        ledger, source, conventions = self.scanner.ledger, self.scanner.ctx.source, self.scanner.conventions
        data: list[_Data] = []
        folder_inputs: list[ObjectInfo] = []
        per_file: dict[str, ObjectInfo] = {}
        for info in batch.objects:
            url = source.object_url(info.key)
            row = ledger.get(url)
            if row is not None:
                if (
                    row.key != info.key
                    or row.version != info.version
                    or row.size != info.size
                    or info.size == 0
                    or row.item_url != url
                    or row.kind in GROUP_KINDS
                    or ledger.members(url) != [url]
                ):
                    return None
                data.append(_Data(info, url, row))
                continue
            role = conventions.sidecar_role(info.key)
            if role is None:
                return None
            if role is SidecarRole.PER_FILE:
                per_file[info.key] = info
            else:
                folder_inputs.append(info)
        return data, folder_inputs, per_file

    def _chain_versions(self, folder: str) -> dict[str, str]:
        """``{key: version}`` of the folder defaults and tables that apply to a file of ``folder``."""
        scanner = self.scanner
        versions: dict[str, str] = {}
        for chain_folder in scanner._chain(folder):
            versions.update({key: info.version for key, info in scanner.inputs.of(chain_folder).items()})
        return versions

    def _check_inputs(
        self, folder: str, data: Sequence[_Data], per_file: dict[str, ObjectInfo]
    ) -> set[str] | None:
        """The per-file sidecars the data files use, or ``None`` when an item's inputs or the
        planning configuration differ from what its row recorded (or a sidecar is used by none)."""
        from encord_ingest.scan.scanner import _fingerprint

        scanner = self.scanner
        chain = self._chain_versions(folder)
        candidates = scanner.conventions.per_file_sidecar_keys
        config_fp = scanner.config_fp
        used: set[str] = set()
        for item in data:
            versions = dict(chain)
            for key in candidates(item.info.key):
                sidecar = per_file.get(key)
                if sidecar is not None:
                    versions[key] = sidecar.version
                    used.add(key)
            ordered = sorted(versions.items())
            row = item.row
            if _fingerprint(config_fp, row.kind, item.info.key, False, ordered) != row.input_fingerprint:
                return None
            if sidecar_versions_json(dict(ordered)) != row.sidecars:
                return None
        return used if len(used) == len(per_file) else None

    def _write(
        self,
        batch: FolderBatch,
        data: Sequence[_Data],
        folder_inputs: list[ObjectInfo],
        paired: list[ObjectInfo],
    ) -> None:
        """The rows the per-item path writes for an unchanged folder, in its order."""
        scanner = self.scanner
        unchanged = Outcome.UNCHANGED
        for item in data:
            row = item.row
            scanner._row(
                item.info,
                unchanged,
                item.url,
                item_url=item.url,
                kind=row.kind,
                title=item.info.key,
                item_uuid=row.item_uuid,
                sidecars=row.sidecars,
                input_fingerprint=row.input_fingerprint,
                metadata_hash=row.metadata_hash,
            )
        scanner.item_counts[unchanged.value] += len(data)
        scanner._side_rows(FolderPlan(folder_inputs=folder_inputs, paired=paired), batch)
        scanner.inputs.release(batch.folder)
