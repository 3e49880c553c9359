"""Plan a local-directory source of 200,000 objects with sidecars; print objects/s and peak RSS.

The tree (generated in a temporary directory) is ``day/cam-NNNN/`` folders, each holding
``img_N.jpg`` files with a ``img_N.jpg.json`` sidecar, a ``_defaults.yaml`` and a
``metadata.csv`` with one row per image. Phases, all in this process (with ``--isolate``: each
plan, commit and commit_and_report in a fresh process of its own, as Airflow runs tasks), after an
untimed warm-up plan of one folder (lazy imports are not planning work):

1. baseline: ``os.walk`` over the tree plus ``json.loads`` of every sidecar (the least any
   planner must do);
2. first plan (empty ledger: everything is new; manifests, metadata changes, outcomes written);
3. ledger commit (``commit_run``, range by range); with ``--register``: instead, the Encord
   steps' result files of run 1 are written as the register and sync tasks write them (every new
   item registered with a made-up UUID, its metadata unchanged), untimed in memory terms, then
   ``commit_and_report (run 1)`` (``pipeline.finish_run``: the commit with every item's UUID,
   ``final_outcomes.parquet`` and the report);
4. second plan (nothing changed: the ledger lets the planner skip reading sidecars);
5. ``commit_and_report`` of the second run (``pipeline.finish_run``: ledger check, commit,
   ``final_outcomes.parquet`` and the report, chunk by chunk);
6. third plan after rewriting one sidecar per folder (only those items are re-read).

Usage: ``python bench/bench_planning.py [--objects 200000] [--per-folder 200] [--shards N]
[--json FILE] [--profile DIR] [--isolate] [--skip-plan-3] [--register]`` (shards default to one per 100,000
objects: a shard is the unit of memory). ``--profile DIR`` writes a cProfile file per plan
(``plan-1.prof`` ...; read with ``python -m pstats``); CPU times include the profiler's overhead.
Wall and CPU time are printed (ratios use CPU time: the machine is shared), never asserted.
"phase peak" is the high-water mark of the phase alone (Linux: ``VmHWM``, reset through
``/proc/self/clear_refs`` before each phase), "peak so far" the highest of those (or
``ru_maxrss`` where there is no ``VmHWM``); "now" is the RSS after it. With ``--isolate`` the
phase peak is the child's ``ru_maxrss`` and "imports" its RSS after importing pandas, pyarrow and
the pipeline (``--profile`` applies to the single-process mode only).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from encord_ingest.config import SourceConfig
from encord_ingest.ledger import commit_run
from encord_ingest.pipeline import RunOptions, finish_run, ledger_of, registration_chunks
from encord_ingest.run_folder import RunFolder
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.scanner import ScanContext, scan_shard
from encord_ingest.schema import parse_schema
from encord_ingest.sources.local import LocalSource
from encord_ingest.sources.sharding import plan_shards
from encord_ingest.storage import BlobStore

SCHEMA = {
    "keys": {
        "capture.site": "varchar",
        "capture.camera": "varchar",
        "capture.frame": "number",
        "capture.time": "datetime",
        "review.status": {"type": "enum", "values": ["pending", "approved"]},
        "quality.score": "number",
    }
}


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """The resident set size now, in MiB (Linux ``/proc``; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def generate(root: Path, objects: int, per_folder: int) -> int:
    """Write the tree; returns the number of objects written (a multiple of ``per_folder``).

    Images and sidecars are hard links to one template per image index (the same index has the
    same sidecar in every folder), so a million objects take seconds, not minutes."""
    images = (per_folder - 2) // 2
    folders = max(objects // per_folder, 1)
    template = root.parent / "template"
    template.mkdir(parents=True)
    for image in range(images):
        name = f"img_{image}.jpg"
        (template / name).write_bytes(b"\xff\xd8\xff\xe0 not a real jpeg")
        sidecar = {"capture.frame": image, "capture.time": "2026-11-20T10:00:00Z", "capture.site": "lab"}
        (template / f"{name}.json").write_text(json.dumps(sidecar))
    table = "file,quality.score\n" + "".join(f"img_{image}.jpg,{image % 10}\n" for image in range(images))
    names = [f"img_{image}.jpg{suffix}" for image in range(images) for suffix in ("", ".json")]
    for folder_index in range(folders):
        folder = root / "day" / f"cam-{folder_index:04d}"
        folder.mkdir(parents=True)
        (folder / "_defaults.yaml").write_text(
            f"capture.camera: cam-{folder_index:04d}\nreview.status: pending\n"
        )
        for name in names:
            os.link(template / name, folder / name)
        (folder / "metadata.csv").write_text(table)
    return folders * (2 + 2 * images)


def rewrite(path: Path, text: str) -> None:
    """Replace a (hard-linked) file with new content without touching its other links."""
    fresh = path.with_name(path.name + ".tmp-rewrite")
    fresh.write_text(text)
    os.replace(fresh, path)


def baseline(root: Path) -> int:
    """os.walk + json.loads of every .json sidecar; returns the number of files seen."""
    seen = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            seen += 1
            if name.endswith(".json"):
                with open(os.path.join(folder, name), "rb") as handle:
                    json.loads(handle.read())
    return seen


FIGURES: dict[str, dict[str, float]] = {}
PROFILE_DIR: list[Path] = []
"""``--profile``: where each plan's cProfile file goes."""
PEAK = [0.0]
"""The highest phase peak so far (resetting ``VmHWM`` resets ``ru_maxrss`` too on Linux)."""


def reset_phase_peak() -> None:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0; a no-op elsewhere)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def phase_peak_mb() -> float:
    """``VmHWM``: the peak RSS since :func:`reset_phase_peak`, in MiB (0 where unknown)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(label: str, action: Callable[[], Any]) -> tuple[Any, float]:
    reset_phase_peak()
    profiler = cProfile.Profile() if PROFILE_DIR and label.startswith("plan ") else None
    start, cpu = time.perf_counter(), time.process_time()
    result = action() if profiler is None else profiler.runcall(action)
    if profiler is not None:
        profiler.dump_stats(PROFILE_DIR[0] / f"plan-{label.split()[1]}.prof")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    phase = phase_peak_mb()
    PEAK[0] = max(PEAK[0], phase, peak_rss_mb())
    print(
        f"{label:<34} {elapsed:8.2f} s wall {cpu:8.2f} s CPU   phase peak {phase:7.1f} MiB   "
        f"peak so far {PEAK[0]:7.1f} MiB   now {current_rss_mb():7.1f} MiB",
        flush=True,
    )
    FIGURES[label] = {"wall": elapsed, "cpu": cpu, "peak_rss_mb": PEAK[0], "phase_peak_mb": phase}
    return result, cpu


def plan_run(
    source: LocalSource, store: BlobStore, run_id: str, *, shards: int, config: PlanningConfig
) -> list[dict[str, Any]]:
    """One run's shards, each with its own ledger reader (as each scan task has)."""
    schema = parse_schema(SCHEMA, file="bench-schema")
    run_store = store.child(f"runs/{run_id}")
    return [
        scan_shard(
            ScanContext(
                source, shard, config, RunFolder(run_store), run_id, schema=schema, ledger=ledger_of(store)
            )
        )
        for shard in plan_shards(source, ["day/"], shards)
    ]


def bench_config(data: Path, store: BlobStore) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "bench",
            "bucket": {"uri": data.as_uri()},
            "state_uri": store.uri(),
            "encord": {"integration": "bench", "folder": "bench"},
        }
    )


def commit_and_report(data: Path, store: BlobStore, run_id: str, summaries: list[dict[str, Any]]) -> str:
    """``pipeline.finish_run`` as the ``commit_and_report`` task runs it (with the Encord steps'
    result files the run folder holds, if any)."""
    config = bench_config(data, store)
    result = finish_run(config, store, RunOptions(run_id=run_id, prefixes=["day/"]), summaries)
    return f"{result.objects} objects, counts {result.counts}, ledger {result.ledger}"


def warm_up(work: Path, per_folder: int) -> None:
    """Plan one folder twice, untimed: imports done lazily by a plan (pandas, pyarrow, ...) are
    not planning work, and with ``PYTHONDONTWRITEBYTECODE`` they would compile on every run."""
    generate(work / "bucket", per_folder, per_folder)
    source, store = LocalSource(work / "bucket"), BlobStore.from_uri(str(work / "state"))
    summaries = plan_run(source, store, "w1", shards=1, config=PlanningConfig())
    commit_run(ledger_of(store), "w1", RunFolder(store.child("runs/w1")).outcomes(summaries))
    plan_run(source, store, "w2", shards=1, config=PlanningConfig())


def report(label: str, summaries: list[dict[str, Any]], seconds: float, baseline_seconds: float) -> None:
    objects = sum(s["objects"] for s in summaries)
    counts: dict[str, int] = {}
    for summary in summaries:
        for outcome, count in summary["counts"].items():
            counts[outcome] = counts.get(outcome, 0) + count
    rate = objects / seconds if seconds else float("inf")
    print(
        f"  {label}: {objects} objects, {rate:,.0f} objects/s of CPU, "
        f"{seconds / baseline_seconds:.1f}x the baseline CPU time; outcomes {counts}"
    )


def plan_phase(work: Path, run_id: str, shards: int) -> list[dict[str, Any]]:
    store = BlobStore.from_uri(str(work / "state"))
    return plan_run(LocalSource(work / "bucket"), store, run_id, shards=shards, config=PlanningConfig())


def commit_phase(work: Path, run_id: str, summaries: list[dict[str, Any]]) -> None:
    store = BlobStore.from_uri(str(work / "state"))
    commit_run(ledger_of(store), run_id, RunFolder(store.child(f"runs/{run_id}")).outcomes(summaries))


def register_phase(work: Path, run_id: str, summaries: list[dict[str, Any]]) -> str:
    """Write what the Encord steps of run ``run_id`` would: ``registration.json`` (the combined
    chunks), one ``.register.json`` per chunk built by the register operator's own
    ``build_report`` from a DONE job that created every item (made-up UUIDs), and one ``.sync.json``
    per metadata chunk as the sync step writes it (each new item already holds its metadata)."""
    import uuid

    from encord_ingest.manifest import Manifest
    from encord_ingest.run_folder import REGISTER_SUFFIX, SYNC_SUFFIX, chunk_uris, result_uri
    from encord_ingest.sync import SyncCounts, SyncMode, SyncReport, plan_item, read_changes, write_result
    from encord_provider.registration import JobOutcome, build_report

    store = BlobStore.from_uri(str(work / "state"))
    config = bench_config(work / "bucket", store)
    folder = RunFolder.of(store, run_id)
    chunks = registration_chunks(config, store, RunOptions(run_id=run_id, prefixes=["day/"]), summaries)
    uuids: dict[str, str] = {}
    for number, chunk in enumerate(chunks):
        manifest = Manifest.from_bytes(folder.read(chunk), source=chunk)
        created = [(str(uuid.uuid4()), str(item.title)) for item in manifest.items]
        outcome = JobOutcome(status="DONE", items_with_names=created, units_done=len(created))
        job = f"00000000-0000-0000-0000-{number:012d}"
        report = build_report(manifest, outcome, chunk_uri=chunk, job_uuid=job)
        folder.store.write_bytes(folder.key(result_uri(chunk, REGISTER_SUFFIX)), report.to_bytes())
        uuids.update((url, str(result.item_uuid)) for url, result in report.results.items())
    for chunk in chunk_uris(summaries, "metadata"):
        changes = read_changes(folder.read(chunk), source=chunk)
        plans = [plan_item(c, uuids[c.object_url], c.metadata, SyncMode.MERGE) for c in changes]
        items = {plan.object_url: write_result(plan, dry_run=False) for plan in plans}
        counts = SyncCounts(examined=len(changes))
        sync = SyncReport(chunk_uri=chunk, mode=SyncMode.MERGE, dry_run=False, counts=counts, items=items)
        folder.store.write_bytes(folder.key(result_uri(chunk, SYNC_SUFFIX)), sync.to_bytes())
    return f"{len(chunks)} register results ({len(uuids)} URLs), metadata chunks synced"


def report_phase(work: Path, run_id: str, summaries: list[dict[str, Any]]) -> str:
    return commit_and_report(work / "bucket", BlobStore.from_uri(str(work / "state")), run_id, summaries)


def _warm() -> None:
    """Import what every phase uses (pandas, pyarrow, the pipeline) in a fresh process."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import encord_ingest.pipeline  # noqa: F401
    from encord_ingest.ledger import ledger_schema

    ledger_schema()


def _in_child(action: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float, float, float, float]:
    """Run ``action`` in this (fresh) process: its result, wall, CPU, RSS before and peak RSS.

    The peak is ``VmHWM`` reset before the action: a child's ``ru_maxrss`` starts at the parent's
    high-water mark (Linux copies it at fork and keeps it across exec)."""
    reset_phase_peak()
    before = current_rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    result = action(*args)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return result, elapsed, cpu, before, phase_peak_mb() or peak_rss_mb()


def isolated(label: str, action: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Like :func:`timed`, in a fresh (spawned) process, as each Airflow task runs: its peak RSS
    is the phase's alone, imports included ("imports" is its RSS before the phase)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_warm).result()  # imports done before the clock starts
        result, elapsed, cpu, before, peak = pool.submit(_in_child, action, args).result()
    PEAK[0] = max(PEAK[0], peak)
    print(
        f"{label:<34} {elapsed:8.2f} s wall {cpu:8.2f} s CPU   phase peak {peak:7.1f} MiB   "
        f"imports {before:7.1f} MiB   (own process)",
        flush=True,
    )
    FIGURES[label] = {"wall": elapsed, "cpu": cpu, "peak_rss_mb": PEAK[0], "phase_peak_mb": peak}
    return result, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200_000)
    parser.add_argument("--per-folder", type=int, default=200)
    parser.add_argument("--shards", type=int, default=0, help="default: one per 100,000 objects")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--profile", type=Path, help="write a cProfile file per plan into this folder")
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="run each plan, commit and commit_and_report in its own fresh process (as Airflow tasks)",
    )
    parser.add_argument("--skip-plan-3", action="store_true", help="stop after commit_and_report")
    parser.add_argument(
        "--register",
        action="store_true",
        help="write run 1's Encord results (every new item registered) and run commit_and_report "
        "(run 1) instead of the bare ledger commit",
    )
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR.append(args.profile)
    args.shards = args.shards or max(1, -(-args.objects // 100_000))
    work = Path(tempfile.mkdtemp(prefix="bench-planning-"))
    phase = isolated if args.isolate else (lambda label, action, *a: timed(label, lambda: action(*a)))
    try:
        data = work / "bucket"
        warm_up(work / "warm-up", args.per_folder)
        count, _ = timed("generate tree", lambda: generate(data, args.objects, args.per_folder))
        print(f"  {count} objects in {data}")
        seen, base = timed("baseline os.walk + json.loads", lambda: baseline(data))
        print(f"  baseline: {seen / base:,.0f} objects/s")

        first, seconds = phase("plan 1 (empty ledger)", plan_phase, work, "r1", args.shards)
        report("plan 1", first, seconds, base)
        if args.register:
            written, _ = phase("Encord results (run 1)", register_phase, work, "r1", first)
            print(f"  {written}")
            reported, _ = phase("commit_and_report (run 1)", report_phase, work, "r1", first)
            print(f"  commit_and_report: {reported}")
        else:
            phase("commit ledger", commit_phase, work, "r1", first)
        second, seconds = phase("plan 2 (unchanged)", plan_phase, work, "r2", args.shards)
        report("plan 2", second, seconds, base)
        reported, _ = phase("commit_and_report (run 2)", report_phase, work, "r2", second)
        print(f"  commit_and_report: {reported}")

        if not args.skip_plan_3:
            plan_3(work, args.shards, base, phase)
        if args.json:
            figures = {"objects": count, "shards": args.shards, "isolated": args.isolate, "phases": FIGURES}
            args.json.write_text(json.dumps(figures, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def plan_3(work: Path, shards: int, base: float, phase: Callable[..., tuple[Any, float]]) -> None:
    """Rewrite one sidecar per folder, then plan again (only those items are re-read)."""
    for folder in sorted((work / "bucket" / "day").iterdir()):
        sidecar = folder / "img_0.jpg.json"
        rewrite(sidecar, json.dumps({"capture.frame": 0, "capture.site": "moved"}))
    third, seconds = phase("plan 3 (one sidecar per folder)", plan_phase, work, "r3", shards)
    report("plan 3", third, seconds, base)


if __name__ == "__main__":
    main()
