"""``python -m standins.compose_init``: the init step of docker-compose's ``standins`` profile.

1. makes the throw-away Encord key pair once (``--key-dir``: the private key, and the public key
   ``encord_public_key.pub`` that the emulator service accepts);
2. waits for the S3 stand-in, creates the demo buckets and seeds the demo day (``make demo``'s data);
3. stores the demo connections (``aws_demo``, ``encord_demo``) in Airflow's metadata DB, so the UI
   lists them and can test them.

Running it again keeps the key pair and overwrites the objects and the connections.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo_data import DAY_PREFIX, demo_objects

from encord_emulator.testing import generate_ssh_keypair
from standins.s3 import s3_client
from standins.stack import DEMO_RAW_BUCKET, DEMO_STATE_BUCKET, demo_connections

PRIVATE_KEY = "encord_demo_ed25519"
PUBLIC_KEY = "encord_public_key.pub"


def key_pair(key_dir: Path) -> str:
    """The private key in ``key_dir``, made (with its public key file) on the first call."""
    private, public = key_dir / PRIVATE_KEY, key_dir / PUBLIC_KEY
    if not private.exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        private_text, public_text = generate_ssh_keypair()
        private.write_text(private_text)
        os.chmod(private, 0o600)
        public.write_text(public_text + "\n")
        print(f"Wrote a throw-away Encord key pair to {key_dir}", flush=True)
    return private.read_text()


def seed_buckets(endpoint: str, timeout_s: float) -> int:
    """Create both demo buckets (waiting for S3 to answer) and upload the demo day; returns the count."""
    client = s3_client(endpoint)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
            break
        except Exception as exc:  # the S3 container may still be starting
            if time.monotonic() > deadline:
                raise SystemExit(f"S3 at {endpoint} did not answer within {timeout_s:.0f} s: {exc}") from exc
            time.sleep(2)
    for bucket in (DEMO_RAW_BUCKET, DEMO_STATE_BUCKET):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
    objects = demo_objects()
    for key, data in objects.items():
        client.put_object(Bucket=DEMO_RAW_BUCKET, Key=key, Body=data)
    print(f"Seeded s3://{DEMO_RAW_BUCKET}/{DAY_PREFIX} with {len(objects)} objects", flush=True)
    return len(objects)


def import_connections(s3_endpoint: str, emulator_url: str, private_key: str) -> None:
    """``airflow connections import --overwrite`` of the demo connections (file removed afterwards)."""
    connections = demo_connections(s3_endpoint, emulator_url, private_key)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        json.dump(connections, handle)
        handle.flush()
        command = [sys.executable, "-m", "airflow", "connections", "import", "--overwrite", handle.name]
        subprocess.run(command, check=True)
    print(f"Stored connections {sorted(connections)} in the metadata DB", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m standins.compose_init", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--s3-endpoint", default="http://s3:5000")
    parser.add_argument("--emulator-url", default="http://encord-emulator:8765")
    parser.add_argument("--key-dir", type=Path, default=Path("/opt/standins"))
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for S3")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    private_key = key_pair(args.key_dir)
    seed_buckets(args.s3_endpoint, args.timeout)
    import_connections(args.s3_endpoint, args.emulator_url, private_key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
