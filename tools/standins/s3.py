"""moto's S3 in server mode on 127.0.0.1, and fast seeding through its in-process backend.

``ThreadedMotoServer`` runs in this process, so objects written straight into moto's backend
(:func:`seed_s3`, ~30 us per key) are served over HTTP at once: seed tens of thousands of keys
that way rather than by HTTP PUTs. moto's state is process-global: the server context resets it
on exit, and buckets need distinct names while it runs. Listing cost grows with bucket size
(TESTING-NOTES.md): keep S3 scale tests under ~50,000 keys.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3

REGION = "us-east-1"
ACCESS_KEY = "testing"


def _route_without_disk_lookups() -> None:
    """moto's server routes every request by listing its own package directory (an ``isdir`` per
    entry, ~180 ``stat`` calls) twice: half of its CPU for a small GET. The list cannot change
    while it runs, so it is listed once."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "listed_once", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def listed() -> Iterable[str]:
        return modules

    listed.listed_once = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = listed


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Run moto's S3 on a free port of 127.0.0.1; yields the endpoint URL, resets moto on exit."""
    from moto.server import ThreadedMotoServer  # moto only where it runs: the compose image has none

    _route_without_disk_lookups()
    werkzeug_log = logging.getLogger("werkzeug")
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield endpoint
    finally:
        request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        server.stop()
        werkzeug_log.setLevel(level)


def s3_client(endpoint_url: str, region: str = REGION, *, max_pool_connections: int = 10) -> Any:
    """A boto3 S3 client for the moto server (fake credentials, no instance metadata)."""
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=ACCESS_KEY,
        config=Config(max_pool_connections=max_pool_connections),
    )


def sqs_client(endpoint_url: str, region: str = REGION) -> Any:
    """A boto3 SQS client for the moto server (moto serves SQS on the same endpoint as S3)."""
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=ACCESS_KEY,
    )


def notifying_queue(s3: Any, sqs: Any, bucket: str, queue_name: str) -> str:
    """A new SQS queue that ``bucket`` notifies of every object created or removed; its URL."""
    queue_url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]
        },
    )
    return queue_url


def _backend() -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["global"]


def create_bucket(bucket: str, region: str = REGION) -> None:
    """Create ``bucket`` in moto's in-process backend (a no-op if it exists)."""
    backend = _backend()
    if bucket not in backend.buckets:
        backend.create_bucket(bucket, region)


def seed_s3(
    bucket: str, objects: Mapping[str, bytes] | Iterable[tuple[str, bytes]], region: str = REGION
) -> int:
    """Write ``objects`` (key -> bytes) straight into moto's backend; returns how many."""
    create_bucket(bucket, region)
    backend = _backend()
    items = objects.items() if isinstance(objects, Mapping) else objects
    count = 0
    for key, data in items:
        backend.put_object(bucket, key, data, disable_notification=True)
        count += 1
    return count
