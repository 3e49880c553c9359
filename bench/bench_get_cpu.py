"""Client CPU per sidecar read: the ordinary client call against the short way (``direct_reads``).

    .venv/bin/python bench/bench_get_cpu.py [--reads 2000] [--backends s3,gcs] [--rounds 2]

The stand-in (moto S3 or the GCS emulator, seeded with ``bench_latency``'s tree) and the latency
proxy (0 ms: it keeps connections alive like a real bucket) run in child processes, so this
process's CPU time is the client's own. ``--reads`` sidecars are read one after another with the
scan's ranged read (``read_bytes(key, max_sidecar_bytes + 1)``) by two sources on the same
client: ``direct_reads=False`` (boto3 ``get_object`` / ``Blob.download_as_bytes``, the path
before ``direct_reads``) and the default short way. Printed: CPU milliseconds per read, the best of
``--rounds``, and the ratio; both sources are first checked to read the same bytes. No assertion
on timings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_latency as latency


def cpu_per_read(read: Callable[[str], bytes], keys: list[str], rounds: int) -> float:
    """The best CPU seconds per read of ``keys`` (one after another) over ``rounds``."""
    read(keys[0])  # connect, untimed
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for key in keys:
            read(key)
        best = min(best, (time.process_time() - start) / len(keys))
    return best


def sources(backend: str, endpoint: str) -> tuple[Any, Any]:
    """(ordinary, short way) sources of the bench bucket on one client."""
    if backend == "s3":
        sys.path.insert(0, str(latency.ROOT / "tools"))
        from standins import s3_client

        from encord_ingest.sources import S3Source

        client = s3_client(endpoint)
        return S3Source(client, latency.BUCKET, direct_reads=False), S3Source(client, latency.BUCKET)
    from encord_ingest.sources import GCSSource

    client = latency.gcs_client(endpoint, 1)
    return GCSSource(client, latency.BUCKET, direct_reads=False), GCSSource(client, latency.BUCKET)


def bench(backend: str, reads: int, rounds: int) -> dict[str, float]:
    keys = [f"data/f{i // latency.PER_FOLDER:03d}/img_{i:06d}.jpg.json" for i in range(reads)]
    limit = latency.SIDECAR_LIMIT
    with latency.served(backend, reads, 0.0) as stack:
        ordinary, short = sources(backend, stack.endpoint)
        assert short.direct is not None, "the short way is not available"
        for key in keys[:50]:
            assert short.read_bytes(key, limit) == ordinary.read_bytes(key, limit), key
        before = cpu_per_read(lambda key: ordinary.read_bytes(key, limit), keys, rounds)
        after = cpu_per_read(lambda key: short.read_bytes(key, limit), keys, rounds)
    print(
        f"{backend:>3}: {reads} ranged sidecar reads, one after another, through the proxy (0 ms), "
        f"load {os.getloadavg()[0]:.1f}\n"
        f"  ordinary client call  {before * 1e3:6.3f} ms CPU per read\n"
        f"  direct_reads          {after * 1e3:6.3f} ms CPU per read   ({before / after:.2f}x less)",
        flush=True,
    )
    return {"ordinary_ms": before * 1e3, "direct_ms": after * 1e3, "ratio": before / after}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--backends", default="s3,gcs")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        bench(backend, args.reads, args.rounds)


if __name__ == "__main__":
    main()
