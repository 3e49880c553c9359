"""An item's typed, merged ``clientMetadata`` from its sidecar layers and the static config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from encord_ingest.errors import ItemError
from encord_ingest.metadata import TypedMetadata, map_and_type, validate_reserved
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.inputs import Parsed
from encord_ingest.schema import RESERVED_KEYS, MetadataSchema
from encord_ingest.sidecars import MetadataLayer, ParsedSidecar, SidecarRole, merge_layers

STATIC_FILE = "planning config: mapping.static"
TYPED_CACHE_ENTRIES = 1024
"""Typed folder-defaults layers kept per scan (they apply to every item below their folder)."""

TypedCache = dict[tuple[str, str], TypedMetadata]
"""``(file, fingerprint) -> typed layer`` of folder defaults files: typed once, not per item."""


@dataclass(slots=True)
class ItemMetadata:
    """The typed, merged ``clientMetadata`` of one item, or why it has none."""

    values: dict[str, Any] = field(default_factory=dict)
    error: ItemError | None = None
    warnings: list[ItemError] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def type_layers(
    layers: Sequence[MetadataLayer],
    config: PlanningConfig,
    schema: MetadataSchema,
    cache: TypedCache | None = None,
) -> tuple[list[TypedMetadata], list[str]]:
    """Each layer typed (folder defaults through ``cache``: typed once per scan), and its file."""
    typed = []
    files = []
    for layer in layers:
        shared = cache is not None and layer.role == SidecarRole.FOLDER_DEFAULTS and layer.fingerprint
        found = cache.get((layer.file, layer.fingerprint or "")) if shared and cache is not None else None
        if found is None:
            found = map_and_type(
                layer.values,
                schema,
                config.mapping,
                file=layer.file,
                untyped=layer.untyped,
                unknown_keys=config.unknown_keys,
            )
            if shared and cache is not None:
                if len(cache) >= TYPED_CACHE_ENTRIES:
                    cache.clear()
                cache[(layer.file, layer.fingerprint or "")] = found
        typed.append(found)
        files.append(layer.file)
    return typed, files


def _reserved_file(typed: Sequence[TypedMetadata], files: Sequence[str], fallback: str) -> str:
    """The highest layer that set a reserved key, to name in its error."""
    for layer, file in zip(reversed(typed[1:]), reversed(files), strict=True):
        if "keyframes" in layer.values or "config" in layer.values:
            return file
    return fallback


def build_metadata(
    layers: Sequence[MetadataLayer],
    kind: str,
    *,
    item_file: str,
    config: PlanningConfig,
    schema: MetadataSchema,
    static: TypedMetadata | None = None,
    cache: TypedCache | None = None,
) -> ItemMetadata:
    """Type each layer (``static``: the typed static config; ``cache``: typed folder defaults of
    this scan, read only), merge them lowest first, and check the reserved keys for ``kind``."""
    if static is None:
        static = config.mapping.static_layer(schema, file=STATIC_FILE, unknown_keys=config.unknown_keys)
    typed, files = type_layers(layers, config, schema, cache)
    return merge_typed([static, *typed], files, kind, item_file=item_file)


def merge_typed(
    typed: Sequence[TypedMetadata], files: list[str], kind: str, *, item_file: str
) -> ItemMetadata:
    """Typed layers (the static one first, then one per file of ``files``, lowest precedence
    first) merged, with the reserved keys checked for ``kind``; the first error fails the item."""
    warnings = [warning for layer in typed for warning in layer.warnings]
    errors = [error for layer in typed for error in layer.errors]
    if errors:
        return ItemMetadata(error=errors[0], warnings=warnings, files=files)
    merged = merge_layers([layer.values for layer in typed])
    if merged.keys().isdisjoint(RESERVED_KEYS):
        return ItemMetadata(values=merged, warnings=warnings, files=files)
    final, reserved_errors = validate_reserved(
        merged, kind=kind, file=_reserved_file(typed, files, item_file)
    )
    if reserved_errors:
        return ItemMetadata(error=reserved_errors[0], warnings=warnings, files=files)
    return ItemMetadata(values=final, warnings=warnings, files=files)


def own_defaults(parsed: Mapping[str, Parsed], order: Sequence[str]) -> list[MetadataLayer] | ItemError:
    """Layers of a group folder's own defaults, lowest precedence first."""
    layers: list[MetadataLayer] = []
    for key in reversed(order):
        if key not in parsed:
            continue
        doc = parsed[key]
        if isinstance(doc, ItemError):
            return doc
        assert isinstance(doc, ParsedSidecar)
        layers.append(
            MetadataLayer(
                file=doc.file,
                role=SidecarRole.FOLDER_DEFAULTS.value,
                fingerprint=doc.fingerprint,
                untyped=False,
                values=doc.values,
            )
        )
    return layers
