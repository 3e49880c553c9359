"""A file-name prefix template that ends with a placeholder (``bucket.prefix:
raw/{{ data_interval_start:%Y%m }}``, no ``/`` or text after it). Its fixed-width directives match
exactly the width they render with, so a key's match ends where its rendering ends: a manual run
with a prefix override (``raw/202611a/``) matches rules and globs relative to the rendering the
scheduled runs and event runs use (``raw/202611``). Before, it matched them relative to the
override: an anchored glob skipped an item the scheduled run had registered and dropped its ledger
row (review2 finding). A template whose end has no fixed width (``%b``, ``%-d``) has no reliable
rendering in such a run: config load refuses it together with globs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from encord_ingest.config import parse_source_config
from encord_ingest.errors import ConfigError
from encord_ingest.events import EventPlanner
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.sources.base import ObjectInfo
from encord_ingest.sources.filters import FilterConfig, SkipReason
from encord_ingest.sources.local import LocalSource
from encord_ingest.sources.prefix import ends_exactly, template_pattern
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, png, write_tree

REPO = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((REPO / "include" / "sources" / "demo_media.yaml").read_text())
TEMPLATE = "raw/{{ data_interval_start:%Y%m }}"


def _source(prefix: str, filters: dict[str, Any]) -> Any:
    return parse_source_config(
        {**DEMO, "bucket": {**DEMO["bucket"], "prefix": prefix}, "filters": filters}, file="s.yaml"
    )


def test_a_prefix_run_of_a_template_ending_in_a_placeholder_keeps_the_ledger_rows(
    tmp_path: Path, data_root: Path
) -> None:
    key = "raw/202611a/x.jpg"
    write_tree(data_root, {key: png()})
    config = PlanningConfig(filters=FilterConfig(exclude=["/*.jpg"]), prefix_template=TEMPLATE)
    store = BlobStore.from_uri(str(tmp_path / "state"))
    harness = Harness(LocalSource(data_root), store, config=config, prefixes=("raw/202611",))
    first = harness.plan("r1")
    assert first.outcome_of(key) == "new"
    harness.commit_registered(first)
    harness.prefixes = ["raw/202611a/"]  # the manual run's prefix override
    again = harness.plan("manual")
    harness.commit(again)
    assert again.outcome_of(key) == "unchanged"  # was skipped 'excluded', its row dropped
    assert key in set(harness.ledger.read_frame()["key"])


@pytest.mark.parametrize(
    ("key", "manual", "relative", "glob"),
    [
        ("raw/202611a/x.jpg", "raw/202611a/", "a/x.jpg", None),
        ("raw/202611x.jpg", "raw/", "x.jpg", "excluded"),
        ("raw/2026110/x.jpg", "raw/2026110/", "0/x.jpg", None),  # a name starting with a digit
        ("raw/202611.h/x.jpg", "raw/202611.h/", ".h/x.jpg", None),
    ],
)
def test_event_scheduled_and_manual_runs_see_a_key_relative_to_the_same_rendering(
    key: str, manual: str, relative: str, glob: str | None
) -> None:
    """The rendering of a key is the glob root of an event run, a scheduled run and a manual run
    of a deeper or shallower prefix alike: the same relative key, glob verdict and skip rule."""
    source = _source(TEMPLATE, {"exclude": ["/*.jpg"]})
    events = EventPlanner(source)
    root = events.run_prefix(key, folder_input=False)
    assert root == "raw/202611"  # what the scheduled run of 2026-11 lists
    planning = source.planning()
    for key_filter in (events._filter(root), planning.key_filter([root]), planning.key_filter([manual])):
        assert key_filter.relative(key) == relative
        reason = key_filter.glob_reason(key)
        assert (reason.value if reason is not None else None) == glob
    info = ObjectInfo(key=key, size=1, version="v")
    rules = {f.rule_reason(info) for f in (events._filter(root), planning.key_filter([manual]))}
    assert rules == {SkipReason.HIDDEN if relative.startswith(".") else None}


@pytest.mark.parametrize(
    ("template", "exact"),
    [
        (TEMPLATE, True),
        ("raw/{{ data_interval_start:%Y/%m/%d }}", True),
        ("raw/{{ data_interval_start:%b }}/{{ data_interval_start:%d%H }}", True),
        ("raw/{{ data_interval_start:%Y%j }}", True),
        ("raw/{{ data_interval_start:%b }}", False),
        ("raw/{{ data_interval_start:%Y%-m }}", False),
        ("raw/{{ data_interval_start:%s }}{{ data_interval_start:%Y }}", False),
        ("raw/{{ data_interval_start:%b }}_", True),  # text of its own at the end (97d4fc8)
        ("raw/{{ data_interval_start:%b }}/", True),
        ("raw/img_", True),
        ("", True),
    ],
)
def test_a_template_ends_exactly_unless_its_last_segment_ends_with_no_fixed_width(
    template: str, exact: bool
) -> None:
    assert ends_exactly(template) is exact


@pytest.mark.parametrize("prefix", ["raw/{{ data_interval_start:%b }}", "raw/{{ data_interval_start:%-d }}"])
def test_config_load_refuses_globs_with_a_template_whose_end_has_no_fixed_width(prefix: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _source(prefix, {"include": ["*.jpg"]})
    message = str(raised.value)
    for part in ("s.yaml", "bucket.prefix", "filters.include", prefix, "end the prefix with '/' or literal"):
        assert part in message
    assert _source(prefix, {}).bucket.prefix == prefix  # no globs: nothing to match relative to it
    assert _source(prefix + "/", {"include": ["*.jpg"]}).filters.include == ["*.jpg"]
    assert _source(TEMPLATE, {"include": ["*.jpg"]}).filters.include == ["*.jpg"]


def test_a_flagged_directive_matches_its_rendering() -> None:
    """``%-m`` renders ``5`` (no fixed width); before, the flag was read as the directive."""
    pattern = template_pattern("raw/{{ data_interval_start:%Y/%-m }}/")
    assert pattern.match("raw/2026/5/x.jpg") is not None
    assert template_pattern(TEMPLATE).match("raw/20265/x.jpg") is None  # %m is two digits
