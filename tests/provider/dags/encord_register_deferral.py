"""A one-task DAG for the provider's dag.test() deferral test (not a product DAG).

Run values come from ``dag.test(run_conf=...)``: the manifest chunk URI and the integration.
The ``encord_test`` connection is an ``AIRFLOW_CONN_ENCORD_TEST`` env var set by the test.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG

from encord_provider.operators.encord import EncordRegisterDataOperator

with DAG(
    dag_id="encord_provider_register_deferral",
    schedule=None,
    params={"manifest_uri": "", "integration": ""},
    render_template_as_native_obj=True,
    tags=["test"],
) as dag:
    EncordRegisterDataOperator(
        task_id="register",
        manifest_uris="{{ params.manifest_uri }}",
        folder="ingest/cams",
        integration="{{ params.integration }}",
        encord_conn_id="encord_test",
        aws_conn_id=None,
        deferrable=True,
        timeout_s=60,
        poll_timeout_s=2,
        hook_params={"retry": {"base_delay_s": 0.01}, "sdk_backoff_factor": 0.0},
        retries=1,
        retry_delay=timedelta(0),
    )
