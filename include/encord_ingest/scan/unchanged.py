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
- no data file is skipped by the include/exclude globs: they match the key relative to the run's
  prefix, so a run with another prefix may skip what the ledger recorded under the same settings;
- for every data file, the input fingerprint the per-item path would compute now (the planning
  configuration's fingerprint, :func:`~.config.config_fingerprint`, which covers the schema and
  every setting that shapes a plan, the kind, the title, and the versions of its per-file
  sidecars and of the folder defaults and tables along its folder chain, found exactly as the
  per-item path finds them) equals the recorded ``input_fingerprint``. The scanner writes a
  row's ``sidecars`` (the versions as JSON) from the very versions it hashed into that
  fingerprint, so the recorded ``sidecars`` are what the per-item path would write. A row a
  reconcile wrote (no fingerprint), a changed sidecar,
  a new or removed sidecar, a defaults file edited, added or removed in a parent folder, or a
  changed configuration or schema makes the fingerprint differ, so the folder falls back.

No I/O besides what the per-item path does too (the folder-level files along the chain).
"""

from __future__ import annotations

import hashlib
import weakref
from bisect import insort
from collections.abc import Iterable, Sequence
from json import encoder
from typing import TYPE_CHECKING

from encord_ingest.grouping import FolderBatch, FolderPlan
from encord_ingest.ledger import LedgerRow, Outcome
from encord_ingest.scan.outcomes import OUTCOME_COLUMNS
from encord_ingest.sources.base import ObjectInfo, folder_of

if TYPE_CHECKING:
    from encord_ingest.scan.scanner import ShardScanner
    from encord_ingest.sidecars import SidecarConventions

GROUP_KINDS = frozenset({"image_group", "image_sequence", "dicom_series"})
"""Row kinds of items made of several objects, or whose title is not their key: never replayed."""
_ROW_ORDER = (
    "key",
    "url",
    "item_url",
    "kind",
    "outcome",
    "code",
    "message",
    "title",
    "version",
    "size",
    "sidecars",
    "input_fingerprint",
    "metadata_hash",
    "item_uuid",
    "warning",
)
_escape = encoder.encode_basestring
"""A string as JSON text, as the compact encoder of fingerprints writes it (``ensure_ascii=False``)."""
_TUPLES = OUTCOME_COLUMNS == _ROW_ORDER
"""Rows are built as tuples in this order (else, slower, by the scanner's ``_row``)."""


_Data = tuple[ObjectInfo, str, LedgerRow]
"""A recorded data file of a folder: its listing, object URL and ledger row."""


class ItemFingerprints:
    """The input fingerprint of single-object items (not made into a video) under one planning
    configuration: what the scanner computes, ``sha256`` of the compact JSON of
    ``[config fingerprint, kind, title, false, sorted [key, version] pairs]``, with the JSON text
    put together from pre-encoded pieces (each string escaped by the very function the compact
    encoder uses) instead of encoding the whole list per item."""

    def __init__(self, config_fp: str):
        self._head = "[" + _escape(config_fp) + ","
        self._kinds: dict[str, str] = {}

    def pair(self, key: str, version: str) -> tuple[str, str]:
        """A ``(key, its JSON [key, version] text)`` entry for :meth:`of`."""
        return key, "[" + _escape(key) + "," + _escape(version) + "]"

    def of(self, kind: str, title: str, pairs: list[tuple[str, str]]) -> str:
        """The fingerprint of an item; ``pairs`` (from :meth:`pair`, distinct keys) in key order."""
        head = self._kinds.get(kind)
        if head is None:
            head = self._kinds[kind] = self._head + _escape(kind) + ","
        text = head + _escape(title) + ",false,[" + ",".join([text for _, text in pairs]) + "]]"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sidecar_bases(
    conventions: SidecarConventions, names: Iterable[str]
) -> tuple[dict[str, list[str]], dict[str, list[str]]] | None:
    """``names`` by the data file name (``{file}`` patterns) and by the stem (``{stem}``
    patterns) they would be a per-file sidecar of, or ``None`` when a name fits no pattern. A
    sidecar name is a candidate of a data file exactly when it is listed under that file's name
    or its stem (:meth:`~.SidecarConventions.per_file_sidecar_names`, read from the sidecar's
    side: one pass over a folder's sidecars instead of every candidate of every data file)."""
    by_extension: dict[str, list[tuple[str, str]]] = {}  # a name ending in a suffix ends in its extension
    for kind, suffix in conventions.per_file_suffixes():
        by_extension.setdefault(suffix[suffix.rfind(".") :], []).append((kind, suffix))
    by_file: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    for name in names:
        fits = False
        for kind, suffix in by_extension.get(name[name.rfind(".") :], ()):
            if name.endswith(suffix) and len(name) > len(suffix):
                (by_file if kind == "file" else by_stem).setdefault(name[: -len(suffix)], []).append(name)
                fits = True
        if not fits:
            return None
    return by_file, by_stem


class UnchangedFolders:
    """Replays unchanged folders of one shard scan from its ledger snapshot."""

    def __init__(self, scanner: ShardScanner):
        self.scanner: ShardScanner = weakref.proxy(scanner)  # no cycle: the scanner goes when its scan ends
        self._rows_by_folder: dict[str, list[LedgerRow]] | None = None
        conventions = scanner.conventions
        self._folder_names = frozenset((*conventions.defaults_names, *conventions.table_names))
        self._fingerprints = ItemFingerprints(scanner.config_fp)
        self.replayed = 0
        """Folders written by the fast path (for logs and tests)."""

    def _folder_rows(self, folder: str) -> list[LedgerRow]:
        """The shard's ledger rows whose key lies directly in ``folder``, in key order."""
        if self._rows_by_folder is None:
            by_folder: dict[str, list[LedgerRow]] = {}
            for row in self.scanner.ledger.rows.values():
                by_folder.setdefault(folder_of(row.key), []).append(row)
            for rows in by_folder.values():
                rows.sort(key=lambda row: row.key)
            self._rows_by_folder = by_folder
        return self._rows_by_folder.get(folder, [])

    def replay(self, batch: FolderBatch) -> bool:
        """Write the rows of ``batch`` if nothing in it changed (see the module docstring);
        ``False`` (nothing written) when the per-item path must plan it."""
        scanner = self.scanner
        if not scanner.ledger.rows or scanner.ctx.full_rescan:
            return False
        if scanner.ctx.config.grouping.group_rule(batch.folder) is not None:
            return False
        rows = self._folder_rows(batch.folder)
        if not rows or len(rows) > len(batch.objects):
            return False
        split = self._split(batch, rows)
        if split is None:
            return False
        data, folder_inputs, per_file = split
        scanner.inputs.complete(batch, folder_inputs)
        paired = self._check_inputs(batch.folder, data, per_file)
        if paired is None:
            return False
        self._write(batch, data, folder_inputs, [info for name, info in per_file.items() if name in paired])
        self.replayed += 1
        return True

    def _split(
        self, batch: FolderBatch, rows: list[LedgerRow]
    ) -> tuple[list[_Data], list[ObjectInfo], dict[str, ObjectInfo]] | None:
        """The batch's recorded data files (matched with ``rows``, both in key order), folder
        inputs and other objects by name (in listing order: the per-file sidecars, if
        :meth:`_check_inputs` finds a data file for each), or ``None`` when a data file differs
        or a row is not listed."""
        scanner = self.scanner
        ledger, url_of, recorded = scanner.ledger, scanner._url, scanner.ledger.rows
        glob_reason = scanner.key_filter.glob_reason if scanner.key_filter.has_globs else None
        folder_names, cut = self._folder_names, len(batch.folder)
        data: list[_Data] = []
        folder_inputs: list[ObjectInfo] = []
        others: dict[str, ObjectInfo] = {}
        pending = iter(rows)
        row: LedgerRow | None = next(pending)
        for info in batch.objects:
            key = info.key
            if row is not None and row.key == key:
                url = url_of(key)
                if (
                    row.url != url
                    or row.version != info.version
                    or row.size != info.size
                    or info.size == 0
                    or row.item_url != url
                    or row.kind in GROUP_KINDS
                    or ledger.has_members(url)
                    or (glob_reason is not None and glob_reason(key) is not None)
                ):
                    return None
                data.append((info, url, row))
                row = next(pending, None)
                continue
            if row is not None and row.key < key:
                return None  # a recorded data file is not listed
            if url_of(key) in recorded:
                return None
            name = key[cut:]
            if name in folder_names:
                folder_inputs.append(info)
            else:
                others[name] = info
        if row is not None:
            return None
        return data, folder_inputs, others

    def _chain_pairs(self, folder: str) -> list[tuple[str, str]]:
        """:meth:`ItemFingerprints.pair` of the folder defaults and tables that apply to a file of
        ``folder``, in key order."""
        scanner = self.scanner
        versions: dict[str, str] = {}
        for chain_folder in scanner._chain(folder):
            versions.update({key: info.version for key, info in scanner.inputs.of(chain_folder).items()})
        pair = self._fingerprints.pair
        return sorted(pair(key, version) for key, version in versions.items())

    def _check_inputs(
        self, folder: str, data: Sequence[_Data], others: dict[str, ObjectInfo]
    ) -> set[str] | None:
        """The names of the per-file sidecars the data files use, or ``None`` when an item's
        inputs or the planning configuration differ from what its row recorded, or an object is
        no data file's per-file sidecar."""
        bases = sidecar_bases(self.scanner.conventions, others)
        if bases is None:
            return None
        by_file, by_stem = bases
        chain = self._chain_pairs(folder)
        fingerprint, pair = self._fingerprints.of, self._fingerprints.pair
        stem = self.scanner.conventions.stem
        cut = len(folder)
        used: set[str] = set()
        for info, _, row in data:
            pairs = chain
            if others:
                name = info.key[cut:]
                own = by_file.get(name, []) + (by_stem.get(stem(name), []) if by_stem else [])
                if len(own) == 1:
                    used.add(own[0])
                    pairs = chain.copy()
                    insort(pairs, pair(folder + own[0], others[own[0]].version))
                elif own:
                    used.update(own)
                    pairs = sorted(chain + [pair(folder + side, others[side].version) for side in set(own)])
            if fingerprint(row.kind, info.key, pairs) != row.input_fingerprint:
                return None
        return used if len(used) == len(others) else None

    def _write(
        self,
        batch: FolderBatch,
        data: Sequence[_Data],
        folder_inputs: list[ObjectInfo],
        paired: list[ObjectInfo],
    ) -> None:
        """The rows the per-item path writes for an unchanged folder, in its order."""
        scanner = self.scanner
        unchanged = Outcome.UNCHANGED.value
        if _TUPLES:
            scanner.outcomes.extend(
                [
                    (
                        info.key,
                        url,
                        url,
                        row.kind,
                        unchanged,
                        None,
                        None,
                        info.key,
                        info.version,
                        info.size,
                        row.sidecars,
                        row.input_fingerprint,
                        row.metadata_hash,
                        row.item_uuid,
                        None,
                    )
                    for info, url, row in data
                ]
            )
            scanner.counts[unchanged] += len(data)
        else:
            for info, url, row in data:
                scanner._row(
                    info,
                    Outcome.UNCHANGED,
                    url,
                    item_url=url,
                    kind=row.kind,
                    title=info.key,
                    item_uuid=row.item_uuid,
                    sidecars=row.sidecars,
                    input_fingerprint=row.input_fingerprint,
                    metadata_hash=row.metadata_hash,
                )
        scanner.item_counts[unchanged] += len(data)
        if _TUPLES and self._plain_sidecars(folder_inputs, paired):
            sidecar, url_of = Outcome.SIDECAR.value, scanner._url
            sidecars = (*folder_inputs, *paired)
            scanner.outcomes.extend(
                [
                    (
                        info.key,
                        url_of(info.key),
                        None,
                        None,
                        sidecar,
                        None,
                        None,
                        None,
                        info.version,
                        info.size,
                        None,
                        None,
                        None,
                        None,
                        None,
                    )
                    for info in sidecars
                ]
            )
            scanner.counts[sidecar] += len(sidecars)
            if scanner.claimed_outside:
                scanner.claimed_outside.difference_update(info.key for info in paired)
            scanner._tables_owned_elsewhere(batch)
        else:
            scanner._side_rows(FolderPlan(folder_inputs=folder_inputs, paired=paired), batch)
        scanner.inputs.release(batch.folder)

    def _plain_sidecars(self, folder_inputs: list[ObjectInfo], paired: list[ObjectInfo]) -> bool:
        """Whether every sidecar row is a plain ``sidecar`` row: no folder file of this folder was
        read in this scan (a table read names its unmatched rows; a parse error fails the file),
        and no per-file sidecar failed to parse (for an item of a sub-folder's group)."""
        inputs, errors = self.scanner.inputs, self.scanner.parse_errors
        return all(
            inputs.table_read(i.key) is None and inputs.parse_error(i.key) is None for i in folder_inputs
        ) and not any(info.key in errors for info in paired)
