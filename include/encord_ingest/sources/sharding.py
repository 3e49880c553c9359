"""Split a source into at most N shards that can be listed independently.

A :class:`Shard` is a small JSON descriptor: a list of :class:`ShardPart` key ranges
``[start_at, end_before)`` under the run's prefixes, plus the ``context_folders`` whose
folder-level files (``_defaults.yaml``, ``metadata.csv``, ...) apply to its keys but may lie
outside its ranges. Together the shards of a plan cover every key under the prefixes exactly once
(a key is in the shard whose part contains it: :meth:`Shard.contains`).

Where a cut may fall (the stem rule). Every key is a path of entries: folders (``a/``) and a
final file name. The *stem* of an entry is its name up to the first ``.`` (``clip.mp4.json``,
``clip.json``, ``clip.mp4`` and a sub-folder ``clip/`` all have the stem ``clip``); entries with
one stem sort together, between ``clip`` and ``clip/``. A cut between two consecutive keys is
allowed only if, in the deepest folder that contains both, no stem group opened before the cut
can still continue after it (conservatively: ``clip``, ``clip-2.jpg``, ``clip.json`` are never
separated), never inside a folder that shares its stem with a sibling (``seq01/`` next to
``seq01.json``), and never inside a folder named by ``keep_whole`` (image-group folders, DICOM folder
series: the planner passes them). So a data file, its sidecars and a same-named frames folder
always land in one shard, and other folders are only cut between stem groups of their entries.

Folder defaults and tables apply to everything below their folder, which can span shards. A
shard's ``context_folders`` lists every folder (from the bucket root ``""`` down) whose own files
are not all inside the shard: the scanner loads the folder-level files of those folders with
:func:`find_folder_files` (exact names, one HEAD each) and treats folder-level files found in its
own listing the same way (never as items). It should de-duplicate by key.

How cuts are chosen (:func:`plan_shards`). Balanced by object count, with memory bounded by the
number of shards, not by the bucket:

1. *Counted*: list the prefixes (plain recursive listing, 1,000 keys per request) up to
   ``count_limit`` keys. If they end within the limit, the cuts are exact: chosen among allowed cut
   points so that shards hold about the same number of objects (flat folders are split into key
   ranges this way).
2. *Fan-out*: past the limit, the counted sample picks a folder depth ``D`` with at least
   ``4 * max_shards`` folders; the tree is then walked with delimiter listings down to ``D``
   (files above ``D`` weigh 1, each folder at depth ``D`` weighs the sample's mean keys per
   folder at that depth), and the cuts fall between whole folders at depth ``D`` or between
   files above it. If no depth has enough folders the tree is flat: it is listed in full.

``Shard.estimated_objects`` is exact in counted mode, an estimate in fan-out mode and 0 when
nothing was listed (``max_shards=1`` plans without listing).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain

from pydantic import BaseModel, ConfigDict, Field

from encord_ingest.sources.base import DELIMITER, KeyBounds, ObjectInfo, Source, folder_chain

DEFAULT_COUNT_LIMIT = 100_000
CANDIDATES_PER_SHARD = 4


def stem(entry: str) -> str:
    """The stem of one path entry (a file name or ``folder/``): its name up to the first ``.``."""
    return entry.rstrip(DELIMITER).split(".", 1)[0]


def _entries(key: str) -> list[str]:
    parts = key.split(DELIMITER)
    entries = [part + DELIMITER for part in parts[:-1]]
    if parts[-1]:
        entries.append(parts[-1])
    return entries


def _still_open(entry: str, group: str) -> bool:
    """Entries after ``entry`` in its folder may still have the stem ``group``.

    Entries with the stem ``group`` all sort within ``[group, group + "/"]``."""
    return entry == group or (entry.startswith(group) and entry[len(group)] < DELIMITER)


def _in_span(entry: str, group: str) -> bool:
    """``entry`` sorts within ``[group, group + "/"]``, where entries with that stem can be."""
    return _still_open(entry, group) or entry == group + DELIMITER


KeepWhole = Callable[[str], bool]
"""Says of a folder prefix that its whole subtree must stay in one shard."""


class StemGuard:
    """Feeds on keys (or folder prefixes) in key order; says where a cut is allowed.

    A cut before an entry is refused while a stem group opened before it could still have
    members at or after it (conservative: ``clip``, ``clip-2.jpg``, ``clip.json`` stay together),
    inside a folder that shares its stem with a sibling (``seq01/`` next to ``seq01.json``), and
    anywhere inside a folder that ``keep_whole`` names."""

    def __init__(self, keep_whole: KeepWhole | None = None) -> None:
        self._keep_whole = keep_whole
        self._previous: list[str] = []
        self._open: list[list[str]] = []
        self._bound: list[bool] = []

    def allows_cut_before(self, key: str) -> bool:
        """Whether a cut between the previous key and ``key`` keeps every stem group whole."""
        entries = _entries(key)
        level = 0
        while level < min(len(entries), len(self._previous)) and entries[level] == self._previous[level]:
            level += 1
        if level == len(entries):
            self._previous = entries
            return True
        entry = entries[level]
        groups = self._open[level] if level < len(self._previous) else []
        in_group = any(_in_span(entry, group) for group in groups)
        allowed = not in_group and not any(self._bound[:level])
        if allowed and self._keep_whole is not None and self._previous:
            allowed = not any(self._keep_whole("".join(entries[:depth])) for depth in range(level + 1))
        opened = [group for group in groups if _still_open(entry, group)]
        if _still_open(entry, stem(entry)) and stem(entry) not in opened:
            opened.append(stem(entry))
        del self._open[level:], self._bound[level:]
        self._open.append(opened)
        self._bound.append(entry.endswith(DELIMITER) and (in_group or _still_open(entry, stem(entry))))
        for deeper in entries[level + 1 :]:
            still_open = _still_open(deeper, stem(deeper))
            self._open.append([stem(deeper)] if still_open else [])
            self._bound.append(deeper.endswith(DELIMITER) and still_open)
        self._previous = entries
        return allowed


class _CutCollector:
    """Keeps O(max_shards) evenly spaced allowed cut points of a weighted key stream."""

    def __init__(self, max_shards: int):
        self.limit = 2 * CANDIDATES_PER_SHARD * max_shards
        self.step = 1.0
        self.total = 0.0
        self.keys: list[str] = []
        self.weights: list[float] = []

    def add(self, key: str, weight: float, cut_allowed: bool) -> None:
        last = self.weights[-1] if self.weights else 0.0
        if cut_allowed and self.total > 0 and self.total - last >= self.step:
            self.keys.append(key)
            self.weights.append(self.total)
            if len(self.keys) > self.limit:
                self.keys, self.weights = self.keys[1::2], self.weights[1::2]
                self.step *= 2
        self.total += weight

    def choose(self, max_shards: int) -> list[tuple[str, float]]:
        """Up to ``max_shards - 1`` cuts ``(key, weight before it)`` closest to equal shares."""
        chosen: list[tuple[str, float]] = []
        previous = -1
        for share in range(1, max_shards):
            goal = self.total * share / max_shards
            index = bisect.bisect_left(self.weights, goal)
            if index > 0 and (
                index == len(self.weights) or goal - self.weights[index - 1] <= self.weights[index] - goal
            ):
                index -= 1
            index = max(index, previous + 1)
            if index >= len(self.keys):
                break
            chosen.append((self.keys[index], self.weights[index]))
            previous = index
        return chosen


class _FolderSample:
    """Per folder depth under a root: folders seen, and keys in the folders seen complete."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}
        self.complete_folders: dict[int, int] = {}
        self.complete_keys: dict[int, int] = {}
        self._current: dict[int, tuple[str, int]] = {}

    def add(self, root: str, key: str) -> None:
        depth, position = 0, key.find(DELIMITER, len(root))
        while position >= 0:
            depth += 1
            folder = key[: position + 1]
            current = self._current.get(depth)
            if current is not None and current[0] == folder:
                self._current[depth] = (folder, current[1] + 1)
            else:
                if current is not None:
                    self.complete_folders[depth] = self.complete_folders.get(depth, 0) + 1
                    self.complete_keys[depth] = self.complete_keys.get(depth, 0) + current[1]
                self._current[depth] = (folder, 1)
                self.seen[depth] = self.seen.get(depth, 0) + 1
            position = key.find(DELIMITER, position + 1)

    def fan_out(self, max_shards: int) -> tuple[int, float] | None:
        """``(depth, weight per folder)`` of the shallowest depth with enough folders, if any."""
        wanted = CANDIDATES_PER_SHARD * max_shards
        for depth in sorted(self.seen):
            if self.seen[depth] >= wanted:
                folders = self.complete_folders.get(depth, 0)
                weight = self.complete_keys.get(depth, 0) / folders if folders else self._current[depth][1]
                return depth, max(weight, 1.0)
        return None


class ShardPart(BaseModel):
    """Keys that start with ``prefix``, are ``>= start_at`` and ``< end_before``."""

    model_config = ConfigDict(frozen=True)

    prefix: str = ""
    start_at: str | None = None
    end_before: str | None = None

    @property
    def bounds(self) -> KeyBounds:
        """The part as listing bounds."""
        return KeyBounds(prefix=self.prefix, end_before=self.end_before, start_at=self.start_at)

    def contains(self, key: str) -> bool:
        """Whether ``key`` belongs to this part."""
        return key in self.bounds

    def covers_folder(self, folder: str) -> bool:
        """Whether every key under ``folder`` belongs to this part."""
        return (
            folder.startswith(self.prefix)
            and (self.start_at is None or self.start_at <= folder)
            and (
                self.end_before is None
                or (self.end_before > folder and not self.end_before.startswith(folder))
            )
        )


class Shard(BaseModel):
    """One independently listable slice of a run's prefixes (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    index: int
    count: int
    parts: list[ShardPart]
    context_folders: list[str] = Field(default_factory=list)
    estimated_objects: int = 0
    renderings_only: bool = False
    """An event run's shard: keys under no rendering of the source's prefix template (listed
    because a part is the static prefix standing in for it) are skipped as ``outside_prefix``
    and keep their ledger rows, except the folder defaults and tables of folders renderings lie
    in. A prefix override (``raw/``) is the user's choice: its shards plan every key."""

    def contains(self, key: str) -> bool:
        """Whether ``key`` belongs to this shard."""
        return any(part.contains(key) for part in self.parts)


def normalize_prefixes(prefixes: Iterable[str]) -> list[str]:
    """Sorted, de-duplicated prefixes with those inside another prefix dropped."""
    kept: list[str] = []
    for prefix in sorted(set(prefixes)):
        if not kept or not prefix.startswith(kept[-1]):
            kept.append(prefix)
    return kept


def _walk_levels(
    source: Source, prefix: str, depth: int, fan_out: tuple[int, float]
) -> Iterator[tuple[str, float]]:
    for entry in source.iter_level(prefix):
        if isinstance(entry, ObjectInfo):
            yield entry.key, 1.0
        elif depth + 1 < fan_out[0]:
            yield from _walk_levels(source, entry, depth + 1, fan_out)
        else:
            yield entry, fan_out[1]


def _collect(
    keys: Iterable[tuple[str, float]], max_shards: int, keep_whole: KeepWhole | None
) -> _CutCollector:
    collector, guard = _CutCollector(max_shards), StemGuard(keep_whole)
    for key, weight in keys:
        collector.add(key, weight, guard.allows_cut_before(key))
    return collector


def _counted(
    source: Source, roots: Sequence[str], count_limit: int, sample: _FolderSample
) -> Iterator[tuple[str, float]]:
    """Keys of every root with weight 1; raises ``_OverLimit`` past ``count_limit`` keys."""
    seen = 0
    for root in roots:
        for info in source.iter_objects(root):
            seen += 1
            if seen > count_limit:
                raise _OverLimit
            sample.add(root, info.key)
            yield info.key, 1.0


class _OverLimit(Exception):
    pass


def _part(root: str, low: str | None, high: str | None) -> ShardPart | None:
    if low is not None and low > root and not low.startswith(root):
        return None
    if high is not None and root >= high:
        return None
    return ShardPart(
        prefix=root,
        start_at=low if low is not None and low.startswith(root) else None,
        end_before=high if high is not None and high.startswith(root) else None,
    )


def _context_folders(parts: Sequence[ShardPart]) -> list[str]:
    folders: set[str] = set()
    for part in parts:
        folders.update(folder_chain(part.start_at if part.start_at is not None else part.prefix))
        if part.end_before is not None:
            folders.update(folder_chain(part.end_before))
    return sorted(f for f in folders if not any(part.covers_folder(f) for part in parts))


def shards_from_cuts(roots: Sequence[str], cuts: Sequence[tuple[str, float]], total: float) -> list[Shard]:
    """The shards between consecutive cut keys (``(key, weight before it)``, ascending)."""
    bounds: list[tuple[str | None, float]] = [(None, 0.0), *cuts, (None, total)]
    shards: list[Shard] = []
    for index in range(len(bounds) - 1):
        (low, low_weight), (high, high_weight) = bounds[index], bounds[index + 1]
        parts = [part for root in roots if (part := _part(root, low, high)) is not None]
        shards.append(
            Shard(
                index=index,
                count=len(bounds) - 1,
                parts=parts,
                context_folders=_context_folders(parts),
                estimated_objects=round(high_weight - low_weight),
            )
        )
    return shards


def plan_shards(
    source: Source,
    prefixes: Sequence[str],
    max_shards: int,
    *,
    count_limit: int = DEFAULT_COUNT_LIMIT,
    keep_whole: KeepWhole | None = None,
) -> list[Shard]:
    """At most ``max_shards`` shards covering every key under ``prefixes`` exactly once.

    ``keep_whole(folder)`` names folders that must never be cut (image-group folders, DICOM
    folder series); everything else may be cut between stem groups."""
    if max_shards < 1:
        raise ValueError(f"max_shards must be at least 1, got {max_shards}")
    roots = normalize_prefixes(prefixes)
    if max_shards == 1:
        return shards_from_cuts(roots, [], 0.0)
    sample = _FolderSample()
    try:
        collector = _collect(_counted(source, roots, count_limit, sample), max_shards, keep_whole)
    except _OverLimit:
        fan_out = sample.fan_out(max_shards)
        if fan_out is None:
            keys: Iterable[tuple[str, float]] = ((i.key, 1.0) for r in roots for i in source.iter_objects(r))
        else:
            keys = (item for root in roots for item in _walk_levels(source, root, 0, fan_out))
        collector = _collect(keys, max_shards, keep_whole)
    return shards_from_cuts(roots, collector.choose(max_shards), collector.total)


def iter_shard(source: Source, shard: Shard) -> Iterator[ObjectInfo]:
    """Every object of ``shard`` in key order (chained in C: no generator frame per object)."""
    return chain.from_iterable(
        source.iter_objects(part.prefix, end_before=part.end_before, start_at=part.start_at)
        for part in shard.parts
    )


def find_folder_files(source: Source, folders: Iterable[str], names: Iterable[str]) -> list[ObjectInfo]:
    """The folder-level files ``<folder><name>`` that exist, in key order (one HEAD each; at once
    when the source reads ahead, :meth:`~.readahead.ReadAhead.head_all`). The first error is raised."""
    wanted = list(names)
    keys = [folder + name for folder in folders for name in wanted]
    head_all = getattr(source, "head_all", None)
    heads = head_all(keys) if head_all is not None else [source.head(key) for key in keys]
    return sorted((info for info in heads if info is not None), key=lambda info: info.key)


def shard_of_parts(
    index: int, count: int, parts: Sequence[ShardPart], *, renderings_only: bool = False
) -> Shard:
    """A shard of explicit, sorted, disjoint ``parts`` (event runs), with its context folders."""
    return Shard(
        index=index,
        count=count,
        parts=list(parts),
        context_folders=_context_folders(parts),
        renderings_only=renderings_only,
    )
