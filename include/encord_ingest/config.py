"""Declarative source configuration: one YAML file per source under ``include/sources/``.

A file describes where the data is (bucket, prefix template, filters), how objects become Encord
items (sidecars, grouping, metadata schema and mapping) and where they go in Encord (connection,
integration, storage folder, optional dataset, sync mode). The DAG factory turns each file into
the DAGs of that source (ingest, resync, reconcile, and events when configured). See the
README's "Source YAML reference" for every field.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from encord_ingest.budget import ErrorBudget
from encord_ingest.classify import ClassifyConfig
from encord_ingest.errors import ConfigError
from encord_ingest.events import EventsConfig
from encord_ingest.grouping import GroupingConfig
from encord_ingest.metadata import MetadataMapping, UnknownKeyPolicy
from encord_ingest.probe import ProbeConfig
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.schema import MetadataSchema, load_schema
from encord_ingest.sidecars import SidecarConventions
from encord_ingest.sources.factory import split_uri
from encord_ingest.sources.filters import FilterConfig
from encord_ingest.sources.prefix import ends_exactly, validate_template, validate_timezone
from encord_ingest.sources.readahead import DEFAULT_READ_CONCURRENCY, MAX_READ_CONCURRENCY
from encord_ingest.sources.urls import check_url_style

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
CRON_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
"""Airflow's cron presets; ``@once``, ``@continuous`` and ``null`` are the other schedules."""
INCLUDE_DIR = Path(__file__).resolve().parents[1]
"""``include/``: relative paths in source files (schema files) are resolved against it."""
SOURCES_DIR_ENV = "ENCORD_INGEST_SOURCES_DIR"


def sources_dir() -> Path:
    """Where the source files are: ``$ENCORD_INGEST_SOURCES_DIR``, by default ``include/sources/``."""
    return Path(os.environ.get(SOURCES_DIR_ENV) or INCLUDE_DIR / "sources")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BucketConfig(_Strict):
    """Where the data lives."""

    uri: str
    """``s3://<bucket>``, ``gs://<bucket>`` or ``file:///<absolute dir>`` (the bucket only)."""
    conn_id: str | None = None
    """Airflow connection: ``aws`` type for S3; for GCS one whose extra names a key (or none: ADC)."""
    region: str | None = None
    """S3 region used in canonical URLs (``https://<bucket>.s3.<region>.amazonaws.com/<key>``)."""
    url_style: str | None = None
    """A named URL style or a template such as ``https://cdn.example.com/{bucket}/{key}``."""
    prefix: str = ""
    """What a scheduled run lists: a template over the data interval, e.g.
    ``raw/{{ data_interval_start:%Y/%m/%d }}/``. Manual runs pass an explicit prefix instead."""
    timezone: str = "UTC"
    read_concurrency: int = Field(default=DEFAULT_READ_CONCURRENCY, ge=1, le=MAX_READ_CONCURRENCY)
    """Sidecars read at once, ahead of the planner, while a shard is listed (1: the
    planner reads one after another). Real buckets answer
    in tens of milliseconds per request; reads overlap the listing and each other."""
    direct_reads: bool = True
    """Sidecar reads the short way, 1.5x (S3) / 2x (GCS) less client CPU per read (S3: a presigned GET
    on the client's own HTTP session; GCS: the media URL on the client's own transport); any
    answer but a plain success is read again the ordinary way, with its retries and errors.
    ``false``: always the ordinary way (e.g. an S3-compatible store without presigned URLs)."""

    @field_validator("uri")
    @classmethod
    def _bucket_only(cls, uri: str) -> str:
        _, _, path = split_uri(uri, field="bucket.uri")
        if path:
            raise ValueError(
                f"{uri!r} has a path {path!r}; name the bucket only and put the path in 'prefix'"
            )
        return uri

    @field_validator("prefix")
    @classmethod
    def _template(cls, prefix: str) -> str:
        validate_template(prefix, field="bucket.prefix")
        return prefix

    @field_validator("timezone")
    @classmethod
    def _zone(cls, timezone: str) -> str:
        validate_timezone(timezone, field="bucket.timezone")
        return timezone

    @field_validator("url_style")
    @classmethod
    def _url_style(cls, style: str | None, info: ValidationInfo) -> str | None:
        if "uri" in info.data:  # else the uri itself is the error
            check_url_style(split_uri(info.data["uri"])[0], style, field="bucket.url_style")
        return style

    @property
    def scheme(self) -> str:
        return split_uri(self.uri)[0]


class MetadataConfig(_Strict):
    """How sidecar values become typed ``clientMetadata``."""

    schema_file: str | None = None
    """YAML schema, relative to ``include/`` (or absolute); none: every key untyped per ``unknown_keys``."""
    unknown_keys: UnknownKeyPolicy = "warn"
    mapping: MetadataMapping = Field(default_factory=MetadataMapping)
    root: str = ""
    """Folder defaults and tables apply from this folder down (``""``: the bucket root)."""
    provenance_key: str | None = None
    """When set, each item's metadata gets ``{source, version, sidecars}`` under this key."""


class EncordRequests(_Strict):
    """How the provider talks to Encord; set these from the contract check's answers (README)."""

    max_bundle_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Cap on one metadata PATCH body (below the contract check's ``max_body_bytes``)."""
    list_page_size: int = Field(default=1000, ge=1, le=1000)
    """Items per folder listing page (halved automatically when a page fails)."""
    list_metadata_as_urls: bool = False
    """Fetch listed items' metadata through signed URLs (folders with very large metadata)."""
    retry_job_start: bool = True
    """Retry an upload-job start after 429/5xx/timeouts; set false when the contract check
    answers ``concurrent_duplicates: registered-twice``."""


class EncordTarget(_Strict):
    """Where the items go."""

    conn_id: str = "encord_default"
    integration: str
    """Cloud integration title or UUID (titles must be unique in the organisation)."""
    folder: str
    """Storage folder path, created if missing (``team/project/raw``), or a folder UUID. Each
    level is matched by exact name; the UUID a path resolves to is remembered under
    ``<state_uri>/encord/folders.json``."""
    dataset: str | None = None
    """Optional dataset hash: registered items are linked to it."""
    sync_mode: Literal["merge", "replace"] = "merge"
    """``merge``: sidecar keys win, other keys in Encord are kept; ``replace``: exactly the sidecar keys."""
    ignore_errors: bool = True
    """Upload jobs go on past unreadable objects (their unit errors are still reported per URL)."""
    deferrable: bool = True
    pool: str = "encord_api"
    """Airflow pool that caps concurrent Encord calls across DAGs."""
    apply_schema: bool = True
    """Merge the source's schema file into the organisation's schema at the start of each run."""
    requests: EncordRequests = Field(default_factory=EncordRequests)

    @property
    def hook_params(self) -> dict[str, Any]:
        """Keyword arguments of ``EncordHook`` that differ from its defaults."""
        return self.requests.model_dump(exclude_defaults=True)


class SourceConfig(_Strict):
    """One source: one bucket prefix into one Encord folder (its DAGs: ``encord_provider.dag_builder``)."""

    name: str
    description: str = ""
    owner: str = "data-platform"
    tags: list[str] = Field(default_factory=list)
    schedule: str | None = "@daily"
    events: EventsConfig | None = None
    """Event-driven runs from S3 notifications on SQS (``encord_events__<name>``), beside the schedule."""
    start_date: date = date(2026, 1, 1)
    bucket: BucketConfig
    state_uri: str
    """Ledger and run folders: ``s3://<bucket>/<path>``, ``gs://...`` or ``file:///...``."""
    state_conn_id: str | None = None
    """Connection for ``state_uri``; defaults to ``bucket.conn_id``."""
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    sidecars: SidecarConventions = Field(default_factory=SidecarConventions)
    grouping: GroupingConfig = Field(default_factory=GroupingConfig)
    classify: ClassifyConfig = Field(default_factory=ClassifyConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    encord: EncordTarget
    shards: int = Field(default=4, ge=1, le=256)
    """At most this many shards are scanned in parallel (mapped tasks)."""
    manifest_max_items: int = Field(default=5_000, ge=1, le=500_000)
    max_mapped_tasks: int = Field(default=64, ge=1, le=1024)
    """Register and sync tasks are mapped over at most this many batches of chunks."""
    error_budget: ErrorBudget = Field(default_factory=lambda: ErrorBudget(max_failed_fraction=0.05))
    """Per-item failures a run tolerates (registration, metadata and sidecar errors alike)."""
    empty_run: Literal["warn", "fail"] = "warn"
    """A run that lists 0 objects: ``warn`` (a loud line in the report and the log) or ``fail``."""
    retries: int = Field(default=2, ge=0)
    """Task retries; every task is safe to retry (deterministic run folders, resumable jobs)."""
    retry_delay_s: float = Field(default=30, ge=0)
    """Delay before the first retry."""
    retry_backoff: float = Field(default=2.0, ge=0)
    """Each further retry waits this many times longer (0: a constant delay)."""
    max_retry_delay_s: float = Field(default=600, gt=0)
    """No retry waits longer than this."""

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(f"{name!r}: expected lower-case letters, digits and '_', starting with a letter")
        return name

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, schedule: str | None) -> str | None:
        if schedule is None or schedule in ("@once", "@continuous", *CRON_PRESETS):
            return schedule
        if schedule.startswith("@") or not croniter.is_valid(schedule):
            raise ValueError(
                f"{schedule!r} is not a schedule; expected a cron expression of 5 fields "
                f"('0 * * * *'), one of {', '.join(CRON_PRESETS)}, @once, @continuous, or null"
            )
        return schedule

    @field_validator("state_uri")
    @classmethod
    def _state_uri(cls, uri: str) -> str:
        split_uri(uri, field="state_uri")
        return uri.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> SourceConfig:
        path = self.schema_path
        if path is not None and not path.is_file():
            raise ValueError(f"metadata.schema_file: {path} does not exist")
        self._globs_have_a_root()
        try:
            self.planning()
        except ValidationError as error:
            problems = "; ".join(
                f"metadata.{'.'.join(map(str, p['loc'])).replace('metadata_', '')}: {p['msg']}"
                for p in error.errors()
            )
            raise ValueError(problems) from None
        return self

    def _globs_have_a_root(self) -> None:
        """Globs are matched relative to the rendering of ``bucket.prefix`` a key lies under; a
        template whose end has no fixed width (``raw/{{ data_interval_start:%b }}``) gives no
        reliable rendering in a manual run of another prefix, which could then skip (and drop from
        the ledger) items the scheduled runs registered."""
        prefix = self.bucket.prefix
        if (self.filters.include or self.filters.exclude) and not ends_exactly(prefix):
            raise ValueError(
                f"bucket.prefix: template {prefix!r} ends with a placeholder of no fixed width, which "
                "filters.include/filters.exclude globs cannot be matched relative to in a run of another "
                "prefix; end the prefix with '/' or literal text, or use fixed-width directives "
                "(e.g. 'raw/{{ data_interval_start:%Y/%m/%d }}/')"
            )

    @property
    def dag_id(self) -> str:
        return f"encord_ingest__{self.name}"

    @property
    def schema_path(self) -> Path | None:
        if self.metadata.schema_file is None:
            return None
        path = Path(self.metadata.schema_file)
        return path if path.is_absolute() else INCLUDE_DIR / path

    @property
    def state_connection(self) -> str | None:
        return self.state_conn_id or self.bucket.conn_id

    def load_schema(self) -> MetadataSchema:
        path = self.schema_path
        return load_schema(path) if path is not None else MetadataSchema(keys={})

    def planning(self) -> PlanningConfig:
        """The core planner's view of this source."""
        return PlanningConfig(
            classify=self.classify,
            filters=self.filters,
            sidecars=self.sidecars,
            mapping=self.metadata.mapping,
            grouping=self.grouping,
            probe=self.probe,
            unknown_keys=self.metadata.unknown_keys,
            metadata_root=self.metadata.root,
            prefix_template=self.bucket.prefix,
            provenance_key=self.metadata.provenance_key,
            manifest_max_items=self.manifest_max_items,
            read_concurrency=self.bucket.read_concurrency,
        )


def _field_path(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def _describe(error: ValidationError, file: str) -> str:
    lines = [f"{file}: invalid source configuration"]
    for problem in error.errors():
        field = _field_path(problem["loc"])
        message = problem["msg"].removeprefix("Value error, ").removeprefix(f"{field}: ")
        lines.append(f"  {field}: {message} (got {problem.get('input')!r:.80})")
    return "\n".join(lines)


def parse_source_config(document: Any, *, file: str) -> SourceConfig:
    """Validate one parsed YAML document; a problem raises :class:`ConfigError` naming file and field."""
    if not isinstance(document, dict):
        raise ConfigError(f"{file}: expected a mapping of source settings, got {type(document).__name__}")
    try:
        return SourceConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(_describe(error, file)) from None
    except ConfigError as error:
        raise ConfigError(f"{file}: {error}") from None


def _duplicate_key(node: yaml.Node | None, path: str = "") -> str | None:
    """The first key written twice in one mapping, as ``field: ... (lines a and b)``."""
    if isinstance(node, yaml.MappingNode):
        lines: dict[Any, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            field = f"{path}.{name}" if path else str(name)
            if name is not None and name in lines:
                return f"{field}: written twice (lines {lines[name]} and {key.start_mark.line + 1})"
            if name is not None:
                lines[name] = key.start_mark.line + 1
            found = _duplicate_key(value, field)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            found = _duplicate_key(value, f"{path}[{index}]")
            if found:
                return found
    return None


def load_source_config(path: str | Path) -> SourceConfig:
    """Read and validate one source file; a key written twice is refused, not silently overridden."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        duplicate = _duplicate_key(yaml.compose(text, Loader=yaml.SafeLoader))
        document = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read source configuration: {error}") from None
    if duplicate:
        raise ConfigError(f"{path}: invalid source configuration\n  {duplicate}")
    return parse_source_config(document, file=str(path))


def load_source_configs(folder: str | Path) -> tuple[list[SourceConfig], list[ConfigError]]:
    """Every ``*.yaml``/``*.yml`` in ``folder``; bad files come back as errors, never break the rest."""
    configs: list[SourceConfig] = []
    errors: list[ConfigError] = []
    seen: dict[str, Path] = {}
    for path in sorted([*Path(folder).glob("*.yaml"), *Path(folder).glob("*.yml")]):
        try:
            config = load_source_config(path)
        except ConfigError as error:
            errors.append(error)
            continue
        if config.name in seen:
            errors.append(
                ConfigError(f"{path}: name: {config.name!r} is already used by {seen[config.name]}")
            )
            continue
        seen[config.name] = path
        configs.append(config)
    return configs, errors
