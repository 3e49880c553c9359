"""Memory of a ``sync_metadata`` task's UUID lookups on a big first run: the run's register results
held whole (the baseline: what the task did before) against the spilled ``ResultIndex`` looked up
per change chunk (what it does now).

    .venv/bin/python bench/bench_sync_lookup.py [--urls 495000] [--files 50] [--chunk 10000]

Writes ``--files`` register result files holding ``--urls`` object URLs (one UUID each, as the
register task writes them), then runs each way in a fresh process (as Airflow runs a task) over
the same files: read every result, then find the UUIDs of one change chunk (``--chunk`` URLs).
Printed: wall and CPU seconds and each process's own peak RSS (VmHWM), and the ratio. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include")]


def _url(index: int) -> str:
    return f"s3://bench-bucket/raw/f{index // 500:05d}/img_{index:07d}.jpg"


def write_results(folder: Path, urls: int, files: int) -> list[str]:
    """``files`` register result files of ``urls`` URLs in key order; their paths."""
    from encord_ingest.results import RegisterCounts, RegisterReport, UrlResult

    per_file = -(-urls // files)
    paths = []
    for number, start in enumerate(range(0, urls, per_file)):
        results = {
            _url(i): UrlResult(item_uuid=str(uuid.uuid4())) for i in range(start, min(urls, start + per_file))
        }
        report = RegisterReport(
            chunk_uri=f"c{number}.json",
            job_uuid="job",
            status="DONE",
            counts=RegisterCounts(),
            results=results,
        )
        path = folder / f"c{number:04d}.register.json"
        path.write_bytes(report.to_bytes())
        paths.append(str(path))
    return paths


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _whole(paths: list[str], chunk: list[str]) -> int:
    """The baseline: every report parsed and kept, then one dict of every URL's UUID."""
    from encord_ingest.results import RegisterReport

    reports = [RegisterReport.from_bytes(Path(path).read_bytes()) for path in paths]
    known = {url: r.item_uuid for report in reports for url, r in report.results.items() if r.item_uuid}
    return sum(1 for url in chunk if url in known)


def _spilled(paths: list[str], chunk: list[str]) -> int:
    """Now: one report at a time into a ResultIndex, then one chunk's lookup."""
    from encord_ingest.results import RegisterReport, ResultIndex

    with tempfile.TemporaryDirectory() as spill:
        index = ResultIndex(spill)
        for path in paths:
            report = RegisterReport.from_bytes(Path(path).read_bytes())
            index.add((url, item_uuid, None) for url, item_uuid, _ in report.url_results() if item_uuid)
            del report
        found = index.lookup(chunk)["item_uuid"]
        return sum(1 for value in found if value)


def _phase(name: str, paths: list[str], chunk: list[str], out: multiprocessing.Queue) -> None:
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import encord_ingest.results  # noqa: F401  imports are not the phase's work

    Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here (the child starts at the parent's)
    wall, cpu = time.perf_counter(), time.process_time()
    found = {"whole": _whole, "spilled": _spilled}[name](paths, chunk)
    out.put((found, time.perf_counter() - wall, time.process_time() - cpu, _peak_mib()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=495_000)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--chunk", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as folder:
        paths = write_results(Path(folder), args.urls, args.files)
        middle = args.urls // 2
        chunk = [_url(i) for i in range(middle, min(args.urls, middle + args.chunk))]
        context = multiprocessing.get_context("spawn")
        figures = {}
        for name in ("whole", "spilled"):
            queue = context.Queue()
            process = context.Process(target=_phase, args=(name, paths, chunk, queue))
            process.start()
            found, wall, cpu, peak = queue.get()
            process.join()
            figures[name] = (wall, cpu, peak)
            print(
                f"{name:8} {args.urls:,} URLs in {len(paths)} files, chunk of {len(chunk):,}: "
                f"found {found:,}; {wall:6.2f} s wall {cpu:6.2f} s CPU  peak RSS {peak:7.1f} MiB"
            )
        print(
            f"spilled / whole: peak RSS {figures['spilled'][2] / figures['whole'][2]:.2f}, "
            f"CPU {figures['spilled'][1] / figures['whole'][1]:.2f}"
        )


if __name__ == "__main__":
    main()
