"""Records the emulator keeps (in memory, and as JSON rows when persisted)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["PENDING", "DONE", "ERROR", "CANCELLED"]
TERMINAL_STATUSES = ("DONE", "ERROR", "CANCELLED")
PROVIDERS = ("AWS", "GCP", "AZURE", "S3_COMPATIBLE", "OPEN_TELEKOM", "DIRECT_ACCESS")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Integration(BaseModel):
    uuid: str
    title: str
    provider: str = "AWS"


class Folder(BaseModel):
    uuid: str
    name: str
    parent: str | None = None
    description: str = ""
    client_metadata: str | None = None
    """As the SDK sends it: a JSON string (or nothing)."""
    synced_dataset: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    last_edited_at: datetime = Field(default_factory=utc_now)


class Item(BaseModel):
    uuid: str
    folder: str
    item_type: str
    """The wire value of ``encord.orm.storage.StorageItemType`` (``image``, ``imageGroup``, ...)."""
    name: str
    url: str | None = None
    identity: str | None = None
    """What ``skip_duplicate_urls`` compares: the object URL, or the frame URLs of a group."""
    client_metadata: dict[str, Any] = Field(default_factory=dict)
    integration: str | None = None
    storage_location: str = "s3"
    media: dict[str, Any] = Field(default_factory=dict)
    """Wire-named media fields (``fileSize``, ``mimeType``, ``width``, ``fps``, ...)."""
    group: str | None = None
    """For a frame of an image group / DICOM series: the group item's UUID."""
    children: list[str] = Field(default_factory=list)
    job: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    last_edited_at: datetime = Field(default_factory=utc_now)


class Frame(BaseModel):
    url: str
    title: str | None = None
    item_type: str = "image"
    media: dict[str, Any] = Field(default_factory=dict)


class Unit(BaseModel):
    """One unit of an upload job: one item to create (a video, an image, a group, ...)."""

    item_type: str
    title: str
    url: str | None = None
    frames: list[Frame] = Field(default_factory=list)
    source_items: list[str] = Field(default_factory=list)
    client_metadata: dict[str, Any] = Field(default_factory=dict)
    media: dict[str, Any] = Field(default_factory=dict)
    action: str

    @property
    def object_urls(self) -> list[str]:
        return [self.url] if self.url is not None else [f.url for f in self.frames]

    @property
    def identity(self) -> str | None:
        """The duplicate key: the URL, or ``<type>:`` plus the frame URLs for groups."""
        if self.url is not None:
            return self.url
        if self.frames:
            return f"{self.item_type}:" + "\n".join(f.url for f in self.frames)
        return None


class UnitError(BaseModel):
    object_urls: list[str]
    error: str
    subtask_uuid: str
    action_description: str


class JobResult(BaseModel):
    items_with_names: list[tuple[str, str]] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    unit_errors: list[UnitError] = Field(default_factory=list)
    done: int = 0
    error: int = 0
    cancelled: int = 0


class Job(BaseModel):
    uuid: str
    folder: str
    integration: str | None
    ignore_errors: bool = False
    skip_duplicate_urls: bool = False
    upsert_metadata: bool = False
    file_name: str | None = None
    units: list[Unit] = Field(default_factory=list)
    status: JobStatus = "PENDING"
    forced_status: JobStatus | None = None
    created_at: float = 0.0
    ready_at: float = 0.0
    result: JobResult = Field(default_factory=JobResult)


class DataLink(BaseModel):
    data_hash: str
    item: str
    created_at: datetime = Field(default_factory=utc_now)


class Dataset(BaseModel):
    uuid: str
    title: str
    description: str = ""
    backing_folder: str | None = None
    links: list[DataLink] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utc_now)


class Project(BaseModel):
    """A project: attached datasets (in attach order) and an empty ontology of its own."""

    uuid: str
    title: str
    description: str = ""
    datasets: list[str] = Field(default_factory=list)
    ontology: str
    created_at: datetime = Field(default_factory=utc_now)
