"""Local stand-ins for cloud storage, shared by tests, benchmarks and the demo.

- :func:`moto_s3_server`: moto's S3 in server mode (real HTTP on 127.0.0.1), plus
  :func:`s3_client` and :func:`seed_s3` (fast in-process seeding, visible over HTTP).
- :func:`gcs_emulator`: gcp-storage-emulator on 127.0.0.1 with ``STORAGE_EMULATOR_HOST`` set,
  yielding a :class:`GcsEmulator` (endpoint, client, fast seeding).
- :func:`latency_proxy`: an HTTP proxy adding a per-request delay (real-bucket latency) in
  front of either.
- :func:`write_tree` (a local directory from key -> bytes) and :func:`unique_bucket_name`.
"""

from __future__ import annotations

from standins.gcs import GcsEmulator, gcs_emulator
from standins.latency import DROP, LatencySettings, latency_proxy
from standins.local import unique_bucket_name, write_tree
from standins.s3 import create_bucket, moto_s3_server, s3_client, seed_s3

__all__ = [
    "DROP",
    "GcsEmulator",
    "LatencySettings",
    "create_bucket",
    "gcs_emulator",
    "latency_proxy",
    "moto_s3_server",
    "s3_client",
    "seed_s3",
    "unique_bucket_name",
    "write_tree",
]
