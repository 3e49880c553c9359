"""Small run-step helpers the DAG relies on: run keys, limit shares, mapped-task batches."""

from __future__ import annotations

import pytest

from encord_ingest.pipeline import batches, shard_share
from encord_ingest.run_folder import run_key


def test_run_keys_are_safe_folder_names_derived_from_the_run_id_only() -> None:
    assert run_key("manual__2026-11-25T00:13:46.663100+00:00") == "manual__2026-11-25T00_13_46.663100_00_00"
    assert run_key("scheduled__2026-11-21T00:00:00+00:00") == run_key("scheduled__2026-11-21T00:00:00+00:00")
    with pytest.raises(ValueError, match="empty run key"):
        run_key("///")


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
