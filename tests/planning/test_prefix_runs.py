"""A run with a prefix override skips what the scheduled runs skip: rules and globs see keys relative
to the rendering of the source's prefix template, not to the override. Before, an anchored glob
matched differently in a manual run of a subfolder, which skipped (and dropped from the ledger)
items a scheduled run had registered; the next scheduled run planned them as new again."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    harness.commit_registered(first)

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


DAY = "raw/2026/11/01/"
EVENT_TREE = {
    "raw/_defaults.yaml": "capture:\n  site: s\n",
    "raw/2026/_defaults.yaml": "capture:\n  site: t\n",
    f"{DAY}top.jpg": png(),
    f"{DAY}a/x.jpg": png(),
    f"{DAY}a/top.jpg": png(),
    f"{DAY}.cache/y.jpg": png(),
    f"{DAY}a/z.jpg.part": png(),
}


@pytest.mark.parametrize("folder_input", ["raw/_defaults.yaml", "raw/2026/_defaults.yaml"])
def test_an_event_run_for_a_folder_input_above_the_template_filters_like_scheduled_and_override_runs(
    tmp_path: Path, data_root: Path, folder_input: str
) -> None:
    """An event for a defaults file above the rendered prefix re-plans the day; its scan, the
    scheduled run of the day, a manual run with a prefix override above or below the rendering,
    and the events of single keys all skip the same keys with the same rule (one glob root)."""
    from encord_ingest.events import plan_events
    from encord_ingest.sources.sharding import Shard
    from tests.events.test_event_planning import config as source_config
    from tests.events.test_event_planning import s3_message

    write_tree(data_root, EVENT_TREE)
    source = source_config(filters={"exclude": ["/*.jpg"]}, grouping={})  # top-level files of the day
    harness = Harness(
        LocalSource(data_root), BlobStore.from_uri(str(tmp_path / "state")), config=source.planning()
    )
    event = plan_events(source, [s3_message(folder_input)], run_id="events")
    assert not event.skipped
    assert event.shards
    codes = {}
    for run, prefixes, shards in [
        ("scheduled", [DAY], None),
        ("override-above", ["raw/"], None),
        ("override-below", [f"{DAY}a/"], None),
        ("events", [], [Shard.model_validate(shard) for shard in event.shards]),
    ]:
        harness.prefixes = prefixes
        result = harness.plan(run, shard_list=shards)
        listed = {key for key in EVENT_TREE if key.startswith(DAY) and key.startswith(tuple(prefixes) or DAY)}
        codes[run] = {key: (result.outcome_of(key), result.outcome(key)["code"]) for key in listed}
    expected = {
        f"{DAY}top.jpg": ("skipped", "excluded"),
        f"{DAY}a/x.jpg": ("new", None),
        f"{DAY}a/top.jpg": ("new", None),
        f"{DAY}.cache/y.jpg": ("skipped", "hidden"),
        f"{DAY}a/z.jpg.part": ("skipped", "temporary"),
    }
    assert codes["scheduled"] == codes["override-above"] == codes["events"] == expected
    assert codes["override-below"] == {k: v for k, v in expected.items() if k.startswith(f"{DAY}a/")}
    singles = plan_events(source, [s3_message(key) for key in expected], run_id="singles")
    assert {s["key"]: s["rule"] for s in singles.skipped} == {
        key: code for key, (outcome, code) in expected.items() if outcome == "skipped"
    }


DAYS = ("raw/2026/11/01/", "raw/2026/11/02/")
UNDER_NO_RENDERING = {
    "raw/latest/x.jpg": png(),
    "raw/latest/x.jpg.json": {"capture.camera": "c1"},
    "raw/latest/_defaults.yaml": "capture:\n  camera: c2\n",
    "raw/2026/stray.jpg": png(),
}
OUTSIDE_TREE = {
    "raw/_defaults.yaml": "capture:\n  site: s\n",
    "raw/2026/_defaults.yaml": "capture:\n  camera: t\n",
    "raw/2026/11/metadata.csv": "file,layer\n01/a.jpg,l1\n",
    f"{DAYS[0]}a.jpg": png(),
    f"{DAYS[0]}a.jpg.json": {"capture.count": 1},
    f"{DAYS[1]}b.jpg": png(),
    **UNDER_NO_RENDERING,
}


@pytest.mark.parametrize(
    ("changed", "content"),
    [
        ("raw/_defaults.yaml", "capture:\n  site: s2\n"),
        ("raw/2026/_defaults.yaml", "capture:\n  camera: t2\n"),
    ],
)
def test_an_event_run_above_the_template_plans_what_the_scheduled_runs_plan_and_keeps_other_ledger_rows(
    tmp_path: Path, data_root: Path, changed: str, content: str
) -> None:
    """An event for a defaults file above the renderings lists the static prefix (``raw/``), but
    plans only what the scheduled runs of the days below it plan: keys under no rendering of the
    template (``raw/latest/``, ``raw/2026/stray.jpg``) are skipped as ``outside_prefix``, and the
    ledger rows an earlier run with the prefix override ``raw/`` gave them survive the commit."""
    from encord_ingest.events import plan_events
    from encord_ingest.sources.sharding import Shard
    from tests.events.test_event_planning import config as source_config
    from tests.events.test_event_planning import s3_message

    write_tree(data_root, OUTSIDE_TREE)
    source = source_config(grouping={})
    assert source.bucket.prefix == "raw/{{ data_interval_start:%Y/%m/%d }}/"
    harness = Harness(
        LocalSource(data_root),
        BlobStore.from_uri(str(tmp_path / "state")),
        config=source.planning(),
        prefixes=("raw/",),  # a manual run with a prefix override: the user's choice, planned whole
    )
    manual = harness.plan("manual")
    assert manual.outcome_of("raw/latest/x.jpg") == manual.outcome_of("raw/2026/stray.jpg") == "new"
    harness.commit_registered(manual)
    before = harness.ledger.read_frame().set_index("key")
    assert {"raw/latest/x.jpg", "raw/2026/stray.jpg"} <= set(before.index)

    write_tree(data_root, {changed: content})
    harness.prefixes = list(DAYS)
    scheduled = harness.plan("scheduled")  # the days' scheduled runs, not committed
    event = plan_events(source, [s3_message(changed)], run_id="events")
    assert not event.skipped
    result = harness.plan("events", shard_list=[Shard.model_validate(shard) for shard in event.shards])

    day_keys = [key for key in OUTSIDE_TREE if key.startswith(DAYS)]
    assert {k: (scheduled.outcome_of(k), scheduled.outcome(k)["code"]) for k in day_keys} == {
        k: (result.outcome_of(k), result.outcome(k)["code"]) for k in day_keys
    }
    assert {scheduled.outcome_of(k) for k in day_keys} == {"metadata_changed", "sidecar"}
    assert sorted((c.object_url, c.metadata) for c in scheduled.changes) == sorted(
        (c.object_url, c.metadata) for c in result.changes
    )
    listed = set(result.outcomes["key"])
    outside = {key for key in UNDER_NO_RENDERING if key in listed}
    assert outside == (set(UNDER_NO_RENDERING) if changed == "raw/_defaults.yaml" else {"raw/2026/stray.jpg"})
    for key in outside:
        row = result.outcome(key)
        assert (row["outcome"], row["code"]) == ("skipped", "outside_prefix")
        assert "raw/{{ data_interval_start:%Y/%m/%d }}/" in row["message"]
    assert not result.manifests

    harness.commit(result)
    after = harness.ledger.read_frame().set_index("key")
    for key in ("raw/latest/x.jpg", "raw/2026/stray.jpg"):
        assert after.loc[key].to_dict() == before.loc[key].to_dict()  # the manual run's row, whole
    assert after.loc[f"{DAYS[0]}a.jpg", "last_run_id"] == "events"
