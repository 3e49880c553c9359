"""Shared by every sidecar parser: size and text checks, key paths, the value normaliser.

Every parser ends with :class:`Normaliser`, so parsed values obey one contract: a fresh tree of
``dict`` (string keys), ``list``, ``str``, ``int``, ``float`` (finite), ``bool`` and ``None``,
no shared or cyclic parts, no lone surrogates, at most ``max_depth`` containers deep.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import orjson

from encord_ingest.errors import ErrorCode, ItemError

UTF8_BOM = b"\xef\xbb\xbf"
DEFAULT_MAX_DEPTH = 32
"""Containers allowed inside one another; the top-level object counts as one."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSET: Any = object()


def fingerprint(data: bytes) -> str:
    """The content fingerprint of a sidecar or table: SHA-256 of its raw bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def check_size(file: str, size: int, max_bytes: int, *, object_size: int | None = None) -> ItemError | None:
    """``FILE_TOO_LARGE`` when ``size`` (bytes read) exceeds ``max_bytes``.

    Readers stop one byte past the limit, so ``size`` is then a lower bound: the error names
    ``object_size`` (the listed size) when known, else says "more than" the limit.
    """
    if size <= max_bytes:
        return None
    if object_size is not None and object_size >= size:
        shown, detail = object_size, "size in bytes"
    else:
        shown, detail = None, f"more than {max_bytes} bytes (reading stopped there)"
    return ItemError.of(
        ErrorCode.FILE_TOO_LARGE,
        file,
        expected=f"at most {max_bytes} bytes",
        value=shown,
        detail=detail,
    )


def decode_text(data: bytes, file: str) -> str | ItemError:
    """Strict UTF-8, a leading byte-order mark accepted and dropped."""
    body = data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(data) - len(body))
        return ItemError.of(
            ErrorCode.INVALID_UTF8,
            file,
            expected="UTF-8 text",
            value=data[offset : offset + 4],
            detail=f"byte {offset}: {exc.reason}",
        )


def format_key_path(parts: list[str | int]) -> str | None:
    """``["camera", "lens", 2, "mm"]`` -> ``camera.lens[2].mm``; ``None`` for the whole file."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or None


class ValueProblem(Exception):
    """One problem inside a document; ``path`` grows as the walk unwinds."""

    def __init__(
        self,
        code: ErrorCode,
        *,
        expected: str | None = None,
        value: Any = _UNSET,
        detail: str | None = None,
        path: list[str | int] | None = None,
    ) -> None:
        super().__init__(code.value)
        self.code = code
        self.expected = expected
        self.value = value
        self.detail = detail
        self.path: list[str | int] = list(path or [])

    def at(self, part: str | int) -> ValueProblem:
        """Prefix the path with the container key or index the problem sits under."""
        self.path.insert(0, part)
        return self

    def to_error(self, file: str, *, detail_prefix: str | None = None) -> ItemError:
        """The :class:`ItemError` naming ``file`` and the key path."""
        detail = ": ".join(part for part in (detail_prefix, self.detail) if part) or None
        has_value = self.value is not _UNSET
        return ItemError.of(
            self.code,
            file,
            key=format_key_path(self.path),
            expected=self.expected,
            value=self.value if has_value else None,
            detail=detail,
            has_value=has_value,
        )


class DuplicateKeyDict(dict[str, Any]):
    """A JSON object that named ``duplicate`` twice; the normaliser reports it with its path."""

    duplicate: str


def check_text(text: str, invalid_code: ErrorCode) -> str:
    """Refuse lone surrogates (``"\\ud800"`` in JSON): they cannot be written as UTF-8."""
    if _SURROGATE.search(text):
        raise ValueProblem(invalid_code, expected="valid Unicode text", value=text, detail="lone surrogate")
    return text


_PLAIN_SCALARS = (str, int, bool, type(None))


def flat_scalars(value: dict[str, Any], max_values: int) -> dict[str, Any] | None:
    """``value`` itself when it is what :class:`Normaliser` would copy unchanged without looking
    further: a fresh JSON object (no duplicate key) of string keys and plain scalars (strings,
    integers, booleans, nulls, finite floats), parsed from text with no ``\\u`` escape (so no
    lone surrogate); else ``None`` (normalise it)."""
    if type(value) is not dict or len(value) + 1 > max_values:
        return None
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str or (
            kind not in _PLAIN_SCALARS and (kind is not float or not math.isfinite(item))
        ):
            return None
    return value


_TOO_BIG_FOR_INT64 = 2.0**63
"""``orjson`` reads an integer literal beyond 64 bits as a float at least this large."""


def fast_flat_json(data: bytes, max_values: int) -> dict[str, Any] | None:
    """The flat JSON object of ``data`` exactly as ``json.loads`` + :func:`flat_scalars` give it,
    read by ``orjson``; ``None`` where that is not proven (then parse it the full way, which
    also names any error):

    - ``orjson`` refuses the text (syntax, invalid UTF-8, a byte-order mark, ``NaN``, numbers
      that overflow, lone surrogates) or it is not a flat object of plain scalars;
    - a ``\\u`` escape (the full path checks for lone surrogates);
    - a float of 2**63 or more: ``orjson`` reads an integer beyond 64 bits as a float;
    - a key may be duplicated (``json`` with the duplicate-key hook refuses it; ``orjson``
      keeps the last). Proof of none: with no ``\\u`` escape, each ``:`` of the text is a key's
      separator or inside a string, and those inside strings that survived the parse are counted
      in the values and keys; so ``colons - colons inside parsed strings`` is at least the
      number of keys written, and equal to ``len(object)`` only if each key was written once
      (and no nested object was overwritten by a later duplicate)."""
    if b"\\u" in data:
        return None
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    flat = flat_scalars(raw, max_values)
    if flat is None:
        return None
    inside = 0
    for key, item in flat.items():
        kind = type(item)
        if kind is str:
            inside += item.count(":")
        elif kind is float and not -_TOO_BIG_FOR_INT64 < item < _TOO_BIG_FOR_INT64:
            return None
        inside += key.count(":")
    return flat if data.count(b":") - inside == len(flat) else None


class Normaliser:
    """Copy a parsed tree while enforcing the value contract of the module docstring.

    ``max_values`` bounds the copy, which matters for YAML: aliases can make a small file
    expand to billions of values.
    """

    def __init__(self, *, invalid_code: ErrorCode, max_depth: int, max_values: int) -> None:
        self.invalid_code = invalid_code
        self.max_depth = max_depth
        self.max_values = max_values
        self.count = 0

    def document(self, value: Any) -> Any:
        """Normalise a whole document (any top level)."""
        return self.value(value, 1)

    def value(self, value: Any, depth: int) -> Any:
        """Normalise one value found ``depth`` containers deep."""
        self.count += 1
        if self.count > self.max_values:
            raise ValueProblem(
                ErrorCode.FILE_TOO_LARGE,
                expected=f"at most {self.max_values} values",
                detail="the document expands to more values than its size limit allows (YAML aliases?)",
            )
        kind = type(value)  # exact JSON types first (most values), then the general checks
        if kind is str:
            return check_text(value, self.invalid_code)
        if kind is int or kind is bool or value is None:
            return value
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, str):
            return check_text(value, self.invalid_code)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueProblem(self.invalid_code, expected="a finite number", value=value)
            return value
        if isinstance(value, dict | list):
            if depth > self.max_depth:
                raise ValueProblem(
                    ErrorCode.NESTED_TOO_DEEP, expected=f"at most {self.max_depth} nested objects or lists"
                )
            return self._mapping(value, depth) if isinstance(value, dict) else self._list(value, depth)
        raise ValueProblem(self.invalid_code, expected="a JSON value", value=type(value).__name__)

    def _mapping(self, value: dict[Any, Any], depth: int) -> dict[str, Any]:
        if isinstance(value, DuplicateKeyDict):
            raise ValueProblem(
                ErrorCode.DUPLICATE_KEY, expected="each key once per object", path=[value.duplicate]
            )
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueProblem(ErrorCode.INVALID_KEY, expected="a string key", value=key, path=[str(key)])
            try:
                out[check_text(key, self.invalid_code)] = self.value(item, depth + 1)
            except ValueProblem as problem:
                raise problem.at(key) from None
        return out

    def _list(self, value: list[Any], depth: int) -> list[Any]:
        out: list[Any] = []
        for index, item in enumerate(value):
            try:
                out.append(self.value(item, depth + 1))
            except ValueProblem as problem:
                raise problem.at(index) from None
        return out
