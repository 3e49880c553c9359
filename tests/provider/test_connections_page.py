"""The Connections page of ``make ui``: each demo connection's row **Test** button passes.

The request is the one Airflow 3.3.2's UI sends (captured from headless Chromium, see
:func:`row_test_body`), against the real Airflow API app (FastAPI's TestClient), with the demo
connections stored as ``make ui`` stores them, testing against moto and the Encord emulator.
"""

from __future__ import annotations

import json
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)


def row_test_body(row: dict[str, Any]) -> dict[str, Any]:
    """What the Connections page's row Test button posts for a row of ``GET /api/v2/connections``
    (Airflow 3.3.2 UI, ``ConnectionTestButton``): blanks for missing text fields, ``{}`` for a
    missing extra, and ``Number(port)``, which is 0 for a connection without a port."""
    text = ("description", "host", "login", "password", "schema")
    return {
        "conn_type": row["conn_type"],
        "connection_id": row["connection_id"],
        **{field: row[field] or "" for field in text},
        "extra": row["extra"] or "{}",
        "port": int(row["port"] or 0),
    }


@pytest.fixture
def api(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:  # noqa: ARG001 (the DB)
    """The Airflow API app with ``make ui``'s test setting; every caller is an admin."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    with TestClient(create_app("core")) as client:
        yield client


def test_the_row_test_button_passes_for_the_demo_connections(api: Any, tmp_path: Path) -> None:
    from airflow.cli.commands.connection_command import connections_import
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from demo import write_connections_file
    from standins.stack import standin_stack

    with standin_stack() as stack:
        path = write_connections_file(stack, tmp_path)  # what `make ui` imports
        connections_import(Namespace(file=str(path), overwrite=True, verbose=False))
        try:
            rows = api.get("/api/v2/connections", params={"order_by": "connection_id"}).json()
            answers = {}
            for row in rows["connections"]:
                answer = api.post("/api/v2/connections/test", json=row_test_body(row))
                answers[row["connection_id"]] = (answer.status_code, answer.json())
        finally:
            with create_session() as session:
                session.query(Connection).filter(Connection.conn_id.in_(["aws_demo", "encord_demo"])).delete()
    assert set(answers) == {"aws_demo", "encord_demo"}, json.dumps(answers)
    assert answers["encord_demo"] == (
        200,
        {"status": True, "message": f"Connected to {stack.emulator.url}: 1 cloud integration(s) visible"},
    )
    status, aws = answers["aws_demo"]
    assert (status, aws["status"]) == (200, True), aws
    assert "arn:aws:sts::123456789012:user/moto" in aws["message"]
