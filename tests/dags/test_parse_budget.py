"""Parsing dags/ imports no heavy module: the dag-processor (every 30 s) and every task process
parse these files, so pandas, pyarrow, numpy, the encord SDK, boto3, google-cloud and pydicom are
imported only where the work happens (task callables, ``execute``, hook methods).

The parse runs in a fresh interpreter through the dag-processor's own parse path
(``tools/dag_parse.py``), since anything this pytest process imported would hide an import.
Parse CPU is measured by ``bench/bench_dag_parse.py``, not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def parse_in_fresh_interpreter(repo_root: Path, home: Path, *paths: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo_root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo_root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    env.pop("ENCORD_INGEST_SOURCES_DIR", None)
    command = [sys.executable, str(repo_root / "tools" / "dag_parse.py"), *map(str, paths)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_parsing_the_dag_folder_imports_no_heavy_module(repo_root: Path, tmp_path: Path) -> None:
    report = parse_in_fresh_interpreter(repo_root, tmp_path, repo_root / "dags")
    assert report["import_errors"] == {}
    assert {
        "encord_ingest__demo_media",
        "encord_resync__demo_media",
        "encord_reconcile__demo_media",
        "encord_metadata_ops",
    } <= set(report["dag_ids"])
    assert report["heavy_modules"] == [], f"imported while parsing dags/: {report['heavy_modules']}"
