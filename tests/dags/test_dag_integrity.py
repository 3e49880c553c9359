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


def test_every_dag_of_a_source_runs_one_at_a_time_without_catch_up_and_is_tagged(repo_root: Path) -> None:
    """``dag_builder.source_dag_args``: the settings the ingest, resync, reconcile and events DAGs share."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(repo_root / "dags"))
    by_source = {dag_id: dag for dag_id, dag in bag.dags.items() if "__" in dag_id}
    kinds = {dag_id.split("__")[0].removeprefix("encord_") for dag_id in by_source}
    assert {"ingest", "resync", "reconcile"} <= kinds
    for dag_id, dag in by_source.items():
        kind, source = dag_id.removeprefix("encord_").split("__")
        assert dag.catchup is False, dag_id
        assert dag.max_active_runs == 1, dag_id
        assert {"encord", kind, f"source:{source}"} <= set(dag.tags), dag_id
