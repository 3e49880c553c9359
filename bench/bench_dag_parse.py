"""Parse CPU of dags/ with 1 and with 50 source files, against a trivial one-task DAG file.

Airflow 3 parses a DAG file in a fresh child of the dag-processor (every 30 s by default) and
again in every task process, so the cost that counts is a first parse: Airflow is already
imported, our modules and their dependencies are not. Each file of dags/ is therefore parsed in
a new interpreter that

1. imports Airflow's parse path and parses a trivial one-task DAG file twice (a warm-up, then the
   baseline that is timed);
2. parses the file through the dag-processor's parse path (``tools/dag_parse.py``), with
   ``ENCORD_INGEST_SOURCES_DIR`` holding N copies of the demo source.

Two phases are timed: *import* (running the file into a DagBag: what ``dagbag_import_timeout``
bounds and what every task process pays) and *serialise* (the dag-processor's serialisation of
the DAGs it found). Printed per N and file: CPU and wall seconds, CPU added over the trivial file
and the ratio to it (median of ``--repeat`` interpreters). Targets, for the import of
``encord_sources.py``: one source adds < 0.2 s of CPU, 50 sources < 1.5 s. Timings are printed,
never asserted.

Usage: ``python bench/bench_dag_parse.py [--sources 1 50] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from dag_parse import heavy_modules_loaded, parse_files  # noqa: E402

TRIVIAL_DAG = """
from airflow.sdk import DAG, task

with DAG(dag_id="{dag_id}", schedule=None):

    @task
    def only() -> None:
        return None

    only()
"""
TARGETS = {1: 0.2, 50: 1.5}


def write_sources(folder: Path, count: int) -> None:
    """``count`` copies of the demo source, each with its own name and state folder."""
    demo = yaml.safe_load((REPO / "include" / "sources" / "demo_media.yaml").read_text())
    for index in range(count):
        name = f"demo_media_{index:03d}"
        document = {**demo, "name": name, "state_uri": f"s3://encord-demo-state/{name}"}
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(document))


def timed_parse(file: Path) -> dict[str, Any]:
    wall = time.perf_counter()
    result = parse_files([file])
    return {
        "import": result.import_cpu_s,
        "serialise": result.serialise_cpu_s,
        "wall": time.perf_counter() - wall,
        "dags": len(result.dag_ids),
        "errors": len(result.import_errors),
    }


def child(work: Path, file: Path) -> None:
    """One fresh interpreter: the trivial DAG (warm-up, then baseline), then ``file``."""
    for name in ("warmup", "baseline"):
        (work / f"trivial_{name}.py").write_text(TRIVIAL_DAG.format(dag_id=f"trivial_{name}"))
    timed_parse(work / "trivial_warmup.py")
    report = {"trivial": timed_parse(work / "trivial_baseline.py"), "file": timed_parse(file)}
    print(json.dumps({**report, "heavy_modules": heavy_modules_loaded()}))


def measure(sources: int, file: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-dag-parse-") as tmp:
        work = Path(tmp)
        (work / "sources").mkdir()
        write_sources(work / "sources", sources)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(work),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "ENCORD_INGEST_SOURCES_DIR": str(work / "sources"),
        }
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(work), str(file)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def summarise(sources: int, runs: dict[str, list[dict[str, Any]]]) -> None:
    """One table per N: a row per file, medians over the interpreters that parsed it."""

    def median(file: str, part: str, field: str) -> float:
        return statistics.median(run[part][field] for run in runs[file])

    repeat = len(next(iter(runs.values())))
    print(f"\n{sources} source file(s); CPU seconds, median of {repeat} interpreter(s):")
    header = ("file", "DAGs", "import", "+trivial", "x trivial", "serialise", "x trivial", "wall")
    print("  {:<24} {:>5} {:>8} {:>9} {:>10} {:>10} {:>10} {:>7}".format(*header))
    any_file = next(iter(runs))
    trivial_import = median(any_file, "trivial", "import")
    trivial_serialise = median(any_file, "trivial", "serialise")
    print(f"  {'trivial one-task DAG':<24} {1:5d} {trivial_import:8.3f} {'':20} {trivial_serialise:10.3f}")
    for file, file_runs in runs.items():
        imported = median(file, "file", "import")
        serialised = median(file, "file", "serialise")
        print(
            f"  {file:<24} {file_runs[0]['file']['dags']:5d} {imported:8.3f} "
            f"{imported - median(file, 'trivial', 'import'):9.3f} "
            f"{imported / median(file, 'trivial', 'import'):10.1f} {serialised:10.3f} "
            f"{serialised / median(file, 'trivial', 'serialise'):10.1f} {median(file, 'file', 'wall'):7.3f}"
        )
    sources_file = "encord_sources.py"
    if sources_file in runs and sources in TARGETS:
        added = median(sources_file, "file", "import") - median(sources_file, "trivial", "import")
        verdict = "met" if added < TARGETS[sources] else "MISSED"
        print(f"  target: importing {sources_file} adds < {TARGETS[sources]} s of CPU: {verdict}")
    errors = sum(run["file"]["errors"] for file_runs in runs.values() for run in file_runs)
    heavy = sorted({m for file_runs in runs.values() for run in file_runs for m in run["heavy_modules"]})
    print(f"  import errors: {errors}; heavy modules imported: {heavy or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sources", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", type=Path, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(*args.child)
        return
    files = sorted((REPO / "dags").glob("*.py"))
    for sources in args.sources:
        summarise(sources, {f.name: [measure(sources, f) for _ in range(args.repeat)] for f in files})


if __name__ == "__main__":
    main()
