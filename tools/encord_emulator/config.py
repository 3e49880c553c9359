"""Start-up options of the emulator; every server behaviour that Encord does not document is one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PatchSemantics = Literal["merge", "replace"]


class EmulatorConfig(BaseModel):
    """Options; the defaults are the conservative choice where the real behaviour is unknown."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    patch_semantics: PatchSemantics = "merge"
    """How a PATCH (and an upload with ``upsert_metadata``) writes ``clientMetadata`` onto an item:
    ``merge`` = shallow merge into the stored dict, ``replace`` = the sent dict replaces it."""

    job_duration_s: float = Field(default=0.0, ge=0)
    """Seconds an upload job stays PENDING before its units are processed."""

    max_long_poll_s: float = Field(default=30.0, ge=0)
    """Upper bound on how long one ``GET .../data-upload-jobs/{job}`` waits, whatever the client asks."""

    max_signature_age_s: float | None = Field(default=300.0, gt=0)
    """Reject v2 signatures whose ``created`` is further than this from now; ``None`` = no check."""

    accept_any_key: bool = False
    """Dev mode: accept any correctly signed request, whatever its key (the key id is the key)."""

    report_skipped_duplicates: bool = False
    """With ``skip_duplicate_urls``: list the already existing item in ``items_with_names``.
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
