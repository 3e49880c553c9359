"""A run with a prefix override skips what the scheduled runs skip: rules and globs see keys relative
to the rendering of the source's prefix template, not to the override. Before, an anchored glob
matched differently in a manual run of a subfolder, which skipped (and dropped from the ledger)
items a scheduled run had registered; the next scheduled run planned them as new again."""

from __future__ import annotations

from pathlib import Path

import pytest

from encord_ingest.ledger import item_urls_by_title
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.sources.filters import FilterConfig, KeyFilter
from encord_ingest.sources.local import LocalSource
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, png, write_tree


@pytest.mark.parametrize(
    ("template", "scheduled", "manual"),
    [
        ("raw/", "raw/", "raw/a/"),
        ("raw/{{ data_interval_start }}/", "raw/2026-11-01/", "raw/2026-11-01/a/"),
        ("raw/{{ data_interval_start }}/", "raw/2026-11-01/", "raw/"),
    ],
    ids=["deeper-than-a-static-prefix", "deeper-than-a-rendering", "above-the-rendering"],
)
def test_a_prefix_run_keeps_the_ledger_rows_of_items_a_scheduled_run_registered(
    tmp_path: Path, data_root: Path, template: str, scheduled: str, manual: str
) -> None:
    day = scheduled
    write_tree(
        data_root,
        {f"{day}a/x.jpg": png(), f"{day}a/x.jpg.json": {"capture.site": "s"}, f"{day}top.jpg": png()},
    )
    filters = FilterConfig(exclude=["/*.jpg"])  # the top-level files of each listed prefix
    config = PlanningConfig(filters=filters, prefix_template=template)
    harness = Harness(
        LocalSource(data_root),
        BlobStore.from_uri(str(tmp_path / "state")),
        config=config,
        prefixes=(scheduled,),
    )
    first = harness.plan("r1")
    assert first.outcome_of(f"{day}a/x.jpg") == "new"
    assert first.outcome(f"{day}top.jpg")["code"] == "excluded"
    harness.commit(first, item_uuids={u: f"uuid-{t}" for t, u in item_urls_by_title(first.frames).items()})

    harness.prefixes = [manual]  # the manual run's prefix override
    again = harness.plan("manual")
    harness.commit(again)
    assert again.outcome_of(f"{day}a/x.jpg") == "unchanged"
    assert f"{day}a/x.jpg" in set(harness.ledger.read_frame()["key"])
    if manual == "raw/":
        assert again.outcome(f"{day}top.jpg")["code"] == "excluded"


def test_without_a_template_or_with_renderings_the_roots_are_the_runs_prefixes() -> None:
    daily = "raw/{{ data_interval_start }}/"
    assert KeyFilter(roots=["raw/a/"]).relative("raw/a/x.jpg") == "x.jpg"
    assert (
        KeyFilter(roots=["raw/2026-11-01/"], template=daily).relative("raw/2026-11-01/a/x.jpg") == "a/x.jpg"
    )
    assert (
        KeyFilter(roots=["raw/2026-11-01/a/"], template=daily).relative("raw/2026-11-01/a/x.jpg") == "a/x.jpg"
    )
    # A key under no rendering (only an override above the template lists it) keeps the run's root.
    assert KeyFilter(roots=["raw/"], template=daily).relative("raw/other/x.jpg") == "other/x.jpg"
