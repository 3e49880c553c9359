"""Helpers for the metadata-operation tests: schema, emulator seeding, table files, operators (the
connection and the fast hook parameters are the provider tests' ones: tests/provider/helpers.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from encord_emulator.testing import EmulatorServer
from encord_provider.operators.metadata_ops import EncordApplyMetadataOperator, EncordExportMetadataOperator
from tests.provider.helpers import FAST_HOOK_PARAMS

B = "https://cams.s3.eu-west-2.amazonaws.com"
SCHEMA_YAML = """\
keys:
  site: {type: varchar, max_length: 16}
  fps: number
  indoor: boolean
  weather: {type: enum, values: [clear, rain, fog]}
  shot_at: datetime
  frame.note: text
"""


def held(emulator: EmulatorServer, folder: str, *, frames: bool = False) -> dict[str, dict[str, Any]]:
    """Item name -> client metadata, as the emulator holds it."""
    items = emulator.admin.folder_items(folder, include_frames=frames)
    return {item["name"]: item["client_metadata"] for item in items}


def write_csv(path: Path, rows: list[list[str]]) -> str:
    """A CSV file from rows of cells (first row: header, quoted as needed); returns its ``file://`` URI."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path.as_uri()


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def apply_operator(conn_id: str, **kwargs: Any) -> EncordApplyMetadataOperator:
    options: dict[str, Any] = {
        "task_id": "apply",
        "encord_conn_id": conn_id,
        "aws_conn_id": None,
        "hook_params": FAST_HOOK_PARAMS,
    }
    return EncordApplyMetadataOperator(**{**options, **kwargs})


def export_operator(conn_id: str, **kwargs: Any) -> EncordExportMetadataOperator:
    options: dict[str, Any] = {
        "task_id": "export",
        "encord_conn_id": conn_id,
        "aws_conn_id": None,
        "hook_params": FAST_HOOK_PARAMS,
    }
    return EncordExportMetadataOperator(**{**options, **kwargs})
