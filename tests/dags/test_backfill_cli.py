"""`airflow backfill create` plans one run per past interval, each listing only its own day.

The scheduler that would execute the runs is not started here; the three-interval execution is
`test_ingest_e2e.py::test_a_three_interval_backfill_touches_only_its_own_prefixes`. This test
proves the other half: the real CLI, on the real DAG file, asks for exactly those intervals.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_backfill_dry_run_asks_for_one_run_per_day_and_each_lists_its_own_prefix(
    tmp_path: Path, repo_root: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    from encord_ingest.config import load_source_config
    from encord_ingest.pipeline import resolve_run

    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo_root / "dags"),
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([airflow, *command], env=env, check=True, capture_output=True)
    dry_run = subprocess.run(
        [
            *(airflow, "backfill", "create", "--dag-id", "encord_ingest__demo_media"),
            *("--from-date", "2026-11-17", "--to-date", "2026-11-19", "--dry-run"),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    dates = re.findall(r"\| (2026-11-\d\d) 00:00:00\+00:00 \|", dry_run.stdout)
    assert dates == ["2026-11-17", "2026-11-18", "2026-11-19"]

    dag = DagBag(dag_folder=str(repo_root / "dags")).dags["encord_ingest__demo_media"]
    timetable = coerce_to_core_timetable(dag.timetable)
    config = load_source_config(repo_root / "include" / "sources" / "demo_media.yaml")
    restriction = TimeRestriction(earliest=None, latest=None, catchup=True)
    prefixes = []
    for day in dates:
        logical = datetime.fromisoformat(day).replace(tzinfo=UTC)
        # The run the backfill creates for this logical date: the interval that starts there.
        previous = DataInterval(logical - timedelta(days=1), logical)
        info = timetable.next_dagrun_info(last_automated_data_interval=previous, restriction=restriction)
        assert info is not None
        assert info.data_interval.start == logical
        assert info.data_interval.end == logical + timedelta(days=1)
        options = resolve_run(
            config,
            run_id=f"backfill__{day}",
            data_interval_start=info.data_interval.start,
            data_interval_end=info.data_interval.end,
            params={},
        )
        prefixes.extend(options.prefixes)
    assert prefixes == ["raw/2026/11/17/", "raw/2026/11/18/", "raw/2026/11/19/"]
