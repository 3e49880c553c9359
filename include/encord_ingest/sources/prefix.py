"""Prefixes templated from a run's data interval, or given explicitly for manual runs.

Syntax: ``{{ <variable>[:<strftime format>] }}`` inside an otherwise literal prefix, e.g.
``raw/{{ data_interval_start:%Y/%m/%d }}/``. Variables: ``data_interval_start`` and
``data_interval_end``; the format defaults to ``%Y-%m-%d``. Dates are rendered in UTC unless a
``timezone`` (IANA name) is given; naive datetimes are taken as UTC.

A template that uses only ``data_interval_start`` is expanded over the whole interval: one
prefix per calendar period of the finest unit in its format (second, minute, hour, day, month,
year) that overlaps ``[start, end)``, at least one. A weekly run with a daily template lists
seven day folders; a daily run lists one. Other templates are rendered once.

An explicit ``override`` always wins (a manual run through the API or CLI has no data interval). A
template with variables, no interval and no override is a :class:`ConfigError`.

These are not Jinja templates: keep the field out of an operator's ``template_fields``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from encord_ingest.errors import ConfigError

VARIABLES = ("data_interval_start", "data_interval_end")
DEFAULT_FORMAT = "%Y-%m-%d"
MAX_EXPANDED_PERIODS = 100_000
_PLACEHOLDER = re.compile(r"\{\{\s*(?P<name>[A-Za-z_]\w*)\s*(?::(?P<format>[^}]*?))?\s*\}\}")
# Finest calendar unit of each strftime directive; week-based directives count as days.
_UNIT_OF_DIRECTIVE = {
    **dict.fromkeys("SsfTcXr", "second"),
    **dict.fromkeys("MR", "minute"),
    **dict.fromkeys("HIkl", "hour"),
    **dict.fromkeys("djaAwueDxFUWVG", "day"),
    **dict.fromkeys("mbBh", "month"),
    **dict.fromkeys("yYC", "year"),
}
_UNITS = ("second", "minute", "hour", "day", "month", "year")


def placeholders(template: str) -> list[tuple[str, str]]:
    """``(variable, format)`` of every placeholder in ``template``."""
    return [
        (m["name"], (m["format"] or "").strip() or DEFAULT_FORMAT) for m in _PLACEHOLDER.finditer(template)
    ]


def validate_template(template: str, *, field: str = "prefix") -> None:
    """Raise :class:`ConfigError` naming ``field`` if ``template`` is not a valid prefix template."""
    for name, _fmt in placeholders(template):
        if name not in VARIABLES:
            raise ConfigError(
                f"{field}: unknown variable {name!r} in prefix template {template!r}; "
                f"expected one of {list(VARIABLES)}, e.g. 'raw/{{{{ data_interval_start:%Y/%m/%d }}}}/'"
            )
    rest = _PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise ConfigError(
            f"{field}: malformed placeholder in prefix template {template!r}; "
            "expected '{{ data_interval_start:<strftime format> }}'"
        )


def _as_zone(value: datetime, zone: ZoneInfo) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(zone)


def render_prefix(
    template: str,
    *,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    timezone: str = "UTC",
) -> str:
    """``template`` with every placeholder replaced (no expansion over the interval)."""
    zone = _zone(timezone)
    values = {"data_interval_start": data_interval_start, "data_interval_end": data_interval_end}

    def replace(match: re.Match[str]) -> str:
        value = values.get(match["name"])
        if value is None:
            raise ConfigError(
                f"prefix: template {template!r} needs {match['name']}, which this run does not have"
            )
        return _as_zone(value, zone).strftime((match["format"] or "").strip() or DEFAULT_FORMAT)

    return _PLACEHOLDER.sub(replace, template)


def _zone(name: str, field: str = "timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{field}: unknown time zone {name!r}; expected an IANA name like 'UTC'") from exc


def validate_timezone(name: str, *, field: str = "timezone") -> None:
    """Raise :class:`ConfigError` unless ``name`` is an IANA time zone."""
    _zone(name, field)


def finest_unit(formats: Sequence[str]) -> str:
    """The finest calendar unit any of the strftime ``formats`` distinguishes (``"year"`` at least)."""
    found = {
        _UNIT_OF_DIRECTIVE.get(d, "year") for f in formats for d in re.findall(r"%[-_0^#]?([A-Za-z])", f)
    }
    return next((unit for unit in _UNITS if unit in found), "year")


def _truncate(moment: datetime, unit: str) -> datetime:
    """The start of the ``unit`` period that contains ``moment``."""
    moment = moment.replace(microsecond=0)
    if unit == "second":
        return moment
    moment = moment.replace(second=0)
    if unit == "minute":
        return moment
    moment = moment.replace(minute=0)
    if unit == "hour":
        return moment
    moment = moment.replace(hour=0)
    if unit == "day":
        return moment
    return moment.replace(day=1) if unit == "month" else moment.replace(month=1, day=1)


def _advance(moment: datetime, unit: str) -> datetime:
    steps = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
    if unit in steps:
        return moment + timedelta(seconds=steps[unit])  # wall-clock arithmetic in the zone
    if unit == "year":
        return moment.replace(year=moment.year + 1)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def expand_prefixes(template: str, start: datetime, end: datetime, *, timezone: str = "UTC") -> list[str]:
    """Every distinct prefix ``template`` renders to for periods overlapping ``[start, end)``."""
    used = placeholders(template)
    if not used:
        return [template]
    if any(name != "data_interval_start" for name, _fmt in used):
        return [render_prefix(template, data_interval_start=start, data_interval_end=end, timezone=timezone)]
    zone = _zone(timezone)
    unit = finest_unit([fmt for _name, fmt in used])
    moment, stop = _truncate(_as_zone(start, zone), unit), _as_zone(end, zone)
    prefixes: list[str] = []
    for _ in range(MAX_EXPANDED_PERIODS):
        rendered = render_prefix(
            template, data_interval_start=moment, data_interval_end=None, timezone=timezone
        )
        if not prefixes or prefixes[-1] != rendered:
            prefixes.append(rendered)
        moment = _advance(moment, unit)
        if moment >= stop:
            return list(dict.fromkeys(prefixes))
    raise ConfigError(
        f"prefix: template {template!r} expands to more than {MAX_EXPANDED_PERIODS} periods between "
        f"{start.isoformat()} and {end.isoformat()}; use a coarser format or a shorter interval"
    )


def resolve_prefixes(
    template: str,
    *,
    data_interval_start: datetime | None = None,
    data_interval_end: datetime | None = None,
    override: str | Sequence[str] | None = None,
    timezone: str = "UTC",
    field: str = "prefix",
) -> list[str]:
    """The prefixes one run lists: the override if given, else the template over the interval."""
    if override is not None:
        return [override] if isinstance(override, str) else list(dict.fromkeys(override))
    validate_template(template, field=field)
    if not placeholders(template):
        return [template]
    if data_interval_start is None:
        raise ConfigError(
            f"{field}: template {template!r} needs a data interval, and this run has none (a manual or "
            "API-triggered run in Airflow 3); pass an explicit prefix for the run"
        )
    end = data_interval_end if data_interval_end is not None else data_interval_start
    return expand_prefixes(template, data_interval_start, end, timezone=timezone)


_VARIABLE = r"[^/]+?"
"""What a directive of no fixed width renders to (names, ``%s``, flagged ``%-d``): not a root's end."""
_DIRECTIVE_PATTERN = {
    **dict.fromkeys("YG", r"\d{4}"),
    **dict.fromkeys("mdHMSyICUWV", r"\d{2}"),
    "j": r"\d{3}",
    "f": r"\d{6}",
    **dict.fromkeys("uw", r"\d"),
    "%": "%",
}
"""Directives with the exact width ``strftime`` renders them with (unflagged, years 1000-9999)."""
_DIRECTIVE = re.compile(r"%([-_0^#]?)(.)")


def _format_tokens(fmt: str) -> list[str]:
    """Regex pieces for what ``strftime(fmt)`` can produce: fixed-width digits where a directive
    has a fixed width, else :data:`_VARIABLE`."""
    out, last = [], 0
    for match in _DIRECTIVE.finditer(fmt):
        out.extend(_literal_tokens(fmt[last : match.start()]))
        out.append(_VARIABLE if match[1] else _DIRECTIVE_PATTERN.get(match[2], _VARIABLE))
        last = match.end()
    return out + _literal_tokens(fmt[last:])


def _literal_tokens(text: str) -> list[str]:
    """Escaped literal text, each ``/`` a token of its own."""
    return [token for part in re.split("(/)", text) if (token := re.escape(part))]


def _template_tokens(template: str) -> list[str]:
    """Regex pieces of ``template``: literals and placeholders, each ``/`` a token of its own."""
    out, last = [], 0
    for match in _PLACEHOLDER.finditer(template):
        out.extend(_literal_tokens(template[last : match.start()]))
        out.extend(_format_tokens((match["format"] or "").strip() or DEFAULT_FORMAT))
        last = match.end()
    return out + _literal_tokens(template[last:])


def template_pattern(template: str) -> re.Pattern[str]:
    """A regex that matches (from the start) every key under any rendering of ``template``."""
    return re.compile("".join(_template_tokens(template)))


def ends_exactly(template: str) -> bool:
    """Whether a key's match of :func:`template_pattern` ends exactly where the rendering it lies
    under ends: the template ends with ``/`` or text of its own, has no placeholder, or its last
    path segment has fixed-width placeholders only (``raw/{{ data_interval_start:%Y%m }}``). Not
    so when the last segment ends with a placeholder of no fixed width (``%b``, ``%-d``, ``%s``):
    its match can run into the file name."""
    if not template or not template.rstrip().endswith("}}"):
        return True
    tokens = _template_tokens(template)
    last = len(tokens) - tokens[::-1].index("/") if "/" in tokens else 0
    return _VARIABLE not in tokens[last:]


def ancestors_pattern(template: str) -> re.Pattern[str]:
    """A regex that full-matches every folder (``""`` and ``a/b/``) some rendering of ``template``
    lies in or is: the folders whose defaults files and tables apply to a rendering's items."""
    tokens = _template_tokens(template)
    cuts = [index + 1 for index, token in enumerate(tokens) if token == "/"]
    pieces, start = [], 0
    for cut in cuts:
        pieces.append("".join(tokens[start:cut]))
        start = cut
    return re.compile("".join(f"(?:{piece}" for piece in pieces) + ")?" * len(pieces))


def static_prefix(template: str) -> str:
    """The literal part of a prefix template before its first placeholder, cut to a folder."""
    head = template.split("{{", 1)[0]
    return head if "{{" not in template else head[: head.rfind("/") + 1]
