"""Run planning splits flat folders across shards unless a group or a DICOM folder series lives there."""

from __future__ import annotations

from pathlib import Path

import pytest

from encord_ingest.config import SourceConfig, parse_source_config
from encord_ingest.pipeline import plan_run_shards
from encord_ingest.sources.factory import open_source
from encord_ingest.sources.sharding import Shard, iter_shard


def _config(root: Path, grouping: dict[str, object]) -> SourceConfig:
    return parse_source_config(
        {
            "name": "flat",
            "bucket": {"uri": root.as_uri()},
            "state_uri": (root.parent / "state").as_uri(),
            "encord": {"integration": "x", "folder": "f"},
            "grouping": grouping,
            "shards": 4,
        },
        file="flat.yaml",
    )


@pytest.fixture
def flat_bucket(tmp_path: Path) -> Path:
    root = tmp_path / "bucket"
    (root / "cams").mkdir(parents=True)
    for index in range(400):
        (root / "cams" / f"img_{index:04d}.jpg").write_bytes(b"x")
        (root / "cams" / f"img_{index:04d}.jpg.json").write_bytes(b"{}")
    return root


@pytest.mark.parametrize(
    ("prefix", "grouping", "expected_shards"),
    [
        ("cams/", {}, 4),  # the run's own prefix is always split
        ("", {}, 1),  # default: any folder below the prefix may hold a DICOM folder series
        ("", {"dicom_series_folders": ["*/dicom/*"]}, 4),
        ("", {"dicom_series": "series_uid"}, 4),
        ("", {"dicom_series_folders": [], "groups": [{"folders": "cams"}]}, 1),
    ],
)
def test_flat_folders_are_cut_only_where_no_group_or_series_can_live(
    flat_bucket: Path, prefix: str, grouping: dict[str, object], expected_shards: int
) -> None:
    config = _config(flat_bucket, grouping)
    source = open_source(config.bucket.uri)
    shards = [Shard.model_validate(s) for s in plan_run_shards(config, source, [prefix])]
    assert len(shards) == expected_shards
    keys = [info.key for shard in shards for info in iter_shard(source, shard)]
    assert sorted(keys) == sorted(info.key for info in source.iter_objects("cams/"))
    assert len(keys) == len(set(keys)) == 800
    for shard in shards:  # a data file and its sidecar always land in the same shard
        names = {info.key for info in iter_shard(source, shard)}
        assert all((name + ".json" in names) for name in names if name.endswith(".jpg"))


def test_a_rescan_in_the_same_run_folder_forgets_the_shards_earlier_results(flat_bucket: Path) -> None:
    """A cleared DAG run reuses its run folder and chunk names: results of the earlier attempt
    describe other chunk contents, so the scan of a shard deletes that shard's results first."""
    from encord_ingest.pipeline import RunOptions, scan
    from encord_ingest.run_folder import RunFolder
    from encord_ingest.storage import BlobStore

    config = _config(flat_bucket, {"dicom_series_folders": []})
    source = open_source(config.bucket.uri)
    state = BlobStore.from_uri(config.state_uri)
    options = RunOptions(run_id="manual__same", prefixes=["cams/"])
    shards = plan_run_shards(config, source, options.prefixes)
    folder = RunFolder.of(state, options.run_id).store
    folder.write_bytes("results/shard-0000-00000.register.json", b"{}")
    folder.write_bytes("results/shard-0000-00000.sync.json", b"{}")
    folder.write_bytes("results/shard-0001-00000.register.json", b"{}")
    summary = scan(config, source, state, shards[0], options)
    assert summary["manifest_uris"]
    assert summary["shard"] == 0
    assert list(folder.list("results/")) == ["results/shard-0001-00000.register.json"]
