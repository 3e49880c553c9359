"""List the same keys through our S3 source and through a bare boto3 paginator, same server, same run.

    .venv/bin/python bench/bench_listing.py [--keys 20000] [--repeat 2] [--local 0]

Starts moto's S3 in server mode on 127.0.0.1 (real HTTP), seeds ``--keys`` keys through moto's
in-process backend, then lists the bucket alternately with a plain ``list_objects_v2`` paginator
(the baseline) and with :class:`encord_ingest.sources.S3Source`, and prints keys/s for both and
their ratio (best of ``--repeat``). ``--local N`` also writes N files to a temporary directory and
compares :class:`LocalSource` with ``os.walk`` + ``os.stat`` (the files are unsorted there).
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "bench-listing"


def best_of(repeat: int, runs: dict[str, Callable[[], int]]) -> dict[str, tuple[float, int]]:
    """Run each listing ``repeat`` times, interleaved; the fastest time and the count of each."""
    best: dict[str, tuple[float, int]] = {}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            count = run()
            elapsed = time.perf_counter() - start
            if name not in best or elapsed < best[name][0]:
                best[name] = (elapsed, count)
    return best


def report(title: str, results: dict[str, tuple[float, int]], baseline: str, ours: str) -> None:
    print(title)
    for name, (elapsed, count) in results.items():
        print(f"  {name:<24} {count / elapsed:>12,.0f} keys/s  ({count:,} keys in {elapsed:.2f} s)")
    ratio = (results[ours][1] / results[ours][0]) / (results[baseline][1] / results[baseline][0])
    print(f"  ratio {ours} / {baseline}: {ratio:.2f}")


def key_of(index: int) -> str:
    day, cam, frame = index // 4000, (index // 1000) % 4, index % 1000
    return f"raw/2024/01/{day + 1:02d}/cam{cam}/frame_{frame:04d}.jpg"


def bench_s3(keys: int, repeat: int) -> None:
    from standins import moto_s3_server, s3_client, seed_s3

    from encord_ingest.sources import S3Source

    with moto_s3_server() as endpoint:
        seed_s3(BUCKET, ((key_of(i), b"") for i in range(keys)))
        client = s3_client(endpoint)
        source = S3Source(client, BUCKET)

        def paginator() -> int:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=BUCKET, PaginationConfig={"PageSize": 1000}
            )
            return sum(len(page.get("Contents", ())) for page in pages)

        def ours() -> int:
            return sum(1 for _ in source.iter_objects())

        results = best_of(repeat, {"boto3 paginator": paginator, "S3Source.iter_objects": ours})
        report(
            f"S3 listing, {keys:,} keys, moto server at {endpoint} (best of {repeat})",
            results,
            "boto3 paginator",
            "S3Source.iter_objects",
        )


def bench_local(files: int, repeat: int) -> None:
    from encord_ingest.sources import LocalSource

    with tempfile.TemporaryDirectory() as root:
        for index in range(files):
            path = os.path.join(root, *key_of(index).split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb"):
                pass
        source = LocalSource(root)

        def walk() -> int:
            count = 0
            for folder, _dirs, names in os.walk(root):
                for name in names:
                    os.stat(os.path.join(folder, name))
                    count += 1
            return count

        def ours() -> int:
            return sum(1 for _ in source.iter_objects())

        results = best_of(repeat, {"os.walk + os.stat": walk, "LocalSource.iter_objects": ours})
        report(
            f"Local listing, {files:,} files (best of {repeat})",
            results,
            "os.walk + os.stat",
            "LocalSource.iter_objects",
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=20_000, help="keys to list from moto S3")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each listing (best is kept)")
    parser.add_argument("--local", type=int, default=0, help="also list this many local files")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tools"))
    bench_s3(args.keys, args.repeat)
    if args.local:
        bench_local(args.local, args.repeat)


if __name__ == "__main__":
    main()
