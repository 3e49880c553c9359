"""Layers of metadata for one data file, and how they combine.

:func:`collect_layers` finds, for one data key, every parsed sidecar that applies to it and
returns them lowest precedence first (static config, farther folder defaults, nearer folder
defaults, farther table rows, nearer table rows, per-file sidecars; see
:mod:`.conventions`). The typing layer types each layer on its own (a layer knows its file and
whether it is ``untyped``), then :func:`merge_layers` combines them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from encord_ingest.errors import ItemError

from .conventions import SidecarConventions, SidecarRole
from .documents import ParsedSidecar
from .tables import ParsedTable

STATIC_ROLE = "static"


@dataclass(frozen=True, slots=True)
class MetadataLayer:
    """One source of values for one data file (a plain dataclass: built for every layer of every
    item, from parsed sidecars whose values are already checked).

    ``file`` is the sidecar key (or whatever the caller named the static config),
    ``fingerprint`` the SHA-256 of the sidecar's bytes (a table's for a table row; ``None`` for
    static config), ``untyped`` true for CSV/TSV rows whose values are all strings.
    """

    file: str
    role: str
    fingerprint: str | None
    untyped: bool
    values: dict[str, Any]


Parsed = ParsedSidecar | ParsedTable | ItemError


def merge_layers(layers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Combine layers given LOWEST precedence first into a new dict (inputs are not changed).

    The rule, applied key by key from the lowest layer up:

    - object over object: merged recursively, key by key, by this same rule;
    - anything else (a list, a scalar, an object over a non-object or the reverse): the higher
      layer's value replaces the lower one whole. Lists are never concatenated or merged by
      index;
    - ``null`` (``None``) in a higher layer removes the key, at any depth, so a file can opt out
      of an inherited default. The result therefore holds no ``None`` as an object value
      (``None`` inside a list is kept: lists are values);
    - a key absent from a higher layer leaves the lower value alone.
    """
    result: dict[str, Any] = {}
    for layer in layers:
        _merge_into(result, layer)
    return result


_SCALARS = (str, int, float, bool)
"""Exact types copied as they are (checked before the slower ``Mapping`` check)."""


def _merge_into(target: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if value is None:
            target.pop(key, None)
        elif type(value) in _SCALARS:
            target[key] = value
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = _fresh(value)


def _fresh(value: Any) -> Any:
    """A deep copy in which objects lose their ``None`` members."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {key: _fresh(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    return value


def _from_sidecar(parsed: Parsed, role: SidecarRole) -> MetadataLayer | ItemError | None:
    if isinstance(parsed, ItemError):
        return parsed
    if not isinstance(parsed, ParsedSidecar):
        return None
    return MetadataLayer(
        file=parsed.file, role=role.value, fingerprint=parsed.fingerprint, untyped=False, values=parsed.values
    )


def _from_table(parsed: Parsed, data_key: str) -> MetadataLayer | ItemError | None:
    if isinstance(parsed, ItemError):
        return parsed
    if not isinstance(parsed, ParsedTable):
        return None
    row = parsed.lookup(data_key)
    if row is None or isinstance(row, ItemError):
        return row
    return MetadataLayer(
        file=parsed.file,
        role=SidecarRole.FOLDER_TABLE.value,
        fingerprint=parsed.fingerprint,
        untyped=parsed.untyped,
        values=row,
    )


def collect_layers(
    data_key: str,
    parsed: Mapping[str, Parsed],
    *,
    conventions: SidecarConventions,
    static: Mapping[str, Any] | None = None,
    static_file: str = "static config",
    root: str = "",
) -> list[MetadataLayer] | ItemError:
    """The layers of ``data_key``, lowest precedence first, or the first error that applies.

    ``parsed`` maps sidecar keys to what parsing them gave; keys that are absent simply do not
    exist. An error in any sidecar that applies (a per-file sidecar, a defaults file or a table
    in one of the folders, or this file's table row) fails the file: it is returned, checking
    from the highest precedence down. A table that parsed but has no row for the file adds no
    layer; it still fed the decision, so :func:`sidecar_inputs` lists it.
    """
    found: list[MetadataLayer | ItemError | None] = []
    for key in conventions.per_file_sidecar_keys(data_key):
        if key in parsed:
            found.append(_from_sidecar(parsed[key], SidecarRole.PER_FILE))
    chain = conventions.applying_folders(data_key, root)
    for folder in chain:
        found.extend(
            _from_table(parsed[key], data_key) for key in conventions.table_keys(folder) if key in parsed
        )
    for folder in chain:
        found.extend(
            _from_sidecar(parsed[key], SidecarRole.FOLDER_DEFAULTS)
            for key in conventions.defaults_keys(folder)
            if key in parsed
        )
    layers: list[MetadataLayer] = []
    for item in found:
        if isinstance(item, ItemError):
            return item
        if item is not None:
            layers.append(item)
    if static:
        layers.append(
            MetadataLayer(
                file=static_file, role=STATIC_ROLE, fingerprint=None, untyped=False, values=dict(static)
            )
        )
    layers.reverse()
    return layers


def sidecar_inputs(
    data_key: str, present: Mapping[str, Any], *, conventions: SidecarConventions, root: str = ""
) -> list[str]:
    """Keys in ``present`` that feed ``data_key`` (highest precedence first), for change detection.

    ``present`` is any mapping keyed by listed sidecar keys (say key -> ETag). Tables count
    whether or not they hold a row for the file: adding a row must be noticed.
    """
    chain = conventions.applying_folders(data_key, root)
    candidates = conventions.per_file_sidecar_keys(data_key)
    candidates += [key for folder in chain for key in conventions.table_keys(folder)]
    candidates += [key for folder in chain for key in conventions.defaults_keys(folder)]
    return [key for key in candidates if key in present]
