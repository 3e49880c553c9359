"""Prefix templating from a run's data interval, and explicit prefixes for manual runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from encord_ingest.errors import ConfigError
from encord_ingest.sources.prefix import expand_prefixes, finest_unit, render_prefix, resolve_prefixes

DAY = datetime(2024, 3, 9, tzinfo=UTC)
TEMPLATE = "raw/{{ data_interval_start:%Y/%m/%d }}/"


def test_daily_run_lists_one_day_folder() -> None:
    assert resolve_prefixes(TEMPLATE, data_interval_start=DAY, data_interval_end=DAY + timedelta(days=1)) == [
        "raw/2024/03/09/"
    ]


def test_weekly_interval_expands_to_each_day() -> None:
    prefixes = resolve_prefixes(TEMPLATE, data_interval_start=DAY, data_interval_end=DAY + timedelta(days=7))
    assert prefixes == [f"raw/2024/03/{day:02d}/" for day in range(9, 16)]


def test_interval_not_aligned_to_periods_covers_every_overlapping_period() -> None:
    start = datetime(2024, 3, 9, 22, 30, tzinfo=UTC)
    prefixes = resolve_prefixes(
        "raw/{{data_interval_start:%Y-%m-%d/%H}}/",
        data_interval_start=start,
        data_interval_end=start + timedelta(hours=2),
    )
    assert prefixes == ["raw/2024-03-09/22/", "raw/2024-03-09/23/", "raw/2024-03-10/00/"]


def test_month_template_over_a_quarter_and_month_ends() -> None:
    start = datetime(2024, 1, 31, tzinfo=UTC)
    prefixes = expand_prefixes("m={{ data_interval_start:%Y-%m }}/", start, datetime(2024, 4, 1, tzinfo=UTC))
    assert prefixes == ["m=2024-01/", "m=2024-02/", "m=2024-03/"]


def test_default_format_is_iso_date_and_both_ends_render_once() -> None:
    start, end = DAY, DAY + timedelta(days=3)
    assert resolve_prefixes(
        "x/{{ data_interval_start }}_{{ data_interval_end:%d }}/",
        data_interval_start=start,
        data_interval_end=end,
    ) == ["x/2024-03-09_12/"]


def test_timezone_shifts_the_rendered_date() -> None:
    start = datetime(2024, 3, 9, 23, 0, tzinfo=UTC)
    assert (
        render_prefix(TEMPLATE, data_interval_start=start, data_interval_end=None, timezone="Asia/Tokyo")
        == "raw/2024/03/10/"
    )
    naive = datetime(2024, 3, 9, 23, 0)
    assert render_prefix(TEMPLATE, data_interval_start=naive, data_interval_end=None) == "raw/2024/03/09/"


def test_override_wins_and_manual_runs_need_one() -> None:
    assert resolve_prefixes(TEMPLATE, override="manual/reprocess/") == ["manual/reprocess/"]
    assert resolve_prefixes(TEMPLATE, data_interval_start=DAY, override=["b/", "a/", "b/"]) == ["b/", "a/"]
    with pytest.raises(ConfigError, match="needs a data interval") as error:
        resolve_prefixes(TEMPLATE, field="sources.cams.prefix")
    assert "sources.cams.prefix" in str(error.value)
    assert "explicit prefix" in str(error.value)


def test_literal_prefix_needs_no_interval() -> None:
    assert resolve_prefixes("raw/static/") == ["raw/static/"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("raw/{{ ds }}/", "unknown variable 'ds'"),
        ("raw/{{ data_interval_start:%Y }/", "malformed placeholder"),
        ("raw/{{ data_interval_start:%Y }}}}/", "malformed placeholder"),
    ],
)
def test_bad_templates_are_config_errors(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_prefixes(template, data_interval_start=DAY, field="prefix")


def test_unknown_timezone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="timezone: unknown time zone 'Mars/Olympus'"):
        resolve_prefixes(TEMPLATE, data_interval_start=DAY, timezone="Mars/Olympus")


@pytest.mark.parametrize(
    ("formats", "unit"),
    [
        (["%Y/%m/%d"], "day"),
        (["%Y"], "year"),
        (["%Y-%m"], "month"),
        (["%H"], "hour"),
        (["%G-W%V"], "day"),
        ([], "year"),
    ],
)
def test_finest_unit(formats: list[str], unit: str) -> None:
    assert finest_unit(formats) == unit


def test_runaway_expansion_is_refused() -> None:
    with pytest.raises(ConfigError, match="more than 100000 periods"):
        expand_prefixes("{{ data_interval_start:%Y%m%d%H%M%S }}", DAY, DAY + timedelta(days=2))
