"""Measure how your Encord organisation behaves before the first production sync (README:
"Before the first production sync"). Triggered by hand.

In a fresh scratch folder under ``folder`` (created, then deleted with everything in it) it
registers ``object_url`` through ``integration`` and measures PATCH semantics and nulls, URL
normalisation, folder search, how skipped duplicates are reported, schema validation, the largest
bulk-PATCH body (up to ``max_body_bound``) and the rate-limit headers. The table goes to the task
log; the JSON goes to ``out_uri`` (``s3://``, ``gs://`` or ``file://``), from which the emulator
starts with ``--behaviour-file``. Nothing is imported from ``encord`` when this file is parsed.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

PARAMS: dict[str, Param] = {
    "encord_conn_id": Param("encord_default", type="string", title="Encord connection"),
    "folder": Param(
        "scratch/contract-check",
        type="string",
        minLength=1,
        title="Scratch folder",
        description="A fresh subfolder is created here and deleted afterwards, with its items.",
    ),
    "integration": Param(
        "", type="string", minLength=1, title="Cloud integration", description="Title or UUID."
    ),
    "object_url": Param(
        "",
        type="string",
        minLength=1,
        title="Object URL",
        description="An image the integration can read, in the pipeline's URL form.",
    ),
    "out_uri": Param(
        "file:///tmp/encord-contract.json",
        type="string",
        title="JSON result",
        description="s3://, gs:// or file:// URI of the JSON file to write.",
    ),
    "aws_conn_id": Param("aws_default", type=["string", "null"], title="AWS connection for s3:// out_uri"),
    "max_body_bound": Param(16 * 1024 * 1024, type="integer", minimum=1024, title="Largest body tried"),
    "allow_schema_key": Param(
        False,
        type="boolean",
        title="Add a temporary schema key",
        description="Only when the organisation schema has no number key: add, then delete, "
        "encord_contract_check.number to test value validation.",
    ),
}

with DAG(
    dag_id="encord_contract_check",
    description="Measure the Encord behaviours the pipeline relies on, in a scratch folder",
    schedule=None,
    catchup=False,
    params=PARAMS,
    tags=["encord", "manual"],
    doc_md=__doc__,
) as dag:

    @task
    def contract_check(params: dict[str, Any] | None = None) -> dict[str, Any]:
        import json
        import logging

        from encord_provider.contract import run_check
        from encord_provider.run_io import RunFolderIO

        p = params or {}
        report = run_check(
            p["encord_conn_id"],
            p["folder"],
            p["integration"],
            p["object_url"],
            body_bound=int(p["max_body_bound"]),
            allow_schema_key=bool(p["allow_schema_key"]),
        )
        logging.getLogger(__name__).info("Encord contract check:\n%s", report.table())
        document = report.to_json()
        RunFolderIO(aws_conn_id=p.get("aws_conn_id")).write(
            p["out_uri"], json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
        )
        answers = {name: result["answer"] for name, result in document["results"].items()}
        failed = sorted(name for name, answer in answers.items() if answer == "error")
        if failed:
            raise RuntimeError(f"contract checks failed: {', '.join(failed)}; see the log and {p['out_uri']}")
        return {"out_uri": p["out_uri"], "answers": answers}

    contract_check()
