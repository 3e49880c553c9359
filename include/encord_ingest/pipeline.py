"""One ingestion run of one source, step by step, without Airflow.

The DAG's tasks are thin wrappers around these functions (see ``encord_provider.dag_builder``):

    resolve_run -> plan_run_shards -> scan (per shard) -> [register, sync: the Encord operators]
        -> commit_ledger -> final_outcome_frames (OutcomeTally) -> report_markdown

Where things live (``state_uri`` of the source)::

    <state_uri>/ledger/CURRENT.json, versions/...      the ledger (see :mod:`.ledger`)
    <state_uri>/runs/<run key>/...                     one run's folder (see :mod:`.run_folder`)
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from encord_ingest.config import SourceConfig
from encord_ingest.errors import ConfigError
from encord_ingest.ledger import LEDGER_COLUMNS, Ledger, LedgerError, Outcome, commit_run, ledger_schema
from encord_ingest.manifest import GROUP_KINDS
from encord_ingest.metadata import metadata_fingerprint
from encord_ingest.run_folder import FINAL_OUTCOMES, RunFolder, SyncResults, chunk_uris
from encord_ingest.scan.scanner import ScanContext, scan_shard
from encord_ingest.schema import MetadataSchema
from encord_ingest.sources.base import Source
from encord_ingest.sources.prefix import placeholders, resolve_prefixes
from encord_ingest.sources.sharding import Shard, plan_shards
from encord_ingest.sources.urls import url_identity
from encord_ingest.storage import BlobStore
from encord_ingest.sync import SyncMode

if TYPE_CHECKING:
    import pandas as pd

    from encord_ingest.results import ItemResults

LEDGER_FOLDER = "ledger"
REPORT_ROWS = 200
"""Rows per section of the report; the outcome tables in the run folder hold every object."""


def ledger_of(state: BlobStore) -> Ledger:
    return Ledger(state, LEDGER_FOLDER)


@dataclass(frozen=True)
class RunOptions:
    """What one run does; from the schedule or from the manual-run form (Params)."""

    run_id: str
    prefixes: list[str]
    dry_run: bool = False
    full_rescan: bool = False
    sync_mode: str = "merge"
    limit: int | None = None
    """At most this many new items are registered (manual runs); the rest wait for a later run."""
    prefix_origin: str = ""
    """Where the prefixes came from (the form, or which data interval), for logs and the report."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunOptions:
        """Back from :meth:`to_json` (keys that are not options, such as ``run_uri``, are ignored)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def as_flag(value: Any, field: str) -> bool:
    """A yes/no setting that may arrive as text from a template: ``True``/``"true"``/``"True"``.

    ``bool("false")`` is ``True``, so text is read by its word; ``None`` is no; anything else is an error.
    """
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"{field}: expected true or false, got {value!r}")


def resolve_run(
    config: SourceConfig,
    *,
    run_id: str,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    params: Mapping[str, Any],
) -> RunOptions:
    """Turn a run's interval (scheduled, backfill) or its form (manual) into :class:`RunOptions`.

    ``params["prefix"]`` overrides the template (several prefixes: comma-separated). A manual run
    has no data interval, so a templated source needs that override: the error says so. A run
    triggered from the UI form does have one (Airflow infers it from the logical date): it lists
    that interval's prefix, and :attr:`RunOptions.prefix_origin` says so.
    """
    override = params.get("prefix") or None
    prefixes = resolve_prefixes(
        config.bucket.prefix,
        data_interval_start=data_interval_start,
        data_interval_end=data_interval_end,
        override=[p.strip() for p in str(override).split(",") if p.strip()] if override else None,
        timezone=config.bucket.timezone,
        field=f"{config.name}: bucket.prefix",
    )
    limit = params.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"{config.name}: param limit: expected a whole number >= 0 or null, got {limit!r}")
    mode = params.get("sync_mode") or config.encord.sync_mode
    if mode not in tuple(SyncMode):
        raise ConfigError(f"{config.name}: param sync_mode: expected 'merge' or 'replace', got {mode!r}")
    return RunOptions(
        run_id=run_id,
        prefixes=prefixes,
        dry_run=as_flag(params.get("dry_run", False), f"{config.name}: param dry_run"),
        full_rescan=as_flag(params.get("full_rescan", False), f"{config.name}: param full_rescan"),
        sync_mode=str(mode),
        limit=limit,
        prefix_origin=prefix_origin(config, run_id, data_interval_start, data_interval_end, bool(override)),
    )


def prefix_origin(
    config: SourceConfig, run_id: str, start: datetime | None, end: datetime | None, overridden: bool
) -> str:
    """Where a run's prefixes come from, in words (shown in the task log and the report)."""
    if overridden:
        return "the form's prefix override"
    if not placeholders(config.bucket.prefix):
        return "the source's fixed bucket.prefix"
    if start is None or end is None:
        return ""
    span = f"{start.astimezone(UTC):%Y-%m-%d %H:%M} to {end.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    interval = f"the data interval {span}"
    if run_id.startswith("manual__"):
        return (
            f"{interval}, which Airflow inferred from the manual run's logical date; set the form's "
            "prefix override to list another folder"
        )
    return interval


def plan_run_shards(config: SourceConfig, source: Source, prefixes: Sequence[str]) -> list[dict[str, Any]]:
    """At most ``config.shards`` shard descriptors (JSON) covering the run's prefixes once."""
    protected = {""} | {prefix[: i + 1] for prefix in prefixes for i, c in enumerate(prefix) if c == "/"}

    def keep_whole(folder: str) -> bool:
        # The run's prefixes (and their parents) are what is being split: never "keep" them whole.
        return folder not in protected and config.grouping.keep_whole(folder)

    shards = plan_shards(source, prefixes, config.shards, keep_whole=keep_whole)
    return [shard.model_dump(mode="json") for shard in shards]


def scan(
    config: SourceConfig,
    source: Source,
    state: BlobStore,
    shard: Mapping[str, Any],
    options: RunOptions,
    *,
    schema: MetadataSchema | None = None,
) -> dict[str, Any]:
    """Plan one shard into the run folder; returns its summary (URIs and counts)."""
    ledger = ledger_of(state)
    parsed = Shard.model_validate(shard)
    context = ScanContext(
        source=source,
        shard=parsed,
        config=config.planning(),
        run=RunFolder.of(state, options.run_id),
        run_id=options.run_id,
        schema=schema if schema is not None else config.load_schema(),
        ledger=ledger if ledger.pointer() is not None else None,
        full_rescan=options.full_rescan,
        new_item_limit=shard_share(options.limit, parsed.index, parsed.count),
    )
    return scan_shard(context)


def shard_share(limit: int | None, index: int, count: int) -> int | None:
    """Shard ``index``'s part of a run's ``limit`` (the parts add up to the limit)."""
    if limit is None:
        return None
    return limit // count + (1 if index < limit % count else 0)


def batches(uris: Sequence[str], max_batches: int) -> list[list[str]]:
    """``uris`` in at most ``max_batches`` contiguous, near-equal lists (one mapped task each)."""
    if not uris:
        return []
    size = -(-len(uris) // max_batches)
    return [list(uris[start : start + size]) for start in range(0, len(uris), size)]


def registration_chunks(
    config: SourceConfig, state: BlobStore, options: RunOptions, summaries: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The manifest chunks to register, one upload job each: the shards' chunks with their last
    (partial) chunks combined (:meth:`~.run_folder.RunFolder.combine_manifests`); none in a dry run."""
    if options.dry_run:
        return []
    limits = config.planning()
    return RunFolder.of(state, options.run_id).combine_manifests(
        summaries,
        max_items=limits.manifest_max_items,
        max_urls=limits.manifest_max_urls,
        max_bytes=limits.manifest_max_bytes,
    )


def commit_ledger(
    state: BlobStore,
    options: RunOptions,
    summaries: Sequence[Mapping[str, Any]],
    results: ItemResults,
    *,
    ledger: Ledger | None = None,
) -> dict[str, Any]:
    """Merge the run's outcome tables into the ledger (atomically, one chunk and one key range at
    a time: :func:`~.ledger.commit_run`), with what Encord answered per URL (``results``);
    failed items stay unrecorded."""
    pointer = commit_run(
        ledger or ledger_of(state),
        options.run_id,
        RunFolder.of(state, options.run_id).outcomes(summaries),
        results=results,
    )
    return {"ledger_version": pointer.version_key, "rows": pointer.rows}


def ledger_alerts(ledger: Ledger) -> tuple[list[str], str | None]:
    """Report alerts about the ledger and the error that stops a commit: ``([], None)`` when it is
    intact, a warning when reads fall back to its previous version, the error (saying how to
    recover) when it cannot be read at all. Checks every part once (the commit then reads the
    version this check pinned)."""
    try:
        warning = ledger.check()
    except LedgerError as exc:
        error = f"LEDGER UNREADABLE, nothing committed: {exc}"
        return [error], error
    return ([warning] if warning else []), None


DONE_OUTCOMES = {str(Outcome.NEW): "registered", str(Outcome.METADATA_CHANGED): "metadata_updated"}
"""Outcomes after a (not dry) run's commit: planned ``new`` items were registered, and so on."""


def final_outcomes(table: pd.DataFrame, results: ItemResults, *, dry_run: bool = False) -> pd.DataFrame:
    """The plan's outcomes corrected by what Encord answered (``results``, looked up by each row's
    item URL): a registration or sync failure wins (``failed`` with its reason), item UUIDs
    learnt at registration are filled in, and outside a dry run ``new``/``metadata_changed``
    become ``registered``/``metadata_updated``."""
    table = table.copy()
    if table.empty:
        return table
    item_urls = table["item_url"] if "item_url" in table else table["url"]
    found = results.lookup(item_urls.dropna().unique())
    failure = item_urls.map(found["failure"])
    failed = failure.notna() & table["outcome"].isin(
        [Outcome.NEW, Outcome.DATA_CHANGED, Outcome.METADATA_CHANGED, Outcome.UNCHANGED]
    )
    table.loc[failed, "message"] = failure[failed]
    table.loc[failed, "outcome"] = str(Outcome.FAILED)
    if "item_uuid" in table:
        learnt = item_urls.map(found["item_uuid"])
        table["item_uuid"] = learnt.where(learnt.notna() & ~failed, table["item_uuid"])
    if not dry_run:
        table["outcome"] = table["outcome"].replace(DONE_OUTCOMES)
    return table


def empty_run_alert(
    config: SourceConfig, options: RunOptions, objects: int, failed_tasks: Sequence[str] = ()
) -> str | None:
    """The loud line of a run that listed nothing (``None`` otherwise, or when a task failed)."""
    if objects or failed_tasks:
        return None
    where = ", ".join(options.prefixes) or "(bucket root)"
    origin = f" (from {options.prefix_origin})" if options.prefix_origin else ""
    action = (
        "this fails the run (empty_run: fail)"
        if config.empty_run == "fail"
        else "empty_run: fail makes this fail"
    )
    return f"NO OBJECTS: the run listed 0 objects under {where} in {config.bucket.uri}{origin}; {action}"


def asset_extra(options: RunOptions, result: Mapping[str, Any]) -> dict[str, Any]:
    """The ``extra`` of the source's Asset event: the run, its prefixes, counts and report URI."""
    return {
        "run_id": options.run_id,
        "prefixes": list(options.prefixes),
        "dry_run": options.dry_run,
        "counts": dict(result["counts"]),
        "objects": result["objects"],
        "report_uri": result["report_uri"],
        "outcomes_uri": result.get("outcomes_uri"),
    }


@dataclass
class OutcomeTally:
    """A run's final outcomes gathered chunk by chunk, so ``commit_and_report`` never holds the
    run's outcome table: counts per outcome, the first :data:`REPORT_ROWS` failed, skipped and
    warned rows with their totals (``final_outcomes.parquet`` holds every row) and the error
    budget's item counts. A shard's scan forms its items, so no item spans two shards: distinct
    item URLs are counted shard by shard (:meth:`end_shard`)."""

    counts: Counter[str] = field(default_factory=Counter)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    warned: list[tuple[str, str]] = field(default_factory=list)
    totals: Counter[str] = field(default_factory=Counter)
    """Rows per report section (``failed``, ``skipped``, ``warned``), shown or not."""
    failed_items: int = 0
    """Failed data items (a group counts once; sidecars never)."""
    items: int = 0
    """Data items; rule-skipped objects and ``gone`` rows are not items."""
    _shard_items: set[str] = field(default_factory=set)
    _shard_failed: set[str] = field(default_factory=set)

    def add(self, table: pd.DataFrame) -> None:
        """Count one chunk of final outcomes (:func:`final_outcomes`)."""
        if table.empty:
            return
        outcome = table["outcome"].astype(str)
        self.counts.update({str(name): int(count) for name, count in outcome.value_counts().items()})
        failed, skipped = outcome == str(Outcome.FAILED), outcome == str(Outcome.SKIPPED)
        self._keep("failed", table[failed], ["key", "message"], self.failed)
        self._keep("skipped", table[skipped], ["key", "code", "message"], self.skipped)
        if "warning" in table:
            warned = table[table["warning"].notna() & (table["warning"] != "")]
            self._keep("warned", warned, ["key", "warning"], self.warned)
        if "kind" in table:
            data = table["kind"].notna() & ~outcome.isin([Outcome.SKIPPED.value, Outcome.GONE.value])
            items = (table["item_url"] if "item_url" in table else table["url"])[data]
            self._shard_items.update(items)
            self._shard_failed.update(items[failed[data]])

    def _keep(self, section: str, rows: pd.DataFrame, columns: list[str], kept: list[Any]) -> None:
        self.totals[section] += len(rows)
        room = REPORT_ROWS - len(kept)
        if room > 0 and len(rows):
            head = rows.head(room)
            kept.extend(zip(*[_cells(head[name]) for name in columns], strict=True))

    def end_shard(self) -> None:
        """The shard's chunks are all counted: fold its distinct items into the totals."""
        self.items += len(self._shard_items)
        self.failed_items += len(self._shard_failed)
        self._shard_items, self._shard_failed = set(), set()

    def outcome_counts(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def objects_seen(self) -> int:
        return sum(self.counts.values()) - self.counts.get(str(Outcome.GONE), 0)


def _cells(column: pd.Series) -> list[str]:
    """Report cells: missing values empty, ``|`` (a Markdown column break) as ``/``."""
    import pandas as pd

    return ["" if value is None or pd.isna(value) else str(value).replace("|", "/") for value in column]


def final_outcome_frames(
    folder: RunFolder,
    summaries: Sequence[Mapping[str, Any]],
    results: ItemResults,
    tally: OutcomeTally,
    *,
    dry_run: bool = False,
) -> Iterator[pd.DataFrame]:
    """The run's final outcomes (:func:`final_outcomes`) one outcome batch at a time, each
    counted in ``tally`` as it passes; a table's unmatched rows that the shard reading it found
    (``table_warnings`` of the summaries) go on the table's row when it has no warning."""
    tables = {key: text for summary in summaries for key, text in summary.get("table_warnings", {}).items()}
    for summary in summaries:
        for frame in folder.outcomes([summary], columns=None):
            final = with_table_warnings(final_outcomes(frame, results, dry_run=dry_run), tables)
            tally.add(final)
            yield final
        tally.end_shard()


def with_table_warnings(table: pd.DataFrame, warnings: Mapping[str, str]) -> pd.DataFrame:
    """``table`` with ``warnings`` (by key) on the rows that have none."""
    if not warnings or table.empty:
        return table
    empty = table["warning"].isna() | (table["warning"] == "")
    named = empty & table["key"].isin(list(warnings))
    table.loc[named, "warning"] = table.loc[named, "key"].map(warnings)
    return table


def report_markdown(
    config: SourceConfig,
    options: RunOptions,
    tally: OutcomeTally,
    *,
    job_uuids: Sequence[str],
    sync_counts: Mapping[str, int],
    ledger: Mapping[str, Any] | None,
    failed_tasks: Sequence[str] = (),
    alerts: Sequence[str] = (),
) -> str:
    """The human-readable run report (Markdown); ``alerts`` are shown in bold above everything."""
    counts = tally.outcome_counts()
    seen = tally.objects_seen()
    shown = ", ".join(f"`{p}`" for p in options.prefixes) or "(bucket root)"
    lines = [
        f"# Encord ingestion report: `{config.name}`, {shown}",
        "",
        *[f"> **{alert}**\n" for alert in alerts],
        f"- run: `{options.run_id}`" + (" (dry run: nothing written to Encord)" if options.dry_run else ""),
        f"- prefixes: {shown}" + (f", from {options.prefix_origin}" if options.prefix_origin else ""),
        f"- Encord folder: `{config.encord.folder}`, metadata sync mode `{options.sync_mode}`",
        f"- upload jobs: {', '.join(f'`{j}`' for j in job_uuids) or 'none'}",
        f"- metadata writes: {sync_counts.get('written', 0)} items in {sync_counts.get('patch_calls', 0)} "
        f"patch calls ({sync_counts.get('patch_attempts', 0)} requests with retries)",
        f"- ledger: {'committed ' + str(ledger['ledger_version']) if ledger else 'not committed'}",
        *(
            [f"- **incomplete run**: task(s) {', '.join(f'`{t}`' for t in failed_tasks)} failed"]
            if failed_tasks
            else []
        ),
        "",
        "## Outcomes",
        "",
        "| outcome | objects |",
        "|---|---:|",
        *[f"| {name} | {count} |" for name, count in counts.items()],
        f"| **objects seen** | **{seen}** |",
        "",
        f"Every object seen has exactly one outcome: {sum(counts.values()) - counts.get('gone', 0)} = {seen}"
        + ("" if "gone" not in counts else f" (plus {counts['gone']} gone from the bucket)")
        + ".",
    ]
    sections: list[tuple[str, tuple[str, ...], Sequence[tuple[str, ...]], str]] = [
        ("Failed objects", ("object", "reason"), tally.failed, "failed"),
        ("Skipped objects", ("object", "rule", "detail"), tally.skipped, "skipped"),
        ("Warnings", ("object", "warning"), tally.warned, "warned"),
    ]
    for title, header, rows, section in sections:
        if rows:
            lines += ["", f"## {title}", "", f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
            lines += [f"| `{key}` | {' | '.join(rest)} |" for key, *rest in rows]
            more = tally.totals[section] - len(rows)
            if more > 0:
                lines.append(f"| ... | {more} more in {FINAL_OUTCOMES} |" + " |" * (len(header) - 2))
    return "\n".join(lines) + "\n"


@dataclass
class RunResult:
    """What :func:`finish_run` committed and reported; ``failed``/``items`` feed the error budget."""

    report_uri: str
    counts: dict[str, int]
    objects: int
    ledger: dict[str, Any] | None
    failed: int
    """Failed data items (a group counts once; sidecars never): :class:`OutcomeTally`."""
    items: int
    markdown: str = ""
    """The report itself (printed in the task log)."""
    outcomes_uri: str | None = None
    """``final_outcomes.parquet``: every object's final outcome."""
    ledger_error: str | None = None
    """The ledger could not be read: nothing was committed (the report says how to recover)."""
    empty: str | None = None
    """The loud line of a run that listed nothing."""

    def to_json(self) -> dict[str, Any]:
        return {
            "report_uri": self.report_uri,
            "outcomes_uri": self.outcomes_uri,
            "counts": self.counts,
            "objects": self.objects,
            "ledger": self.ledger,
        }


#: Outcome names in the report of a run that wrote to Encord (the plan's words are for dry runs).


def finish_run(
    config: SourceConfig,
    state: BlobStore,
    options: RunOptions,
    summaries: Sequence[Mapping[str, Any]],
    failed_tasks: Sequence[str] = (),
) -> RunResult:
    """Commit what Encord confirmed to the ledger and write the run report.

    Items a failed task did not confirm stay out of the ledger, so the next run plans them again.
    A dry run commits nothing and reports the plan's outcomes. Outcome chunks are read one at a
    time (for the commit, then for ``final_outcomes.parquet`` and the report's counts).
    """
    folder = RunFolder.of(state, options.run_id)
    manifests = [] if options.dry_run else folder.registered_chunks(summaries)
    changes = [] if options.dry_run else chunk_uris(summaries, "metadata")
    with tempfile.TemporaryDirectory(prefix="run-results-") as spill:
        results = folder.run_results(manifests, changes, spill=spill)
        checked = ledger_of(state)
        alerts, ledger_error = ledger_alerts(checked)
        ledger = None
        if not options.dry_run and ledger_error is None:
            ledger = commit_ledger(state, options, summaries, results.items, ledger=checked)
        tally = OutcomeTally()
        outcomes_uri = folder.write_final_outcomes(
            final_outcome_frames(folder, summaries, results.items, tally, dry_run=options.dry_run)
        )
    seen = tally.objects_seen()
    empty = empty_run_alert(config, options, seen, failed_tasks)
    markdown = report_markdown(
        config,
        options,
        tally,
        job_uuids=results.job_uuids,
        sync_counts=results.sync_counts,
        ledger=ledger,
        failed_tasks=failed_tasks,
        alerts=[*alerts, *([empty] if empty else [])],
    )
    return RunResult(
        report_uri=folder.write_report(markdown),
        counts=tally.outcome_counts(),
        objects=seen,
        ledger=ledger,
        failed=tally.failed_items,
        items=tally.items,
        markdown=markdown,
        outcomes_uri=outcomes_uri,
        ledger_error=ledger_error,
        empty=empty,
    )


def finish_resync(
    config: SourceConfig, state: BlobStore, options: RunOptions, summaries: Sequence[Mapping[str, Any]]
) -> tuple[str, SyncResults]:
    """Write the report of a metadata-only resync; returns its URI and what the sync did."""
    folder = RunFolder.of(state, options.run_id)
    sync = folder.sync_results(chunk_uris(summaries, "metadata"), dry_run=options.dry_run)
    return folder.write_report(resync_markdown(config, options, sync.counts, sync.failed_urls)), sync


def resync_markdown(
    config: SourceConfig, options: RunOptions, totals: Mapping[str, int], failed: Mapping[str, str]
) -> str:
    lines = [
        f"# Encord metadata resync: `{config.name}`",
        "",
        f"- run: `{options.run_id}`" + (" (dry run)" if options.dry_run else ""),
        f"- prefixes: {', '.join(f'`{p}`' for p in options.prefixes)}",
        f"- mode: `{options.sync_mode}`",
        "",
        "| count | items |",
        "|---|---:|",
        *[f"| {name} | {value} |" for name, value in totals.items()],
    ]
    if failed:
        lines += ["", "## Failed", "", *[f"- `{url}`: {why}" for url, why in failed.items()]]
    return "\n".join(lines) + "\n"


def summary_table(counts: Mapping[str, int]) -> str:
    """A fixed-width table for task logs."""
    width = max([len(name) for name in counts] + [len("objects seen")])
    rows = [f"{name:<{width}}  {count:>8}" for name, count in counts.items()]
    return "\n".join([f"{'outcome':<{width}}  {'objects':>8}", *rows])


@dataclass
class Drift:
    """What differs between the ledger and Encord's folder listing."""

    matched: int = 0
    uuid_fixed: list[str] = field(default_factory=list)
    missing_in_encord: list[str] = field(default_factory=list)
    missing_in_ledger: list[str] = field(default_factory=list)
    metadata_differs: list[str] = field(default_factory=list)
    items_without_url: int = 0
    groups_not_checked: int = 0
    """Groups, sequences and series: Encord lists them without an object URL, so they are kept."""
    ledger_problem: str | None = None
    """The ledger was unreadable (rebuilt from Encord) or read from its previous version."""

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "uuid_fixed": len(self.uuid_fixed),
            "missing_in_encord": len(self.missing_in_encord),
            "missing_in_ledger": len(self.missing_in_ledger),
            "metadata_differs": len(self.metadata_differs),
            "items_without_url": self.items_without_url,
            "groups_not_checked": self.groups_not_checked,
        }


def reconcile_ledger(
    state: BlobStore,
    run_id: str,
    encord_items: Iterable[tuple[str, str | None, Mapping[str, Any]]],
    key_of: Callable[[str], str | None] | None = None,
) -> Drift:
    """Rebuild the ledger's Encord side from a folder listing (``(uuid, url, clientMetadata)``).

    URLs are matched by :func:`~encord_ingest.sources.urls.url_identity`, so a listing of
    normalised URLs matches the ledger's canonical ones (and a row added from Encord carries the
    URL in that form, which is the pipeline's own for the named URL styles).

    - a ledger item whose URL Encord lists: its item UUID is taken from Encord;
    - a ledger item Encord does not list: its rows are dropped, so the next run registers it again;
    - an Encord item the ledger lacks: a row is added with an empty version and the key
      ``key_of`` (the source's :meth:`~encord_ingest.sources.base.Source.key_from_url`) gives its
      URL, so the next run, which reads the ledger by key, sees ``data_changed`` and syncs its
      metadata without registering it again (a URL that is not the source's: key ``""``).
    Groups, sequences and series have no URL of their own in a listing: their rows are kept as
    they are and counted (``groups_not_checked``), never dropped.
    """
    import pandas as pd

    ledger = ledger_of(state)
    drift = Drift()
    try:
        frame = ledger.read_frame()
        drift.ledger_problem = ledger.warning
    except LedgerError as exc:  # rebuild from Encord's listing alone
        frame = ledger_schema().empty_table().to_pandas()
        drift.ledger_problem = f"the ledger could not be read and was rebuilt from Encord: {exc}"
    listed: dict[str, tuple[str, str]] = {}
    for item_uuid, url, metadata in encord_items:
        if not url:
            drift.items_without_url += 1
            continue
        listed[url_identity(url)] = (item_uuid, metadata_fingerprint(dict(metadata)))
    members = frame.groupby("item_url")["url"].transform("count")
    single = (frame["url"] == frame["item_url"]) & (members == 1) & ~frame["kind"].isin(list(GROUP_KINDS))
    drift.groups_not_checked = int(frame.loc[~single, "item_url"].nunique())
    for row in frame[single].itertuples():
        found = listed.get(url_identity(str(row.item_url)))
        if found is None:
            drift.missing_in_encord.append(str(row.item_url))
            continue
        drift.matched += 1
        if row.item_uuid != found[0]:
            drift.uuid_fixed.append(str(row.item_url))
        if row.metadata_hash != found[1]:
            drift.metadata_differs.append(str(row.item_url))
    frame = frame[~frame["item_url"].isin(drift.missing_in_encord)].copy()
    uuids = {url: item_uuid for url, (item_uuid, _) in listed.items()}
    frame["item_uuid"] = [
        uuids.get(url_identity(url), known)
        for url, known in zip(frame["item_url"], frame["item_uuid"], strict=True)
    ]
    known_urls = {url_identity(url) for url in frame["url"]}
    added = []
    for url, (item_uuid, metadata_hash) in listed.items():
        if url in known_urls:
            continue
        drift.missing_in_ledger.append(url)
        added.append(
            {
                "url": url,
                "key": (key_of(url) if key_of else None) or "",
                "item_url": url,
                "kind": "",
                "version": "",
                "size": -1,
                "sidecars": "{}",
                "input_fingerprint": "",
                "metadata_hash": metadata_hash,
                "item_uuid": item_uuid,
                "last_run_id": run_id,
                "last_outcome": "reconciled",
            }
        )
    if added:
        frame = pd.concat([frame, pd.DataFrame(added, columns=list(LEDGER_COLUMNS))], ignore_index=True)
    ledger.write(frame[list(LEDGER_COLUMNS)].astype({"size": "int64"}), run_id)
    return drift


def drift_markdown(config: SourceConfig, run_id: str, drift: Drift, sample: int = 50) -> str:
    lines = [
        f"# Encord reconcile report: `{config.name}`",
        "",
        f"- run: `{run_id}`, Encord folder `{config.encord.folder}`",
        *([f"- **{drift.ledger_problem}**"] if drift.ledger_problem else []),
        "",
        "| check | items |",
        "|---|---:|",
        *[f"| {name.replace('_', ' ')} | {count} |" for name, count in drift.to_json().items()],
    ]
    for title, urls in (
        ("In the ledger, not in Encord (will be registered again)", drift.missing_in_encord),
        ("In Encord, not in the ledger (added; metadata re-checked next run)", drift.missing_in_ledger),
        ("Metadata in Encord differs from what the pipeline last sent", drift.metadata_differs),
    ):
        if urls:
            lines += ["", f"## {title}", "", *[f"- `{url}`" for url in urls[:sample]]]
            if len(urls) > sample:
                lines.append(f"- ... and {len(urls) - sample} more")
    return "\n".join(lines) + "\n"
