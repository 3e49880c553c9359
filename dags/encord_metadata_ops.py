"""Encord metadata operations, triggered by hand from the Params form (docs/metadata-ops.md).

- ``apply``: a change table (``table_uri``: CSV, TSV, JSON Lines or Parquet, one row per item),
  or the same ``metadata`` for every item the scope reaches, in ``merge`` or ``replace`` mode;
- ``keyframes``: set only ``keyframes`` (and the video sampling ``config``) on videos, from a table;
- ``export``: write the metadata of a folder, dataset, project or group to
  ``<export_uri>/<scope>-<run id>.parquet`` and ``.csv`` (edit, then ``apply`` it back).

``scope`` says what ``target_ids`` are: storage folder paths or UUIDs (``folder``, with
``recursive``), dataset hashes (``dataset``), project hashes (``project``) or image group /
sequence / DICOM series UUIDs or titles (``group_frames``; titles are looked up in ``folder``).
Runs are dry by default: the report lists every diff; untick ``dry_run`` to write. Nothing is
read or fetched when this file is parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from encord_provider.operators.metadata_ops import EncordApplyMetadataOperator, EncordExportMetadataOperator

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def project_path(path: str) -> str:
    """Template macro: a relative ``schema_path`` is relative to the project root; ``""`` stays."""
    if not path:
        return ""
    return str(Path(path) if Path(path).is_absolute() else PROJECT_ROOT / path)


PARAMS: dict[str, Param] = {
    "operation": Param(
        "apply",
        type="string",
        enum=["apply", "keyframes", "export"],
        title="Operation",
        description="apply: a change table or the same metadata for every item; keyframes: only "
        "keyframes/config on videos, from a table; export: Parquet + CSV of the current metadata.",
    ),
    "scope": Param(
        "folder",
        type="string",
        enum=["folder", "dataset", "project", "group_frames"],
        title="Scope",
        description="What the target ids are: storage folders, datasets, projects, or image groups "
        "(their frames are the targets).",
    ),
    "target_ids": Param(
        [],
        type="array",
        items={"type": "string"},
        title="Target ids",
        description="One per line: folder paths (a/b) or UUIDs, dataset hashes, project hashes, "
        "or group UUIDs / titles.",
    ),
    "table_uri": Param(
        "",
        type="string",
        title="Change table",
        description="s3://, gs:// or file:// URI of a .csv/.tsv/.jsonl/.parquet table with an "
        "identifier column (item_uuid, object_url, title; frames: frame_index or frame_file).",
    ),
    "metadata": Param(
        {},
        type="object",
        title="Metadata for every item",
        description="Instead of a table: this JSON object goes to every item of the scope.",
    ),
    "mode": Param(
        "merge",
        type="string",
        enum=["merge", "replace"],
        title="Mode",
        description="merge: update and add keys, keep the rest; replace: exactly these keys.",
    ),
    "dry_run": Param(True, type="boolean", title="Dry run", description="Report the diffs, write nothing."),
    "recursive": Param(False, type="boolean", title="Recursive", description="Folder scope: subfolders too."),
    "folder": Param(
        "",
        type="string",
        title="Folder of the groups",
        description="Group frames given by title: their folder.",
    ),
    "reserved_keys": Param(
        "preserve",
        type="string",
        enum=["preserve", "sidecar", "encord"],
        title="keyframes/config",
        description="preserve: kept unless the table sets them; sidecar: like other keys; "
        "encord: never changed.",
    ),
    "unknown_keys": Param(
        "reject",
        type="string",
        enum=["reject", "warn", "allow"],
        title="Keys not in the schema",
        description="What to do with new values of keys the schema does not declare.",
    ),
    "schema_path": Param(
        "",
        type="string",
        title="Schema file",
        description="A schema YAML (relative to the project root, e.g. include/schemas/example.yaml); "
        "empty: the organisation's schema as Encord holds it.",
    ),
    "export_uri": Param(
        "", type="string", title="Export folder", description="Where export writes its files."
    ),
    "report_uri": Param(
        "",
        type="string",
        title="Report file",
        description="Where apply writes its report; empty: <table folder>/reports/<table>.report.json.",
    ),
    "max_failed_items": Param(
        0,
        type="integer",
        minimum=0,
        title="Error budget",
        description="Rows that may be rejected, missing or failed before the task fails.",
    ),
    "encord_conn_id": Param("encord_default", type="string", title="Encord connection"),
    "aws_conn_id": Param("aws_default", type="string", title="AWS connection (s3:// URIs)"),
}

with DAG(
    dag_id="encord_metadata_ops",
    schedule=None,
    max_active_runs=1,
    params=PARAMS,
    render_template_as_native_obj=True,
    user_defined_macros={"project_path": project_path},
    doc_md=__doc__,
    tags=["encord", "metadata"],
) as dag:

    @task.branch
    def choose_operation(params: dict[str, Any] | None = None) -> str:
        """``export_metadata`` for an export, ``apply_metadata`` otherwise (``params``: from the context)."""
        return "export_metadata" if (params or {}).get("operation") == "export" else "apply_metadata"

    common: dict[str, Any] = {
        "scope": "{{ params.scope }}",
        "target_ids": "{{ params.target_ids }}",
        "recursive": "{{ params.recursive }}",
        "folder": "{{ params.folder }}",
        "encord_conn_id": "{{ params.encord_conn_id }}",
        "aws_conn_id": "{{ params.aws_conn_id }}",
    }
    apply = EncordApplyMetadataOperator(
        task_id="apply_metadata",
        table_uri="{{ params.table_uri }}",
        metadata="{{ params.metadata }}",
        mode="{{ params.mode }}",
        keyframes_only="{{ params.operation == 'keyframes' }}",
        reserved_keys="{{ params.reserved_keys }}",
        unknown_keys="{{ params.unknown_keys }}",
        dry_run="{{ params.dry_run }}",
        schema_path="{{ project_path(params.schema_path) }}",
        report_uri="{{ params.report_uri }}",
        max_failed_items="{{ params.max_failed_items }}",
        **common,
    )
    export = EncordExportMetadataOperator(
        task_id="export_metadata",
        output_uri="{{ params.export_uri }}",
        name="{{ params.scope }}-{{ run_id }}",
        **common,
    )
    choose_operation() >> [apply, export]
