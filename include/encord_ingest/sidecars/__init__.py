"""Sidecar files: naming conventions, parsing (JSON, YAML, tables) and merging.

- :mod:`.conventions`: which keys are sidecars and which describe a data file (pure).
- :mod:`.documents`: one-object sidecars (JSON, YAML) from bytes.
- :mod:`.tables`: per-folder tables (CSV, TSV, JSON Lines, Parquet) from bytes.
- :mod:`.merge`: the layers of one data file, lowest precedence first, and the merge rule.

Bad input is never raised: parsers return :class:`~encord_ingest.errors.ItemError` values.
"""

from __future__ import annotations

from ._values import DEFAULT_MAX_DEPTH, check_size, fingerprint
from .conventions import (
    DEFAULT_COMPOUND_EXTENSIONS,
    DEFAULT_DEFAULTS_NAMES,
    DEFAULT_PER_FILE_PATTERNS,
    DEFAULT_TABLE_NAMES,
    SidecarConventions,
    SidecarRole,
)
from .documents import DEFAULT_MAX_SIDECAR_BYTES, DocumentFormat, ParsedSidecar, parse_sidecar
from .merge import MetadataLayer, collect_layers, merge_layers, sidecar_inputs
from .tables import DEFAULT_FILE_COLUMNS, DEFAULT_MAX_TABLE_BYTES, ParsedTable, TableFormat, parse_table

__all__ = [
    "DEFAULT_COMPOUND_EXTENSIONS",
    "DEFAULT_DEFAULTS_NAMES",
    "DEFAULT_FILE_COLUMNS",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIDECAR_BYTES",
    "DEFAULT_MAX_TABLE_BYTES",
    "DEFAULT_PER_FILE_PATTERNS",
    "DEFAULT_TABLE_NAMES",
    "DocumentFormat",
    "MetadataLayer",
    "ParsedSidecar",
    "ParsedTable",
    "SidecarConventions",
    "SidecarRole",
    "TableFormat",
    "check_size",
    "collect_layers",
    "fingerprint",
    "merge_layers",
    "parse_sidecar",
    "parse_table",
    "sidecar_inputs",
]
