"""Plan 10,000 items with sidecars behind real-bucket latency; compare with listing the keys alone.

    .venv/bin/python bench/bench_latency.py [--items 10000] [--delays 0.02] [--backends s3,gcs]
        [--concurrency 32] [--serial-items 200] [--throughput 32] [--per-folder 500] [--json FILE]
        [--direct-reads on|off]

A child process runs the stand-in (moto S3 or the GCS emulator), seeded with ``--items`` images,
each with a ``.json`` sidecar, in folders of 500 with a ``_defaults.yaml`` each; another runs the
latency proxy (``delay`` +- 25 % jitter per request) in front of it. The servers live in child
processes so that this process's CPU time is the planner's own; theirs is read from ``/proc`` and
printed too. Here, per backend and delay:

1. listing alone: every key of the scan's shard through the scan's own listing path
   (``plan_shards`` + ``iter_shard``: bounds, page prefetch), the floor a scan can reach;
2. scan: the first plan of the whole tree (empty ledger) with sidecars read ahead
   (``read_concurrency``) and listing pages prefetched, as ``pipeline.scan`` does;
3. serial vs read-ahead on one folder (``--serial-items``): the speed-up read-ahead gives;
4. the stand-in's own ceiling (``--throughput``): GETs per second of sidecars with N threads of
   bare client calls (boto3 ``get_object`` / ``download_as_bytes``, no code of ours), straight to
   the stand-in and through the proxy, with the CPU each process spends per GET. The scan's
   sidecar rate is compared with them: a scan that reads as fast as bare calls do is limited by
   the stand-in, not by the planner. The source's own ranged reads (``read_bytes``, the short way
   unless ``--direct-reads off``: ``bucket.direct_reads``) are measured the same way, through the
   proxy: their client CPU per read is what the scan pays per sidecar.

Printed: wall and CPU seconds (this process, the stand-in, the proxy), the machine's load, and
the ratio scan / listing alone (target <= 1.5), with the two floors this machine sets for the
scan: the planner's own CPU (one process, one GIL) and the CPU of all three processes spread over
every core. Timings are printed, never asserted. Both stand-ins page their listings like the real
services (1000 keys a page; the GCS emulator is made to page, ``tools/standins/gcs.py``), so a
listing pays the latency once per page, as on a real bucket.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
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
def child(command: list[str], what: str) -> Iterator[tuple[str, int]]:
    """Run ``command`` until the block ends; yields the endpoint it prints as a JSON line, and
    its process id."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{what} did not start")
        yield str(json.loads(line)["endpoint"]), process.pid
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=30)


@dataclass
class Served:
    """The running stand-in and proxy: endpoints, and process ids for their CPU time."""

    endpoint: str
    """The proxy's (every request delayed)."""
    upstream: str
    """The stand-in's own."""
    pids: dict[str, int] = field(default_factory=dict)


@contextmanager
def served(backend: str, items: int, delay: float) -> Iterator[Served]:
    """The stand-in and the latency proxy, each in a process of its own (one GIL each)."""
    stand_in = [sys.executable, __file__, "--serve", backend, "--items", str(items)]
    stand_in += ["--per-folder", str(PER_FOLDER)]
    with child(stand_in, f"the {backend} stand-in") as (upstream, stand_in_pid):
        proxy = [sys.executable, str(ROOT / "tools" / "standins" / "latency.py")]
        proxy += ["--upstream", upstream, "--delay", str(delay)]
        with child(proxy, "the latency proxy") as (endpoint, proxy_pid):
            yield Served(endpoint, upstream, {"stand-in": stand_in_pid, "proxy": proxy_pid})


# --- this process: the planner ----------------------------------------------------------------------


DIRECT_READS = True
"""``bucket.direct_reads`` of the sources measured (``--direct-reads``)."""
SIDECAR_LIMIT = 4 * 1024 * 1024 + 1
"""The ranged read of a sidecar (``max_sidecar_bytes`` + 1), as the scan reads it."""


def source_for(backend: str, endpoint: str, concurrency: int) -> Any:
    if backend == "s3":
        sys.path.insert(0, str(ROOT / "tools"))
        from standins import s3_client

        from encord_ingest.sources import S3Source

        client = s3_client(endpoint, max_pool_connections=max(10, concurrency + 2))
        return S3Source(client, BUCKET, direct_reads=DIRECT_READS)
    from encord_ingest.sources import GCSSource

    return GCSSource(gcs_client(endpoint, concurrency), BUCKET, direct_reads=DIRECT_READS)


def gcs_client(endpoint: str, threads: int) -> Any:
    """A storage client for the emulator with a pool for ``threads`` (as the provider builds it)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from encord_ingest.sources.gcs import pool_for_read_ahead

    client = storage.Client(
        project="bench", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )
    return pool_for_read_ahead(client, max(10, threads + 2))


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Timing:
    """One measured phase: wall time, CPU seconds of this process and of each child, the load."""

    wall: float
    cpu: float
    children: dict[str, float]
    load: float
    """The 1-minute load average at the end of the phase."""

    @property
    def machine_cpu(self) -> float:
        return self.cpu + sum(self.children.values())

    def floor(self) -> float:
        """The shortest wall time this machine allows for the phase's work: the busiest single
        process's CPU (one GIL each), or all their CPU spread over every core."""
        return max(self.cpu, *self.children.values(), self.machine_cpu / (os.cpu_count() or 1))

    def line(self, what: str) -> str:
        children = "  ".join(f"{name} {cpu:6.2f}" for name, cpu in self.children.items())
        return (
            f"  {what:<20} {self.wall:7.2f} s wall; CPU s: planner {self.cpu:6.2f}  {children}"
            f"  (load {self.load:.1f})"
        )


def timed(action: Callable[[], Any], pids: dict[str, int] | None = None) -> tuple[Any, Timing]:
    pids = pids or {}
    before = {name: process_cpu(pid) for name, pid in pids.items()}
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    children = {name: process_cpu(pid) - before[name] for name, pid in pids.items()}
    return result, Timing(wall, cpu, children, os.getloadavg()[0])


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


def list_alone(source: Any, prefix: str) -> int:
    """How many objects the scan of ``prefix`` lists, listed the scan's way and nothing else."""
    from encord_ingest.sources.sharding import iter_shard, plan_shards

    (shard,) = plan_shards(source, [prefix], 1)
    return sum(1 for _ in iter_shard(source, shard))


def bare_get(backend: str, endpoint: str, threads: int, *, ours: bool = False) -> Callable[[str], int]:
    """A bare client call reading one object (no code of ours), with a pool for ``threads``;
    ``ours``: the source's own ranged read instead."""
    if ours:
        source = source_for(backend, endpoint, threads)
        return lambda key: len(source.read_bytes(key, SIDECAR_LIMIT))
    if backend == "s3":
        sys.path.insert(0, str(ROOT / "tools"))
        from standins import s3_client

        client = s3_client(endpoint, max_pool_connections=max(10, threads + 2))
        return lambda key: len(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    bucket = gcs_client(endpoint, threads).bucket(BUCKET)
    return lambda key: len(bucket.blob(key).download_as_bytes())


def get_rate(
    backend: str, endpoint: str, keys: list[str], threads: int, pids: dict[str, int], *, ours: bool = False
) -> tuple[float, Timing]:
    """GETs per second of wall time for ``keys`` read by ``threads`` threads of bare calls (or of
    the source's reads: ``ours``), and the phase's timing (CPU of this process and of ``pids``)."""
    get = bare_get(backend, endpoint, threads, ours=ours)
    get(keys[0])  # connect once, untimed
    with ThreadPoolExecutor(threads) as pool:
        _, timing = timed(lambda: sum(pool.map(get, keys)), pids)
    return len(keys) / timing.wall, timing


def per_get(timing: Timing, gets: int) -> str:
    """CPU milliseconds per GET of each process of a bare-GET phase."""
    parts = [f"client {timing.cpu / gets * 1e3:.2f}"]
    parts += [f"{name} {cpu / gets * 1e3:.2f}" for name, cpu in timing.children.items()]
    return ", ".join(parts) + f" = {timing.machine_cpu / gets * 1e3:.2f} ms CPU per GET"


def ceilings(backend: str, stack: Served, items: int, threads: list[int]) -> dict[str, Any]:
    keys = [f"data/f{i // PER_FOLDER:03d}/img_{i:06d}.jpg.json" for i in range(min(items, 2000))]
    stand_in = {"stand-in": stack.pids["stand-in"]}
    rates: dict[str, Any] = {}
    for n in threads:
        direct, direct_t = get_rate(backend, stack.upstream, keys, n, stand_in)
        proxied, proxied_t = get_rate(backend, stack.endpoint, keys, n, stack.pids)
        ours, ours_t = get_rate(backend, stack.endpoint, keys, n, stack.pids, ours=True)
        rates[str(n)] = {
            "ours": ours,
            "ours_cpu_per_get": {"client": ours_t.cpu / len(keys), **_per(ours_t, len(keys))},
            "direct": direct,
            "direct_cpu_per_get": {"client": direct_t.cpu / len(keys), **_per(direct_t, len(keys))},
            "proxied": proxied,
            "proxied_cpu_per_get": {"client": proxied_t.cpu / len(keys), **_per(proxied_t, len(keys))},
            "proxied_machine_cpu_per_get": proxied_t.machine_cpu / len(keys),
        }
        print(
            f"  bare GETs, {n:3d} threads, {len(keys)} sidecars: {direct:5.0f}/s straight to the stand-in "
            f"({per_get(direct_t, len(keys))}, load {direct_t.load:.1f})",
            flush=True,
        )
        print(
            f"  {'':31} {proxied:5.0f}/s through the proxy ({per_get(proxied_t, len(keys))}, "
            f"load {proxied_t.load:.1f})",
            flush=True,
        )
        way = "the short way" if DIRECT_READS else "direct_reads off"
        print(
            f"  {'source.read_bytes (' + way + ')':>31} {ours:5.0f}/s through the proxy "
            f"({per_get(ours_t, len(keys))}, load {ours_t.load:.1f})",
            flush=True,
        )
    return rates


def _per(timing: Timing, gets: int) -> dict[str, float]:
    return {name: cpu / gets for name, cpu in timing.children.items()}


def bench(
    backend: str, items: int, delay: float, concurrency: int, serial_items: int, *, threads: list[int]
) -> dict[str, Any]:
    with served(backend, items, delay) as stack:
        source = source_for(backend, stack.endpoint, concurrency)
        list_alone(source, "data/")  # warm: imports, connections, the stand-in's caches
        listed, listing = timed(lambda: list_alone(source, "data/"), stack.pids)
        summary, scan = timed(lambda: plan(source, "data/", concurrency), stack.pids)
        assert summary["objects"] == listed, (summary["objects"], listed)
        folder = "data/f000/"
        serial_n = min(serial_items, PER_FOLDER, items)
        sub = _subset_source(source, serial_n)
        _, serial = timed(lambda: plan(sub, folder, 1))
        _, ahead = timed(lambda: plan(sub, folder, concurrency))
        print(f"{backend} at {delay * 1000:.0f} ms/request: the stand-in's ceiling", flush=True)
        rates = ceilings(backend, stack, items, threads) if threads else {}
    result = {
        "backend": backend,
        "items": items,
        "objects": listed,
        "delay_ms": delay * 1000,
        "concurrency": concurrency,
        "cores": os.cpu_count(),
        "listing": vars(listing),
        "scan": vars(scan),
        "list_wall": listing.wall,
        "list_cpu": listing.cpu,
        "scan_wall": scan.wall,
        "scan_cpu": scan.cpu,
        "ratio": scan.wall / listing.wall,
        "scan_floor": scan.floor(),
        "ratio_floor": scan.floor() / listing.wall,
        "counts": summary["counts"],
        "folder_items": serial_n,
        "serial_wall": serial.wall,
        "serial_cpu": serial.cpu,
        "ahead_wall": ahead.wall,
        "ahead_cpu": ahead.cpu,
        "sidecar_rate": items / scan.wall,
        "latency_floor": items * delay / concurrency,
        "bare_gets": rates,
        "direct_reads": DIRECT_READS,
    }
    report(result, listing, scan)
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


def report(r: dict[str, Any], listing: Timing, scan: Timing) -> None:
    print(
        f"{r['backend']:>3} at {r['delay_ms']:4.0f} ms/request, {r['items']:,} items "
        f"({r['objects']:,} objects), read_concurrency {r['concurrency']}, {r['cores']} cores",
        flush=True,
    )
    print(listing.line("listing alone"))
    print(scan.line("scan (read-ahead)"))
    print(f"  outcomes             {r['counts']}")
    print(f"  ratio scan / listing {r['ratio']:8.2f}  (target <= 1.5)")
    print(
        f"  this machine's floor for the scan: {r['scan_floor']:.2f} s (the busiest process's CPU, "
        f"or all {scan.machine_cpu:.2f} s of CPU over {r['cores']} cores): ratio >= {r['ratio_floor']:.2f} "
        f"whatever the concurrency"
    )
    allowed = f"{r['items'] / r['latency_floor']:.0f}/s" if r["latency_floor"] else "any rate"
    print(
        f"  scan read {r['sidecar_rate']:.0f} sidecars/s; latency alone allows "
        f"{allowed} at read_concurrency {r['concurrency']} "
        f"({r['latency_floor']:.2f} s for {r['items']:,}); the planner spent "
        f"{scan.cpu / r['objects'] * 1e3:.2f} ms CPU per object, all processes "
        f"{scan.machine_cpu / r['items'] * 1e3:.2f} ms per item"
    )
    bare = r["bare_gets"].get(str(r["concurrency"]))
    if bare:
        alone = r["items"] / bare["proxied"]
        print(
            f"  bare GETs at {r['concurrency']} threads through the proxy: {bare['proxied']:.0f}/s, so "
            f"{r['items']:,} sidecars read by a client that plans nothing take {alone:.2f} s: "
            f"{alone / r['list_wall']:.2f}x the listing (the stand-in's ceiling)"
        )
        client = bare["proxied_cpu_per_get"]["client"] * r["items"]
        print(
            f"  the client library's own CPU for {r['items']:,} bare GETs: {client:.2f} s in the planner's "
            f"process (one GIL, whatever the bucket): {client / r['list_wall']:.2f}x the listing before "
            f"any planning"
        )
        ours = bare["ours_cpu_per_get"]["client"] * r["items"]
        print(
            f"  the source's own ranged reads ({'direct_reads' if DIRECT_READS else 'direct_reads off'}): "
            f"{ours:.2f} s of client CPU for {r['items']:,}: {ours / r['list_wall']:.2f}x the listing"
        )
    print(
        f"  one folder, {r['folder_items']} items: serial {r['serial_wall']:.2f} s wall "
        f"({r['serial_cpu']:.2f} s CPU), read-ahead {r['ahead_wall']:.2f} s wall "
        f"({r['ahead_cpu']:.2f} s CPU): "
        f"{r['serial_wall'] / r['ahead_wall']:.1f}x faster",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    global PER_FOLDER, DIRECT_READS  # noqa: PLW0603 (set once before anything runs)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--delays", default="0.02", help="seconds per request, comma-separated")
    parser.add_argument("--backends", default="s3,gcs")
    parser.add_argument("--concurrency", default="32", help="read_concurrency, comma-separated")
    parser.add_argument("--serial-items", type=int, default=200, help="items of the serial comparison")
    parser.add_argument(
        "--throughput", default="32", help="threads of bare GETs for the stand-in's ceiling ('' : skip)"
    )
    parser.add_argument("--per-folder", type=int, default=500, help="images per folder (small: many folders)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--direct-reads", choices=["on", "off"], default="on", help="the sources' bucket.direct_reads"
    )
    parser.add_argument("--serve", choices=["s3", "gcs"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    PER_FOLDER = args.per_folder
    DIRECT_READS = args.direct_reads == "on"
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
