"""The import manifest: items plus the two top-level flags, and its two outputs.

``to_docs_json()`` / ``to_bytes()`` write Encord's documented import JSON (the chunk files a user
can read or upload by hand, and that the register task reads back with ``from_bytes``);
``encord_provider.upload_items`` builds the SDK's ``DataUploadItems`` the register operator sends.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from encord_ingest.errors import value_repr
from encord_ingest.fastjson import compact
from encord_ingest.manifest.items import ITEM_TYPES, Item, _Item

FLAG_KEYS = ("skip_duplicate_urls", "upsert_metadata")
_TYPE_BY_DOCS_KEY = {item_type.DOCS_KEY: item_type for item_type in ITEM_TYPES}
_KIND_ORDER = {docs_key: index for index, docs_key in enumerate(_TYPE_BY_DOCS_KEY)}


class ManifestError(ValueError):
    """A manifest (file or dict) that cannot be read; the message names the source and the entry."""


compact_json_bytes = compact()
"""The one JSON encoding of manifest files (``json.dumps`` compact, UTF-8, no NaN): chunk sizes
are measured in it, and the planner's fingerprints hash it."""


def chunk_bytes(
    entries: Iterable[tuple[str, bytes]], *, skip_duplicate_urls: bool = True, upsert_metadata: bool = False
) -> bytes:
    """The chunk-file bytes (:meth:`Manifest.to_bytes`) of items given as ``(DOCS_KEY, compact
    JSON of to_docs())``: kinds in ``ITEM_TYPES`` order, items in the given order within a kind,
    the flags last. A writer that measured each entry's bytes reuses them here."""
    by_kind: dict[str, list[bytes]] = {}
    for docs_key, entry in entries:
        by_kind.setdefault(docs_key, []).append(entry)
    parts = [
        compact_json_bytes(docs_key) + b":[" + b",".join(by_kind[docs_key]) + b"]"
        for docs_key in _TYPE_BY_DOCS_KEY
        if docs_key in by_kind
    ]
    flags = (skip_duplicate_urls, upsert_metadata)
    parts += [
        compact_json_bytes(flag) + b":" + compact_json_bytes(value)
        for flag, value in zip(FLAG_KEYS, flags, strict=True)
    ]
    return b"{" + b",".join(parts) + b"}"


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        parts.append(f"{location}: {error['msg']}" if location else error["msg"])
    return "; ".join(parts)


def _parse_entry(item_type: type[_Item], entry: Any, where: str) -> Item:
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {value_repr(entry)}")
    try:
        return cast("Item", item_type.from_docs(entry))
    except ValidationError as exc:
        raise ManifestError(f"{where}: {_describe(exc)}") from exc
    except ValueError as exc:
        raise ManifestError(f"{where}: {exc}") from exc


class Manifest(BaseModel):
    """Items to register in one upload job. Items are kept grouped by kind, in ``ITEM_TYPES``
    order (stable within a kind): the order both outputs list them in. No object URL may appear
    twice, within an item or across items.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    items: list[Item] = Field(default_factory=list)
    skip_duplicate_urls: bool = True
    upsert_metadata: bool = False

    def __init__(self, items: Iterable[Item] = (), /, **data: Any) -> None:
        data.setdefault("items", list(items))
        super().__init__(**data)

    @field_validator("items")
    @classmethod
    def _canonical(cls, items: list[Item]) -> list[Item]:
        ordered = sorted(items, key=lambda item: _KIND_ORDER[item.DOCS_KEY])
        seen: set[str] = set()
        for item in ordered:
            for url in item.object_urls():
                if url in seen:
                    raise ValueError(f"object URL {value_repr(url)} appears in more than one item")
                seen.add(url)
        return ordered

    def __len__(self) -> int:
        return len(self.items)

    @property
    def url_count(self) -> int:
        """Object URLs over all items (Encord limits URLs per job as well as items)."""
        return sum(len(item.object_urls()) for item in self.items)

    def key_urls(self) -> list[str]:
        """Every item's key URL (its ledger key), in item order."""
        return [item.key_url for item in self.items]

    # --- documented JSON ---------------------------------------------------------------------

    def to_docs_json(self) -> dict[str, Any]:
        """Encord's documented import JSON; kinds without items are left out, flags always written."""
        doc: dict[str, Any] = {}
        for item in self.items:
            doc.setdefault(item.DOCS_KEY, []).append(item.to_docs())
        doc["skip_duplicate_urls"] = self.skip_duplicate_urls
        doc["upsert_metadata"] = self.upsert_metadata
        return doc

    @classmethod
    def from_docs_json(cls, data: Mapping[str, Any], source: str | None = None) -> Manifest:
        """Read the documented import JSON. Absent flags take Encord's default (false).

        Raises :class:`ManifestError` naming ``source`` (a file name or URI) and the entry at fault.
        """
        where = source or "manifest"
        if not isinstance(data, Mapping):
            raise ManifestError(f"{where}: expected a JSON object at the top, got {value_repr(data)}")
        unknown = sorted(set(data) - set(_TYPE_BY_DOCS_KEY) - set(FLAG_KEYS))
        if unknown:
            expected = [*_TYPE_BY_DOCS_KEY, *FLAG_KEYS]
            raise ManifestError(f"{where}: unknown top-level key(s) {unknown}; expected some of {expected}")
        items = []
        for docs_key, item_type in _TYPE_BY_DOCS_KEY.items():
            entries = data.get(docs_key, [])
            if not isinstance(entries, list):
                raise ManifestError(f"{where}: {docs_key}: expected a JSON array, got {value_repr(entries)}")
            items += [_parse_entry(item_type, e, f"{where}: {docs_key}[{i}]") for i, e in enumerate(entries)]
        flags = {flag: data.get(flag, False) for flag in FLAG_KEYS}
        for flag, value in flags.items():
            if not isinstance(value, bool):
                raise ManifestError(f"{where}: {flag}: expected true or false, got {value_repr(value)}")
        try:
            return cls(items, **flags)
        except ValidationError as exc:
            raise ManifestError(f"{where}: {_describe(exc)}") from exc

    def to_bytes(self) -> bytes:
        """The chunk-file form: the documented JSON, compact UTF-8."""
        return chunk_bytes(
            ((item.DOCS_KEY, compact_json_bytes(item.to_docs())) for item in self.items),
            skip_duplicate_urls=self.skip_duplicate_urls,
            upsert_metadata=self.upsert_metadata,
        )

    @classmethod
    def from_bytes(cls, data: bytes, source: str | None = None) -> Manifest:
        """Read a chunk file written by :meth:`to_bytes` (or by hand)."""
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{source or 'manifest'}: not UTF-8 JSON: {exc}") from exc
        return cls.from_docs_json(parsed, source=source)
