"""``make ui PORT=...`` as the README runs it: the API lists the demo DAGs with no import
error and the demo connections from the metadata DB; SIGTERM to its process group (what a
terminal's Ctrl-C does with SIGINT) stops every process it started.

Every process started carries a marker variable in its environment (children inherit it), so
anything left behind, in the process group or not, is found in ``/proc``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from standins.services import free_port, wait_for

pytestmark = pytest.mark.timeout(1500)

MARKER = "ENCORD_UI_TEST_MARKER"
START_TIMEOUT_S = 900  # shared 2-core machines: standalone's four components start slowly
STOP_TIMEOUT_S = 240
DEMO_DAGS = [
    "encord_ingest__demo_media",
    "encord_resync__demo_media",
    "encord_reconcile__demo_media",
    "encord_metadata_ops",
]


class Api:
    """The Airflow REST API with the admin password ``airflow standalone`` generated."""

    def __init__(self, port: int, password_file: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.password_file = password_file
        self.token: str | None = None

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def get(self, path: str) -> Any:
        if self.token is None:
            password = json.loads(self.password_file.read_text())["admin"]
            answer = self._call("/auth/token", {"username": "admin", "password": password})
            self.token = answer["access_token"]
        return self._call(path)

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self.get("/api/v2/dags?limit=100")["dags"]}

    def dags_listed(self) -> bool:
        try:
            return set(DEMO_DAGS) <= self.dag_ids()
        except (OSError, ValueError, KeyError):  # not up yet, or no password file yet
            return False


def marked_processes(marker: str) -> list[int]:
    """Processes whose environment holds ``MARKER=marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours
                continue
    return found


def clean_env(tmp_path: Path, marker: str) -> dict[str, str]:
    """A shell's environment: none of this pytest session's Airflow settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return {**env, "ENCORD_DEMO_DIR": str(tmp_path / "demo"), MARKER: marker}


def test_make_ui_lists_the_demo_dags_and_stops_everything_it_started(repo_root: Path, tmp_path: Path) -> None:
    port, marker = free_port(), uuid.uuid4().hex
    log_path = tmp_path / "make-ui.log"
    api = Api(port, tmp_path / "demo" / "airflow" / "simple_auth_manager_passwords.json.generated")
    with log_path.open("w") as log:
        make = subprocess.Popen(
            ["make", "ui", f"PORT={port}"],
            cwd=repo_root,
            env=clean_env(tmp_path, marker),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_for(f"the API on port {port}", api.dags_listed, START_TIMEOUT_S, interval_s=3)
        except TimeoutError:
            pytest.fail(f"make ui did not serve the DAGs; its output ends:\n{log_path.read_text()[-6000:]}")
        assert set(DEMO_DAGS) <= api.dag_ids()
        assert api.get("/api/v2/importErrors")["total_entries"] == 0
        listed = api.get("/api/v2/connections")["connections"]
        connections = {c["connection_id"]: c["conn_type"] for c in listed}
        assert connections == {"aws_demo": "aws", "encord_demo": "encord"}
        assert len(marked_processes(marker)) >= 5  # make, demo.py, standalone and its components
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=STOP_TIMEOUT_S)
        deadline = time.monotonic() + 10
        while marked_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = marked_processes(marker)
        for pid in left:  # leave nothing behind for the next test, but fail below
            os.kill(pid, signal.SIGKILL)
    assert left == [], f"processes left after SIGTERM: {left}\n{log_path.read_text()[-3000:]}"
    assert "Airflow stopped." in log_path.read_text()
