"""Canonical object URLs: the one encoding rule, named styles, templates, parsing back."""

from __future__ import annotations

import pytest

from encord_ingest.errors import ConfigError
from encord_ingest.sources.urls import UrlBuilder, decode_key, encode_key

AWKWARD_KEYS = {
    "dir with space/file name.jpg": "dir%20with%20space/file%20name.jpg",
    "plus+sign.jpg": "plus%2Bsign.jpg",
    "percent%20literal.jpg": "percent%2520literal.jpg",
    "hash#frag.jpg": "hash%23frag.jpg",
    "question?.jpg": "question%3F.jpg",
    "ünïcödé/日本語.jpg": "%C3%BCn%C3%AFc%C3%B6d%C3%A9/%E6%97%A5%E6%9C%AC%E8%AA%9E.jpg",
    "emoji😀.png": "emoji%F0%9F%98%80.png",
    "tilde~under_score-dash.v1.jpg": "tilde~under_score-dash.v1.jpg",
    "a&b=c;d,e:f@g$h!i'j(k)l*m.jpg": "a%26b%3Dc%3Bd%2Ce%3Af%40g%24h%21i%27j%28k%29l%2Am.jpg",
    "double//slash/": "double//slash/",
    "tab\tnewline\n.jpg": "tab%09newline%0A.jpg",
}


@pytest.mark.parametrize(("key", "encoded"), AWKWARD_KEYS.items())
def test_encode_key_follows_the_one_rule_and_round_trips(key: str, encoded: str) -> None:
    assert encode_key(key) == encoded
    assert decode_key(encoded) == key


def test_unicode_is_not_normalised() -> None:
    composed, decomposed = "caf\u00e9.jpg", "cafe\u0301.jpg"
    assert encode_key(composed) == "caf%C3%A9.jpg"
    assert encode_key(decomposed) == "cafe%CC%81.jpg"


@pytest.mark.parametrize(
    ("scheme", "style", "region", "expected"),
    [
        (
            "s3",
            None,
            "eu-west-1",
            "https://my-bucket.s3.eu-west-1.amazonaws.com/dir%20with%20space/f%2B1.jpg",
        ),
        (
            "s3",
            "path",
            "eu-west-1",
            "https://s3.eu-west-1.amazonaws.com/my-bucket/dir%20with%20space/f%2B1.jpg",
        ),
        ("s3", "uri", None, "s3://my-bucket/dir%20with%20space/f%2B1.jpg"),
        ("gs", None, None, "https://storage.cloud.google.com/my-bucket/dir%20with%20space/f%2B1.jpg"),
        ("gs", "api", None, "https://storage.googleapis.com/my-bucket/dir%20with%20space/f%2B1.jpg"),
        ("gs", "uri", None, "gs://my-bucket/dir%20with%20space/f%2B1.jpg"),
        (
            "s3",
            "https://cdn.example.com/{bucket}/{key}?v=1",
            None,
            "https://cdn.example.com/my-bucket/dir%20with%20space/f%2B1.jpg?v=1",
        ),
    ],
)
def test_named_styles_and_templates(
    scheme: str, style: str | None, region: str | None, expected: str
) -> None:
    urls = UrlBuilder.for_source(scheme, "my-bucket", style, region=region)
    assert urls.url("dir with space/f+1.jpg") == expected
    assert urls.key_from_url(expected) == "dir with space/f+1.jpg"


def test_local_root_is_encoded_with_the_same_rule() -> None:
    urls = UrlBuilder.for_source("file", "/data/my root")
    assert urls.url("a b/c#1.jpg") == "file:///data/my%20root/a%20b/c%231.jpg"


@pytest.mark.parametrize("key", list(AWKWARD_KEYS))
def test_key_from_url_inverts_url(key: str) -> None:
    urls = UrlBuilder.for_source("s3", "bkt", region="us-east-1")
    assert urls.key_from_url(urls.url(key)) == key


@pytest.mark.parametrize(
    "url",
    [
        "https://other.s3.us-east-1.amazonaws.com/a.jpg",  # another bucket
        "https://bkt.s3.us-east-1.amazonaws.com/a b.jpg",  # not encoded: not canonical
        "https://bkt.s3.us-east-1.amazonaws.com/a%2fb.jpg",  # lower-case / needless escape
        "https://bkt.s3.us-east-1.amazonaws.com/%FF.jpg",  # not UTF-8
    ],
)
def test_key_from_url_rejects_foreign_or_non_canonical_urls(url: str) -> None:
    urls = UrlBuilder.for_source("s3", "bkt", region="us-east-1")
    assert urls.key_from_url(url) is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("https://cdn.example.com/{bucket}/", "must contain {key} exactly once"),
        ("https://cdn/{key}/{key}", "must contain {key} exactly once"),
        ("https://cdn/{path}/{key}", "unsupported placeholder {path}"),
        ("https://cdn/{key!r}", "unsupported placeholder {key}"),
        ("https://cdn/{key", "invalid URL template"),
    ],
)
def test_bad_templates_are_config_errors_naming_the_field(template: str, message: str) -> None:
    with pytest.raises(ConfigError, match="url_style") as error:
        UrlBuilder.for_source("s3", "bkt", template, region="us-east-1")
    assert message in str(error.value)


def test_unknown_style_and_missing_region_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown URL style 'cdn' for gs://"):
        UrlBuilder.for_source("gs", "bkt", "cdn")
    with pytest.raises(ConfigError, match="needs a region"):
        UrlBuilder.for_source("s3", "bkt", None, region=None)
