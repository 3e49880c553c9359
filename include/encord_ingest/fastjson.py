"""JSON encoders built once for the planner's hot path (fingerprints, manifest entries, change lines).

:func:`compact` writes with ``orjson`` where its bytes are proven equal to ``json.dumps``'s and
falls back to the standard library elsewhere, so persisted and hashed bytes never change (tested
in ``tests/core/test_fastjson.py``). The two writers agree on strings (every code point, with
``ensure_ascii=False``), integers, ``true``/``false``/``null``, key order, ``sort_keys`` order,
and floats ``x`` with ``1e-4 <= |x| < 1e16`` or zero (both write the shortest repr). They differ
on other floats (``1e-05`` against ``0.00001``, ``1.5e-07`` against ``1.5e-7``; ``json`` refuses
infinities and NaN, ``orjson`` writes ``null``): a value holding one takes the fallback
(:func:`_orjson_safe`). ``orjson`` raises on integers beyond 64 bits, non-string keys,
subclasses of ``str``/``int``/``dict``/``list``, dataclasses and datetimes (``_PASSTHROUGH``,
``_refuse``): the fallback again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _stdlib
from typing import Any, NoReturn

import orjson


def one_shot(**options: Any) -> Callable[[Any], str]:
    """``json.dumps(value, **options)`` as a function, its C encoder set up once rather than per
    call (what ``JSONEncoder.encode`` does each time). Values must be trees (no cycle check)."""
    settings = json.JSONEncoder(**options)
    make = getattr(_stdlib, "c_make_encoder", None)
    if make is None or settings.indent is not None:  # no C accelerator: the plain encoder
        return settings.encode
    escape = _stdlib.encode_basestring_ascii if settings.ensure_ascii else _stdlib.encode_basestring
    encode = make(
        None,
        settings.default,
        escape,
        None,
        settings.key_separator,
        settings.item_separator,
        settings.sort_keys,
        settings.skipkeys,
        settings.allow_nan,
    )

    def dumps(value: Any) -> str:
        return "".join(encode(value, 0))

    return dumps


_SCALARS = (str, int, bool, type(None))


def _orjson_safe(value: Any) -> bool:
    """Whether ``orjson`` writes ``value`` as ``json`` does: no float outside ``1e-4 <= |x| <
    1e16`` (or zero) and no other type than JSON's (those ``orjson`` refuses fall back anyway)."""
    kind = type(value)
    if kind is float:
        return bool(value == 0.0 or 1e-4 <= abs(value) < 1e16)  # False for NaN and infinities
    if kind is dict:
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind in _SCALARS
    for item in items:  # scalars inline: this runs for every value the planner writes
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if not (item == 0.0 or 1e-4 <= abs(item) < 1e16):
                return False
        elif not _orjson_safe(item):
            return False
    return True


_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)


def _refuse(value: Any) -> NoReturn:
    raise TypeError(f"not a plain JSON value: {type(value).__name__}")


def compact(*, sort_keys: bool = False) -> Callable[[Any], bytes]:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
    sort_keys=sort_keys).encode("utf-8")`` as a function, byte for byte, ``orjson`` where it
    writes the same bytes (see the module docstring). Values must be trees."""
    fallback = one_shot(ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=sort_keys)
    option = _PASSTHROUGH | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    dumps = orjson.dumps

    def encode(value: Any) -> bytes:
        if _orjson_safe(value):
            try:
                return _exact(dumps(value, default=_refuse, option=option))
            except TypeError:
                pass
        return fallback(value).encode("utf-8")

    return encode


def pydantic_compatible(value: Any) -> bytes | None:
    """``value`` (a dict in a model's field order) as pydantic's ``model_dump_json`` writes it,
    or ``None`` where that is not proven: an integer beyond 64 bits, a non-string key or a value
    that is not plain JSON. pydantic-core and ``orjson`` write floats, infinities (``null``) and
    strings alike (tested over every code point and random floats)."""
    try:
        return _exact(orjson.dumps(value, default=_refuse, option=_PASSTHROUGH))
    except TypeError:
        return None


def _exact(out: bytes) -> bytes:
    """A copy of ``orjson``'s output of its own size: ``orjson`` returns its whole write buffer
    (about 4 KiB however short the JSON), and a planner keeps a chunk's entries and lines."""
    return bytes(memoryview(out))
