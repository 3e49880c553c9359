"""Planning config (how a source's objects become items) and a shard scan's summary."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from encord_ingest.classify import ClassifyConfig, built_in_tables
from encord_ingest.grouping import GroupingConfig
from encord_ingest.ledger import Outcome
from encord_ingest.manifest import DEFAULT_MAX_BYTES, DEFAULT_MAX_ITEMS, DEFAULT_MAX_URLS
from encord_ingest.manifest.model import compact_json_bytes
from encord_ingest.metadata import MetadataMapping, UnknownKeyPolicy
from encord_ingest.probe import ProbeConfig
from encord_ingest.schema import MetadataSchema, key_problem
from encord_ingest.sidecars import SidecarConventions
from encord_ingest.sources.filters import FilterConfig, KeyFilter
from encord_ingest.sources.readahead import DEFAULT_READ_CONCURRENCY, MAX_READ_CONCURRENCY


class PlanningConfig(BaseModel):
    """Everything that decides how a source's objects become items (one per source)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classify: ClassifyConfig = Field(default_factory=ClassifyConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    sidecars: SidecarConventions = Field(default_factory=SidecarConventions)
    mapping: MetadataMapping = Field(default_factory=MetadataMapping)
    grouping: GroupingConfig = Field(default_factory=GroupingConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    unknown_keys: UnknownKeyPolicy = "warn"
    metadata_root: str = ""
    """Folder defaults and tables apply from this folder down (``""``: the bucket root)."""
    prefix_template: str | None = None
    """The source's ``bucket.prefix``: rules and globs see a key relative to the rendering of it
    the key lies under, whatever prefix the run lists (:class:`~encord_ingest.sources.filters.KeyFilter`);
    ``None``: relative to the run's own prefixes."""
    provenance_key: str | None = None
    """When set, ``clientMetadata[<key>]`` = ``{source, version, sidecars}`` (off by default)."""
    sync_new_items: bool = True
    manifest_max_items: int = Field(default=DEFAULT_MAX_ITEMS, ge=1)
    manifest_max_urls: int = Field(default=DEFAULT_MAX_URLS, ge=1)
    manifest_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024)
    metadata_chunk_rows: int = Field(default=10_000, ge=1)
    outcome_chunk_rows: int = Field(default=50_000, ge=1)
    progress_every: int = Field(default=10_000, ge=1)
    """A progress line goes to the task log every this many listed objects."""
    read_concurrency: int = Field(default=DEFAULT_READ_CONCURRENCY, ge=1, le=MAX_READ_CONCURRENCY)
    """Sidecars read at once, ahead of the planner, while the shard is listed (see
    :mod:`encord_ingest.sources.readahead`; 1: none); the source's ``bucket.read_concurrency``."""

    def key_filter(self, roots: Sequence[str]) -> KeyFilter:
        """The rules and globs of a run (or an event unit) listing ``roots``: one construction
        for scans and event planning, so both see the same glob root for a key."""
        return KeyFilter(self.filters, roots=roots, template=self.prefix_template)

    @field_validator("metadata_root")
    @classmethod
    def _folder(cls, root: str) -> str:
        if root and not root.endswith("/"):
            raise ValueError(f"metadata_root {root!r}: expected '' or a folder ending in '/'")
        return root

    @field_validator("provenance_key")
    @classmethod
    def _valid_key(cls, key: str | None) -> str | None:
        if key is not None and key_problem(key):
            raise ValueError(f"provenance_key {key!r}: {key_problem(key)}")
        return key


FIRST_FINGERPRINTED_RULES = "7d1b54ba9b3a83f12cfa548a71c640dc5a5b5da1d6f52d2b6f90ee8978c99bae"
"""The digest of :func:`built_in_rules` when fingerprints were first recorded. While the built-in
rules are these, they stay out of the fingerprint (the ledgers recorded under them stay valid);
any change to them changes every fingerprint, so nothing has to remember to bump a version."""


def built_in_rules() -> dict[str, object]:
    """What the code itself decides about what is data and of which kind: the classifier's
    tables (:func:`~encord_ingest.classify.built_in_tables`) and the defaults of ``classify``
    and ``filters``."""
    return {
        **built_in_tables(),
        "classify": ClassifyConfig().model_dump(mode="json"),
        "filters": FilterConfig().model_dump(mode="json"),
    }


def built_in_rules_digest() -> str:
    return hashlib.sha256(compact_json_bytes(built_in_rules())).hexdigest()


def config_fingerprint(config: PlanningConfig, schema: MetadataSchema) -> str:
    """A hash of everything besides the sidecars that decides an item's metadata and shape.

    Part of every item's input fingerprint, so the no-change fast path (:mod:`.unchanged`) can
    tell that a ledger row was planned under the configuration of this run. ``classify`` and
    ``filters`` (which decide what is data and of which kind) are in it only when they differ
    from their defaults, so fingerprints recorded before they were added stay valid for the
    default settings; with other settings, the first run after the upgrade reads every item's
    sidecars once (their metadata is compared: nothing is written to Encord unless it differs).
    A change to the built-in rules (:func:`built_in_rules`) changes it too."""
    relevant: dict[str, object] = {
        "schema": schema.to_dict(),
        "mapping": config.mapping.model_dump(mode="json"),
        "sidecars": config.sidecars.model_dump(mode="json"),
        "grouping": config.grouping.model_dump(mode="json"),
        "unknown_keys": config.unknown_keys,
        "metadata_root": config.metadata_root,
        "provenance_key": config.provenance_key,
    }
    for name, default in (("classify", ClassifyConfig()), ("filters", FilterConfig())):
        settings = getattr(config, name).model_dump(mode="json")
        if settings != default.model_dump(mode="json"):
            relevant[name] = settings
    if "filters" in relevant:  # the globs' root
        relevant["prefix_template"] = config.prefix_template
    rules = built_in_rules_digest()
    if rules != FIRST_FINGERPRINTED_RULES:
        relevant["built_in_rules"] = rules
    return hashlib.sha256(compact_json_bytes(relevant)).hexdigest()


class ShardSummary(BaseModel):
    """What one shard's plan produced; small enough for XCom (URIs and counts only)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    shard: int
    shards: int
    source: str
    full_rescan: bool
    objects: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    items: dict[str, int] = Field(default_factory=dict)
    errors: dict[str, int] = Field(default_factory=dict)
    warnings: int = 0
    manifest_items: int = 0
    manifest_urls: int = 0
    metadata_changes: int = 0
    manifest_uris: list[str] = Field(default_factory=list)
    metadata_uris: list[str] = Field(default_factory=list)
    outcome_uris: list[str] = Field(default_factory=list)
    summary_uri: str = ""
    table_warnings: dict[str, str] = Field(default_factory=dict)
    """Unmatched-row warnings of tables this shard read but another shard owns (key -> warning)."""

    @property
    def accounted(self) -> bool:
        """Every object seen has exactly one outcome (``gone`` rows are extra)."""
        return sum(self.counts.values()) - self.counts.get(Outcome.GONE, 0) == self.objects
