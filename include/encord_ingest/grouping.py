"""From a key-ordered listing to Encord items: folders, pairing, groups, DICOM series.

Walk (:class:`FolderWalker`): a listing in key order is cut into folders. A folder's direct files
are not contiguous in key order (``a/b.jpg`` < ``a/b/c.jpg`` < ``a/c.jpg``) but its whole
subtree is, so a folder is complete once a key outside its subtree arrives. Folders are yielded
deepest first when they close; only the folders on the current key's chain are held.

Items (:func:`plan_folder`): in one complete folder,

- a file the sidecar conventions recognise is never data; a per-file sidecar is paired with the
  data file it names (several candidates: all present ones are layers, lowest precedence first);
  folder defaults and tables are folder inputs; a per-file sidecar with no data file is an orphan;
- a folder matching a :class:`GroupRule` gives one image group (or sequence, ``create_video``)
  of its images, ordered by natural sort (``frame_2`` before ``frame_10``) or by an order column
  of the folder's table; other data files in it stay single items;
- DICOM files give one series per folder (``dicom_series: folder``), or, with
  ``dicom_series: series_uid``, are keyed by the SeriesInstanceUID of a ranged header read
  (pydicom, ``stop_before_pixels``) and collected across the shard by :class:`SeriesCollector`:
  one folder with two series gives two items, one series over two folders gives one. Files in a
  series are ordered by InstanceNumber, then by natural sort of the key.

Titles are the object key (Encord's own default, the object path) for single files, the folder
path for groups and folder series, and ``<common folder>/<SeriesInstanceUID>`` for UID series.
They do not depend on the source prefix, so they stay stable when shards or prefixes change.
"""

from __future__ import annotations

import fnmatch
import io
import posixpath
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from encord_ingest.classify import Classified, FileKind, NotData
from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.sidecars.conventions import file_name as name_of
from encord_ingest.sources.base import ObjectInfo, folder_of

ReadBytes = Callable[[str, int | None], bytes]
_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value: ``frame_2`` < ``frame_10`` (case-insensitive first)."""
    parts: list[tuple[int, int | str]] = []
    for index, part in enumerate(_DIGITS.split(text)):
        if index % 2:
            parts.append((0, int(part)))
        elif part:
            parts.append((1, part.casefold()))
    parts.append((2, text))
    return tuple(parts)


def folder_path(folder: str) -> str:
    """A folder prefix without its trailing slash, for glob rules and titles."""
    return folder.rstrip("/")


# --- the walk -------------------------------------------------------------------------------------


@dataclass(slots=True)
class FolderBatch:
    """The direct objects of one folder (prefix with trailing slash; ``""`` is the top)."""

    folder: str
    objects: list[ObjectInfo] = field(default_factory=list)


class ListingOrderError(RuntimeError):
    """The source yielded keys out of order: folders could not be cut safely."""


class FolderWalker:
    """Cuts a key-ordered listing into complete folders, deepest first (iterate it once).

    While iterating, :attr:`open_folders` is the chain of folders still open (outermost first,
    their objects so far) and :attr:`position` the next key not yet placed, ``None`` once the
    listing is exhausted: a key of an open folder that sorts below ``position`` is known to be
    listed or absent.
    """

    def __init__(self, objects: Iterable[ObjectInfo]):
        self._objects = objects
        self.open_folders: list[FolderBatch] = []
        self.position: str | None = ""

    def is_open(self, folder: str) -> bool:
        """Whether ``folder``'s subtree is still being listed (its keys below the position are known)."""
        if self.position is not None:
            return self.position.startswith(folder)
        return any(batch.folder.startswith(folder) for batch in self.open_folders)

    def open_batch(self, folder: str) -> FolderBatch | None:
        """The open (incomplete) batch of ``folder``, if it is on the current chain."""
        return next((batch for batch in self.open_folders if batch.folder == folder), None)

    def __iter__(self) -> Iterator[FolderBatch]:
        stack = self.open_folders
        previous: str | None = None
        for info in self._objects:
            if previous is not None and info.key <= previous:
                raise ListingOrderError(f"listing not in key order: {info.key!r} after {previous!r}")
            previous = info.key
            self.position = info.key
            folder = folder_of(info.key)
            while stack and not folder.startswith(stack[-1].folder):
                yield stack.pop()
            if not stack or stack[-1].folder != folder:
                stack.append(FolderBatch(folder))
            stack[-1].objects.append(info)
        self.position = None
        while stack:
            yield stack.pop()


def iter_folders(objects: Iterable[ObjectInfo]) -> Iterator[FolderBatch]:
    """Complete folders of a key-ordered listing, deepest first (see :class:`FolderWalker`)."""
    return iter(FolderWalker(objects))


# --- configuration ----------------------------------------------------------------------------------


class GroupRule(BaseModel):
    """Folders (``fnmatch`` glob over the folder path, no trailing slash) whose images form one item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    folders: str = Field(min_length=1)
    create_video: bool = False
    order_column: str | None = None

    def matches(self, folder: str) -> bool:
        return fnmatch.fnmatchcase(folder_path(folder), self.folders)


class GroupingConfig(BaseModel):
    """Which folders become image groups or sequences, and how DICOM series are formed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: list[GroupRule] = Field(default_factory=list)
    dicom_series: Literal["folder", "series_uid"] = "folder"
    dicom_series_folders: list[str] = Field(default_factory=lambda: ["*"])
    """With ``dicom_series: folder``, folders (``fnmatch`` globs, no trailing slash) that may hold a
    series: sharding never cuts them. Narrow it (``["*/dicom/*"]``) so other flat folders can be
    split across shards."""
    dicom_header_bytes: int = Field(default=16 * 1024, ge=256)
    dicom_max_header_bytes: int = Field(default=1024 * 1024, ge=256)

    def keep_whole(self, folder: str) -> bool:
        """Whether sharding must keep ``folder``'s subtree in one shard (a group or a folder series)."""
        if self.group_rule(folder) is not None:
            return True
        path = folder_path(folder)
        return self.dicom_series == "folder" and any(
            fnmatch.fnmatchcase(path, pattern) for pattern in self.dicom_series_folders
        )

    def group_rule(self, folder: str) -> GroupRule | None:
        """The first rule matching ``folder``, or ``None``."""
        return next((rule for rule in self.groups if rule.matches(folder)), None)


# --- drafts -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Draft:
    """An item before its metadata is read: members in item order and where its metadata lives.

    ``kind`` is the manifest item kind (``image``, ``video``, ..., ``image_group``,
    ``dicom_series``). ``metadata_key`` is the key whose sidecar layers apply (the file's key;
    a group or folder series' folder path without the slash, so its row in the parent folder's
    table is its folder name; ``<common folder><uid>`` for a UID series). ``own_folder`` is the
    group or series folder, whose defaults are the nearest defaults layer and whose table may
    hold the frame order. ``sidecars`` are the per-file sidecar keys, lowest precedence first.
    """

    kind: str
    title: str
    members: list[ObjectInfo]
    metadata_key: str
    own_folder: str | None = None
    sidecars: list[str] = field(default_factory=list)
    create_video: bool = False
    order_column: str | None = None

    @property
    def keys(self) -> list[str]:
        return [member.key for member in self.members]


def single_draft(info: ObjectInfo, kind: FileKind, sidecars: Sequence[str]) -> Draft:
    """A one-file item titled by its key."""
    return Draft(
        kind=kind.value, title=info.key, members=[info], metadata_key=info.key, sidecars=list(sidecars)
    )


def order_frames(
    frames: Sequence[ObjectInfo],
    order: Mapping[str, Any] | None,
    *,
    table_file: str | None,
    column: str | None,
) -> list[ObjectInfo] | ItemError:
    """Frames by natural sort of their names, or by ``order[name]`` (integers, all distinct)."""
    if order is None or column is None:
        return sorted(frames, key=lambda info: natural_key(name_of(info.key)))
    where = table_file or "<no table>"
    ranks: dict[str, int] = {}
    for info in frames:
        name = name_of(info.key)
        raw = order.get(name)
        try:
            rank = int(str(raw).strip()) if not isinstance(raw, bool) and raw is not None else None
        except ValueError:
            rank = None
        if rank is None:
            return ItemError.of(
                ErrorCode.INVALID_ORDER,
                where,
                key=column,
                expected=f"an integer order for frame {name!r}",
                value=raw,
                has_value=True,
            )
        ranks[info.key] = rank
    seen: dict[int, str] = {}
    for key, rank in ranks.items():
        if rank in seen:
            return ItemError.of(
                ErrorCode.INVALID_ORDER,
                where,
                key=column,
                expected="a distinct order per frame",
                value=rank,
                detail=f"frames {name_of(seen[rank])!r} and {name_of(key)!r} share it",
            )
        seen[rank] = key
    return sorted(frames, key=lambda info: ranks[info.key])


def group_draft(folder: str, frames: Sequence[ObjectInfo], rule: GroupRule) -> Draft:
    """An image group or sequence of a folder's images, frames in natural order (an order column,
    if the rule has one, is applied later: it needs the folder's table)."""
    return Draft(
        kind="image_group",
        title=folder_path(folder),
        members=sorted(frames, key=lambda info: natural_key(name_of(info.key))),
        metadata_key=folder_path(folder),
        own_folder=folder,
        create_video=rule.create_video,
        order_column=rule.order_column,
    )


# --- DICOM ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DicomHeader:
    """The header fields that place a file in its series."""

    series_uid: str
    instance_number: int | None = None
    study_uid: str | None = None


_DICOM_TAGS = ["SeriesInstanceUID", "InstanceNumber", "StudyInstanceUID"]


def parse_dicom_header(head: bytes) -> DicomHeader | None:
    """The series fields of a (possibly truncated) DICOM header, or ``None`` if absent or unreadable."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(
                io.BytesIO(head), stop_before_pixels=True, force=True, specific_tags=_DICOM_TAGS
            )
            uid = dataset.get("SeriesInstanceUID")
            number = dataset.get("InstanceNumber")
            study = dataset.get("StudyInstanceUID")
    except Exception:  # noqa: BLE001 (any unparsable header means "not DICOM")
        return None
    if not uid:
        return None
    try:
        instance = int(number) if number not in (None, "") else None
    except (TypeError, ValueError):
        instance = None
    return DicomHeader(series_uid=str(uid), instance_number=instance, study_uid=str(study) if study else None)


def read_dicom_header(
    read: ReadBytes, info: ObjectInfo, *, first_bytes: int, max_bytes: int
) -> DicomHeader | ItemError:
    """Ranged reads of the header (growing up to ``max_bytes``) until the SeriesInstanceUID shows."""
    limit = first_bytes
    while True:
        try:
            head = read(info.key, limit)
        except Exception as exc:  # noqa: BLE001 (recorded as the item's INVALID_DICOM error)
            detail = f"cannot read: {type(exc).__name__}: {exc}"
            return ItemError.of(ErrorCode.INVALID_DICOM, info.key, detail=detail)
        header = parse_dicom_header(head)
        if header is not None:
            return header
        if len(head) >= info.size or len(head) < limit or limit >= max_bytes:
            return ItemError.of(
                ErrorCode.INVALID_DICOM,
                info.key,
                key="SeriesInstanceUID",
                expected="a DICOM file with a SeriesInstanceUID (0020,000E)",
                detail=f"not found in the first {len(head)} bytes",
            )
        limit = min(limit * 4, max_bytes)


def dicom_order(info: ObjectInfo, header: DicomHeader | None) -> tuple[Any, ...]:
    """InstanceNumber first (files without one last), then the natural sort of the key."""
    number = header.instance_number if header else None
    return (number is None, number or 0, natural_key(info.key))


def folder_series_draft(folder: str, files: Sequence[ObjectInfo]) -> Draft:
    """One DICOM series of all DICOM files of a folder, in natural key order."""
    ordered = sorted(files, key=lambda info: natural_key(info.key))
    return Draft(
        kind="dicom_series",
        title=folder_path(folder) or "dicom-series",
        members=ordered,
        metadata_key=folder_path(folder) or "dicom-series",
        own_folder=folder,
    )


def common_folder(keys: Iterable[str]) -> str:
    """The deepest folder prefix (with trailing slash) that holds every key."""
    folders = [folder_of(key) for key in keys]
    common = posixpath.commonprefix(folders)
    return common[: common.rfind("/") + 1]


class SeriesCollector:
    """Collects DICOM files by SeriesInstanceUID over a whole shard; drafts come out at the end."""

    def __init__(self) -> None:
        self._series: dict[str, list[tuple[ObjectInfo, DicomHeader]]] = {}

    def add(self, info: ObjectInfo, header: DicomHeader) -> None:
        self._series.setdefault(header.series_uid, []).append((info, header))

    def __len__(self) -> int:
        return sum(len(files) for files in self._series.values())

    def drafts(self) -> Iterator[Draft]:
        """One draft per series, in order of the first key of each series."""
        series = sorted(self._series.items(), key=lambda entry: min(info.key for info, _ in entry[1]))
        for uid, files in series:
            ordered = [info for info, header in sorted(files, key=lambda pair: dicom_order(*pair))]
            folder = common_folder(info.key for info in ordered)
            yield Draft(
                kind="dicom_series", title=f"{folder}{uid}", members=ordered, metadata_key=f"{folder}{uid}"
            )
        self._series.clear()


# --- one folder ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class FolderPlan:
    """What one complete folder turns into. Every object of the batch lands in exactly one list.

    ``drafts`` hold the data files; ``folder_inputs`` the folder defaults and tables found here;
    ``paired`` the per-file sidecars some draft uses; ``unused`` per-file sidecars of files that
    take none (group frames, DICOM files, data skipped by a glob) with the reason; ``orphans``
    per-file sidecars of no data file here; ``not_data`` objects skipped with a reason;
    ``uid_dicom`` DICOM files waiting for their SeriesInstanceUID.
    """

    drafts: list[Draft] = field(default_factory=list)
    folder_inputs: list[ObjectInfo] = field(default_factory=list)
    paired: list[ObjectInfo] = field(default_factory=list)
    unused: list[tuple[ObjectInfo, str]] = field(default_factory=list)
    orphans: list[ObjectInfo] = field(default_factory=list)
    not_data: list[tuple[ObjectInfo, str]] = field(default_factory=list)
    uid_dicom: list[ObjectInfo] = field(default_factory=list)


class _Pairing:
    """Per-file sidecars of one folder and who claims them."""

    def __init__(self, per_file: dict[str, ObjectInfo], candidates: Callable[[str], Sequence[str]]):
        self.per_file = per_file
        self.candidates = candidates
        self.used: dict[str, ObjectInfo] = {}
        self.unused: dict[str, str] = {}

    def claim(self, data_key: str) -> list[str]:
        """The present sidecars of ``data_key``, lowest precedence first."""
        keys = [key for key in self.candidates(data_key) if key in self.per_file]
        for key in keys:
            self.used[key] = self.per_file[key]
            self.unused.pop(key, None)
        return list(reversed(keys))

    def set_aside(self, data_key: str, reason: str) -> None:
        for key in self.candidates(data_key):
            if key in self.per_file and key not in self.used:
                self.unused.setdefault(key, reason)


def plan_folder(
    batch: FolderBatch,
    verdicts: Mapping[str, Classified],
    config: GroupingConfig,
    *,
    sidecar_candidates: Callable[[str], Sequence[str]],
    is_folder_input: Callable[[str], bool],
    glob_skip: Callable[[str], str | None] = lambda _key: None,
) -> FolderPlan:
    """Pair and group one complete folder (no I/O).

    ``verdicts`` classifies every key of the batch; ``sidecar_candidates(data_key)`` lists the
    per-file sidecar keys a data file may have, highest precedence first (the conventions'
    ``per_file_sidecar_keys``); ``is_folder_input(key)`` tells folder defaults and tables from
    per-file sidecars; ``glob_skip(key)`` is the include/exclude verdict on a data file.
    """
    plan = FolderPlan()
    data, per_file = _sort_batch(batch, verdicts, is_folder_input, plan)
    pairing = _Pairing(per_file, sidecar_candidates)
    rule = config.group_rule(batch.folder)
    frames: list[ObjectInfo] = []
    dicom: list[ObjectInfo] = []
    for info, kind in data:
        skipped = glob_skip(info.key)
        if skipped is not None:
            plan.not_data.append((info, skipped))
            pairing.set_aside(info.key, f"its data file is skipped ({skipped})")
        elif rule is not None and kind is FileKind.IMAGE:
            frames.append(info)
        elif kind is FileKind.DICOM:
            dicom.append(info)
        else:
            plan.drafts.append(single_draft(info, kind, pairing.claim(info.key)))
    if frames and rule is not None:
        plan.drafts.append(group_draft(batch.folder, frames, rule))
        for info in frames:
            pairing.set_aside(info.key, "per-frame sidecars of an image group are not used")
    for info in dicom:
        pairing.set_aside(info.key, "per-file sidecars of DICOM files are not used")
    if dicom and config.dicom_series == "folder":
        plan.drafts.append(folder_series_draft(batch.folder, dicom))
    else:
        plan.uid_dicom.extend(dicom)
    for key, info in per_file.items():
        if key in pairing.used:
            plan.paired.append(info)
        elif key in pairing.unused:
            plan.unused.append((info, pairing.unused[key]))
        else:
            plan.orphans.append(info)
    return plan


def _sort_batch(
    batch: FolderBatch,
    verdicts: Mapping[str, Classified],
    is_folder_input: Callable[[str], bool],
    plan: FolderPlan,
) -> tuple[list[tuple[ObjectInfo, FileKind]], dict[str, ObjectInfo]]:
    """Data files (with their kind) and per-file sidecars by key; folder inputs and objects that
    are not data go straight into ``plan``."""
    data: list[tuple[ObjectInfo, FileKind]] = []
    per_file: dict[str, ObjectInfo] = {}
    for info in batch.objects:
        verdict = verdicts[info.key]
        if verdict.kind is not None:
            data.append((info, verdict.kind))
        elif verdict.not_data == NotData.SIDECAR:
            if is_folder_input(info.key):
                plan.folder_inputs.append(info)
            else:
                per_file[info.key] = info
        else:
            plan.not_data.append((info, str(verdict.not_data or NotData.UNKNOWN_KIND)))
    return data, per_file
