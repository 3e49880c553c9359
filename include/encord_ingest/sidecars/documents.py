"""Per-file and folder-defaults sidecars: one JSON or YAML object per file.

:func:`parse_sidecar` takes the bytes the caller read and never raises on bad input; every
problem is an :class:`ItemError` naming the file and, where there is one, the key path
(``camera.lens[2].mm``). Rules, in the order they are checked:

- size over ``max_bytes`` -> ``FILE_TOO_LARGE`` (read at most ``max_bytes + 1`` bytes);
- UTF-8 only; a leading byte-order mark is accepted; anything else -> ``INVALID_UTF8``;
- the format comes from the extension, any letter case: ``.json`` (which covers
  ``.metadata.json``), ``.yaml``/``.yml``; else ``UNSUPPORTED_SIDECAR``;
- JSON: syntax -> ``INVALID_JSON`` (with line and column); ``NaN``, ``Infinity`` and numbers
  that overflow to infinity (``1e400``) are refused -> ``INVALID_JSON`` with the key, since
  Encord's metadata is JSON; a key twice in one object -> ``DUPLICATE_KEY`` with its path;
- YAML: see :mod:`._yaml` (safe by construction, core schema, ``UNSAFE_YAML`` for Python tags);
  an empty YAML file is an empty object (a placeholder ``_defaults.yaml``), an empty JSON file
  is ``INVALID_JSON``;
- the top level must be an object/mapping -> else ``NOT_AN_OBJECT``;
- containers nested deeper than ``max_depth`` -> ``NESTED_TOO_DEEP``; a YAML document whose
  aliases expand to more than ``max_bytes // 2`` values -> ``FILE_TOO_LARGE``.

Values come out as a fresh JSON-compatible tree (see :mod:`._values`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml

from encord_ingest.errors import ErrorCode, ItemError

from ._values import (
    DEFAULT_MAX_DEPTH,
    DuplicateKeyDict,
    Normaliser,
    ValueProblem,
    check_size,
    decode_text,
    fast_flat_json,
    fingerprint,
    flat_scalars,
)
from ._yaml import load_yaml

DEFAULT_MAX_SIDECAR_BYTES = 4 * 1024 * 1024


class DocumentFormat(StrEnum):
    """The two formats of a one-object sidecar."""

    JSON = "json"
    YAML = "yaml"


_FORMAT_BY_EXTENSION = {
    ".json": DocumentFormat.JSON,
    ".yaml": DocumentFormat.YAML,
    ".yml": DocumentFormat.YAML,
}
_INVALID = {DocumentFormat.JSON: ErrorCode.INVALID_JSON, DocumentFormat.YAML: ErrorCode.INVALID_YAML}
_TOP_LEVEL = {DocumentFormat.JSON: "a JSON object", DocumentFormat.YAML: "a YAML mapping"}


@dataclass(frozen=True, slots=True)
class ParsedSidecar:
    """One parsed sidecar: its key, the SHA-256 of its bytes and its top-level object (a plain
    dataclass: one per sidecar read, built from values :func:`parse_sidecar` just checked)."""

    file: str
    fingerprint: str
    format: DocumentFormat
    values: dict[str, Any]


def document_format(file: str) -> DocumentFormat | None:
    """JSON or YAML by extension (any case), ``None`` for anything else."""
    dot = file.rfind(".")
    return _FORMAT_BY_EXTENSION.get(file[dot:].lower()) if dot > file.rfind("/") else None


def _keep_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: remember a duplicated key so the normaliser can name its path."""
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    seen: set[str] = set()
    marked = DuplicateKeyDict(out)
    for key, _ in pairs:
        if key in seen:
            marked.duplicate = key
            break
        seen.add(key)
    return marked


def load_json(text: str) -> Any:
    """Parse JSON text; raises :class:`ValueProblem` for syntax errors."""
    try:
        return json.loads(text, object_pairs_hook=_keep_pairs)
    except json.JSONDecodeError as exc:
        raise ValueProblem(
            ErrorCode.INVALID_JSON,
            expected="valid JSON",
            detail=f"line {exc.lineno} column {exc.colno}: {exc.msg}",
        ) from None
    except ValueError as exc:  # integers longer than Python converts
        raise ValueProblem(ErrorCode.INVALID_JSON, expected="valid JSON", detail=str(exc)) from None
    except RecursionError:
        raise ValueProblem(ErrorCode.NESTED_TOO_DEEP, expected="fewer nested objects or lists") from None


def parse_document(
    text: str, doc_format: DocumentFormat, *, max_depth: int, max_values: int
) -> dict[str, Any]:
    """Text -> normalised top-level object; raises :class:`ValueProblem`."""
    if doc_format is DocumentFormat.JSON:
        raw = load_json(text)
        if type(raw) is dict and "\\u" not in text:  # no escape: no lone surrogate anywhere
            flat = flat_scalars(raw, max_values)
            if flat is not None:
                return flat
    else:
        try:
            raw = load_yaml(text, max_depth=max_depth)
        except yaml.YAMLError as exc:
            raise ValueProblem(
                ErrorCode.INVALID_YAML, expected="valid YAML", detail=_yaml_detail(exc)
            ) from None
        except RecursionError:
            raise ValueProblem(ErrorCode.NESTED_TOO_DEEP, expected="fewer nested mappings or lists") from None
    if not isinstance(raw, dict):
        raise ValueProblem(ErrorCode.NOT_AN_OBJECT, expected=_TOP_LEVEL[doc_format], value=raw)
    normaliser = Normaliser(invalid_code=_INVALID[doc_format], max_depth=max_depth, max_values=max_values)
    values: dict[str, Any] = normaliser.document(raw)
    return values


def _yaml_detail(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1} column {mark.column + 1}: {exc.problem}"
    return str(exc).replace("\n", " ")


def parse_sidecar(
    data: bytes,
    *,
    file: str,
    max_bytes: int = DEFAULT_MAX_SIDECAR_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    object_size: int | None = None,
) -> ParsedSidecar | ItemError:
    """Parse one JSON or YAML sidecar read from ``file``; bad input is an :class:`ItemError`.
    ``object_size`` (the listed size) is named when the file is too large."""
    too_large = check_size(file, len(data), max_bytes, object_size=object_size)
    if too_large is not None:
        return too_large
    doc_format = document_format(file)
    if doc_format is None:
        return ItemError.of(
            ErrorCode.UNSUPPORTED_SIDECAR, file, expected="a .json, .yaml or .yml sidecar", value=file
        )
    max_values = max_bytes // 2 + 1
    flat = fast_flat_json(data, max_values) if doc_format is DocumentFormat.JSON else None
    if flat is not None:
        return ParsedSidecar(file, fingerprint(data), doc_format, flat)
    text = decode_text(data, file)
    if isinstance(text, ItemError):
        return text
    try:
        values = parse_document(text, doc_format, max_depth=max_depth, max_values=max_values)
    except ValueProblem as problem:
        return problem.to_error(file)
    return ParsedSidecar(file, fingerprint(data), doc_format, values)
