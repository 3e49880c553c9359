"""Which keys are sidecars, and which sidecars describe which data file. Pure over key strings.

Three kinds (:class:`SidecarRole`), told apart by the file name (the last ``/`` segment):

- ``folder_defaults``: a name in ``defaults_names`` (``_defaults.yaml`` ...): values inherited by
  every file at or below its folder;
- ``folder_table``: a name in ``table_names`` (``metadata.csv`` ...): one row per file at or
  below its folder;
- ``per_file``: a name ending in the suffix of a ``per_file_patterns`` entry. ``{file}.json``
  means the data file's whole name plus ``.json`` (``clip.mp4.json``); ``{stem}.json`` means the
  name without its extension plus ``.json`` (``clip.json``). The stem drops the last extension
  (``a.b.c.jpg`` -> ``a.b.c``) or a configured compound one (``scan.nii.gz`` -> ``scan``), any
  letter case. Sidecar suffixes themselves match case-sensitively, exactly as configured.

A name can fit several kinds; the first one in the order above wins. A ``per_file`` name is
only a candidate: ``clip.json`` may describe ``clip.mp4`` and ``clip.mov`` at once, and a
``.json`` with no data file next to it may be data or an orphan. Pairing decides, using
:meth:`SidecarConventions.per_file_sidecar_keys` from the data file's side.

Precedence (highest first; see :mod:`.merge` for how layers combine): per-file sidecars in
pattern order (by default every ``{file}.*`` before every ``{stem}.*``; when several exist,
all are used and merge key by key, the earlier pattern winning), table rows from the nearest
folder to the farthest (within a folder in ``table_names`` order), folder defaults from the
nearest folder to the farthest (within a folder in ``defaults_names`` order), static config.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

from encord_ingest.errors import ItemError

from .documents import DEFAULT_MAX_SIDECAR_BYTES, ParsedSidecar, document_format, parse_sidecar
from .tables import DEFAULT_FILE_COLUMNS, DEFAULT_MAX_TABLE_BYTES, ParsedTable, parse_table, table_format

DEFAULT_PER_FILE_PATTERNS: tuple[str, ...] = (
    "{file}.json",
    "{file}.metadata.json",
    "{file}.yaml",
    "{file}.yml",
    "{stem}.json",
    "{stem}.yaml",
    "{stem}.yml",
)
DEFAULT_DEFAULTS_NAMES: tuple[str, ...] = ("_defaults.yaml", "_defaults.yml", "_defaults.json")
DEFAULT_TABLE_NAMES: tuple[str, ...] = ("metadata.csv", "metadata.tsv", "metadata.jsonl", "metadata.parquet")
DEFAULT_COMPOUND_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".ome.tif", ".ome.tiff")

_PATTERN = re.compile(r"^\{(file|stem)\}(\.[^/{}]+)$")
_MEMO_ENTRIES = 8192
"""Keys remembered per lookup (a scan asks about the same keys several times, folder by folder)."""
_UNKNOWN = object()


class SidecarRole(StrEnum):
    """What a sidecar key is for."""

    PER_FILE = "per_file"
    FOLDER_DEFAULTS = "folder_defaults"
    FOLDER_TABLE = "folder_table"


def file_name(key: str) -> str:
    """The last ``/`` segment of a key."""
    return key[key.rfind("/") + 1 :]


def folder_of(key: str) -> str:
    """The folder of a key with its trailing slash, ``""`` at the root."""
    return key[: key.rfind("/") + 1]


def _plain_names(
    names: tuple[str, ...], field: str, format_of: Callable[[str], object | None]
) -> tuple[str, ...]:
    for name in names:
        if not name or "/" in name:
            raise ValueError(f"{field}: {name!r} must be a plain file name (no '/')")
        if format_of(name) is None:
            raise ValueError(f"{field}: {name!r} has an unsupported extension")
    return names


class SidecarConventions(BaseModel):
    """Per-source sidecar naming, size limits and table file columns (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_file_patterns: tuple[str, ...] = Field(
        default=DEFAULT_PER_FILE_PATTERNS,
        description="'{file}<suffix>' or '{stem}<suffix>', suffix ending .json/.yaml/.yml; highest first",
    )
    defaults_names: tuple[str, ...] = DEFAULT_DEFAULTS_NAMES
    table_names: tuple[str, ...] = DEFAULT_TABLE_NAMES
    table_file_columns: tuple[str, ...] = Field(default=DEFAULT_FILE_COLUMNS, min_length=1)
    compound_extensions: tuple[str, ...] = DEFAULT_COMPOUND_EXTENSIONS
    max_sidecar_bytes: int = Field(default=DEFAULT_MAX_SIDECAR_BYTES, gt=0)
    max_table_bytes: int = Field(default=DEFAULT_MAX_TABLE_BYTES, gt=0)
    max_depth: int = Field(default=32, ge=1, le=200)

    @field_validator("per_file_patterns")
    @classmethod
    def _valid_patterns(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            match = _PATTERN.match(pattern)
            if match is None or document_format(match.group(2)) is None:
                raise ValueError(
                    f"per_file_patterns: {pattern!r} must be '{{file}}' or '{{stem}}' followed by a "
                    "suffix ending in .json, .yaml or .yml, e.g. '{file}.metadata.json'"
                )
        return patterns

    @field_validator("defaults_names")
    @classmethod
    def _valid_defaults(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return _plain_names(names, "defaults_names", document_format)

    @field_validator("table_names")
    @classmethod
    def _valid_tables(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return _plain_names(names, "table_names", table_format)

    @field_validator("compound_extensions")
    @classmethod
    def _valid_compound(cls, extensions: tuple[str, ...]) -> tuple[str, ...]:
        for extension in extensions:
            if not re.fullmatch(r"(\.[^./]+){2,}", extension):
                raise ValueError(f"compound_extensions: {extension!r} must look like '.nii.gz'")
        return tuple(sorted(extensions, key=len, reverse=True))

    # Derived lookups, computed once per (frozen) instance: these run several times per object.

    @cached_property
    def _suffix_kinds(self) -> tuple[tuple[str, str], ...]:
        """``(kind, suffix)`` per pattern, in precedence order."""
        return tuple(match.groups() for match in map(_PATTERN.match, self.per_file_patterns) if match)  # type: ignore[misc]

    @cached_property
    def _suffixes(self) -> tuple[str, ...]:
        return tuple(suffix for _, suffix in self._suffix_kinds)

    def per_file_suffixes(self) -> tuple[tuple[str, str], ...]:
        """``(kind, suffix)`` of each per-file pattern, kind ``"file"`` or ``"stem"``, highest
        precedence first: a sidecar name is the data file's name (``file``) or
        :meth:`stem` (``stem``) followed by the suffix (:meth:`per_file_sidecar_names`)."""
        return self._suffix_kinds

    @cached_property
    def _longest_suffix(self) -> int:
        return max(map(len, self._suffixes), default=0)

    @cached_property
    def _compound_lowered(self) -> tuple[str, ...]:
        return tuple(extension.lower() for extension in self.compound_extensions)

    @cached_property
    def _defaults_set(self) -> frozenset[str]:
        return frozenset(self.defaults_names)

    @cached_property
    def _tables_set(self) -> frozenset[str]:
        return frozenset(self.table_names)

    def stem(self, key: str) -> str:
        """The file name without its extension (compound ones first); dot-files keep their name."""
        name = file_name(key)
        lowered = name.lower()
        if lowered.endswith(self._compound_lowered):  # one check first: most names have none
            for extension in self._compound_lowered:
                if lowered.endswith(extension) and len(name) > len(extension):
                    return name[: -len(extension)]
        dot = name.rfind(".")
        return name[:dot] if dot > 0 else name

    @cached_property
    def _roles(self) -> dict[str, SidecarRole | None]:
        return {}

    @cached_property
    def _candidates(self) -> dict[str, tuple[str, ...]]:
        return {}

    def sidecar_role(self, key: str) -> SidecarRole | None:
        """The role ``key``'s name has, or ``None`` when it is not a sidecar name."""
        memo = self._roles  # read-ahead threads ask too: get, never "in" then [] (a clear may fall between)
        role = memo.get(key, _UNKNOWN)
        if role is _UNKNOWN:
            if len(memo) >= _MEMO_ENTRIES:
                memo.clear()
            role = memo[key] = self._role(key)
        return role  # type: ignore[return-value]

    def _role(self, key: str) -> SidecarRole | None:
        name = key[key.rfind("/") + 1 :]
        if name in self._defaults_set:
            return SidecarRole.FOLDER_DEFAULTS
        if name in self._tables_set:
            return SidecarRole.FOLDER_TABLE
        if name.endswith(self._suffixes) and (
            len(name) > self._longest_suffix
            or any(name.endswith(suffix) and len(name) > len(suffix) for suffix in self._suffixes)
        ):
            return SidecarRole.PER_FILE
        return None

    def is_sidecar(self, key: str) -> bool:
        """Whether ``key`` has any sidecar name (per-file, folder defaults or folder table)."""
        return self.sidecar_role(key) is not None

    def per_file_sidecar_keys(self, data_key: str) -> list[str]:
        """Candidate per-file sidecar keys of ``data_key``, highest precedence first, no repeats."""
        memo = self._candidates
        found = memo.get(data_key)
        if found is None:
            if len(memo) >= _MEMO_ENTRIES:
                memo.clear()
            found = memo[data_key] = tuple(self._per_file_keys(data_key))
        return list(found)

    def _per_file_keys(self, data_key: str) -> list[str]:
        folder = folder_of(data_key)
        return [folder + name for name in self.per_file_sidecar_names(data_key[len(folder) :])]

    def per_file_sidecar_names(self, data_name: str) -> list[str]:
        """Candidate per-file sidecar names (in the data file's folder) of the data file named
        ``data_name``, highest precedence first, no repeats; not remembered (for callers that
        ask once per file: :meth:`per_file_sidecar_keys` is the memoised form)."""
        if not data_name:  # no name, no stem (a stem is empty only when the name is)
            return []
        stem = self.stem(data_name)
        names = [(data_name if kind == "file" else stem) + suffix for kind, suffix in self._suffix_kinds]
        return [name for name in dict.fromkeys(names) if name != data_name]

    @staticmethod
    def folder_chain(data_key: str, root: str = "") -> list[str]:
        """Folders holding ``data_key``, nearest first, down to ``root`` (``""`` = bucket root).

        ``a/b/c.jpg`` -> ``["a/b/", "a/", ""]``; with ``root="a/"`` -> ``["a/b/", "a/"]``.
        """
        if root and not root.endswith("/"):
            raise ValueError(f"root {root!r} must be '' or end with '/'")
        if not data_key.startswith(root):
            raise ValueError(f"{data_key!r} is not below root {root!r}")
        chain: list[str] = []
        folder = folder_of(data_key)
        while len(folder) >= len(root):
            chain.append(folder)
            if not folder:
                break
            folder = folder_of(folder[:-1])
        return chain

    def applying_folders(self, data_key: str, root: str = "") -> list[str]:
        """The folders whose defaults and tables apply to ``data_key``: its :meth:`folder_chain`
        down to ``root``, none when the key lies outside ``root`` (listed above ``metadata_root``)."""
        return self.folder_chain(data_key, root) if data_key.startswith(root) else []

    def defaults_keys(self, folder: str) -> list[str]:
        """Folder-defaults keys of ``folder`` (``"a/b/"`` or ``""``), highest precedence first."""
        return [folder + name for name in self.defaults_names]

    def table_keys(self, folder: str) -> list[str]:
        """Folder-table keys of ``folder``, highest precedence first."""
        return [folder + name for name in self.table_names]

    def max_bytes(self, key: str) -> int:
        """The size limit for the sidecar ``key`` (tables have their own)."""
        return (
            self.max_table_bytes
            if self.sidecar_role(key) is SidecarRole.FOLDER_TABLE
            else self.max_sidecar_bytes
        )

    def read_limit(self, key: str) -> int:
        """How much of the sidecar ``key`` to read: one byte past its limit, so "too large" shows."""
        return self.max_bytes(key) + 1

    def read_ahead_limit(self, key: str, version: str, known: Mapping[str, str]) -> int | None:
        """Bytes of a listed object worth reading ahead: its :meth:`read_limit` when it has a
        sidecar name and ``known`` (``{sidecar key: version}`` the ledger recorded) does not hold
        this version (unchanged sidecars are not read again); else ``None``."""
        if self.sidecar_role(key) is None or known.get(key) == version:
            return None
        return self.read_limit(key)

    def parse(
        self, key: str, data: bytes, *, object_size: int | None = None
    ) -> ParsedSidecar | ParsedTable | ItemError:
        """Parse the sidecar ``key`` read as ``data`` with these limits (a table by its role);
        ``object_size`` (the listed size) is named when the file is too large."""
        if self.sidecar_role(key) is SidecarRole.FOLDER_TABLE:
            return parse_table(
                data,
                file=key,
                file_columns=self.table_file_columns,
                max_bytes=self.max_table_bytes,
                max_depth=self.max_depth,
                object_size=object_size,
            )
        limits = {"max_bytes": self.max_sidecar_bytes, "max_depth": self.max_depth}
        return parse_sidecar(data, file=key, object_size=object_size, **limits)
