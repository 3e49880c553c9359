"""The ``encord_metadata_ops`` DAG: Encord metadata operations from the Params form
(docs/metadata-ops.md). Its UI documentation is ``DOC_MD`` (Markdown).

Only the source YAML files are read when this file is parsed (to propose the connections and
folders they use); nothing is fetched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from encord_ingest.config import SourceConfig, load_source_configs, sources_dir
from encord_provider.operators.metadata_ops import EncordApplyMetadataOperator, EncordExportMetadataOperator

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OWNER = "data-platform"
DOC_MD = """
### Encord metadata operations

Triggered by hand from the form; details in `docs/metadata-ops.md`.

- **apply**: a change table (`table_uri`: CSV, TSV, JSON Lines or Parquet, one row per item), or
  the same `metadata` for every item the scope reaches, in `merge` or `replace` mode;
- **keyframes**: set only `keyframes` (and the video sampling `config`) on videos, from a table;
- **export**: write the metadata of a folder, dataset, project or group to
  `<export_uri>/<scope>-<run id>.parquet` and `.csv` (edit it, then **apply** it back).

`scope` says what `target_ids` are: storage folder paths or UUIDs (`folder`, with `recursive`),
dataset hashes (`dataset`), project hashes (`project`), or image group / sequence / DICOM series
UUIDs or titles (`group_frames`; titles are looked up in `folder`).

Runs are **dry by default**: the report lists every diff; switch `dry_run` off to write.
Submitted with the form's defaults (no `target_ids`) a run does nothing, and the log of
`choose_operation` says what to fill in.
"""


def _unique(values: list[str | None]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def configured(configs: list[SourceConfig]) -> dict[str, list[str]]:
    """What the configured sources use: ``encord`` connections, ``aws`` and ``gcs`` connections
    (of ``s3://`` / ``gs://`` buckets and states) and Encord ``folders``, each in source order
    without repeats."""

    def storage(scheme: str) -> list[str]:
        return _unique(
            [c.state_connection if c.state_uri.startswith(f"{scheme}://") else None for c in configs]
            + [c.bucket.conn_id if c.bucket.scheme == scheme else None for c in configs]
        )

    return {
        "encord": _unique([c.encord.conn_id for c in configs]),
        "aws": storage("s3"),
        "gcs": storage("gs"),
        "folders": _unique([c.encord.folder for c in configs]),
    }


CONFIGURED = configured(load_source_configs(sources_dir())[0])
"""Files that fail validation are left out here; ``encord_sources.py`` reports them."""


def project_path(path: str | None) -> str:
    """Template macro: a relative ``schema_path`` is relative to the project root; empty stays ``""``."""
    if not path:
        return ""
    return str(Path(path) if Path(path).is_absolute() else PROJECT_ROOT / path)


def nothing_to_do(params: dict[str, Any]) -> str | None:
    """Why a run with these params has nothing to do (no ``target_ids``), naming what to fill in."""
    if params.get("target_ids"):
        return None
    needs = {
        "apply": "table_uri (a change table) or metadata (for every item)",
        "keyframes": "table_uri (one row per video)",
        "export": "export_uri (where the files go)",
    }.get(params.get("operation") or "apply", "")
    return (
        "Nothing to do: target_ids is empty (a run with the form's defaults changes nothing). "
        f"Fill in target_ids ({params.get('scope') or 'folder'} scope), and {needs}."
    )


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
        type=["array", "null"],
        items={"type": "string"},
        title="Target ids",
        description="One per line: folder paths (a/b) or UUIDs, dataset hashes, project hashes, "
        "or group UUIDs / titles. Folders of the configured sources: "
        + (", ".join(CONFIGURED["folders"]) or "none")
        + ". Empty: the run does nothing.",
    ),
    "table_uri": Param(
        "",
        type=["string", "null"],
        title="Change table",
        description="s3://, gs:// or file:// URI of a .csv/.tsv/.jsonl/.parquet table with an "
        "identifier column (item_uuid, object_url, title; frames: frame_index or frame_file).",
    ),
    "metadata": Param(
        {},
        type=["object", "null"],
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
    "dry_run": Param(
        True, type=["boolean", "null"], title="Dry run", description="Report the diffs, write nothing."
    ),
    "recursive": Param(
        False, type=["boolean", "null"], title="Recursive", description="Folder scope: subfolders too."
    ),
    "folder": Param(
        "",
        type=["string", "null"],
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
        type=["string", "null"],
        title="Schema file",
        description="A schema YAML (relative to the project root, e.g. include/schemas/example.yaml); "
        "empty: the organisation's schema as Encord holds it.",
    ),
    "export_uri": Param(
        "",
        type=["string", "null"],
        title="Export folder",
        description="Where export writes its files, e.g. s3://my-bucket/encord-exports/.",
    ),
    "report_uri": Param(
        "",
        type=["string", "null"],
        title="Report file",
        description="Where apply writes its report; empty: <table folder>/reports/<table>.report.json.",
    ),
    "max_failed_items": Param(
        0,
        type=["integer", "null"],
        minimum=0,
        title="Error budget",
        description="Rows that may be rejected, missing or failed before the task fails (empty: 0).",
    ),
    "encord_conn_id": Param(
        (CONFIGURED["encord"] or ["encord_default"])[0],
        type="string",
        minLength=1,
        title="Encord connection",
        description="Default: the first configured source's; the other sources' are proposed.",
        examples=CONFIGURED["encord"] or ["encord_default"],
    ),
    "aws_conn_id": Param(
        (CONFIGURED["aws"] or ["aws_default"])[0],
        type=["string", "null"],
        title="AWS connection (s3:// URIs)",
        description="Default: the first configured S3 source's; the others are proposed. Empty: "
        "the default AWS credential chain.",
        examples=CONFIGURED["aws"] or ["aws_default"],
    ),
    "gcs_conn_id": Param(
        next(iter(CONFIGURED["gcs"]), None),
        type=["string", "null"],
        title="Google Cloud connection (gs:// URIs)",
        description="Default: the first configured GCS source's; the others are proposed. Empty: "
        "Application Default Credentials.",
        examples=CONFIGURED["gcs"] or ["google_cloud_default"],
    ),
}

with DAG(
    dag_id="encord_metadata_ops",
    schedule=None,
    max_active_runs=1,
    params=PARAMS,
    render_template_as_native_obj=True,
    user_defined_macros={"project_path": project_path},
    description="Apply, import keyframes or export Encord metadata of folders, datasets, projects "
    "or image groups (triggered by hand; dry by default)",
    default_args={"owner": OWNER},
    doc_md=DOC_MD,
    tags=["encord", "metadata"],
) as dag:

    @task.branch(
        task_display_name="Choose the operation",
        doc_md="Runs `export_metadata` for an export, `apply_metadata` otherwise; with no "
        "`target_ids`, neither (its log says what to fill in).",
    )
    def choose_operation(params: dict[str, Any] | None = None) -> list[str]:
        """The task to run, from ``params`` (the context's); none without targets."""
        reason = nothing_to_do(params or {})
        if reason:
            logging.getLogger(__name__).warning("%s", reason)
            return []
        return ["export_metadata" if (params or {}).get("operation") == "export" else "apply_metadata"]

    common: dict[str, Any] = {
        "scope": "{{ params.scope }}",
        "target_ids": "{{ params.target_ids }}",
        "recursive": "{{ params.recursive is true }}",
        "folder": "{{ params.folder }}",
        "encord_conn_id": "{{ params.encord_conn_id }}",
        "aws_conn_id": "{{ params.aws_conn_id }}",
        "gcs_conn_id": "{{ params.gcs_conn_id }}",
    }
    apply = EncordApplyMetadataOperator(
        task_id="apply_metadata",
        task_display_name="Apply metadata",
        doc_md="Reaches the targets, checks each row against the schema, writes only what differs "
        "(nothing in a dry run) and writes the report to `report_uri`; its log lists the diffs.",
        table_uri="{{ params.table_uri }}",
        metadata="{{ params.metadata }}",
        mode="{{ params.mode }}",
        keyframes_only="{{ params.operation == 'keyframes' }}",
        reserved_keys="{{ params.reserved_keys }}",
        unknown_keys="{{ params.unknown_keys }}",
        dry_run="{{ params.dry_run is not false }}",  # cleared (null): still dry
        schema_path="{{ project_path(params.schema_path) }}",
        report_uri="{{ params.report_uri }}",
        max_failed_items="{{ params.max_failed_items }}",
        **common,
    )
    export = EncordExportMetadataOperator(
        task_id="export_metadata",
        task_display_name="Export metadata",
        doc_md="Writes the targets' metadata to `<export_uri>/<scope>-<run id>.parquet` and `.csv`.",
        output_uri="{{ params.export_uri }}",
        name="{{ params.scope }}-{{ run_id }}",
        **common,
    )
    choose_operation() >> [apply, export]
