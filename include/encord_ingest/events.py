"""Event-driven runs: S3 event notifications (via SQS) -> the exact key ranges to re-plan.

A batch of SQS messages (each an S3 event notification in the documented format, optionally
wrapped in an SNS envelope) becomes an :class:`EventPlan`: which messages are malformed (each
fails alone, with its reason), which events are skipped by a rule, and the key ranges to scan.
The ranges are scanned like any shard (:func:`~encord_ingest.scan.scan_shard`): the same listing,
typing, grouping, diff against the ledger and ``gone`` rows, so an event run and a scheduled run
of the same objects give the same ledger and the same Encord state.

What one event re-plans (its *unit*), always a superset of the item(s) it can affect:

- a data file or a per-file sidecar: its *stem range* in its folder, ``<folder><stem>`` up to
  ``<folder><stem>0`` (the stem is the name up to its first ``.``): the file, every sidecar named
  after it and a same-named frames folder (``clip.mp4``, ``clip.mp4.json``, ``clip.json``,
  ``clip/``). ``'-' < '.' < '/' < '0'``, so ``clip-2.jpg`` comes along too (harmless: unchanged);
- a member of an image group or sequence (a folder matching a ``grouping.groups`` rule) or a
  DICOM file with ``dicom_series: folder``: the stem range of the group folder, which holds the
  whole group and its per-file sidecars (``seq.json`` next to ``seq/``);
- a folder defaults file or table: the stem range of its folder, i.e. the whole subtree (under
  the source's static prefix when the folder lies above the renderings: ``raw/`` or ``raw/2026/``
  for ``raw/{{ data_interval_start:%Y/%m/%d }}/``), where the scan skips keys under no rendering
  (``raw/latest/x.jpg``) as ``outside_prefix`` and keeps their ledger rows, as the scheduled runs
  never plan them (:attr:`~encord_ingest.sources.sharding.Shard.renderings_only`);
- skipped with a rule: another bucket, outside the source's prefix (template placeholders match
  anything), the source's skip rules and globs (globs apply to data files; a sidecar's data file
  decides), an unknown kind, folder inputs above ``metadata.root``, event types other than
  ``ObjectCreated:*`` and ``ObjectRemoved:*``, and S3's ``s3:TestEvent``.

Delivery is at least once, in any order, possibly late. Convergence comes from re-planning a
unit from the *current* listing, never from the event's content: a duplicate or an old event
re-plans to ``unchanged`` (0 writes), a removed object's ledger row becomes ``gone`` as in a
scan. Before listing, a unit whose every event is already in the ledger (``ObjectCreated`` with
the ETag the ledger holds for that key, as an object or as an item's sidecar; ``ObjectRemoved``
of a key the ledger does not hold) is skipped as ``already_applied``: no listing, no writes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, field_validator

from encord_ingest.classify import Classifier, NotData
from encord_ingest.sidecars import SidecarRole
from encord_ingest.sources.base import MAX_CHAR, ObjectInfo, folder_of
from encord_ingest.sources.filters import KeyFilter
from encord_ingest.sources.prefix import static_prefix
from encord_ingest.sources.sharding import Shard, ShardPart, shard_of_parts

if TYPE_CHECKING:
    from encord_ingest.config import SourceConfig

SQS_MAX_MESSAGES = 10
"""SQS ``ReceiveMessage`` returns at most 10 messages per call."""
SQS_MAX_WAIT_S = 20
"""SQS long polling waits at most 20 s per call."""
MAX_BODY = 64 * 1024
"""Malformed message bodies are kept in the plan up to this many characters."""
SQS_URL = re.compile(r"^https?://[^/\s]+/[^/\s]+/[^/\s]+$")

Action = Literal["created", "removed"]


class EventsConfig(BaseModel):
    """``events:`` of a source file: run from S3 event notifications on an SQS queue.

    A batch closes after at most ``max_events`` messages or ``window_s`` seconds of receiving,
    whichever comes first; batches that arrive while a run is busy are taken by the next run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_url: str
    """The SQS queue URL (``https://sqs.<region>.amazonaws.com/<account>/<name>``)."""
    conn_id: str | None = None
    """``aws`` connection for the queue; defaults to ``bucket.conn_id``."""
    region: str | None = None
    """The queue's region (defaults to the connection's)."""
    max_events: int = Field(default=100, ge=1, le=1000)
    """M: a batch holds at most this many messages."""
    window_s: int = Field(default=20, ge=1, le=600)
    """N: a batch is received within at most this many seconds (long polling)."""
    idle_poll_s: int = Field(default=5, ge=1, le=3600)
    """Pause between receives when the queue was empty."""
    visibility_timeout_s: int = Field(default=1800, ge=30, le=43200)
    """How long received messages stay hidden: longer than a run, or they arrive again while
    their run is still working (harmless, but a second run). Messages are deleted after commit."""

    @field_validator("queue_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not SQS_URL.match(url):
            raise ValueError(
                f"{url!r}: expected an SQS queue URL, e.g. https://sqs.eu-west-2.amazonaws.com/123456789012/uploads"
            )
        return url

    def trigger_kwargs(self, conn_id: str | None) -> dict[str, Any]:
        """Keyword arguments of the amazon provider's ``SqsSensorTrigger`` (via ``MessageQueueTrigger``).

        Messages are NOT deleted on receipt: the run deletes them after its ledger commit."""
        batches = math.ceil(self.max_events / SQS_MAX_MESSAGES)
        return {
            "sqs_queue": self.queue_url,
            "aws_conn_id": self.conn_id or conn_id,
            "region_name": self.region,
            "max_messages": min(self.max_events, SQS_MAX_MESSAGES),
            "num_batches": batches,
            "wait_time_seconds": max(1, min(SQS_MAX_WAIT_S, self.window_s // batches)),
            "waiter_delay": self.idle_poll_s,
            "visibility_timeout": self.visibility_timeout_s,
            "delete_message_on_reception": False,
        }


# --- messages -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Event:
    """One record of an S3 event notification."""

    bucket: str
    key: str
    action: Action
    name: str
    etag: str | None = None
    size: int | None = None
    version_id: str | None = None
    sequencer: str | None = None
    time: str | None = None


@dataclass(slots=True)
class Message:
    """One SQS message: its events, or why it is malformed, or why it is ignored."""

    message_id: str
    receipt_handle: str | None
    events: list[S3Event] = field(default_factory=list)
    error: str | None = None
    ignored: str | None = None
    body: str = ""


def _record(record: Any, index: int) -> S3Event | str:
    """One ``Records[i]`` entry, or the reason it is not an S3 event."""
    where = f"Records[{index}]"
    if not isinstance(record, dict):
        return f"{where}: expected an object, got {type(record).__name__}"
    name = record.get("eventName")
    s3 = record.get("s3")
    if not isinstance(name, str) or not isinstance(s3, dict):
        return f"{where}: expected 'eventName' (string) and 's3' (object) of an S3 event notification"
    bucket = (s3.get("bucket") or {}).get("name") if isinstance(s3.get("bucket"), dict) else None
    obj = s3.get("object")
    if not isinstance(bucket, str) or not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
        return f"{where}: expected s3.bucket.name and s3.object.key (strings)"
    action: Action | None = (
        "created"
        if name.startswith("ObjectCreated:")
        else "removed"
        if name.startswith("ObjectRemoved:")
        else None
    )
    size = obj.get("size")
    event = S3Event(
        bucket=bucket,
        key=unquote_plus(obj["key"]),
        action=action or "created",
        name=name,
        etag=str(obj["eTag"]).strip('"') if obj.get("eTag") else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        version_id=obj.get("versionId") or None,
        sequencer=obj.get("sequencer") or None,
        time=record.get("eventTime"),
    )
    return event if action is not None else f"unsupported_event:{name}"


def parse_message(message: Mapping[str, Any]) -> Message:
    """Parse one SQS message (``MessageId``, ``ReceiptHandle``, ``Body``) holding an S3 event.

    Accepts the S3 notification itself or an SNS envelope around it. S3's ``s3:TestEvent`` is
    ignored. Anything else is malformed, with a reason naming the field and the expected form."""
    message_id = str(message.get("MessageId") or message.get("message_id") or "?")
    receipt = message.get("ReceiptHandle")
    body = message.get("Body")
    result = Message(message_id, receipt if isinstance(receipt, str) else None, body=str(body or ""))
    if not isinstance(body, str):
        result.error = f"message {message_id}: Body: expected a JSON string, got {type(body).__name__}"
        return result
    try:
        document = json.loads(body)
        if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
            document = json.loads(document["Message"])
    except (json.JSONDecodeError, TypeError) as error:
        result.error = f"message {message_id}: Body: expected JSON of an S3 event notification ({error})"
        return result
    if isinstance(document, dict) and document.get("Event") == "s3:TestEvent":
        result.ignored = "s3_test_event"
        return result
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list) or not records:
        result.error = (
            f"message {message_id}: Body: expected an S3 event notification "
            '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {...}}]}'
        )
        return result
    unsupported = []
    for index, record in enumerate(records):
        parsed = _record(record, index)
        if isinstance(parsed, S3Event):
            result.events.append(parsed)
        elif parsed.startswith("unsupported_event:"):
            unsupported.append(parsed.split(":", 1)[1])
        else:
            result.error = f"message {message_id}: {parsed}"
            result.events = []
            return result
    if not result.events and unsupported:
        result.ignored = f"unsupported_event ({', '.join(unsupported)})"
    return result


# --- units ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unit:
    """The keys ``[low, high)`` under ``prefix`` to re-plan, and why (``high`` ``None``: up to the
    end of ``prefix``). ``prefix`` is the run prefix the keys belong to (the source's prefix
    template rendered for them), so rules and globs see the same relative paths as in a
    scheduled run of that prefix."""

    prefix: str
    low: str
    high: str | None
    reason: str

    @property
    def upper(self) -> str:
        """The exclusive upper bound (``MAX_CHAR`` when unbounded)."""
        return self.high or successor(self.prefix) or MAX_CHAR

    def part(self) -> ShardPart:
        return ShardPart(
            prefix=self.prefix,
            start_at=self.low if self.low != self.prefix else None,
            end_before=self.high,
        )


def successor(prefix: str) -> str | None:
    """The least string above every key that starts with ``prefix`` (``None`` for ``""``)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


def stem_unit(root: str, folder: str, name: str, reason: str) -> Unit:
    """Keys of ``folder`` whose entry has the stem of ``name`` (up to its first ``.``)."""
    low = folder + name.rstrip("/").split(".", 1)[0]
    return Unit(root, low, low + "0", reason)


def _folder_unit(root: str, folder: str, reason: str) -> Unit:
    """The whole subtree of ``folder``, cut to the run prefix ``root``."""
    if root.startswith(folder):
        return Unit(root, root, None, reason)
    parent = folder_of(folder[:-1])
    return stem_unit(root, parent, folder[len(parent) :], reason)


@dataclass(frozen=True, slots=True)
class Skip:
    """An event not planned, with the rule."""

    key: str
    action: str
    rule: str
    detail: str = ""


class EventPlanner:
    """Maps events to units for one source (see the module docstring)."""

    def __init__(self, config: SourceConfig):
        self.config = config
        self.bucket = config.bucket.uri.split("://", 1)[1]
        self.conventions = config.sidecars
        self.grouping = config.grouping
        self.scope = static_prefix(config.bucket.prefix)
        self.classifier = Classifier(config.classify, is_sidecar=self.conventions.is_sidecar)
        self.root = config.metadata.root
        self.planning = config.planning()
        self.source_filter = self.planning.key_filter([self.scope])
        self._filters: dict[str, KeyFilter] = {}

    def _filter(self, root: str) -> KeyFilter:
        """The filter a scan of ``root`` uses (so both see the same glob root for a key)."""
        if root not in self._filters:
            self._filters[root] = self.planning.key_filter([root])
        return self._filters[root]

    def run_prefix(self, key: str, folder_input: bool) -> str | None:
        """The run prefix ``key`` belongs to: the rendering of the prefix template it lies under;
        for a folder input in a folder above every rendering it applies to (``raw/``,
        ``raw/2026/`` for ``raw/{{ ... %Y/%m/%d }}/``), the template's static prefix; else ``None``."""
        rendering = self.source_filter.rendering(key)
        if rendering is not None:
            return rendering
        return self.scope if self.source_filter.scheduled(key, folder_input=folder_input) else None

    def unit(self, event: S3Event) -> Unit | Skip:
        """The unit ``event`` re-plans, or the rule that skips it."""
        key = event.key
        if event.bucket != self.bucket:
            return Skip(key, event.action, "other_bucket", f"event for bucket {event.bucket!r}")
        role = self.conventions.sidecar_role(key)
        folder = folder_of(key)
        folder_input = role in (SidecarRole.FOLDER_DEFAULTS, SidecarRole.FOLDER_TABLE)
        root = self.run_prefix(key, folder_input)
        if root is None:
            return Skip(key, event.action, "outside_prefix", f"not under {self.config.bucket.prefix!r}")
        key_filter = self._filter(root)
        info = ObjectInfo(key=key, size=event.size if event.size is not None else 1, version=event.etag or "")
        reason = key_filter.rule_reason(info)
        if reason is not None:
            return Skip(key, event.action, str(reason.value))
        if folder_input:
            if not folder.startswith(self.root):
                return Skip(key, event.action, "outside_metadata_root", f"above metadata.root {self.root!r}")
            return _folder_unit(root, folder, "folder_input")
        if role is None:
            glob = key_filter.glob_reason(key)
            if glob is not None:
                return Skip(key, event.action, str(glob.value))
            verdict = self.classifier.classify(key)
            if verdict.not_data is NotData.UNKNOWN_KIND and not self.classifier.needs_content(verdict):
                return Skip(key, event.action, NotData.UNKNOWN_KIND.value)
        group = self._group_folder(key, root)
        if group is not None:
            return _folder_unit(root, group, "group")
        return stem_unit(
            root, folder, key[len(folder) :], "sidecar" if role is SidecarRole.PER_FILE else "object"
        )

    def _group_folder(self, key: str, root: str) -> str | None:
        """The outermost folder below ``root`` whose subtree is one item with ``key`` in it."""
        folder = folder_of(key)
        chain = []
        while len(folder) > len(root) and folder.startswith(root):
            chain.append(folder)
            folder = folder_of(folder[:-1])
        for candidate in reversed(chain):
            if self.grouping.group_rule(candidate) is not None:
                return candidate
        if self.grouping.dicom_series == "folder" and chain:
            verdict = self.classifier.classify(key)
            if verdict.kind is not None and verdict.kind.value == "dicom":
                return chain[0]
        return None


def merge_units(units: Iterable[Unit]) -> list[Unit]:
    """Sorted, non-overlapping units covering the same keys (overlapping ones are joined)."""
    merged: list[Unit] = []
    for unit in sorted(units, key=lambda u: (u.low, u.upper)):
        if merged and unit.low < merged[-1].upper:
            last = merged[-1]
            if unit.upper > last.upper:
                high = unit.high or successor(unit.prefix)
                prefix = _common_prefix(last.prefix, unit.prefix)
                merged[-1] = Unit(prefix, last.low, high, _join(last.reason, unit.reason))
            else:
                merged[-1] = Unit(last.prefix, last.low, last.high, _join(last.reason, unit.reason))
            continue
        merged.append(unit)
    return merged


def _join(first: str, second: str) -> str:
    return first if second in first.split("+") else f"{first}+{second}"


def _common_prefix(low: str, high: str) -> str:
    """Every key in ``[low, high)`` starts with this."""
    length = 0
    for a, b in zip(low, high, strict=False):
        if a != b:
            break
        length += 1
    return low[:length]


def unit_of_key(units: Sequence[Unit], key: str) -> int | None:
    """The index of the unit holding ``key`` (units sorted and disjoint)."""
    for index, unit in enumerate(units):
        if unit.low <= key < unit.upper and key.startswith(unit.prefix):
            return index
    return None


# --- the plan -------------------------------------------------------------------------------------


class EventPlan(BaseModel):
    """What one event run does; written to its run folder as ``events/plan.json``."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    messages: int = 0
    events: int = 0
    malformed: list[dict[str, str]] = Field(default_factory=list)
    """``{"id", "reason", "body"}`` per malformed message: reported here, then deleted with the
    batch (receiving it again cannot fix it)."""
    ignored: dict[str, str] = Field(default_factory=dict)
    skipped: list[dict[str, str]] = Field(default_factory=list)
    already_applied: list[dict[str, str]] = Field(default_factory=list)
    units: list[dict[str, Any]] = Field(default_factory=list)
    shards: list[dict[str, Any]] = Field(default_factory=list)
    receipts: list[dict[str, str]] = Field(default_factory=list)
    """``{"Id", "ReceiptHandle"}`` of every message of the batch, deleted after the commit."""

    @property
    def prefixes(self) -> list[str]:
        return [str(unit["prefix"]) for unit in self.units]

    def counts(self) -> dict[str, int]:
        return {
            "messages": self.messages,
            "events": self.events,
            "malformed": len(self.malformed),
            "ignored": len(self.ignored),
            "skipped": len(self.skipped),
            "already_applied": len(self.already_applied),
            "units": len(self.units),
            "shards": len(self.shards),
        }


LedgerVersions = Mapping[str, str]
"""``key -> version`` the ledger holds for objects and for the sidecars its items used."""


def _applied(event: S3Event, versions: LedgerVersions) -> bool:
    if event.action == "removed":
        return event.key not in versions
    return event.etag is not None and versions.get(event.key) == event.etag


def plan_events(
    config: SourceConfig,
    messages: Iterable[Mapping[str, Any]],
    *,
    run_id: str,
    ledger_versions: Any = None,
    max_shards: int | None = None,
) -> EventPlan:
    """Plan one batch of SQS messages.

    ``ledger_versions(parts)`` returns :data:`LedgerVersions` for the given shard parts (``None``:
    no ledger yet, nothing is already applied). Messages are de-duplicated by id."""
    planner = EventPlanner(config)
    plan = EventPlan(run_id=run_id)
    seen: set[str] = set()
    events: list[S3Event] = []
    for raw in messages:
        message = parse_message(raw)
        if message.message_id in seen:
            continue
        seen.add(message.message_id)
        plan.messages += 1
        if message.receipt_handle:
            plan.receipts.append({"Id": message.message_id, "ReceiptHandle": message.receipt_handle})
        if message.error is not None:
            plan.malformed.append(
                {"id": message.message_id, "reason": message.error, "body": message.body[:MAX_BODY]}
            )
        elif message.ignored is not None:
            plan.ignored[message.message_id] = message.ignored
        events.extend(message.events)
    plan.events = len(events)
    units: list[Unit] = []
    planned: list[tuple[S3Event, Unit]] = []
    for event in events:
        unit = planner.unit(event)
        if isinstance(unit, Skip):
            plan.skipped.append(
                {"key": unit.key, "action": unit.action, "rule": unit.rule, "detail": unit.detail}
            )
        else:
            units.append(unit)
            planned.append((event, unit))
    merged = merge_units(units)
    by_unit: dict[int, list[S3Event]] = {}
    for event, unit in planned:
        index = unit_of_key(merged, unit.low)
        assert index is not None
        by_unit.setdefault(index, []).append(event)
    versions: LedgerVersions = (
        ledger_versions([u.part() for u in merged]) if ledger_versions and merged else {}
    )
    kept: list[Unit] = []
    for index, unit in enumerate(merged):
        batch = by_unit.get(index, [])
        if batch and all(_applied(event, versions) for event in batch):
            plan.already_applied.extend(
                {"key": e.key, "action": e.action, "etag": e.etag or ""} for e in batch
            )
            continue
        kept.append(unit)
        keys = sorted({event.key for event in batch})
        plan.units.append(
            {
                "prefix": unit.prefix,
                "start_at": unit.part().start_at,
                "end_before": unit.high,
                "reason": unit.reason,
                "keys": keys,
            }
        )
    plan.shards = [shard.model_dump(mode="json") for shard in event_shards(kept, max_shards or config.shards)]
    return plan


def event_shards(units: Sequence[Unit], max_shards: int) -> list[Shard]:
    """At most ``max_shards`` shards of consecutive units (about equal numbers of units each)."""
    if not units:
        return []
    count = min(max_shards, len(units))
    size, extra = divmod(len(units), count)
    groups, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        groups.append(units[start:end])
        start = end
    return [
        shard_of_parts(index, len(groups), [u.part() for u in group], renderings_only=True)
        for index, group in enumerate(groups)
    ]


def ledger_versions_of(rows: Iterable[Any]) -> dict[str, str]:
    """:data:`LedgerVersions` from ledger rows (``key``, ``version``, ``sidecars`` JSON)."""
    versions: dict[str, str] = {}
    for row in rows:
        if row.key:
            versions[str(row.key)] = str(row.version)
        try:
            sidecars = json.loads(row.sidecars or "{}")
        except (TypeError, json.JSONDecodeError):
            continue
        if isinstance(sidecars, dict):
            versions.update({str(k): str(v) for k, v in sidecars.items()})
    return versions


def events_markdown(plan: EventPlan, sample: int = 50) -> str:
    """The events section of a run's report."""
    lines = [
        f"# Event batch of run `{plan.run_id}`",
        "",
        "| events | count |",
        "|---|---:|",
        *[f"| {name.replace('_', ' ')} | {value} |" for name, value in plan.counts().items()],
    ]
    if plan.malformed:
        lines += ["", "## Malformed messages (deleted with the batch; the body is in events/plan.json)", ""]
        lines += [f"- `{bad['id']}`: {bad['reason']}" for bad in plan.malformed[:sample]]
    if plan.skipped:
        lines += ["", "## Skipped events", "", "| object | event | rule | detail |", "|---|---|---|---|"]
        lines += [
            f"| `{s['key']}` | {s['action']} | {s['rule']} | {s['detail']} |" for s in plan.skipped[:sample]
        ]
    if plan.units:
        lines += ["", "## Re-planned key ranges", "", "| range | why | events for |", "|---|---|---|"]
        for unit in plan.units[:sample]:
            span = f"`{unit['start_at'] or unit['prefix']}` .. `{unit['end_before'] or unit['prefix'] + '*'}`"
            lines.append(f"| {span} | {unit['reason']} | {', '.join(f'`{k}`' for k in unit['keys'][:5])} |")
    return "\n".join(lines) + "\n"
