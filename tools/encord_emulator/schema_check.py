"""Optional check of client metadata against the saved metadata schema (``schema_enforcement``).

What the real service does with values that break the schema is not documented; this check
exists so the pipeline can be tested against a strict server too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

_HINT_ALIASES = {"string": "varchar", "long_string": "text"}


def schema_problem(schema: object) -> str | None:
    """Why ``schema`` is not a metadata schema body (``{key: {"ty": ...}}``), or ``None``.

    Any type name is accepted: the service knows types newer than any SDK, and a client must be
    able to save back what it read.
    """
    if not isinstance(schema, dict):
        return "the schema must be a JSON object"
    for key, option in schema.items():
        if not isinstance(option, dict) or not isinstance(option.get("ty"), str) or not option["ty"]:
            return f"schema key {key!r}: expected an object with a type name in 'ty'"
    return None


def metadata_problem(schema: dict[str, Any] | None, metadata: dict[str, Any]) -> str | None:
    """Why ``metadata`` breaks ``schema`` (first problem found), or ``None``."""
    if not schema:
        return None
    for key, value in metadata.items():
        option = schema.get(key)
        if not isinstance(option, dict):
            continue
        problem = _value_problem(option, value)
        if problem is not None:
            return f"client metadata key {key!r}: {problem}"
    return None


def _value_problem(option: dict[str, Any], value: Any) -> str | None:
    kind = option.get("ty")
    if kind == "enum":
        values = option.get("values") or []
        return None if value in values else f"{value!r} is not one of {values}"
    if kind == "embedding":
        size = option.get("size")
        numbers = isinstance(value, list) and all(_is_number(v) for v in value)
        return None if numbers and len(value) == size else f"expected a list of {size} numbers"
    if kind == "variant":
        hint = str(option.get("hint", "text"))
        return _scalar_problem(_HINT_ALIASES.get(hint, hint), value)
    if isinstance(kind, str):
        return _scalar_problem(kind, value)
    return None


def _scalar_problem(hint: str, value: Any) -> str | None:
    checks = {
        "boolean": lambda v: isinstance(v, bool),
        "number": _is_number,
        "varchar": lambda v: isinstance(v, str) and len(v) <= 8192,
        "text": lambda v: isinstance(v, str),
        "datetime": _is_datetime,
        "uuid": _is_uuid,
    }
    check = checks.get(hint.lower())
    if check is None or check(value):
        return None
    return f"{value!r} is not a valid {hint.lower()}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
