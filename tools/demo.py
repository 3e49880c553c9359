"""`make demo`: the main job end to end on local stand-ins, then a one-sidecar change.

1. starts moto's S3 server and the Encord emulator on 127.0.0.1 (threads of this process);
2. seeds the demo bucket (every data kind, sidecars of every kind, two bad sidecars);
3. runs ``airflow dags test encord_ingest__demo_media 2026-11-20`` (SQLite, connections from
   environment variables) and prints the run report;
4. changes one sidecar and runs again: exactly one metadata update, no upload job, no other write;
5. stops what it started. Exits non-zero if any of that did not happen.

``--ui`` instead keeps the stand-ins up and runs ``airflow standalone`` on them (see :func:`ui`).
Logs of each Airflow command go to ``.demo/`` (``ENCORD_DEMO_DIR`` chooses another folder).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tools")]

from demo_data import DAY_PREFIX, demo_objects  # noqa: E402
from standins.services import free_port  # noqa: E402
from standins.stack import (  # noqa: E402
    DEMO_RAW_BUCKET,
    DEMO_STATE_BUCKET,
    StandinStack,
    demo_connections,
    standin_stack,
)

DEMO_DIR = Path(os.environ.get("ENCORD_DEMO_DIR") or REPO / ".demo")
BIN = Path(sys.executable).parent
"""The virtualenv's ``bin``: ``airflow standalone`` starts its parts as ``airflow ...`` from PATH."""
STOP_GRACE_S = 45.0
"""How long the Airflow processes get to stop after SIGINT before SIGTERM (then SIGKILL)."""
DAG_ID = "encord_ingest__demo_media"
LOGICAL_DATE = "2026-11-21"
"""The run after 2026-11-20 ends: its data interval is that day, so it lists raw/2026/11/20/."""
CHANGED_SIDECAR = f"{DAY_PREFIX}images/cam_front_0002.json"


def airflow_env(stack: StandinStack) -> dict[str, str]:
    home = DEMO_DIR / "airflow"
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AWS_EC2_METADATA_DISABLED": "true",
        **stack.airflow_env(),
    }


def run_logged(command: list[str], env: dict[str, str], log: str) -> None:
    """Run ``command``; its output goes to ``.demo/<log>``; fail loudly if it fails."""
    path = DEMO_DIR / log
    with path.open("w") as out:
        result = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        print(path.read_text()[-4000:])
        shown = " ".join(Path(command[0]).name if i == 0 else word for i, word in enumerate(command))
        raise SystemExit(f"`{shown}` failed (exit {result.returncode}); log: {path}")


def airflow(env: dict[str, str], *args: str, log: str) -> None:
    """Run an ``airflow`` command (see :func:`run_logged`)."""
    run_logged([str(BIN / "airflow"), *args], env, log)


def latest_report(stack: StandinStack) -> str:
    client = stack.s3
    listing = client.list_objects_v2(Bucket=DEMO_STATE_BUCKET, Prefix="demo_media/runs/")
    reports = [o for o in listing.get("Contents", []) if o["Key"].endswith("/report.md")]
    newest = max(reports, key=lambda o: o["LastModified"])
    return client.get_object(Bucket=DEMO_STATE_BUCKET, Key=newest["Key"])["Body"].read().decode()


def run_ingestion(stack: StandinStack, env: dict[str, str], label: str) -> dict[str, int]:
    stack.emulator.admin.reset_counts()
    airflow(env, "dags", "test", DAG_ID, LOGICAL_DATE, log=f"{label}.log")
    counts = stack.emulator.admin.counts()
    print(latest_report(stack))
    return counts


def writes(counts: dict[str, int]) -> dict[str, int]:
    names = ("upload_jobs.start", "items.patch_bulk", "items.patch", "folders.create", "schema.save")
    return {name: counts.get(name, 0) for name in names}


def demo(stack: StandinStack) -> None:
    env = airflow_env(stack)
    print(f"S3 (moto) on {stack.s3_endpoint}; Encord emulator on {stack.emulator.url}")
    objects = demo_objects()
    stack.put_objects(DEMO_RAW_BUCKET, objects)
    print(f"Seeded s3://{DEMO_RAW_BUCKET}/{DAY_PREFIX} with {len(objects)} objects")
    airflow(env, "db", "migrate", log="db-migrate.log")

    print(f"\n=== Run 1: airflow dags test {DAG_ID} {LOGICAL_DATE} ===\n")
    first = run_ingestion(stack, env, "run-1")
    items = {i["name"]: i["client_metadata"] for i in stack.emulator.admin.folder_items("demo/fleet/raw")}
    print(f"Encord folder demo/fleet/raw now holds {len(items)} items; writes: {writes(first)}")

    sidecar = {"camera": {"model": "fc-100"}, "review": {"status": "approved"}}
    stack.put_objects(DEMO_RAW_BUCKET, {CHANGED_SIDECAR: json.dumps(sidecar).encode()})
    print(f"\n=== Run 2: after changing one sidecar ({CHANGED_SIDECAR}: review.status -> approved) ===\n")
    second = run_ingestion(stack, env, "run-2")
    after = {i["name"]: i["client_metadata"] for i in stack.emulator.admin.folder_items("demo/fleet/raw")}
    changed = sorted(title for title in after if after[title] != items.get(title))
    print(f"Writes in run 2: {writes(second)}; items whose metadata changed: {changed}")
    expected = {
        "upload_jobs.start": 0,
        "items.patch_bulk": 1,
        "items.patch": 0,
        "folders.create": 0,
        "schema.save": 0,
    }
    if writes(second) != expected or changed != [f"{DAY_PREFIX}images/cam_front_0002.jpg"]:
        raise SystemExit("demo check failed: run 2 should make exactly one metadata update and nothing else")
    print(
        "\nDemo OK: run 2 made exactly one metadata update (one patch call), no upload job, no other write."
    )


def check_port(port: int) -> None:
    """Exit with a clear message when ``port`` is taken (``make ui PORT=...`` picks another)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise SystemExit(f"port {port} is in use; choose another: make ui PORT=<port>") from None


def ui_env(stack: StandinStack, port: int) -> dict[str, str]:
    """The demo setup for ``airflow standalone``: connections come from the metadata DB (see
    :func:`ui`), the API server listens on ``port`` of 127.0.0.1, the log servers on free ports."""
    env = {key: value for key, value in airflow_env(stack).items() if not key.startswith("AIRFLOW_CONN_")}
    base_url = f"http://localhost:{port}"
    return {
        **env,
        "PATH": os.pathsep.join([str(BIN), env.get("PATH", os.defpath)]),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__PARALLELISM": "4",  # LocalExecutor worker processes (default 32)
    }


def write_connections_file(stack: StandinStack, folder: Path) -> Path:
    """The demo connections as a file for ``airflow connections import`` (holds the private key)."""
    connections = demo_connections(stack.s3_endpoint, stack.emulator.url, stack.private_key)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=folder, delete=False) as file:
        json.dump(
            {conn_id: {**conn, "extra": json.dumps(conn["extra"])} for conn_id, conn in connections.items()},
            file,
        )
    return Path(file.name)


def prepare_metadata_db(stack: StandinStack, env: dict[str, str]) -> None:
    """Create the metadata DB with the ``encord_api`` pool and the demo connections (where the UI
    lists them and can test them), in one Airflow process (``tools/airflow_setup.py``)."""
    path = write_connections_file(stack, DEMO_DIR)
    command = [sys.executable, str(REPO / "tools" / "airflow_setup.py"), "--connections", str(path)]
    command += ["--pool", "encord_api:4:Concurrent Encord API calls"]
    try:
        run_logged(command, env, "airflow-setup.log")
    finally:
        path.unlink()


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop ``airflow standalone`` and everything it started (one process group): SIGINT to
    standalone alone, which stops each part with one SIGTERM; SIGTERM to the whole group after a
    grace period; then SIGKILL. (A part that gets SIGINT as well stops twice: the scheduler then
    stays up waiting for its LocalExecutor workers, which never got their stop message.)"""
    steps = (
        (os.kill, signal.SIGINT, STOP_GRACE_S),
        (os.killpg, signal.SIGTERM, 15.0),
        (os.killpg, signal.SIGKILL, 5.0),
    )
    for send, sig, grace in steps:
        if sig != signal.SIGINT:
            print(f"Airflow is still running; sending {sig.name} to all its processes", flush=True)
        with contextlib.suppress(ProcessLookupError):  # standalone is gone; its parts may not be
            send(process.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            process.poll()
            try:
                os.killpg(process.pid, 0)  # is any process of the group left?
            except ProcessLookupError:
                return
            time.sleep(0.2)
    process.wait()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def ui(stack: StandinStack, port: int) -> None:
    """``airflow standalone`` on the stand-ins, in its own process group; Ctrl-C or SIGTERM stops
    that whole group, then the stand-ins."""
    check_port(port)
    env = ui_env(stack, port)
    stack.put_objects(DEMO_RAW_BUCKET, demo_objects())
    print(f"S3 (moto) on {stack.s3_endpoint}; Encord emulator on {stack.emulator.url}")
    prepare_metadata_db(stack, env)
    print(
        f"Starting `airflow standalone` on http://localhost:{port} (Ctrl-C to stop); user admin, "
        f"password in {DEMO_DIR / 'airflow' / 'simple_auth_manager_passwords.json.generated'}",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    # Started in the background (`make ui &`), a process inherits SIGINT ignored; standalone then
    # never sees Ctrl-C's KeyboardInterrupt and never stops its parts. Let it inherit the default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, start_new_session=True)
    try:
        process.wait()
    except KeyboardInterrupt:
        print("Stopping Airflow ...", flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_group(process)
    print("Airflow stopped.", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ui", action="store_true", help="run airflow standalone instead of the scripted demo"
    )
    parser.add_argument("--port", type=int, default=8080, help="--ui: port of the Airflow UI and API")
    args = parser.parse_args()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()
    with standin_stack() as stack:
        if args.ui:
            ui(stack, args.port)
        else:
            demo(stack)


if __name__ == "__main__":
    main()
