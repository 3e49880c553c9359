"""The manually triggered ``encord_metadata_ops`` DAG: its Params form, and real runs with
``dag.test()`` against the emulator (dry run, apply, export; bad params fail the run)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from encord_emulator.testing import EmulatorServer
from tests.metadata_ops.helpers import B, read_csv, write_csv

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "encord_metadata_ops.py"


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("encord_metadata_ops", DAG_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def dag_module() -> ModuleType:
    """A fresh import per test: ``dag.test(run_conf=...)`` leaves the conf in the in-memory params."""
    return load_module()


def ui_required(schema: dict[str, Any]) -> bool:
    """The Airflow 3.3 trigger form's rule (``isRequired`` in its FlexibleForm): a param is marked
    required, and refused when empty, unless its JSON-schema ``type`` includes ``"null"``."""
    kind = schema.get("type")
    return bool(kind) and not (isinstance(kind, list) and "null" in kind)


def test_the_params_form(dag_module: ModuleType) -> None:
    dag = dag_module.dag
    assert dag.dag_id == "encord_metadata_ops"
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: manual runs only
    assert dag.owner == "data-platform"
    assert "dry by default" in dag.description
    assert dag.doc_md.lstrip().startswith("### Encord metadata operations")
    assert "``" not in dag.doc_md  # Markdown, not RST
    assert ":data:" not in dag.doc_md
    params = dag.params.dump()
    assert params["operation"] == "apply"
    assert params["dry_run"] is True
    schema = {name: dag.params.get_param(name).schema for name in params}
    assert schema["scope"]["enum"] == ["folder", "dataset", "project", "group_frames"]
    assert schema["mode"]["enum"] == ["merge", "replace"]
    assert schema["target_ids"]["type"] == ["array", "null"]
    assert "examples" not in schema["target_ids"]  # examples would turn it into a closed multi-select
    # Only choices that always hold a value, and the Encord connection, are marked required.
    assert {name for name in params if ui_required(schema[name])} == {
        "operation",
        "scope",
        "mode",
        "reserved_keys",
        "unknown_keys",
        "encord_conn_id",
    }
    for name in params:  # the defaults, and every cleared optional field, pass validation
        dag.params.get_param(name).resolve(params[name])
        if not ui_required(schema[name]):
            dag.params.get_param(name).resolve(None)
    assert {t.task_id for t in dag.tasks} == {"choose_operation", "apply_metadata", "export_metadata"}
    assert all(t.doc_md and t.task_display_name != t.task_id for t in dag.tasks)
    assert dag_module.project_path("include/schemas/example.yaml") == str(
        DAG_FILE.parents[1] / "include" / "schemas" / "example.yaml"
    )
    assert dag_module.project_path("") == ""
    assert dag_module.project_path(None) == ""
    assert dag_module.project_path("/abs/s.yaml") == "/abs/s.yaml"


def test_connection_defaults_come_from_the_configured_sources(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = yaml.safe_load((repo_root / "include" / "sources" / "demo_media.yaml").read_text())
    gcs = {
        **demo,
        "name": "gcs_cams",
        "bucket": {"uri": "gs://cams", "conn_id": "gcp_cams"},
        "state_uri": "gs://cams-state/x",
        "encord": {**demo["encord"], "conn_id": "encord_cams", "folder": "cams/raw"},
    }
    second = {**demo, "name": "second", "state_conn_id": "aws_state"}
    for name, document in (("a_demo", demo), ("b_gcs", gcs), ("c_second", second), ("d_bad", {"x": 1})):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    monkeypatch.setenv("ENCORD_INGEST_SOURCES_DIR", str(tmp_path))
    params = load_module().dag.params
    encord, aws = params.get_param("encord_conn_id"), params.get_param("aws_conn_id")
    assert (encord.value, encord.schema["examples"]) == ("encord_demo", ["encord_demo", "encord_cams"])
    assert (aws.value, aws.schema["examples"]) == ("aws_demo", ["aws_demo", "aws_state"])
    gcs = params.get_param("gcs_conn_id")
    assert (gcs.value, gcs.schema["examples"]) == ("gcp_cams", ["gcp_cams"])
    tasks = load_module().dag.task_dict
    for task_id in ("apply_metadata", "export_metadata"):
        assert "gcs_conn_id" in tasks[task_id].template_fields
        assert tasks[task_id].gcs_conn_id == "{{ params.gcs_conn_id }}"
    assert "demo/fleet/raw, cams/raw." in params.get_param("target_ids").description

    monkeypatch.setenv("ENCORD_INGEST_SOURCES_DIR", str(tmp_path / "none"))
    params = load_module().dag.params
    assert (params["encord_conn_id"], params["aws_conn_id"]) == ("encord_default", "aws_default")
    assert params["gcs_conn_id"] is None  # Application Default Credentials


@pytest.mark.usefixtures("airflow_db")
def test_a_run_with_the_forms_defaults_does_nothing_and_says_what_to_fill_in(
    dag_module: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    """The form's defaults as the UI submits them (the Encord connection is never reached)."""
    caplog.set_level(logging.WARNING)
    dag_run, tis = run(dag_module, dag_module.dag.params.dump())
    assert dag_run.state == "success"
    assert {task: ti.state for task, ti in tis.items()} == {
        "choose_operation": "success",
        "apply_metadata": "skipped",
        "export_metadata": "skipped",
    }
    assert "Nothing to do: target_ids is empty" in caplog.text
    assert "Fill in target_ids (folder scope), and table_uri (a change table) or metadata" in caplog.text
    assert "export_uri" in dag_module.nothing_to_do({"operation": "export", "target_ids": None})


def run(dag_module: ModuleType, conf: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    dag_run = dag_module.dag.test(run_conf=conf, logical_date=None)
    return dag_run, {ti.task_id: ti for ti in dag_run.get_task_instances()}


@pytest.mark.usefixtures("airflow_db")
def test_apply_dry_run_then_for_real_then_export(
    dag_module: ModuleType, emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    folder = emulator.admin.add_folder("cams")
    emulator.admin.add_items(
        folder,
        [
            {
                "url": f"{B}/cams/a.jpg",
                "name": "a.jpg",
                "client_metadata": {"site": "north", "team.other": 1},
            },
            {"url": f"{B}/cams/b.jpg", "name": "b.jpg", "client_metadata": {"site": "south"}},
        ],
    )
    table = write_csv(tmp_path / "changes.csv", [["title", "site", "fps"], ["a.jpg", "north", "25"]])
    conf = {
        "scope": "folder",
        "target_ids": ["cams"],
        "table_uri": table,
        "schema_path": schema_path,
        "encord_conn_id": encord_conn,
    }
    dry, tis = run(dag_module, conf)
    assert dry.state == "success"
    assert (tis["apply_metadata"].state, tis["export_metadata"].state) == ("success", "skipped")
    assert tis["apply_metadata"].xcom_pull(task_ids="apply_metadata")["counts"]["changed"] == 1
    assert "items.patch_bulk" not in emulator.admin.counts()
    assert (tmp_path / "reports" / "changes.dry-run.report.json").exists()

    applied, tis = run(dag_module, {**conf, "dry_run": False, "mode": "replace"})
    assert tis["apply_metadata"].state == "success"
    assert applied.state == "success"
    held = {i["name"]: i["client_metadata"] for i in emulator.admin.folder_items("cams")}
    assert {name: {k: v for k, v in m.items() if v is not None} for name, m in held.items()} == {
        "a.jpg": {"site": "north", "fps": 25},
        "b.jpg": {"site": "south"},
    }

    exported, tis = run(
        dag_module, {**conf, "operation": "export", "export_uri": (tmp_path / "exports").as_uri()}
    )
    assert exported.state == "success"
    assert (tis["apply_metadata"].state, tis["export_metadata"].state) == ("skipped", "success")
    (csv_file,) = (tmp_path / "exports").glob("folder-*.csv")
    assert [row[2:] for row in read_csv(csv_file)] == [
        ["title", "item_type", "fps", "site"],
        ["a.jpg", "image", "25", "north"],
        ["b.jpg", "image", "", "south"],
    ]
    assert list((tmp_path / "exports").glob("folder-*.parquet"))


@pytest.mark.usefixtures("airflow_db")
def test_bad_params_fail_the_run_before_any_write(
    dag_module: ModuleType, emulator: EmulatorServer, encord_conn: str, tmp_path: Path
) -> None:
    emulator.admin.add_folder("cams")
    conf = {
        "operation": "apply",
        "target_ids": ["cams"],
        "table_uri": (tmp_path / "t.csv").as_uri(),
        "metadata": {"site": "x"},
        "dry_run": False,
        "encord_conn_id": encord_conn,
    }
    failed, tis = run(dag_module, conf)
    assert failed.state == "failed"
    assert tis["apply_metadata"].state == "failed"
    assert emulator.admin.counts() == {}
