"""Small run-step helpers the DAG relies on: run keys, run options, limit shares, mapped-task batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from encord_ingest.config import parse_source_config
from encord_ingest.errors import ConfigError
from encord_ingest.pipeline import RunOptions, batches, resolve_run, shard_share
from encord_ingest.run_folder import RunFolder, run_key
from encord_ingest.storage import BlobStore


def test_run_keys_are_safe_folder_names_derived_from_the_run_id_only() -> None:
    assert run_key("manual__2026-11-25T00:13:46.663100+00:00") == "manual__2026-11-25T00_13_46.663100_00_00"
    assert run_key("scheduled__2026-11-21T00:00:00+00:00") != run_key("scheduled__2026-11-22T00:00:00+00:00")
    with pytest.raises(ValueError, match="empty run key"):
        run_key("///")


def test_a_run_folder_is_keyed_by_the_run_id_alone(tmp_path: Path) -> None:
    """A retry builds a new store from the same state URI and lands in the same folder."""
    run_id = "manual__2026-11-25T00:13:46.663100+00:00"
    first = RunFolder.of(BlobStore.from_uri(str(tmp_path)), run_id)
    first.write_report("# one\n")
    again = RunFolder.of(BlobStore.from_uri(tmp_path.as_uri()), run_id)
    assert again.store.read_bytes("report.md") == b"# one\n"
    assert (tmp_path / "runs" / run_key(run_id) / "report.md").is_file()


def _resolve(tmp_path: Path, **params: Any) -> RunOptions:
    config = parse_source_config(
        {
            "name": "flags",
            "bucket": {"uri": tmp_path.as_uri(), "prefix": "day/"},
            "state_uri": (tmp_path / "state").as_uri(),
            "encord": {"integration": "x", "folder": "f"},
        },
        file="flags.yaml",
    )
    return resolve_run(config, run_id="r1", data_interval_start=None, data_interval_end=None, params=params)


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), ("true", True), ("False", False)]
)
def test_run_flags_are_read_by_their_word_whether_bool_or_text(
    tmp_path: Path, value: Any, expected: bool
) -> None:
    options = _resolve(tmp_path, dry_run=value, full_rescan=value)
    assert options.dry_run is expected
    assert options.full_rescan is expected


def test_a_flag_that_is_neither_true_nor_false_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"flags: param dry_run: expected true or false, got 'yes please'"):
        _resolve(tmp_path, dry_run="yes please")


def test_run_options_travel_as_json_and_back(tmp_path: Path) -> None:
    options = _resolve(tmp_path, dry_run=True, sync_mode="replace", limit=3)
    data = {**options.to_json(), "run_uri": "file:///state/runs/r1"}
    assert RunOptions.from_json(data) == options


@pytest.mark.parametrize(("limit", "count"), [(0, 3), (1, 3), (7, 3), (9, 3), (5, 1), (2, 4)])
def test_a_runs_limit_is_shared_out_so_the_shares_add_up(limit: int, count: int) -> None:
    shares = [shard_share(limit, index, count) for index in range(count)]
    assert sum(s for s in shares if s is not None) == limit
    assert max(shares) - min(shares) <= 1  # type: ignore[operator]
    assert shard_share(None, 0, count) is None


@pytest.mark.parametrize(
    ("n", "most", "expected"), [(0, 4, 0), (3, 4, 3), (4, 4, 4), (5, 4, 3), (2500, 64, 63)]
)
def test_chunks_are_batched_so_no_more_than_the_cap_of_tasks_is_mapped(
    n: int, most: int, expected: int
) -> None:
    uris = [f"s3://b/runs/r/manifests/shard-0000-{i:05d}.json" for i in range(n)]
    grouped = batches(uris, most)
    assert len(grouped) == expected <= most
    assert [uri for batch in grouped for uri in batch] == uris
