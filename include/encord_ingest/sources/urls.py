"""Canonical object URLs: one rule to encode a key, one template per source.

The object URL is the identity of an object everywhere (ledger, Encord's duplicate check,
lookups), so it is built in exactly one place: :meth:`UrlBuilder.url`.

Key encoding rule (:func:`encode_key`): the key's UTF-8 bytes are percent-encoded, except the
RFC 3986 unreserved characters ``A-Z a-z 0-9 - . _ ~`` and the path separator ``/``. So a space
is ``%20``, ``+`` is ``%2B``, ``%`` is ``%25``, ``#`` is ``%23``, ``?`` is ``%3F`` and ``é`` is
``%C3%A9``. Keys are not Unicode-normalised (two keys that differ only in normalisation are two
objects) and ``//`` or a trailing ``/`` are kept as they are.

Templates take the placeholders ``{bucket}``, ``{key}`` (the encoded key, required, once) and
``{region}`` (S3). ``{bucket}`` is encoded with the same rule (a no-op for S3 and GCS bucket names;
it matters for a local root directory). Named styles per scheme are in :data:`URL_STYLES`; a value
that contains ``{`` is taken as a custom template, e.g. ``"https://cdn.example.com/{bucket}/{key}"``.
"""

from __future__ import annotations

import re
import string
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit, urlunsplit

from encord_ingest.errors import ConfigError

KEY_SAFE_CHARACTERS = "/"
"""Besides the unreserved characters (always kept by :func:`urllib.parse.quote`)."""

DEFAULT_STYLE = "https"
URL_STYLES: dict[str, dict[str, str]] = {
    "s3": {
        "https": "https://{bucket}.s3.{region}.amazonaws.com/{key}",
        "path": "https://s3.{region}.amazonaws.com/{bucket}/{key}",
        "uri": "s3://{bucket}/{key}",
    },
    "gs": {
        "https": "https://storage.cloud.google.com/{bucket}/{key}",
        "api": "https://storage.googleapis.com/{bucket}/{key}",
        "uri": "gs://{bucket}/{key}",
    },
    "file": {
        "https": "file://{bucket}/{key}",
        "uri": "file://{bucket}/{key}",
    },
}
PLACEHOLDERS = frozenset({"bucket", "key", "region"})


_NOTHING_TO_ENCODE = re.compile(r"[A-Za-z0-9_.~/-]*")
"""Keys made only of characters :func:`encode_key` keeps (most keys): returned as they are."""


def encode_key(key: str) -> str:
    """Percent-encode ``key`` by the one documented rule (see the module docstring)."""
    if _NOTHING_TO_ENCODE.fullmatch(key):
        return key
    return quote(key, safe=KEY_SAFE_CHARACTERS, encoding="utf-8", errors="strict")


def decode_key(encoded: str) -> str:
    """Inverse of :func:`encode_key`."""
    return unquote(encoded, encoding="utf-8", errors="strict")


def url_identity(url: str) -> str:
    """The form in which two spellings of one object URL compare equal: scheme and host
    lower-cased, the path percent-decoded and encoded again by :func:`encode_key`'s rule (so
    ``%c3%a9``, ``%C3%A9`` and a raw ``é`` are one path). Used on BOTH sides wherever a URL
    Encord returns is matched with one the pipeline built (registration results, sync lookups,
    reconcile), so it does not matter whether Encord stores URLs byte for byte or normalised.
    A URL the pipeline built is its own identity (for the named styles). Limit: ``%2F`` and
    ``/`` in a key are one path here.
    """
    parts = urlsplit(url)
    path = quote(unquote_to_bytes(parts.path), safe=KEY_SAFE_CHARACTERS)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, parts.fragment))


def template_for(scheme: str, style: str | None = None, *, field: str = "url_style") -> str:
    """The URL template for a named ``style`` of ``scheme``, or ``style`` itself if it is a template."""
    if style and "{" in style:
        return style
    styles = URL_STYLES.get(scheme)
    if styles is None:
        raise ConfigError(f"{field}: unknown source scheme {scheme!r}; expected one of {sorted(URL_STYLES)}")
    name = style or DEFAULT_STYLE
    if name not in styles:
        raise ConfigError(
            f"{field}: unknown URL style {name!r} for {scheme}://; expected one of {sorted(styles)} "
            "or a template containing {key}"
        )
    return styles[name]


def _template_fields(template: str, field: str) -> list[str]:
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{field}: invalid URL template {template!r} ({exc})") from exc
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise ConfigError(
                f"{field}: unsupported placeholder {{{name}}} in URL template {template!r}; "
                f"expected only {{bucket}}, {{key}}, {{region}}"
            )
        names.append(name)
    if names.count("key") != 1:
        raise ConfigError(f"{field}: URL template {template!r} must contain {{key}} exactly once")
    return names


def check_url_style(scheme: str, style: str | None, *, field: str = "url_style") -> None:
    """Raise :class:`ConfigError` unless ``style`` names a style of ``scheme`` or is a template with
    ``{key}`` exactly once (checked when a source file is loaded, not when a run first lists)."""
    _template_fields(template_for(scheme, style, field=field), field)


class UrlBuilder:
    """Builds (and parses back) the canonical URL of every object of one bucket."""

    def __init__(self, template: str, *, bucket: str, region: str | None = None, field: str = "url_style"):
        names = _template_fields(template, field)
        if "region" in names and not region:
            raise ConfigError(f"{field}: URL template {template!r} needs a region; set the source's region")
        self.template = template
        self.bucket = bucket
        self.region = region or ""
        self._values = {"bucket": encode_key(bucket), "region": self.region}
        self._pattern = self._compile(template)
        marker = "\x00"
        self._head, _, self._tail = template.format(key=marker, **self._values).partition(marker)

    @classmethod
    def for_source(
        cls, scheme: str, bucket: str, style: str | None = None, *, region: str | None = None
    ) -> UrlBuilder:
        """The builder for a named style (or custom template) of a source."""
        return cls(template_for(scheme, style), bucket=bucket, region=region)

    def url(self, key: str) -> str:
        """The canonical URL of ``key``."""
        return self._head + encode_key(key) + self._tail

    def key_from_url(self, url: str) -> str | None:
        """The key whose canonical URL is ``url``, or ``None`` if ``url`` is not one of ours."""
        match = self._pattern.fullmatch(url)
        if match is None:
            return None
        try:
            key = decode_key(match.group("key"))
        except UnicodeDecodeError:
            return None
        return key if self.url(key) == url else None

    def _compile(self, template: str) -> re.Pattern[str]:
        parts: list[str] = []
        for text, name, _spec, _conv in string.Formatter().parse(template):
            parts.append(re.escape(text))
            if name == "key":
                parts.append("(?P<key>.*)")
            elif name is not None:
                parts.append(re.escape(self._values[name]))
        return re.compile("".join(parts), re.DOTALL)
