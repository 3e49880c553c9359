"""S3 event notifications -> the exact key ranges an event run re-plans (core, no I/O)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from encord_ingest.config import SourceConfig, parse_source_config
from encord_ingest.errors import ConfigError
from encord_ingest.events import (
    EventsConfig,
    Unit,
    merge_units,
    parse_message,
    plan_events,
)
from encord_ingest.sources.sharding import Shard

REPO = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((REPO / "include" / "sources" / "demo_media.yaml").read_text())
QUEUE = "https://sqs.eu-west-2.amazonaws.com/123456789012/uploads"


def config(**changes: Any) -> SourceConfig:
    document = {**DEMO, "events": {"queue_url": QUEUE}, **changes}
    return parse_source_config(document, file="test.yaml")


def s3_message(
    key: str,
    event: str = "ObjectCreated:Put",
    *,
    etag: str = "e1",
    bucket: str = "encord-demo-raw",
    message_id: str | None = None,
) -> dict[str, Any]:
    """An SQS message holding one S3 notification in the documented format (key URL-encoded)."""
    from urllib.parse import quote_plus

    body = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": event,
                "s3": {
                    "bucket": {"name": bucket},
                    "object": {"key": quote_plus(key), "size": 3, "eTag": etag},
                },
            }
        ]
    }
    return {
        "MessageId": message_id or f"m-{key}-{event}-{etag}",
        "ReceiptHandle": f"r-{key}",
        "Body": json.dumps(body),
    }


def ranges(plan: Any) -> list[tuple[str, str | None, str | None]]:
    return [(u["prefix"], u["start_at"], u["end_before"]) for u in plan.units]


def test_events_config_maps_the_batching_window_onto_the_sqs_trigger() -> None:
    events = EventsConfig(queue_url=QUEUE, max_events=35, window_s=20)
    kwargs = events.trigger_kwargs("aws_demo")
    assert kwargs["max_messages"] == 10
    assert kwargs["num_batches"] == 4
    assert kwargs["num_batches"] * kwargs["wait_time_seconds"] <= 20
    assert kwargs["delete_message_on_reception"] is False
    assert kwargs["aws_conn_id"] == "aws_demo"
    assert kwargs["visibility_timeout"] == 1800


def test_a_bad_events_section_names_the_field() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_source_config({**DEMO, "events": {"queue_url": "uploads"}}, file="s.yaml")
    assert "events.queue_url" in str(raised.value)
    assert "SQS queue URL" in str(raised.value)
    with pytest.raises(ConfigError, match=r"events\.max_events"):
        parse_source_config({**DEMO, "events": {"queue_url": QUEUE, "max_events": 0}}, file="s.yaml")


def test_messages_parse_with_url_decoding_sns_envelopes_and_test_events() -> None:
    parsed = parse_message(s3_message("raw/2026/11/01/my clip+1.mp4"))
    assert parsed.error is None
    assert parsed.events[0].key == "raw/2026/11/01/my clip+1.mp4"
    assert parsed.events[0].action == "created"
    assert parsed.events[0].etag == "e1"
    wrapped = {
        "MessageId": "s",
        "Body": json.dumps({"Type": "Notification", "Message": s3_message("a.jpg")["Body"]}),
    }
    assert parse_message(wrapped).events[0].key == "a.jpg"
    test_event = {"MessageId": "t", "Body": json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})}
    assert parse_message(test_event).ignored == "s3_test_event"
    restore = parse_message(s3_message("a.jpg", "ObjectRestore:Completed"))
    assert restore.error is None
    assert not restore.events
    assert "ObjectRestore:Completed" in (restore.ignored or "")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json", "expected JSON of an S3 event notification"),
        (json.dumps({"hello": 1}), 'expected an S3 event notification {"Records"'),
        (json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}), "Records[0]: expected 'eventName'"),
        (
            json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {}}}]}),
            "s3.bucket.name",
        ),
    ],
)
def test_a_malformed_message_fails_alone_with_its_reason(body: str, expected: str) -> None:
    bad = {"MessageId": "bad", "ReceiptHandle": "rb", "Body": body}
    plan = plan_events(config(), [bad, s3_message("raw/2026/11/01/a.jpg")], run_id="r")
    assert [m["id"] for m in plan.malformed] == ["bad"]
    assert expected in plan.malformed[0]["reason"]
    assert plan.malformed[0]["body"] == body
    assert ranges(plan) == [("raw/2026/11/01/", "raw/2026/11/01/a", "raw/2026/11/01/a0")]
    assert {r["Id"] for r in plan.receipts} == {"bad", "m-raw/2026/11/01/a.jpg-ObjectCreated:Put-e1"}


def test_each_kind_of_event_re_plans_its_unit() -> None:
    day = "raw/2026/11/01/"
    messages = [
        s3_message(day + "cam1/clip.mp4"),  # a data object: its stem range
        s3_message(day + "cam2/clip.mp4.json"),  # a per-file sidecar: its data file's stem range
        s3_message(day + "cam3/_defaults.yaml"),  # folder defaults: the folder's subtree
        s3_message(day + "sequences/s1/frame_0001.jpg"),  # a group member: the group folder
        s3_message(day + "groups/g1/metadata.csv"),  # a table inside a group folder: the group
        s3_message(day + "dicom/study1/slice1.dcm"),  # a DICOM file (dicom_series: folder): the series
    ]
    plan = plan_events(config(), messages, run_id="r")
    assert ranges(plan) == [
        (day, day + "cam1/clip", day + "cam1/clip0"),
        (day, day + "cam2/clip", day + "cam2/clip0"),
        (day, day + "cam3", day + "cam30"),
        (day, day + "dicom/study1", day + "dicom/study10"),
        (day, day + "groups/g1", day + "groups/g10"),
        (day, day + "sequences/s1", day + "sequences/s10"),
    ]
    assert [u["reason"] for u in plan.units] == [
        "object",
        "sidecar",
        "folder_input",
        "group",
        "folder_input",
        "group",
    ]
    assert not plan.skipped
    assert not plan.malformed
    shard = Shard.model_validate(plan.shards[0]).model_copy(
        update={"parts": [p for s in plan.shards for p in Shard.model_validate(s).parts]}
    )
    assert shard.contains(day + "cam1/clip.mp4")
    assert shard.contains(day + "cam1/clip/frame.jpg")
    assert shard.contains(day + "cam1/clip.json")
    assert not shard.contains(day + "cam1/clipper.mp4")
    assert shard.contains(day + "sequences/s1.json")
    assert shard.contains(day + "cam3/sub/x.jpg")
    assert "" in shard.context_folders
    assert day + "cam1/" in shard.context_folders


def test_a_defaults_file_above_the_prefix_re_plans_the_whole_static_prefix() -> None:
    plan = plan_events(config(), [s3_message("raw/_defaults.yaml")], run_id="r")
    assert ranges(plan) == [("raw/", None, None)]
    # Folders between the static prefix and the renderings (raw/<year>/, raw/<year>/<month>/)
    # hold inputs of the days below them; a folder no rendering lies in does not.
    below = plan_events(
        config(),
        [s3_message("raw/2026/_defaults.yaml"), s3_message("raw/2026/11/metadata.csv")],
        run_id="r",
    )
    assert ranges(below) == [("raw/", "raw/2026", "raw/20260")]
    other = plan_events(config(), [s3_message("raw/latest/_defaults.yaml")], run_id="r")
    assert [s["rule"] for s in other.skipped] == ["outside_prefix"]
    rooted = config(metadata={**DEMO["metadata"], "root": "raw/2026/"})
    skipped = plan_events(rooted, [s3_message("raw/_defaults.yaml")], run_id="r")
    assert skipped.skipped[0]["rule"] == "outside_metadata_root"
    assert not skipped.units


@pytest.mark.parametrize(
    ("key", "rule", "changes"),
    [
        ("other/2026/11/01/a.jpg", "outside_prefix", {}),
        ("raw/latest/a.jpg", "outside_prefix", {}),
        ("raw/2026/11/01/.hidden.jpg", "hidden", {}),
        ("raw/2026/11/01/a.jpg.part", "temporary", {}),
        ("raw/2026/11/01/notes.xyz", "unknown_kind", {}),
        ("raw/2026/11/01/a.png", "not_included", {"filters": {"include": ["**/*.jpg"]}}),
        ("raw/2026/11/01/b.jpg", "excluded", {"filters": {"exclude": ["**/b.jpg"]}}),
    ],
)
def test_events_outside_the_source_are_skipped_with_a_rule(
    key: str, rule: str, changes: dict[str, Any]
) -> None:
    plan = plan_events(config(**changes), [s3_message(key)], run_id="r")
    assert [s["rule"] for s in plan.skipped] == [rule]
    assert not plan.units
    assert not plan.shards


def test_globs_see_paths_relative_to_the_rendered_prefix_as_in_a_scheduled_run() -> None:
    source = config(filters={"include": ["images/*.jpg"]})
    day = "raw/2026/11/01/"
    plan = plan_events(
        source, [s3_message(day + "images/a.jpg"), s3_message(day + "other/a.jpg")], run_id="r"
    )
    assert ranges(plan) == [(day, day + "images/a", day + "images/a0")]
    assert [(s["key"], s["rule"]) for s in plan.skipped] == [(day + "other/a.jpg", "not_included")]


def test_another_bucket_is_skipped() -> None:
    plan = plan_events(config(), [s3_message("raw/2026/11/01/a.jpg", bucket="elsewhere")], run_id="r")
    assert plan.skipped[0]["rule"] == "other_bucket"


def test_duplicates_and_overlaps_collapse_into_one_range_each() -> None:
    day = "raw/2026/11/01/"
    same = s3_message(day + "a.jpg")
    messages = [
        same,
        same,
        s3_message(day + "a.json"),
        s3_message(day + "a.jpg", "ObjectRemoved:Delete"),
        s3_message(day + "_defaults.yaml"),
        s3_message(day + "sub/b.jpg"),
    ]
    plan = plan_events(config(), messages, run_id="r")
    assert plan.messages == 5  # the same MessageId twice counts once
    assert ranges(plan) == [(day, None, None)]
    assert plan.units[0]["keys"] == sorted(
        {day + "a.jpg", day + "a.json", day + "_defaults.yaml", day + "sub/b.jpg"}
    )


def test_merge_joins_touching_ranges_and_keeps_disjoint_ones() -> None:
    units = [
        Unit("a/b", "a/b", "a/b0", "object"),
        Unit("a/", "a/", None, "folder_input"),
        Unit("c/x", "c/x", "c/x0", "object"),
    ]
    merged = merge_units(units)
    assert [(u.prefix, u.low, u.high) for u in merged] == [("a/", "a/", None), ("c/x", "c/x", "c/x0")]
    chained = merge_units(
        [
            Unit("a/b", "a/b", "a/b0", "object"),
            Unit("a/b.c", "a/b.c", "a/b/x", "object"),
            Unit("a/b/", "a/b/", None, "folder_input"),
        ]
    )
    assert [(u.prefix, u.low, u.high) for u in chained] == [("a/b", "a/b", "a/b0")]


def test_events_already_in_the_ledger_are_not_planned_again() -> None:
    day = "raw/2026/11/01/"
    versions = {day + "a.jpg": "e1", day + "a.json": "s1", day + "b.jpg": "e2"}
    asked: list[Any] = []

    def ledger(parts: Any) -> dict[str, str]:
        asked.append(parts)
        return versions

    messages = [
        s3_message(day + "a.jpg", etag="e1"),  # duplicate of what the ledger holds
        s3_message(day + "a.json", etag="s1"),  # its sidecar, same version
        s3_message(day + "b.jpg", etag="e0"),  # a different ETag (older or newer): re-plan from the listing
        s3_message(day + "c.jpg", "ObjectRemoved:Delete"),  # removed, and the ledger does not hold it
        s3_message(day + "d.jpg", "ObjectRemoved:Delete"),
    ]
    versions[day + "d.jpg"] = "e9"  # removed, the ledger still holds it: re-plan (-> gone)
    plan = plan_events(config(), messages, run_id="r", ledger_versions=ledger)
    assert ranges(plan) == [(day, day + "b", day + "b0"), (day, day + "d", day + "d0")]
    assert sorted(a["key"] for a in plan.already_applied) == [day + "a.jpg", day + "a.json", day + "c.jpg"]
    assert len(asked) == 1


def test_shards_split_the_units_and_cover_each_once() -> None:
    day = "raw/2026/11/01/"
    messages = [s3_message(f"{day}f{i:02d}.jpg") for i in range(9)]
    plan = plan_events(config(shards=4), messages, run_id="r")
    shards = [Shard.model_validate(s) for s in plan.shards]
    assert len(shards) == 4
    for i in range(9):
        assert sum(shard.contains(f"{day}f{i:02d}.jpg") for shard in shards) == 1
