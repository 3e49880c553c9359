"""The local stand-in stack for the demo and the end-to-end tests: S3 (moto) + the Encord emulator.

Both servers run in threads of the calling process on 127.0.0.1. :meth:`StandinStack.airflow_env`
gives the ``AIRFLOW_CONN_*`` variables that point the demo source's connections at them
(``aws_demo``, ``encord_demo``), for an in-process ``dag.test()`` or an ``airflow dags test``
subprocess alike. The Encord key is a throw-away key made for this stack only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from encord_emulator.testing import EmulatorServer, generate_ssh_keypair
from standins.s3 import ACCESS_KEY, REGION, moto_s3_server, s3_client

DEMO_RAW_BUCKET = "encord-demo-raw"
DEMO_STATE_BUCKET = "encord-demo-state"
DEMO_INTEGRATION = "demo-s3"


@dataclass
class StandinStack:
    s3_endpoint: str
    emulator: EmulatorServer
    private_key: str
    buckets: list[str] = field(default_factory=list)

    @property
    def s3(self) -> Any:
        return s3_client(self.s3_endpoint)

    def put_objects(self, bucket: str, objects: Mapping[str, bytes]) -> None:
        client = self.s3
        for key, data in objects.items():
            client.put_object(Bucket=bucket, Key=key, Body=data)

    def airflow_env(
        self, aws_conn_id: str = "aws_demo", encord_conn_id: str = "encord_demo"
    ) -> dict[str, str]:
        connections = demo_connections(self.s3_endpoint, self.emulator.url, self.private_key)
        return {
            f"AIRFLOW_CONN_{aws_conn_id.upper()}": json.dumps(connections["aws_demo"]),
            f"AIRFLOW_CONN_{encord_conn_id.upper()}": json.dumps(connections["encord_demo"]),
        }


def demo_connections(s3_endpoint: str, emulator_url: str, private_key: str) -> dict[str, dict[str, Any]]:
    """The demo source's connections (``aws_demo``, ``encord_demo``) as Airflow connection JSON.

    Each names its endpoint's port in ``port``, which neither hook reads: the Connections page's
    row **Test** button of Airflow 3.3.2 sends ``port: 0`` for a connection without a port, and the
    API then refuses to test with the stored secrets (HTTP 400 "The host or port to test differs
    from the stored connection").
    """
    return {
        "aws_demo": {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": ACCESS_KEY,
            "port": endpoint_port(s3_endpoint),
            # STS too: the connection's Test button calls sts:GetCallerIdentity (moto serves it).
            "extra": {
                "endpoint_url": s3_endpoint,
                "region_name": REGION,
                "service_config": {"sts": {"endpoint_url": s3_endpoint}},
            },
        },
        "encord_demo": {
            "conn_type": "encord",
            "port": endpoint_port(emulator_url),
            "extra": {
                "ssh_private_key": private_key,
                "domain": emulator_url,
                # The emulator has no web app: the task links open its admin views (JSON).
                "web_url": emulator_url,
                "folder_link": "{web_url}/_admin/folder-items?folder={folder_uuid}",
                "upload_job_link": "{web_url}/_admin/jobs#{job_uuid}",
            },
        },
    }


def endpoint_port(url: str) -> int:
    """The port ``url`` names, or its scheme's default."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


@contextmanager
def standin_stack(
    buckets: tuple[str, ...] = (DEMO_RAW_BUCKET, DEMO_STATE_BUCKET),
    integration: str = DEMO_INTEGRATION,
    **emulator_options: Any,
) -> Iterator[StandinStack]:
    """Start S3 and the Encord emulator, create the buckets and the integration; stop both on exit."""
    private_key, public_key = generate_ssh_keypair()
    with ExitStack() as stack:
        endpoint = stack.enter_context(moto_s3_server())
        emulator = stack.enter_context(EmulatorServer.start(public_keys=[public_key], **emulator_options))
        emulator.admin.add_integration(integration, provider="AWS")
        client = s3_client(endpoint)
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield StandinStack(endpoint, emulator, private_key, list(buckets))
