"""Plan 10,000 items with sidecars behind real-bucket latency; compare with listing the keys alone.

    .venv/bin/python bench/bench_latency.py [--items 10000] [--delays 0.02] [--backends s3,gcs]
        [--concurrency 8] [--serial-items 500] [--throughput 1,8,32] [--per-folder 500] [--json FILE]

A child process runs the stand-in (moto S3 or the GCS emulator), seeded with ``--items`` images,
each with a ``.json`` sidecar, in folders of 500 with a ``_defaults.yaml`` each; another runs the
latency proxy (``delay`` +- 25 % jitter per request) in front of it. The servers live in child
processes so that this process's CPU time is the planner's own. Here, per backend and delay:

1. listing alone: every key through the source (``iter_objects``), the floor a scan can reach;
2. scan: the first plan of the whole tree (empty ledger) with sidecars read ahead
   (``read_concurrency``) and listing pages prefetched, as ``pipeline.scan`` does;
3. serial vs read-ahead on one folder (``--serial-items``): the speed-up read-ahead gives;
4. the stand-in's own ceiling (``--throughput``): GETs per second of sidecars with N threads of
   bare client calls (boto3 ``get_object`` / ``download_as_bytes``, no code of ours), straight to
   the stand-in and through the proxy. The scan's sidecar rate is compared with them: a scan that
   reads as fast as bare calls do is limited by the stand-in, not by the planner.

Printed: wall and CPU seconds, and the ratio scan / listing alone (target <= 1.5). Timings are
printed, never asserted. The GCS emulator answers a listing in one page whatever the page size
(TESTING-NOTES.md), so its "listing alone" pays the latency once: a real bucket pays it per page.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "bench-latency"
PER_FOLDER = 500


def objects(items: int) -> Iterator[tuple[str, bytes]]:
    """The tree: ``data/fNNN/`` folders of ``PER_FOLDER`` images with sidecars and defaults."""
    for folder in range(-(-items // PER_FOLDER)):
        prefix = f"data/f{folder:03d}/"
        yield f"{prefix}_defaults.yaml", f"capture.camera: cam-{folder}\nreview.status: pending\n".encode()
        for index in range(folder * PER_FOLDER, min(items, (folder + 1) * PER_FOLDER)):
            yield f"{prefix}img_{index:06d}.jpg", b"\xff\xd8\xff\xe0 not a real jpeg"
            sidecar = {"capture.frame": index, "capture.site": "lab", "capture.time": "2026-11-20T10:00:00Z"}
            yield f"{prefix}img_{index:06d}.jpg.json", json.dumps(sidecar).encode()


# --- the child: a stand-in behind the proxy -------------------------------------------------------


def serve(backend: str, items: int) -> None:
    """Run ``backend`` seeded with the tree; print its endpoint; run until standard input closes."""
    sys.path.insert(0, str(ROOT / "tools"))
    from standins import gcs_emulator, moto_s3_server, seed_s3

    if backend == "s3":
        with moto_s3_server() as upstream:
            seed_s3(BUCKET, objects(items))
            print(json.dumps({"endpoint": upstream}), flush=True)
            sys.stdin.read()
    else:
        with gcs_emulator() as emulator:
            emulator.seed(BUCKET, objects(items))
            print(json.dumps({"endpoint": emulator.endpoint}), flush=True)
            sys.stdin.read()


@contextmanager
def child(command: list[str], what: str) -> Iterator[str]:
    """Run ``command`` until the block ends; yields the endpoint it prints as a JSON line."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{what} did not start")
        yield str(json.loads(line)["endpoint"])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=30)


@contextmanager
def served(backend: str, items: int, delay: float) -> Iterator[tuple[str, str]]:
    """The stand-in and the latency proxy, each in a process of its own (one GIL each); yields
    the proxy's endpoint and the stand-in's own."""
    stand_in = [sys.executable, __file__, "--serve", backend, "--items", str(items)]
    stand_in += ["--per-folder", str(PER_FOLDER)]
    with child(stand_in, f"the {backend} stand-in") as upstream:
        proxy = [sys.executable, str(ROOT / "tools" / "standins" / "latency.py")]
        proxy += ["--upstream", upstream, "--delay", str(delay)]
        with child(proxy, "the latency proxy") as endpoint:
            yield endpoint, upstream


# --- this process: the planner ----------------------------------------------------------------------


def source_for(backend: str, endpoint: str, concurrency: int) -> Any:
    if backend == "s3":
        sys.path.insert(0, str(ROOT / "tools"))
        from standins import s3_client

        from encord_ingest.sources import S3Source

        return S3Source(s3_client(endpoint, max_pool_connections=max(10, concurrency + 2)), BUCKET)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from encord_ingest.sources import GCSSource

    client = storage.Client(
        project="bench", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )
    return GCSSource(client, BUCKET)


def timed(action: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def plan(source: Any, prefix: str, concurrency: int) -> dict[str, Any]:
    """The first plan of ``prefix`` (one shard) with ``read_concurrency`` (1: serial reads)."""
    from encord_ingest.run_folder import RunFolder
    from encord_ingest.scan.config import PlanningConfig
    from encord_ingest.scan.scanner import ScanContext, scan_shard
    from encord_ingest.sources.sharding import plan_shards
    from encord_ingest.storage import BlobStore

    config = PlanningConfig(read_concurrency=concurrency)
    with tempfile.TemporaryDirectory() as work:
        (shard,) = plan_shards(source, [prefix], 1)
        return scan_shard(ScanContext(source, shard, config, RunFolder(BlobStore.from_uri(work)), "bench"))


def bare_get(backend: str, endpoint: str, threads: int) -> Callable[[str], int]:
    """A bare client call reading one object (no code of ours), with a pool for ``threads``."""
    if backend == "s3":
        sys.path.insert(0, str(ROOT / "tools"))
        from standins import s3_client

        client = s3_client(endpoint, max_pool_connections=max(10, threads + 2))
        return lambda key: len(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    gcs = storage.Client(
        project="bench", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )
    bucket = gcs.bucket(BUCKET)
    return lambda key: len(bucket.blob(key).download_as_bytes())


def get_rate(backend: str, endpoint: str, keys: list[str], threads: int) -> tuple[float, float]:
    """(GETs per second of wall time, CPU seconds of this process) for ``keys`` read by
    ``threads`` threads of bare calls."""
    get = bare_get(backend, endpoint, threads)
    get(keys[0])  # connect once, untimed
    with ThreadPoolExecutor(threads) as pool:
        _, wall, cpu = timed(lambda: sum(pool.map(get, keys)))
    return len(keys) / wall, cpu


def ceilings(backend: str, endpoint: str, upstream: str, items: int, threads: list[int]) -> dict[str, Any]:
    keys = [f"data/f{i // PER_FOLDER:03d}/img_{i:06d}.jpg.json" for i in range(min(items, 1000))]
    rates: dict[str, Any] = {}
    for n in threads:
        direct, direct_cpu = get_rate(backend, upstream, keys, n)
        proxied, proxied_cpu = get_rate(backend, endpoint, keys, n)
        rates[str(n)] = {
            "direct": direct,
            "direct_cpu": direct_cpu,
            "proxied": proxied,
            "proxied_cpu": proxied_cpu,
        }
        print(
            f"  bare GETs, {n:3d} threads: {direct:7.0f}/s straight to the stand-in "
            f"({direct_cpu / len(keys) * 1e3:.2f} ms CPU each here), {proxied:7.0f}/s through the proxy",
            flush=True,
        )
    return rates


def bench(
    backend: str, items: int, delay: float, concurrency: int, serial_items: int, *, threads: list[int]
) -> dict[str, Any]:
    with served(backend, items, delay) as (endpoint, upstream):
        source = source_for(backend, endpoint, concurrency)
        listed, list_wall, list_cpu = timed(lambda: sum(1 for _ in source.iter_objects("data/")))
        summary, scan_wall, scan_cpu = timed(lambda: plan(source, "data/", concurrency))
        assert summary["objects"] == listed, (summary["objects"], listed)
        folder = "data/f000/"
        serial_n = min(serial_items, PER_FOLDER, items)
        sub = _subset_source(source, serial_n)
        _, serial_wall, serial_cpu = timed(lambda: plan(sub, folder, 1))
        _, ahead_wall, ahead_cpu = timed(lambda: plan(sub, folder, concurrency))
        print(f"{backend} at {delay * 1000:.0f} ms/request: the stand-in's ceiling", flush=True)
        rates = ceilings(backend, endpoint, upstream, items, threads) if threads else {}
    result = {
        "backend": backend,
        "items": items,
        "objects": listed,
        "delay_ms": delay * 1000,
        "concurrency": concurrency,
        "list_wall": list_wall,
        "list_cpu": list_cpu,
        "scan_wall": scan_wall,
        "scan_cpu": scan_cpu,
        "ratio": scan_wall / list_wall,
        "counts": summary["counts"],
        "folder_items": serial_n,
        "serial_wall": serial_wall,
        "serial_cpu": serial_cpu,
        "ahead_wall": ahead_wall,
        "ahead_cpu": ahead_cpu,
        "sidecar_rate": items / scan_wall,
        "latency_floor": items * delay / concurrency,
        "bare_gets": rates,
    }
    report(result)
    return result


def _subset_source(source: Any, items: int) -> Any:
    """``source`` listing only its first ``1 + 2 * items`` objects: ``items`` images with their
    sidecars, and the folder defaults."""
    from encord_ingest.sources.base import ObjectInfo

    class Subset:
        def __init__(self) -> None:
            self.scheme, self.bucket = source.scheme, source.bucket

        def __getattr__(self, name: str) -> Any:
            return getattr(source, name)

        def iter_objects(self, prefix: str = "", *args: Any, **kwargs: Any) -> Iterator[ObjectInfo]:
            limit = 1 + 2 * items
            for count, info in enumerate(source.iter_objects(prefix, *args, **kwargs)):
                if count >= limit:
                    return
                yield info

    return Subset()


def report(r: dict[str, Any]) -> None:
    print(
        f"{r['backend']:>3} at {r['delay_ms']:4.0f} ms/request, {r['items']:,} items "
        f"({r['objects']:,} objects), read_concurrency {r['concurrency']}",
        flush=True,
    )
    print(f"  listing alone        {r['list_wall']:8.2f} s wall {r['list_cpu']:8.2f} s CPU")
    print(f"  scan (read-ahead)    {r['scan_wall']:8.2f} s wall {r['scan_cpu']:8.2f} s CPU")
    print(f"  outcomes             {r['counts']}")
    print(f"  ratio scan / listing {r['ratio']:8.2f}  (target <= 1.5)")
    print(
        f"  scan read {r['sidecar_rate']:.0f} sidecars/s; latency alone allows "
        f"{r['items'] / r['latency_floor']:.0f}/s at read_concurrency {r['concurrency']} "
        f"({r['latency_floor']:.2f} s for {r['items']:,}); the planner spent "
        f"{r['scan_cpu'] / r['objects'] * 1e3:.2f} ms CPU per object"
    )
    print(
        f"  one folder, {r['folder_items']} items: serial {r['serial_wall']:.2f} s wall "
        f"({r['serial_cpu']:.2f} s CPU), read-ahead {r['ahead_wall']:.2f} s wall "
        f"({r['ahead_cpu']:.2f} s CPU): "
        f"{r['serial_wall'] / r['ahead_wall']:.1f}x faster",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    global PER_FOLDER  # noqa: PLW0603 (the tree's layout, set once before anything runs)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--delays", default="0.02", help="seconds per request, comma-separated")
    parser.add_argument("--backends", default="s3,gcs")
    parser.add_argument("--concurrency", default="8", help="read_concurrency, comma-separated")
    parser.add_argument("--serial-items", type=int, default=200, help="items of the serial comparison")
    parser.add_argument(
        "--throughput", default="1,8,32", help="threads of bare GETs for the stand-in's ceiling ('' : skip)"
    )
    parser.add_argument("--per-folder", type=int, default=500, help="images per folder (small: many folders)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--serve", choices=["s3", "gcs"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    PER_FOLDER = args.per_folder
    delays = [float(d) for d in args.delays.split(",")]
    threads = [int(n) for n in args.throughput.split(",") if n.strip()]
    if args.serve:
        serve(args.serve, args.items)
        return
    results = [
        bench(backend, args.items, delay, int(concurrency), args.serial_items, threads=threads)
        for backend in args.backends.split(",")
        for delay in delays
        for concurrency in args.concurrency.split(",")
    ]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
