"""A source with no prefix (``bucket.prefix: ""``, the default: the whole bucket) or a file-name
prefix (``raw/img_``, ``raw/{{ data_interval_start:%Y%m }}_``): a manual run with a prefix
override skips what the scheduled runs skip, as for a folder prefix
(tests/planning/test_prefix_runs.py). Before, rules and globs saw keys relative to the override:
an anchored glob skipped (and dropped from the ledger) items the scheduled runs had registered,
and a run of a hidden folder registered what they skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from encord_ingest.scan.config import PlanningConfig
from encord_ingest.sources.filters import FilterConfig
from encord_ingest.sources.local import LocalSource
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, png, write_tree


def _harness(
    tmp_path: Path, data_root: Path, filters: FilterConfig, files: dict[str, object], prefix: str = ""
) -> Harness:
    write_tree(data_root, files)
    config = PlanningConfig(filters=filters, prefix_template=prefix)  # as config.planning() passes it
    store = BlobStore.from_uri(str(tmp_path / "state"))
    return Harness(LocalSource(data_root), store, config=config, prefixes=(prefix,))


@pytest.mark.parametrize(
    "filters",
    [FilterConfig(exclude=["/*.jpg"]), FilterConfig(include=["/raw/**"])],
    ids=["anchored-exclude", "anchored-include"],
)
def test_a_prefix_run_of_a_whole_bucket_source_keeps_the_ledger_rows(
    tmp_path: Path, data_root: Path, filters: FilterConfig
) -> None:
    key = "raw/a/x.jpg"
    harness = _harness(tmp_path, data_root, filters, {key: png(), f"{key}.json": {"capture.site": "s"}})
    first = harness.plan("r1")
    assert first.outcome_of(key) == "new"
    harness.commit_registered(first)

    harness.prefixes = ["raw/a/"]  # the manual run's prefix override
    again = harness.plan("manual")
    harness.commit(again)
    assert again.outcome_of(key) == "unchanged"
    assert key in set(harness.ledger.read_frame()["key"])


def test_a_prefix_run_of_a_hidden_folder_skips_it_as_the_scheduled_runs_do(
    tmp_path: Path, data_root: Path
) -> None:
    key = "raw/.cache/x.jpg"
    harness = _harness(tmp_path, data_root, FilterConfig(), {key: png(), "raw/y.jpg": png()})
    assert harness.plan("r1").outcome(key)["code"] == "hidden"
    harness.prefixes = ["raw/.cache/"]
    assert harness.plan("manual").outcome(key)["code"] == "hidden"


P = "raw/{{ data_interval_start:%Y%m }}_"  # a file-name prefix with a placeholder
EXCLUDE, INCLUDE = FilterConfig(exclude=["/*.jpg"]), FilterConfig(include=["/a/**"])


@pytest.mark.parametrize(
    ("filters", "prefix_key_manual", "outcome"),
    [
        (EXCLUDE, ("raw/img_", "raw/img_a/x.jpg", "raw/img_a/"), ("unchanged", None)),
        (EXCLUDE, ("raw/img_", "raw/img_x.jpg", "raw/img_x"), ("skipped", "excluded")),
        (INCLUDE, ("raw/img_", "raw/img_a/x.jpg", "raw/img_a/"), ("unchanged", None)),
        (FilterConfig(), ("raw/img_", "raw/img_.h/a/x.jpg", "raw/img_.h/a/"), ("skipped", "hidden")),
        (EXCLUDE, (P, "raw/202611_a/x.jpg", "raw/202611_a/"), ("unchanged", None)),
        (INCLUDE, (P, "raw/202611_a/x.jpg", "raw/202611_a/"), ("unchanged", None)),
    ],
    ids=[
        "anchored-exclude",
        "anchored-exclude-in-name",
        "anchored-include",
        "hidden",
        "placeholder-anchored-exclude",
        "placeholder-anchored-include",
    ],
)
def test_a_prefix_run_of_a_file_name_prefix_source_skips_what_the_scheduled_runs_skip(
    tmp_path: Path,
    data_root: Path,
    filters: FilterConfig,
    prefix_key_manual: tuple[str, str, str],
    outcome: tuple[str, str | None],
) -> None:
    """A file-name prefix ends with text of its own: the glob root of its keys is its rendering
    (``raw/img_``, ``raw/202611_``) in every run."""
    prefix, key, manual = prefix_key_manual
    scheduled = "raw/202611_" if prefix == P else prefix  # the scheduled run's rendering
    write_tree(data_root, {key: png(), f"{scheduled}b.jpg": png()})
    config = PlanningConfig(filters=filters, prefix_template=prefix)
    store = BlobStore.from_uri(str(tmp_path / "state"))
    harness = Harness(LocalSource(data_root), store, config=config, prefixes=(scheduled,))
    first = harness.plan("r1")
    harness.commit_registered(first)
    harness.prefixes = [manual]
    again = harness.plan("manual")
    harness.commit(again)
    assert (again.outcome_of(key), again.outcome(key)["code"]) == outcome
    assert (first.outcome_of(key) == "new") == (key in set(harness.ledger.read_frame()["key"]))
