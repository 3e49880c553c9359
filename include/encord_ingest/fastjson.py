"""JSON encoders built once for the planner's hot path (fingerprints, manifest entries)."""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _stdlib
from typing import Any


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
