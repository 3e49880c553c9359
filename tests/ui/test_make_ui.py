"""``make ui PORT=...`` as the README runs it: the API answers on that port and only there (nothing
it starts listens on Airflow's fixed defaults 8080/8793/8794), lists the demo DAGs with no import
error and the demo connections from the metadata DB; SIGTERM to its process group (what a
terminal's Ctrl-C does with SIGINT) stops every process it started, and Airflow stops its parts
itself: nothing has to be killed. ``make`` starts with SIGINT ignored, as a background job does.

Every process started is tracked two ways: its environment carries a marker variable (children
inherit it), and the test records the process tree under ``make`` while it runs. The tree is
needed because Airflow's processes rename themselves (``setproctitle``), which can overwrite
their environment as ``/proc/<pid>/environ`` shows it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from standins.services import free_port, wait_for

pytestmark = pytest.mark.timeout(1500)

MARKER = "ENCORD_UI_TEST_MARKER"
START_TIMEOUT_S = 900  # shared 2-core machines: standalone's four components start slowly
STOP_TIMEOUT_S = 240
AIRFLOW_DEFAULT_PORTS = {8080, 8793, 8794}  # API server, worker and trigger log servers
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


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot): a PID plus this names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def descendants(root: int) -> dict[int, int]:
    """``{pid: start time}`` of ``root`` and every process below it now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if (started := start_time(pid)) is not None:
            found[pid] = started
            todo.extend(children.get(pid, []))
    return found


def marked_processes(marker: str) -> dict[int, int]:
    """``{pid: start time}`` of the processes whose environment holds ``MARKER=marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found[int(entry.name)] = start_time(int(entry.name)) or 0
            except OSError:  # gone, or not ours
                continue
    return found


def alive(processes: dict[int, int]) -> list[int]:
    """Those of ``processes`` still running (same PID and start time)."""
    return [pid for pid, started in processes.items() if start_time(pid) == started]


def listening_ports(pids: Iterable[int]) -> set[int]:
    """TCP ports on which any of ``pids`` listens (``/proc/net/tcp*`` LISTEN sockets by inode)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def clean_env(tmp_path: Path, marker: str) -> dict[str, str]:
    """A shell's environment: none of this pytest session's Airflow settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return {**env, "ENCORD_DEMO_DIR": str(tmp_path / "demo"), MARKER: marker}


def log_tails(tmp_path: Path, chars: int = 6000) -> str:
    """The end of make's output and of every log ``make ui`` wrote, for a failure message."""
    logs = [tmp_path / "make-ui.log", *sorted((tmp_path / "demo").glob("*.log"))]
    return "\n".join(f"--- {log.name} ---\n{log.read_text()[-chars:]}" for log in logs if log.exists())


def test_make_ui_serves_on_its_port_lists_the_demo_dags_and_stops_everything_it_started(
    repo_root: Path, tmp_path: Path
) -> None:
    port, marker = free_port(), uuid.uuid4().hex
    api = Api(port, tmp_path / "demo" / "airflow" / "simple_auth_manager_passwords.json.generated")
    started: dict[int, int] = {}

    def ready() -> bool:
        started.update(descendants(make.pid))
        return api.dags_listed()

    began = time.monotonic()
    with (tmp_path / "make-ui.log").open("w") as log:
        make = subprocess.Popen(
            # SIGINT ignored, as for `make ui &` in a script (a background job)
            ["sh", "-c", f"trap '' INT; exec make ui PORT={port}"],
            cwd=repo_root,
            env=clean_env(tmp_path, marker),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_for(f"the API on port {port}", ready, START_TIMEOUT_S, interval_s=3)
        except TimeoutError:
            pytest.fail(f"make ui did not serve the DAGs on port {port}:\n{log_tails(tmp_path)}")
        print(f"make ui: API listed the demo DAGs {time.monotonic() - began:.0f} s after start")
        assert set(DEMO_DAGS) <= api.dag_ids()
        assert api.get("/api/v2/importErrors")["total_entries"] == 0
        listed = api.get("/api/v2/connections")["connections"]
        connections = {c["connection_id"]: c["conn_type"] for c in listed}
        assert connections == {"aws_demo": "aws", "encord_demo": "encord"}
        started.update(descendants(make.pid))
        started.update(marked_processes(marker))
        assert len(alive(started)) >= 8  # make, demo.py, standalone, its 4 components, workers
        ports = listening_ports(alive(started))
        assert port in ports, f"nothing make ui started listens on {port}; it listens on {sorted(ports)}"
        assert not ports & AIRFLOW_DEFAULT_PORTS, f"make ui listens on fixed default ports: {sorted(ports)}"
    finally:
        stopping = time.monotonic()
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=STOP_TIMEOUT_S)
        started.update(marked_processes(marker))
        deadline = time.monotonic() + 10
        while alive(started) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = alive(started)
        for pid in left:  # leave nothing behind for the next test, but fail below
            os.kill(pid, signal.SIGKILL)
        print(f"make ui: stopped {time.monotonic() - stopping:.0f} s after SIGTERM")
    assert left == [], f"processes left after SIGTERM: {left}\n{log_tails(tmp_path, 3000)}"
    output = (tmp_path / "make-ui.log").read_text()
    # standalone stopped its parts itself, in the grace period: nothing had to be killed
    assert "standalone | Complete" in output, output[-3000:]
    assert "Airflow is still running" not in output
    assert "Airflow stopped." in output
