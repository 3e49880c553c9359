"""Every file under dags/ imports cleanly into a DagBag, with no deprecated-import warnings."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_every_dag_file_loads_without_errors_or_deprecations(repo_root: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag_files = sorted(p for p in (repo_root / "dags").glob("*.py") if not p.name.startswith("_"))
    assert dag_files, "dags/ holds no DAG file"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(repo_root / "dags"))
    assert bag.import_errors == {}
    deprecations = [
        str(w.message)
        for w in caught
        if issubclass(w.category, DeprecationWarning | PendingDeprecationWarning | FutureWarning)
        and "airflow" in str(w.message).lower()
    ]
    assert deprecations == []
    loaded_files = {Path(dag.fileloc).name for dag in bag.dags.values()}
    assert loaded_files == {p.name for p in dag_files}
