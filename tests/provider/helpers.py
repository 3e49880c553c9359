"""Small helpers shared by the provider tests (run-folder files, a task state store stand-in)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from encord_ingest.manifest.model import Manifest
from encord_ingest.sync import MetadataChange, write_changes
from encord_provider.operators.encord import EncordRegisterDataOperator, EncordSyncMetadataOperator

CONN_ID = "encord_test"
#: Hook parameters for tests: the same logic, shorter waits.
FAST_HOOK_PARAMS: dict[str, Any] = {
    "retry": {"base_delay_s": 0.01, "max_delay_s": 0.05, "max_total_s": 10.0, "max_attempts": 6},
    "sdk_backoff_factor": 0.0,
}
BUCKET_URL = "https://ingest-bucket.s3.eu-west-2.amazonaws.com"


def connection_json(private_key: str, domain: str) -> str:
    """An ``encord`` connection in Airflow's JSON form (for ``AIRFLOW_CONN_<ID>``)."""
    return json.dumps({"conn_type": "encord", "extra": {"ssh_private_key": private_key, "domain": domain}})


def write_manifest(run_folder: Path, name: str, docs: dict[str, Any]) -> str:
    """Write a manifest chunk (documented JSON) and return its ``file://`` URI."""
    path = run_folder / "manifests" / f"{name}.json"
    path.write_bytes(Manifest.from_docs_json(docs).to_bytes())
    return path.as_uri()


def write_change_rows(run_folder: Path, name: str, rows: list[MetadataChange]) -> str:
    path = run_folder / "metadata" / f"{name}.jsonl"
    path.write_bytes(write_changes(rows))
    return path.as_uri()


def read_result(run_folder: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((run_folder / "results" / name).read_text()))


class TaskStateStore:
    """Stand-in for Airflow's ``context["task_state_store"]`` (same get/set/delete), for tests that
    call ``execute`` directly: the real accessor needs a task supervisor. The dag.test() test
    uses the real one."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values[key])) if key in self.values else default

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def task_context(store: TaskStateStore | None = None) -> Any:
    """The part of an Airflow task context the operators read."""
    return {"task_state_store": store} if store is not None else {}


def register_operator(conn_id: str, uris: list[str], **kwargs: Any) -> EncordRegisterDataOperator:
    options: dict[str, Any] = {
        "task_id": "register",
        "manifest_uris": uris,
        "folder": "ingest/cams",
        "integration": "ingest-s3",
        "encord_conn_id": conn_id,
        "aws_conn_id": None,
        "deferrable": False,
        "timeout_s": 30,
        "poll_timeout_s": 2,
        "hook_params": FAST_HOOK_PARAMS,
    }
    return EncordRegisterDataOperator(**{**options, **kwargs})


def sync_operator(conn_id: str, uris: list[str], **kwargs: Any) -> EncordSyncMetadataOperator:
    options: dict[str, Any] = {
        "task_id": "sync",
        "changes_uris": uris,
        "folder": "ingest/cams",
        "encord_conn_id": conn_id,
        "aws_conn_id": None,
        "hook_params": FAST_HOOK_PARAMS,
    }
    return EncordSyncMetadataOperator(**{**options, **kwargs})
