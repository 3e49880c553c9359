"""Parse DAG files the way Airflow's dag-processor does, and say which heavy modules that imported.

``python tools/dag_parse.py DAG_FILE_OR_FOLDER...`` prints one JSON object: the DAG ids, the
import errors, the heavy modules found in ``sys.modules`` afterwards and the CPU seconds of the
parse. Set ``AIRFLOW_HOME`` (and the other ``AIRFLOW__*`` variables) before running it; run it
in a fresh interpreter, since a module imported earlier stays imported.

Each file goes through the dag-processor's own parse path (``_parse_file``: a bundle DagBag, then
serialisation of every DAG), as a dag-processor child or a task process would parse it.
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


def heavy_modules_loaded() -> list[str]:
    """The :data:`HEAVY_MODULES` (or their submodules' packages) present in ``sys.modules``."""
    return [name for name in HEAVY_MODULES if name in sys.modules]


def dag_files(paths: list[Path]) -> list[Path]:
    """The ``.py`` files given, or found directly in the folders given, in name order."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.py")) if path.is_dir() else [path]
    return [f for f in files if not f.name.startswith("_")]


def parse_files(files: list[Path]) -> ParseResult:
    """Parse and serialise each file as the dag-processor does; collect DAG ids and import errors."""
    import structlog
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file

    result = ParseResult()
    for file in files:
        request = DagFileParseRequest(file=str(file), bundle_path=file.parent, bundle_name="dags-folder")
        parsed = _parse_file(request, structlog.get_logger("dag_parse"))
        if parsed is None:
            continue
        result.dag_ids += [dag.dag_id for dag in parsed.serialized_dags]
        result.import_errors.update({str(k): str(v) for k, v in (parsed.import_errors or {}).items()})
    return result


def main(argv: list[str]) -> None:
    files = dag_files([Path(arg).resolve() for arg in argv])
    started = time.process_time()
    result = parse_files(files)
    cpu = time.process_time() - started
    report = {
        "dag_ids": sorted(result.dag_ids),
        "import_errors": result.import_errors,
        "heavy_modules": heavy_modules_loaded(),
        "cpu_s": round(cpu, 3),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
