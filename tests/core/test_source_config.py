"""Source YAML files: validated at load, every problem names the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from encord_ingest.config import load_source_config, load_source_configs, parse_source_config
from encord_ingest.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((REPO / "include" / "sources" / "demo_media.yaml").read_text())


def test_the_demo_source_loads_with_its_planning_view() -> None:
    config = load_source_config(REPO / "include" / "sources" / "demo_media.yaml")
    assert config.dag_id == "encord_ingest__demo_media"
    assert config.state_connection == "aws_demo"
    planning = config.planning()
    assert planning.mapping.prefix == "fleet"
    assert planning.mapping.flatten is True
    assert [rule.create_video for rule in planning.grouping.groups] == [True, False]
    assert set(config.load_schema().keys) >= {"fleet.capture.time", "fleet.review.status"}


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"name": "Demo-Media"}, "name", "expected lower-case letters"),
        ({"bucket": {"uri": "s3://encord-demo-raw/raw/"}}, "bucket.uri", "name the bucket only"),
        ({"bucket": {"uri": "ftp://host/x"}}, "bucket.uri", "unsupported scheme"),
        (
            {"bucket": {"uri": "s3://raw-b", "prefix": "raw/{{ data_interval_start:%Y }"}},
            "bucket.prefix",
            "malformed placeholder in prefix template",
        ),
        ({"metadata": {"schema_file": "schemas/missing.yaml"}}, "metadata.schema_file", "does not exist"),
        ({"metadata": {"root": "raw"}}, "metadata.root", "ending in '/'"),
        ({"metadata": {"unknown_keys": "ignore"}}, "metadata.unknown_keys", "'allow', 'warn' or 'reject'"),
        ({"encord": {"integration": "x"}}, "encord.folder", "Field required"),
        ({"shards": 1000}, "shards", "less than or equal to 256"),
        ({"colour": "blue"}, "colour", "Extra inputs are not permitted"),
        ({"grouping": {"dicom_series": "study"}}, "grouping.dicom_series", "'folder' or 'series_uid'"),
        (
            {"encord": {**DEMO["encord"], "requests": {"max_bundle_byte": 5}}},
            "encord.requests.max_bundle_byte",
            "Extra inputs are not permitted",
        ),
        ({"schedule": "61 * * * *"}, "schedule", "expected a cron expression of 5 fields"),
        ({"schedule": "@dialy"}, "schedule", "expected a cron expression of 5 fields"),
        (
            {"bucket": {**DEMO["bucket"], "url_style": "https://cdn.example.com/{bucket}/"}},
            "bucket.url_style",
            "must contain {key} exactly once",
        ),
        ({"bucket": {**DEMO["bucket"], "url_style": "cdn"}}, "bucket.url_style", "unknown URL style 'cdn'"),
        ({"bucket": {**DEMO["bucket"], "timezone": "Mars/Olympus"}}, "bucket.timezone", "IANA name"),
    ],
)
def test_a_bad_field_is_named_with_the_file_and_the_expected_form(
    change: dict[str, Any], field: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_source_config({**DEMO, **change}, file="include/sources/bad.yaml")
    message = str(raised.value)
    assert message.startswith("include/sources/bad.yaml")
    assert field in message
    assert expected in message


def test_bad_files_are_reported_and_the_good_ones_still_load(tmp_path: Path) -> None:
    (tmp_path / "a_good.yaml").write_text(yaml.safe_dump(DEMO))
    (tmp_path / "b_same_name.yaml").write_text(yaml.safe_dump(DEMO))
    (tmp_path / "c_list.yaml").write_text("- not\n- a mapping\n")
    (tmp_path / "d_tabs.yml").write_text("name:\t[x\n")
    configs, errors = load_source_configs(tmp_path)
    assert [c.name for c in configs] == ["demo_media"]
    messages = sorted(str(e) for e in errors)
    assert len(messages) == 3
    assert "b_same_name.yaml: name: 'demo_media' is already used by" in messages[0]
    assert "c_list.yaml: expected a mapping of source settings, got list" in messages[1]
    assert "d_tabs.yml: cannot read source configuration" in messages[2]


def test_encord_requests_become_hook_parameters_only_where_set() -> None:
    config = parse_source_config(DEMO, file="demo.yaml")
    assert config.encord.hook_params == {}
    encord = {**DEMO["encord"], "requests": {"retry_job_start": False, "max_bundle_bytes": 200_000}}
    changed = parse_source_config({**DEMO, "encord": encord}, file="demo.yaml")
    assert changed.encord.hook_params == {"retry_job_start": False, "max_bundle_bytes": 200_000}


@pytest.mark.parametrize("schedule", [None, "@daily", "@once", "0 6 * * 1-5", "*/15 * * * *"])
def test_valid_schedules_load(schedule: str | None) -> None:
    assert parse_source_config({**DEMO, "schedule": schedule}, file="x.yaml").schedule == schedule


def test_a_key_written_twice_is_refused_at_load_naming_file_field_and_lines(tmp_path: Path) -> None:
    text = yaml.safe_dump(DEMO, sort_keys=False).replace("encord:\n", "encord:\n  folder: team/other\n", 1)
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_source_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: invalid source configuration")
    assert "encord.folder: written twice (lines " in message
