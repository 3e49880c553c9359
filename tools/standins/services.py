"""Local services started as plain processes: Debian's Redis and Postgres, and the processes of an
Airflow stack, each on a free port, each logging to its own file under one temporary directory.

:class:`Processes` starts every process in its own session and stops exactly those, by PID
(SIGTERM to the process group, SIGKILL after a grace period). :meth:`Processes.tails` gives the
end of every log, for a failure message. As root, Postgres runs as the ``postgres`` user (initdb
refuses root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOSTNAME_ENV = "STANDIN_HOSTNAME"


def hostname() -> str:
    """Airflow's ``core.hostname_callable`` for several workers on one machine: ``$STANDIN_HOSTNAME``."""
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (bind to port 0, then release it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, interval_s: float = 0.5) -> None:
    """Poll ``check`` until it is true; TimeoutError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout_s:.0f} s")
        time.sleep(interval_s)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Processes:
    """Processes started here, stopped by PID; each writes stdout and stderr to ``<root>/<name>.log``."""

    root: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None, user: str | None = None
    ) -> subprocess.Popen[bytes]:
        with self.log(name).open("ab") as out:
            process = subprocess.Popen(
                list(argv),
                env=dict(env) if env is not None else None,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                user=user,
                cwd=self.root,
            )
        self.running[name] = process
        return process

    def check_alive(self) -> None:
        """RuntimeError naming every process that has exited."""
        dead = {name: p.returncode for name, p in self.running.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"exited: {dead}")

    def kill(self, name: str) -> None:
        """SIGKILL the process group of ``name`` (a lost machine: no clean-up runs)."""
        process = self.running[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self, name: str, grace_s: float = 20.0) -> None:
        process = self.running.pop(name)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace_s)
        # Children of the session that outlived their leader (task processes, pool workers).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)

    def stop_all(self, grace_s: float = 20.0) -> None:
        """Stop in reverse start order (Airflow first, the databases last)."""
        for name in reversed(list(self.running)):
            self.stop(name, grace_s)

    def tails(self, lines: int = 40) -> str:
        """The last ``lines`` lines of every log under ``root``."""
        parts = []
        for path in sorted(self.root.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"===== {path.name} (last {len(text)} lines) =====\n" + "\n".join(text))
        return "\n".join(parts)


def postgres_bin_dir() -> Path:
    """Debian's newest ``/usr/lib/postgresql/<version>/bin``, else the directory of ``initdb`` on PATH."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    if initdb is None:
        raise FileNotFoundError("Postgres is not installed (apt-get install postgresql)")
    return Path(initdb).parent


def start_postgres(processes: Processes, name: str = "postgres", database: str = "airflow") -> str:
    """initdb + postgres on a free port of 127.0.0.1; returns the ``postgresql+psycopg2://`` URL."""
    bin_dir = postgres_bin_dir()
    data = processes.root / "pgdata"
    data.mkdir()
    user = "postgres" if os.geteuid() == 0 else None
    if user is not None:  # initdb and postgres refuse to run as root
        shutil.chown(data, user, user)
        processes.root.chmod(0o755)
    init = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8"],
        capture_output=True,
        text=True,
        user=user,
        check=False,
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stdout}{init.stderr}")
    port = free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(data),
        "max_connections": "200",
        "fsync": "off",  # a throw-away database
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    argv = [str(bin_dir / "postgres"), "-D", str(data)]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    processes.start(name, argv, user=user)
    ready = [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow"]
    wait_for(name, lambda: subprocess.run(ready, capture_output=True, check=False).returncode == 0, 120)
    created = subprocess.run(
        [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", database],
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        raise RuntimeError(f"createdb failed: {created.stderr}")
    return f"postgresql+psycopg2://airflow@127.0.0.1:{port}/{database}"


def start_redis(processes: Processes, name: str = "redis") -> str:
    """redis-server on a free port of 127.0.0.1, nothing saved to disk; returns ``redis://.../0``."""
    server = shutil.which("redis-server")
    if server is None:
        raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(processes.root)]
    processes.start(name, argv)
    wait_for(name, lambda: port_open(port), 60)
    return f"redis://127.0.0.1:{port}/0"
