"""EncordMetadataSchemaOperator: the schema file in the repo merged into the organisation's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from encord_emulator.testing import EmulatorServer
from encord_ingest.errors import ConfigError
from encord_provider.operators.encord import EncordMetadataSchemaOperator
from tests.provider.helpers import FAST_HOOK_PARAMS

SCHEMA_YAML = """\
keys:
  cams.site: {type: varchar, max_length: 64}
  cams.weather: {type: enum, values: [rain, sunny]}
  cams.clip: {type: embedding, size: 4}
"""


def schema_operator(conn_id: str, path: Path, **kwargs: Any) -> EncordMetadataSchemaOperator:
    return EncordMetadataSchemaOperator(
        task_id="schema",
        schema_path=str(path),
        encord_conn_id=conn_id,
        hook_params=FAST_HOOK_PARAMS,
        **kwargs,
    )


def test_dry_run_prints_the_change_then_apply_writes_it_once(
    encord_conn: str, emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cams.yaml"
    path.write_text(SCHEMA_YAML)
    dry = schema_operator(encord_conn, path, dry_run=True).execute({})
    assert dry == {
        "dry_run": True,
        "changes": [
            "+ cams.site: varchar",
            "+ cams.weather: enum['rain', 'sunny']",
            "+ cams.clip: embedding(size=4)",
        ],
        "unchanged": 0,
    }
    # Operator logs go through Airflow's structlog set-up, which writes to stdout outside a task.
    assert f"Dry-run schema plan for {path}:\n+ cams.site: varchar" in capsys.readouterr().out
    assert emulator.admin.schema() in (None, {})
    applied = schema_operator(encord_conn, path).execute({})
    assert applied["changes"] == dry["changes"]
    assert set(emulator.admin.schema() or {}) == {"cams.site", "cams.weather", "cams.clip"}
    emulator.admin.reset_counts()
    assert schema_operator(encord_conn, path).execute({})["changes"] == []
    assert "schema.save" not in emulator.admin.counts()


def test_a_bad_schema_file_fails_before_any_call(
    encord_conn: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("keys:\n  keyframes: number\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 'keyframes'"):
        schema_operator(encord_conn, path).execute({})
    assert emulator.admin.counts() == {}
