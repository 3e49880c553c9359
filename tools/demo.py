"""`make demo`: the main job end to end on local stand-ins, then a one-sidecar change.

1. starts moto's S3 server and the Encord emulator on 127.0.0.1 (threads of this process);
2. seeds the demo bucket (every data kind, sidecars of every kind, two bad sidecars);
3. runs ``airflow dags test encord_ingest__demo_media 2026-11-20`` (SQLite, connections from
   environment variables) and prints the run report;
4. changes one sidecar and runs again: exactly one metadata update, no upload job, no other write;
5. stops what it started. Exits non-zero if any of that did not happen.

``--ui`` instead keeps the stand-ins up and runs ``airflow standalone`` with the same setup.
Logs of each Airflow command go to ``.demo/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tools")]

from demo_data import DAY_PREFIX, demo_objects  # noqa: E402
from standins.stack import DEMO_RAW_BUCKET, DEMO_STATE_BUCKET, StandinStack, standin_stack  # noqa: E402

DEMO_DIR = REPO / ".demo"
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


def airflow(env: dict[str, str], *args: str, log: str) -> None:
    """Run an ``airflow`` command; its output goes to ``.demo/<log>``; fail loudly if it fails."""
    path = DEMO_DIR / log
    command = [str(Path(sys.executable).parent / "airflow"), *args]
    with path.open("w") as out:
        result = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        print(path.read_text()[-4000:])
        raise SystemExit(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); log: {path}")


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


def ui(stack: StandinStack) -> None:
    env = airflow_env(stack)
    stack.put_objects(DEMO_RAW_BUCKET, demo_objects())
    print(f"S3 (moto) on {stack.s3_endpoint}; Encord emulator on {stack.emulator.url}")
    airflow(env, "db", "migrate", log="db-migrate.log")
    airflow(env, "pools", "set", "encord_api", "4", "Concurrent Encord API calls", log="pools.log")
    print("Starting `airflow standalone` (Ctrl-C to stop); the admin password is in .demo/airflow/")
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "standalone"], env=env, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ui", action="store_true", help="run airflow standalone instead of the scripted demo"
    )
    args = parser.parse_args()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()
    with standin_stack() as stack:
        (ui if args.ui else demo)(stack)


if __name__ == "__main__":
    main()
