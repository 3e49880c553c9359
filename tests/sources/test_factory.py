"""open_source: one URI per bucket, clients injected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from standins import GcsEmulator

from encord_ingest.errors import ConfigError
from encord_ingest.sources import GCSSource, LocalSource, S3Source, Source, open_source, split_uri


def test_open_each_scheme(s3: Any, gcs: GcsEmulator, tmp_path: Path) -> None:
    s3_source = open_source("s3://my-bucket", s3_client=s3, region="eu-west-1", url_style="uri")
    assert isinstance(s3_source, S3Source)
    assert isinstance(s3_source, Source)
    assert s3_source.object_url("a b") == "s3://my-bucket/a%20b"
    gcs_source = open_source("gs://my-bucket", gcs_client=gcs.client())
    assert isinstance(gcs_source, GCSSource)
    assert gcs_source.object_url("a") == "https://storage.cloud.google.com/my-bucket/a"
    local = open_source(tmp_path.as_uri())
    assert isinstance(local, LocalSource)
    assert local.bucket == tmp_path.resolve().as_posix()
    assert isinstance(open_source(str(tmp_path)), LocalSource)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bkt/raw/2024/", ("s3", "bkt", "raw/2024/")),
        ("gs://my.bucket_1", ("gs", "my.bucket_1", "")),
        ("file:///data/my%20root", ("file", "/data/my root", "")),
        ("/data/root", ("file", "/data/root", "")),
        ("relative/dir", ("file", "relative/dir", "")),
    ],
)
def test_split_uri(uri: str, expected: tuple[str, str, str]) -> None:
    assert split_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://bkt/raw/", "has a path; a source URI names the bucket only, put 'raw/' in the prefix"),
        ("s3://", "has no valid bucket name"),
        ("s3://Upper_Case", "has no valid bucket name"),
        ("file://host/x", "names a host"),
        ("http://example.com/x", "unsupported scheme"),
        ("gs://bkt", "needs a GCS client"),
        ("s3://bkt", "needs an S3 client"),
    ],
)
def test_bad_source_uris(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"sources\.cams\.uri") as error:
        open_source(uri, field="sources.cams.uri")
    assert message in str(error.value)


def test_direct_reads_can_be_switched_off(s3: Any, gcs: GcsEmulator) -> None:
    """``bucket.direct_reads: false`` (the DAG builder passes it): sidecars are read the ordinary way."""
    from encord_ingest.config import BucketConfig

    assert BucketConfig(uri="s3://my-bucket").direct_reads is True
    assert BucketConfig(uri="s3://my-bucket", direct_reads=False).direct_reads is False
    for uri, clients in (
        ("s3://my-bucket", {"s3_client": s3}),
        ("gs://my-bucket", {"gcs_client": gcs.client()}),
    ):
        assert vars(open_source(uri, **clients))["direct"] is not None
        assert vars(open_source(uri, direct_reads=False, **clients))["direct"] is None
