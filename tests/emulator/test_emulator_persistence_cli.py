"""SQLite persistence across restarts, and the ``python -m encord_emulator`` command."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from encord import EncordUserClient
from encord.http.bundle import Bundle
from encord.orm.dataset import LongPollingStatus, StorageLocation
from encord.orm.storage import DataUploadImage, DataUploadItems

from encord_emulator.testing import AdminClient, EmulatorServer

ClientFactory = Callable[..., EncordUserClient]
B = "https://bkt.s3.eu-west-2.amazonaws.com"
REPO = Path(__file__).resolve().parents[2]


def spec(*names: str) -> DataUploadItems:
    return DataUploadItems(
        images=[DataUploadImage(object_url=f"{B}/{n}", client_metadata={"n": n}) for n in names],
        skip_duplicate_urls=True,
    )


def test_state_survives_a_restart(
    tmp_path: Path, keypair: tuple[str, str], make_client: ClientFactory
) -> None:
    db = tmp_path / "state.sqlite"
    with EmulatorServer.start(public_keys=[keypair[1]], persist_path=db) as emu:
        client = make_client(emu.url)
        integration = emu.admin.add_integration("s3")
        folder = client.create_storage_folder("ingest")
        job = folder.add_private_data_to_folder_start(integration, spec("a.jpg", "b.jpg"))
        folder.add_private_data_to_folder_get_result(job)
        with Bundle() as bundle:
            for item in folder.list_items():
                item.update(client_metadata={"patched": True}, bundle=bundle)
        schema = client.metadata_schema()
        schema.add_scalar("patched", data_type="boolean")
        schema.save()
        dataset = client.create_dataset("ds", StorageLocation.AWS, create_backing_folder=False)
        client.get_dataset(dataset.dataset_hash).link_items([next(iter(folder.list_items())).uuid])
        emu.admin.set_unreadable(f"{B}/bad.jpg")
        before = sorted((i["uuid"], json.dumps(i["client_metadata"])) for i in emu.admin.all_items())

    with sqlite3.connect(db) as conn:
        rows = sorted(conn.execute("SELECT url, client_metadata FROM items"))
    assert rows == [
        (f"{B}/a.jpg", '{"n": "a.jpg", "patched": true}'),
        (f"{B}/b.jpg", '{"n": "b.jpg", "patched": true}'),
    ]

    with EmulatorServer.start(public_keys=[keypair[1]], persist_path=db) as emu:
        client = make_client(emu.url)
        again = client.get_storage_folder(folder.uuid)
        after = sorted((i["uuid"], json.dumps(i["client_metadata"])) for i in emu.admin.all_items())
        result = again.add_private_data_to_folder_get_result(job, timeout_seconds=0)
        assert client.metadata_schema().keys() == ["patched"]
        assert len(client.get_dataset(dataset.dataset_hash).data_rows) == 1
        assert [i.id for i in client.get_cloud_integrations()] == [integration]
        bad = again.add_private_data_to_folder_get_result(
            again.add_private_data_to_folder_start(integration, spec("a.jpg", "bad.jpg")), timeout_seconds=5
        )
    assert after == before
    assert [w.name for w in result.items_with_names] == ["a.jpg", "b.jpg"]
    assert (bad.units_done_count, bad.units_error_count, bad.items_with_names) == (1, 1, [])


def test_pending_job_finishes_after_a_restart(
    tmp_path: Path, keypair: tuple[str, str], make_client: ClientFactory
) -> None:
    db = tmp_path / "state.sqlite"
    with EmulatorServer.start(public_keys=[keypair[1]], persist_path=db, job_duration_s=0.3) as emu:
        folder = make_client(emu.url).create_storage_folder("f")
        job = folder.add_private_data_to_folder_start(emu.admin.add_integration("s3"), spec("a.jpg"))
    with EmulatorServer.start(public_keys=[keypair[1]], persist_path=db) as emu:
        folder = make_client(emu.url).get_storage_folder(folder.uuid)
        result = folder.add_private_data_to_folder_get_result(job, timeout_seconds=5)
        assert [i.name for i in folder.list_items()] == ["a.jpg"]
    assert result.status == LongPollingStatus.DONE


def start_cli(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Run ``python -m encord_emulator --port 0 ARGS``; return it and its output up to the ready line."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tools")}
    command = [sys.executable, "-m", "encord_emulator", "--port", "0", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while not lines or lines[-1] != "Encord emulator ready":
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(lines)
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"emulator exited: {process.stderr.read() if process.stderr else ''}")
        lines.append(line.strip())
    return process, lines


def stop_cli(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=15)


def test_command_line_serves_until_terminated(
    tmp_path: Path, keypair: tuple[str, str], make_client: ClientFactory
) -> None:
    key_file = tmp_path / "keys.pub"
    key_file.write_text(f"# accepted keys\n{keypair[1]}\n")
    process, lines = start_cli(
        "--public-key-file",
        str(key_file),
        "--integration",
        "my-s3:GCP:11111111-2222-3333-4444-555555555555",
        "--fault",
        "integrations.list:503:1",
    )
    try:
        url = lines[0].removeprefix("Encord emulator listening on ")
        integrations = make_client(url, backoff_factor=0.0).get_cloud_integrations()
        counts = AdminClient(url).counts()
    finally:
        code = stop_cli(process)
    assert url.startswith("http://127.0.0.1:")
    assert [(i.id, i.title) for i in integrations] == [("11111111-2222-3333-4444-555555555555", "my-s3")]
    assert counts == {"integrations.list": 2}
    assert code == 0


def test_command_line_without_keys_writes_a_dev_key(tmp_path: Path, make_client: ClientFactory) -> None:
    key_path = tmp_path / "dev" / "key"
    # The README's `--integration TITLE:PROVIDER` form (no UUID): the emulator makes the UUID.
    process, lines = start_cli("--dev-key-out", str(key_path), "--integration", "demo-s3:AWS")
    try:
        url = lines[1].removeprefix("Encord emulator listening on ")
        integrations = make_client(url, private_key=key_path.read_text()).get_cloud_integrations()
    finally:
        stop_cli(process)
    assert str(key_path) in lines[0]
    assert [i.title for i in integrations] == ["demo-s3"]
    assert "Encord emulator integration 'demo-s3' (AWS)" in lines[2]
    assert key_path.stat().st_mode & 0o777 == 0o600
