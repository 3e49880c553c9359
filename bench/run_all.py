"""Run every benchmark in bench/ (`make bench`); write the figures as a table and a PNG plot.

    .venv/bin/python bench/run_all.py [--sizes 10000,100000] [--latency-items 5000]
        [--delays 0,0.02,0.05] [--out bench/results]

Each benchmark prints its ratios against an in-process baseline. ``bench_planning`` runs once per
size (a fresh process each, so every peak RSS is that size's own), ``bench_latency`` once per
delay; their figures go to ``<out>/figures.json``, ``<out>/figures.md`` (tables) and
``<out>/figures.png``: objects/s and peak RSS against size, scan time against latency.
matplotlib is a dev dependency (requirements-dev.txt) used here only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PHASES = (
    "plan 1 (empty ledger)",
    "commit ledger",
    "plan 2 (unchanged)",
    "commit_and_report (run 2)",
    "plan 3 (one sidecar per folder)",
)


def run(script: str, *args: str) -> int:
    print(f"\n=== {script} {' '.join(args)} ===", flush=True)
    return subprocess.run([sys.executable, str(BENCH / script), *args], check=False).returncode


def planning_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| objects | shards | phase | wall s | CPU s | objects/s (CPU) | phase peak MiB | peak so far MiB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for phase in PHASES:
            figures = result["phases"].get(phase)
            if figures:
                rate = result["objects"] / figures["cpu"] if figures["cpu"] else 0
                lines.append(
                    f"| {result['objects']:,} | {result['shards']} | {phase} | {figures['wall']:.1f} | "
                    f"{figures['cpu']:.1f} | {rate:,.0f} | {figures.get('phase_peak_mb', 0):.0f} | "
                    f"{figures['peak_rss_mb']:.0f} |"
                )
    return lines


def latency_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | ms/request | items | listing s | scan s | scan CPU s | scan / listing | "
        "one folder serial s | read-ahead s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['delay_ms']:.0f} | {r['items']:,} | {r['list_wall']:.2f} | "
            f"{r['scan_wall']:.2f} | {r['scan_cpu']:.2f} | {r['ratio']:.2f} | {r['serial_wall']:.2f} | "
            f"{r['ahead_wall']:.2f} |"
        )
    return lines


def plot(planning: list[dict[str, Any]], latency: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate_axis, rss_axis, latency_axis) = plt.subplots(1, 3, figsize=(16, 4.5))
    sizes = [r["objects"] for r in planning]
    for phase in PHASES:
        rates = [r["objects"] / r["phases"][phase]["cpu"] for r in planning if phase in r["phases"]]
        if len(rates) == len(sizes):
            rate_axis.plot(sizes, rates, marker="o", label=phase)
            peaks = [
                r["phases"][phase].get("phase_peak_mb") or r["phases"][phase]["peak_rss_mb"] for r in planning
            ]
            rss_axis.plot(sizes, peaks, marker="o", label=phase)
    for axis, title in ((rate_axis, "objects/s (CPU time)"), (rss_axis, "peak RSS per phase (MiB)")):
        axis.set_xscale("log")
        axis.set_xlabel("objects (local source)")
        axis.set_title(title)
        axis.legend(fontsize=7)
    for backend in sorted({r["backend"] for r in latency}):
        rows = sorted((r for r in latency if r["backend"] == backend), key=lambda r: r["delay_ms"])
        delays = [r["delay_ms"] for r in rows]
        latency_axis.plot(delays, [r["scan_wall"] for r in rows], marker="o", label=f"{backend} scan")
        listing = [r["list_wall"] for r in rows]
        latency_axis.plot(delays, listing, linestyle="--", label=f"{backend} listing alone")
    latency_axis.set_xlabel("added latency per request (ms)")
    latency_axis.set_title("scan time (s, wall)")
    latency_axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="objects of each planning run")
    parser.add_argument("--latency-items", default="5000")
    parser.add_argument("--delays", default="0,0.02,0.05")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = run("bench_listing.py")
    planning = []
    for size in args.sizes.split(","):
        target = args.out / f"planning-{size}.json"
        failed |= run("bench_planning.py", "--objects", size, "--json", str(target))
        if target.exists():
            planning.append(json.loads(target.read_text()))
    latency_file = args.out / "latency.json"
    failed |= run(
        "bench_latency.py",
        *("--items", args.latency_items, "--delays", args.delays, "--json", str(latency_file)),
    )
    latency = json.loads(latency_file.read_text()) if latency_file.exists() else []
    load = os.getloadavg()
    (args.out / "figures.json").write_text(json.dumps({"planning": planning, "latency": latency}, indent=1))
    lines = [
        "# Benchmark figures",
        "",
        f"Load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"on {os.cpu_count()} CPUs (wall time is inflated by other work; CPU time is not).",
        "",
        "## Planning (local source)",
        "",
        *planning_table(planning),
        "",
        "## Scan against latency",
        "",
        *latency_table(latency),
    ]
    (args.out / "figures.md").write_text("\n".join(lines) + "\n")
    plot(planning, latency, args.out / "figures.png")
    print(f"\nfigures: {args.out / 'figures.md'}, {args.out / 'figures.png'}")
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
