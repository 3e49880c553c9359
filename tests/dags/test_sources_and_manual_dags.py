"""Source files to DAGs (a bad file stays local), and the resync and reconcile DAGs end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from demo_data import DAY_PREFIX, demo_objects
from standins.stack import DEMO_STATE_BUCKET

from encord_ingest.events import EventsConfig
from encord_ingest.sources.urls import UrlBuilder
from tests.dags.conftest import Runner, covering


@pytest.mark.usefixtures("airflow_db")
def test_a_bad_source_file_is_reported_by_file_and_field_and_the_others_still_load(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    good = yaml.safe_load((repo_root / "include" / "sources" / "demo_media.yaml").read_text())
    bad = {**good, "name": "broken_source", "shards": 0, "encord": {**good["encord"], "sync_mode": "upsert"}}
    (tmp_path / "demo_media.yaml").write_text(yaml.safe_dump(good))
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(bad))
    (tmp_path / "not_yaml.yml").write_text("name: [unclosed\n")
    monkeypatch.setenv("ENCORD_INGEST_SOURCES_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(repo_root / "dags"))
    assert bag.import_errors == {}
    assert {dag_id for dag_id in bag.dags if "__" in dag_id} == {
        "encord_ingest__demo_media",
        "encord_resync__demo_media",
        "encord_reconcile__demo_media",
    }
    # DAG-file warnings are what the Airflow UI shows next to the file.
    messages = [m for found in bag.captured_warnings.values() for m in found if "SourceConfigWarning" in m]
    [broken] = [m for m in messages if "broken.yaml" in m]
    assert "shards: Input should be greater than or equal to 1" in broken
    assert "encord.sync_mode: Input should be 'merge' or 'replace'" in broken
    [unreadable] = [m for m in messages if "not_yaml.yml" in m]
    assert "cannot read source configuration" in unreadable


@pytest.mark.usefixtures("airflow_db")
def test_the_demo_sources_tasks_retry_with_backoff(repo_root: Path) -> None:
    """A lost worker or a transient error costs a retry, not the run (the demo source as shipped)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(repo_root / "dags" / "encord_sources.py"))
    for dag_id in ("encord_ingest__demo_media", "encord_resync__demo_media", "encord_reconcile__demo_media"):
        for task in bag.dags[dag_id].tasks:
            assert task.retries == 3, task.task_id
            assert task.retry_delay.total_seconds() == 10
            assert task.retry_exponential_backoff == 2.0
            assert task.max_retry_delay.total_seconds() == 600


@pytest.mark.usefixtures("airflow_db")
def test_the_ingest_dag_has_the_documented_shape(repo_root: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(repo_root / "dags")).dags["encord_ingest__demo_media"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.params) == {"prefix", "dry_run", "full_rescan", "sync_mode", "limit"}
    edges = {(up, task.task_id) for task in dag.tasks for up in task.upstream_task_ids}
    assert {
        ("resolve", "apply_schema"),
        ("apply_schema", "plan_shards"),
        ("resolve", "plan_shards"),
        ("plan_shards", "scan_shard"),
        ("scan_shard", "manifest_chunks"),
        ("manifest_chunks", "register"),
        ("register", "sync_metadata"),
        ("change_chunks", "sync_metadata"),
        ("sync_metadata", "commit_and_report"),
    } <= edges
    assert dag.get_task("register").pool == "encord_api"
    assert dag.get_task("register").partial_kwargs["deferrable"] is True
    [asset] = dag.get_task("commit_and_report").outlets
    assert asset.name == "encord_ingest.demo_media"
    assert "Prefix override" in dag.doc_md
    assert "demo/fleet/raw" in dag.doc_md


@pytest.mark.usefixtures("airflow_db")
def test_a_daily_source_gets_day_long_data_intervals_so_each_run_lists_the_day_that_ended(
    repo_root: Path,
) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    from encord_ingest.config import load_source_config
    from encord_ingest.pipeline import resolve_run

    dag = DagBag(dag_folder=str(repo_root / "dags")).dags["encord_ingest__demo_media"]
    timetable = coerce_to_core_timetable(dag.timetable)
    previous = DataInterval(datetime(2026, 11, 19, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
    earliest = TimeRestriction(earliest=datetime(2026, 11, 1, tzinfo=UTC), latest=None, catchup=True)
    info = timetable.next_dagrun_info(last_automated_data_interval=previous, restriction=earliest)
    assert info is not None
    assert info.run_after == datetime(2026, 11, 21, tzinfo=UTC)
    assert (info.data_interval.start, info.data_interval.end) == (
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 11, 21, tzinfo=UTC),
    )
    config = load_source_config(repo_root / "include" / "sources" / "demo_media.yaml")
    options = resolve_run(
        config,
        run_id="scheduled__2026-11-21",
        data_interval_start=info.data_interval.start,
        data_interval_end=info.data_interval.end,
        params={},
    )
    assert options.prefixes == ["raw/2026/11/20/"]


@pytest.mark.e2e
def test_resync_writes_only_what_differs_and_registers_nothing(
    runner: Runner, counts: Callable[[], dict[str, int]]
) -> None:
    runner.put(demo_objects())
    assert runner.run(day=covering(20)).state == "success"
    counts()
    runner.put(
        {f"{DAY_PREFIX}images/cam_front_0001.jpg.json": json.dumps({"camera": {"model": "fc-200"}}).encode()}
    )
    resync = runner.run("encord_resync__demo_media", prefix=f"{DAY_PREFIX}images/", sync_mode="replace")
    assert resync.state == "success", runner.states(resync)
    calls = counts()
    assert calls.get("upload_jobs.start", 0) == 0
    # replace mode drops a key: the merge patch is read back and, as the emulator's (default)
    # shallow-merging PATCH kept the null, the final dict is written once more
    assert calls["items.patch_bulk"] == 2
    metadata = runner.items()[f"{DAY_PREFIX}images/cam_front_0001.jpg"]["client_metadata"]
    assert metadata["fleet.camera.model"] == "fc-200"
    # A shallow merge keeps a key sent as null as null: the pipeline reads null as absent.
    assert metadata.get("fleet.camera.exposure_ms") is None
    again = runner.run("encord_resync__demo_media", prefix=f"{DAY_PREFIX}images/", sync_mode="replace")
    assert again.state == "success"
    assert counts().get("items.patch_bulk", 0) == 0


@pytest.mark.e2e
@pytest.mark.heavy
@pytest.mark.parametrize("normalise", [False, True], ids=["urls-byte-exact", "urls-normalised"])
def test_reconcile_of_an_intact_ledger_keeps_groups_and_changes_nothing(
    runner: Runner, counts: Callable[[], dict[str, int]], normalise: bool
) -> None:
    """Issue 9.4 too: with Encord storing URLs normalised (a key with a space and an accent
    comes back decoded), reconcile and sync lookups still match every item."""
    runner.stack.emulator.admin.configure(normalise_urls=normalise)
    objects = demo_objects()
    objects[f"{DAY_PREFIX}images/cam rear é.jpg"] = objects[f"{DAY_PREFIX}images/cam_front_0001.jpg"]
    runner.put(objects)
    assert runner.run(day=covering(20)).state == "success"
    reconcile = runner.run("encord_reconcile__demo_media")
    [ti] = reconcile.get_task_instances()
    drift = ti.xcom_pull(task_ids="reconcile")["drift"]
    assert drift["matched"] == 8
    assert drift["groups_not_checked"] == 3
    assert drift["missing_in_encord"] == drift["missing_in_ledger"] == drift["metadata_differs"] == 0
    counts()
    after = runner.run(day=covering(20))
    calls = counts()
    assert calls.get("upload_jobs.start", 0) == 0
    assert calls.get("items.patch_bulk", 0) == 0
    assert "| unchanged | 18 |" in runner.report(after)


@pytest.mark.e2e
@pytest.mark.heavy
def test_reconcile_rebuilds_a_lost_ledger_so_the_next_run_writes_nothing(
    runner: Runner, counts: Callable[[], dict[str, int]]
) -> None:
    runner.put(demo_objects())
    assert runner.run(day=covering(20)).state == "success"
    runner.delete(DEMO_STATE_BUCKET, "demo_media/ledger/")
    counts()
    reconcile = runner.run("encord_reconcile__demo_media")
    assert reconcile.state == "success", runner.states(reconcile)
    [ti] = reconcile.get_task_instances()
    drift = ti.xcom_pull(task_ids="reconcile")["drift"]
    # 7 single-file items come back by URL; groups, sequences and series have no URL of their own.
    assert drift["missing_in_ledger"] == 7
    assert drift["items_without_url"] == 3
    assert counts().get("items.list", 0) >= 1
    # The rows added from Encord carry the key their URL names, so runs (which read the ledger
    # by key range) find them: the single-file items are not planned as new again.
    rows = _ledger(runner)
    added = rows[rows["last_outcome"] == "reconciled"]
    assert len(added) == 7
    urls = UrlBuilder.for_source("s3", "encord-demo-raw", region="eu-west-2")
    assert all(key in demo_objects() for key in added["key"])
    assert [urls.url(key) for key in added["key"]] == list(added["url"])
    after = runner.run(day=covering(20))
    assert after.state == "success", runner.states(after)
    calls = counts()
    assert calls.get("items.patch_bulk", 0) == 0
    assert calls["upload_jobs.start"] == 1  # the groups and series (both shards, one job): duplicates
    assert len(runner.items()) == 10
    registered = _ledger(runner)
    assert set(registered.loc[registered["key"].isin(added["key"]), "last_outcome"]) != {"registered"}


def _ledger(runner: Runner) -> Any:
    """The source's current ledger rows as a DataFrame."""
    from encord_ingest.pipeline import ledger_of
    from encord_ingest.storage import BlobStore

    state = BlobStore.from_uri(f"s3://{DEMO_STATE_BUCKET}/demo_media", s3_client=runner.stack.s3)
    return ledger_of(state).read_frame()


@pytest.mark.usefixtures("airflow_db")
def test_the_ingestion_steps_embed_in_any_dag_as_a_task_group(repo_root: Path) -> None:
    """Two sources in one user DAG: each group's tasks are prefixed, and every run option an
    operator uses comes from its own group's ``resolve`` (one value, not a template per option)."""
    from airflow.sdk import DAG
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    from encord_ingest.config import load_source_config
    from encord_provider.dag_builder import ingest_task_group, run_params

    config = load_source_config(repo_root / "include" / "sources" / "demo_media.yaml")
    other = config.model_copy(update={"name": "other_media"})
    with DAG(dag_id="my_pipeline", schedule=None, params=run_params(config)) as dag:
        ingest_task_group(config, group_id="media")
        ingest_task_group(other, group_id="other")
    assert {"media.resolve", "media.commit_and_report", "other.resolve", "other.register"} <= set(
        dag.task_ids
    )
    sync = dag.get_task("other.sync_metadata")
    for name in ("mode", "dry_run", "register_results_uri"):
        argument = sync.partial_kwargs[name]
        assert isinstance(argument, PlainXComArg), name
        assert argument.operator.task_id == "other.resolve"
    assert [argument.key for argument in (sync.partial_kwargs["mode"], sync.partial_kwargs["dry_run"])] == [
        "sync_mode",
        "dry_run",
    ]


@pytest.mark.usefixtures("airflow_db")
def test_the_forms_and_the_tasks_explain_themselves(repo_root: Path) -> None:
    """The prefix hint shows a prefix the demo source really lists (its template over its first
    day), the manual-run line says what an empty prefix does, and every task has a display name
    and documentation. Booleans are nullable: the 3.3 form marks every param whose type lacks
    "null" as required (``tests/metadata_ops/test_metaops_dag.py::ui_required``)."""
    from airflow.dag_processing.dagbag import DagBag

    from tests.metadata_ops.test_metaops_dag import ui_required

    dags = DagBag(dag_folder=str(repo_root / "dags" / "encord_sources.py")).dags
    ingest, resync = dags["encord_ingest__demo_media"], dags["encord_resync__demo_media"]
    prefix = ingest.params.get_param("prefix")
    assert prefix.schema["examples"] == ["raw/2026/11/01/"]
    assert prefix.description.startswith("List only this prefix, e.g. raw/2026/11/01/ (comma-separated")
    assert "Required" not in prefix.description
    assert "infers from its logical date" in prefix.description
    assert "needs a data interval" in resync.params.get_param("prefix").description
    assert "e.g. `raw/2026/11/01/`" in ingest.doc_md
    assert "no data interval in Airflow 3" not in ingest.doc_md
    assert "infers from the logical date" in ingest.doc_md
    schemas = {name: ingest.params.get_param(name).schema for name in ingest.params}
    assert {name for name, schema in schemas.items() if ui_required(schema)} == set()
    from encord_ingest.config import load_source_config
    from encord_provider.events_dag import build_events_dag

    config = load_source_config(repo_root / "include" / "sources" / "demo_media.yaml")
    with_events = config.model_copy(
        update={"events": EventsConfig(queue_url="https://sqs.eu-west-2.amazonaws.com/123456789012/uploads")}
    )
    for dag in [*dags.values(), build_events_dag(with_events)]:
        for task in dag.tasks:
            assert task.task_display_name != task.task_id, (dag.dag_id, task.task_id)
            assert task.doc_md, (dag.dag_id, task.task_id)
