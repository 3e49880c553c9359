"""Start the emulator from what ``python -m encord_provider.contract`` measured on a real organisation.

The contract check writes a JSON file whose ``emulator_options`` object holds
:class:`~encord_emulator.config.EmulatorConfig` field values (``patch_semantics``,
``folder_search``, ``max_body_bytes``, ...). Fields this emulator does not know, or values it
does not accept, are skipped with a warning, so an older emulator still starts from a newer file.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from encord_emulator.config import EmulatorConfig

BEHAVIOUR_FORMAT = "encord-contract/1"


class BehaviourFileError(ValueError):
    """The file is not a contract-check result."""


def behaviour_options(path: str | Path) -> dict[str, Any]:
    """``EmulatorConfig`` keyword arguments from a contract-check JSON file."""
    where = str(path)
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BehaviourFileError(f"{where}: cannot read a JSON document ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != BEHAVIOUR_FORMAT:
        raise BehaviourFileError(f"{where}: field 'format': expected {BEHAVIOUR_FORMAT!r}")
    measured = document.get("emulator_options")
    if not isinstance(measured, dict):
        raise BehaviourFileError(f"{where}: field 'emulator_options': expected an object")
    options: dict[str, Any] = {}
    for name, value in measured.items():
        if name not in EmulatorConfig.model_fields:
            warnings.warn(
                f"{where}: emulator_options.{name}: not an option of this emulator; skipped", stacklevel=2
            )
            continue
        try:
            EmulatorConfig(**{name: value})
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            warnings.warn(f"{where}: emulator_options.{name}={value!r}: {reason}; skipped", stacklevel=2)
            continue
        options[name] = value
    return options
