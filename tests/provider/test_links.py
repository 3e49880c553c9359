"""The URLs behind the task links (the links themselves are proven end to end in
``tests/dags/test_outcomes_e2e.py``): Encord's web app from the connection, storage consoles."""

from __future__ import annotations

import json

import pytest

from encord_provider.links import encord_web_link, object_url_for_connection, storage_object_url

F, J = "0b6e-folder", "7c1d-job"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, f"https://app.encord.com/files/folders/{F}"),
        ({"domain": "https://api.us.encord.com/"}, f"https://app.us.encord.com/files/folders/{F}"),
        ({"domain": "http://127.0.0.1:8765"}, None),  # an emulator or proxy: no web app known
        (
            {"domain": "http://127.0.0.1:8765", "web_url": "https://encord.example/"},
            f"https://encord.example/files/folders/{F}",
        ),
        ({"folder_link": "{web_url}/f?id={folder_uuid}"}, f"https://app.encord.com/f?id={F}"),
        ({"folder_link": "{web_url}/{project}"}, None),  # a field the link does not have
        ({"folder_link": "{web_url}/{0}"}, None),
    ],
)
def test_folder_links_follow_the_connection(extra: dict[str, str], expected: str | None) -> None:
    assert encord_web_link(extra, "folder", folder_uuid=F) == expected


def test_an_upload_job_link_needs_both_ids() -> None:
    assert encord_web_link({}, "upload_job", folder_uuid=F, job_uuid=J) == (
        f"https://app.encord.com/files/folders/{F}?uploadJob={J}"
    )
    assert encord_web_link({}, "upload_job", folder_uuid=F, job_uuid=None) is None


@pytest.mark.parametrize(
    ("uri", "options", "expected"),
    [
        (
            "s3://bkt/runs/r 1/report.md",
            {"region": "eu-west-2"},
            "https://console.aws.amazon.com/s3/object/bkt?region=eu-west-2&prefix=runs%2Fr%201%2Freport.md",
        ),
        (
            "s3://bkt/report.md",
            {"s3_endpoint": "https://s3.eu-west-2.amazonaws.com"},
            "https://console.aws.amazon.com/s3/object/bkt?prefix=report.md",
        ),
        (
            "s3://bkt/runs/report.md",
            {"s3_endpoint": "http://127.0.0.1:9000/"},
            "http://127.0.0.1:9000/bkt/runs/report.md",
        ),
        (
            "gs://bkt/runs/report.md",
            {},
            "https://console.cloud.google.com/storage/browser/_details/bkt/runs/report.md",
        ),
        (
            "gs://bkt/runs/report.md",
            {"gcs_endpoint": "http://127.0.0.1:4443"},
            "http://127.0.0.1:4443/storage/v1/b/bkt/o/runs%2Freport.md?alt=media",
        ),
        ("file:///tmp/state/report.md", {}, "file:///tmp/state/report.md"),
        ("s3://bkt", {}, None),
        ("s3://Not-A-Bucket/report.md", {}, None),  # no valid bucket name: no link
        ("file://host/report.md", {}, None),
        ("azure://c/report.md", {}, None),
        ("", {}, None),
    ],
)
def test_a_report_links_to_its_console_page_or_endpoint(
    uri: str, options: dict[str, str], expected: str | None
) -> None:
    assert storage_object_url(uri, **options) == expected


def test_the_report_link_reads_the_endpoint_from_the_connection_and_never_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-2"}
    monkeypatch.setenv("AIRFLOW_CONN_STATE_S3", json.dumps({"conn_type": "aws", "extra": extra}))
    assert object_url_for_connection("s3://bkt/r.md", "state_s3") == "http://127.0.0.1:9000/bkt/r.md"
    assert object_url_for_connection("s3://bkt/r.md", "no_such_connection") is None
