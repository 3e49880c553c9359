"""Start-up options of the emulator; every server behaviour that Encord does not document is one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PatchSemantics = Literal["replace", "merge", "merge-recursive"]
DuplicatesAs = Literal["success", "unit-error"]
FolderSearch = Literal["substring", "prefix", "exact", "unindexed"]


class EmulatorConfig(BaseModel):
    """Options; the defaults are the conservative choice where the real behaviour is unknown."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    patch_semantics: PatchSemantics = "merge"
    """How a PATCH (and an upload with ``upsert_metadata``) writes ``clientMetadata`` onto an item:
    ``replace`` = the sent dict replaces the stored one (a ``null`` is stored as ``null``);
    ``merge`` = shallow merge, top-level keys of the sent dict replace the stored ones whole (a
    ``null`` is stored as ``null``); ``merge-recursive`` = JSON merge patch (RFC 7386): objects
    merge recursively and a ``null`` deletes the key at its depth. Unknown on the real service."""

    normalise_urls: bool = False
    """Store item URLs normalised (scheme and host lower-cased, the path percent-decoded) and
    match duplicates on that form; off = byte for byte as sent. Unknown on the real service."""

    job_duration_s: float = Field(default=0.0, ge=0)
    """Seconds an upload job stays PENDING before its units are processed."""

    max_long_poll_s: float = Field(default=30.0, ge=0)
    """Upper bound on how long one ``GET .../data-upload-jobs/{job}`` waits, whatever the client asks."""

    max_signature_age_s: float | None = Field(default=300.0, gt=0)
    """Reject v2 signatures whose ``created`` is further than this from now; ``None`` = no check."""

    accept_any_key: bool = False
    """Dev mode: accept any correctly signed request, whatever its key (the key id is the key)."""

    duplicates_as: DuplicatesAs = "success"
    """With ``skip_duplicate_urls``, how a unit whose URL already exists in the folder is reported:
    ``success`` (a done unit; listed only with ``report_skipped_duplicates``) or ``unit-error``
    (an error unit naming the URL; nothing is created or upserted). Unknown on the real service."""

    report_skipped_duplicates: bool = False
    """With ``duplicates_as=success``: list the already existing item in ``items_with_names``.
    Unknown on the real service; off = the pipeline must not rely on it."""

    error_job_keeps_good_units: bool = True
    """A job with unit errors and ``ignore_errors=False`` ends ERROR; when true, its good units
    still create items (and are listed in ``items_with_names``). Unknown on the real service."""

    list_group_frames: bool = False
    """List the frames of image groups / DICOM series as items of the folder (they always exist
    as child items of the group)."""

    schema_enforcement: Literal["off", "reject"] = "off"
    """``reject``: client metadata that breaks the saved schema fails (400 on PATCH, a unit error
    in a job). Unknown on the real service."""

    owner: str = "emulator@example.com"
    """The ``owner`` reported on folders and items."""

    # --- request size, folder search, job start, rate limits (all unknown on the real service)
    folder_search: FolderSearch = "substring"
    """How ``search`` matches folder names: case-insensitive ``substring``, ``prefix`` or ``exact``
    (case-sensitive), or ``unindexed``: search finds nothing (a lagging search index)."""

    max_body_bytes: int | None = Field(default=None, ge=1)
    """Refuse signed requests whose body is larger, with 413; ``None`` = no limit."""

    max_listing_bytes: int | None = Field(default=None, ge=1)
    """An item listing page whose body would be larger answers 504 (a server timing out on large
    client metadata); ``None`` = no limit. Metadata served as signed URLs does not count."""

    drop_job_start_responses: int = Field(default=0, ge=0)
    """The next this many upload-job starts create their job but answer 504, as when a response
    is lost on the way back (counts down)."""

    concurrent_jobs_deduplicate: bool = True
    """``skip_duplicate_urls`` also sees items of jobs still running when a job started; false: two
    overlapping jobs with the same URL both create an item (a race on the real service)."""

    rate_limit_headers: dict[str, str] = Field(default_factory=dict)
    """Headers added to every signed response (e.g. ``{"X-RateLimit-Limit": "600"}``)."""
