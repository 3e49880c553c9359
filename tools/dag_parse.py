"""Parse DAG files the way Airflow's dag-processor does, and say which heavy modules that imported.

``python tools/dag_parse.py DAG_FILE_OR_FOLDER...`` prints one JSON object: the DAG ids, the
import errors, the heavy modules found in ``sys.modules`` afterwards and the CPU seconds of the
parse. Set ``AIRFLOW_HOME`` (and the other ``AIRFLOW__*`` variables) before running it; run it
in a fresh interpreter, since a module imported earlier stays imported.

Each file goes through the dag-processor's own parse path: a bundle DagBag (as a task process
parses it too), then the dag-processor's serialisation of every DAG.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HEAVY_MODULES = (
    "pandas",
    "pyarrow",
    "numpy",
    "encord",
    "boto3",
    "botocore",
    "google.cloud",
    "google.api_core",
    "pydicom",
)
"""Modules that DAG files must not import at parse time: tasks import them where the work happens."""


@dataclass
class ParseResult:
    dag_ids: list[str] = field(default_factory=list)
    import_errors: dict[str, str] = field(default_factory=dict)
    import_cpu_s: float = 0.0
    """CPU of running the files (what ``dagbag_import_timeout`` bounds, and what a task process pays)."""
    serialise_cpu_s: float = 0.0
    """CPU of serialising their DAGs (paid by the dag-processor only)."""


def heavy_modules_loaded() -> list[str]:
    """The :data:`HEAVY_MODULES` present in ``sys.modules``."""
    return [name for name in HEAVY_MODULES if name in sys.modules]


def dag_files(paths: list[Path]) -> list[Path]:
    """The ``.py`` files given, or found directly in the folders given, in name order."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.py")) if path.is_dir() else [path]
    return [f for f in files if not f.name.startswith("_")]


def parse_files(files: list[Path]) -> ParseResult:
    """Parse and serialise each file as a dag-processor child does (``_parse_file`` without its
    stability check): a bundle DagBag of the file, then ``_serialize_dags``."""
    import structlog
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.dag_processing.processor import _serialize_dags

    log = structlog.get_logger("dag_parse")
    result = ParseResult()
    for file in files:
        started = time.process_time()
        bag = BundleDagBag(
            dag_folder=str(file), bundle_path=file.parent, bundle_name="dags-folder", load_op_links=False
        )
        imported = time.process_time()
        serialised, errors = _serialize_dags(bag, log)
        result.import_cpu_s += imported - started
        result.serialise_cpu_s += time.process_time() - imported
        result.dag_ids += [dag.dag_id for dag in serialised]
        result.import_errors.update({str(k): str(v) for k, v in {**bag.import_errors, **errors}.items()})
    return result


def main(argv: list[str]) -> None:
    result = parse_files(dag_files([Path(arg).resolve() for arg in argv]))
    report = {
        "dag_ids": sorted(result.dag_ids),
        "import_errors": result.import_errors,
        "heavy_modules": heavy_modules_loaded(),
        "import_cpu_s": round(result.import_cpu_s, 3),
        "serialise_cpu_s": round(result.serialise_cpu_s, 3),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
