"""What the register step records per manifest chunk: ``results/<name>.register.json``.

Written by the register operator (``encord_provider``), read back by :class:`~.run_folder.RunFolder`
for the ledger commit, the metadata sync (item UUIDs of new items) and the dataset link.
"""

from __future__ import annotations

import json
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from encord_ingest.errors import ItemError

JobStatus = Literal["PENDING", "DONE", "ERROR", "CANCELLED"]


class UrlResult(BaseModel):
    """The outcome for one object URL: an item UUID, or an error."""

    model_config = ConfigDict(frozen=True)

    item_uuid: str | None = None
    error: ItemError | None = None


class RegisterCounts(BaseModel):
    """Counts for XCom and reports; ``items`` are manifest items, ``urls`` their object URLs."""

    items: int = 0
    urls: int = 0
    registered_items: int = 0
    failed_items: int = 0


class ResultFile(BaseModel):
    """A JSON result file of a run (register, sync, metadata operation): written indented with
    ``None`` fields left out, read back whole."""

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=1, exclude_none=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        return cls.model_validate(json.loads(data))


class RegisterReport(ResultFile):
    """``results/<name>.register.json``: one job's outcome for one manifest chunk."""

    chunk_uri: str
    job_uuid: str
    status: JobStatus
    counts: RegisterCounts
    job_errors: list[str] = Field(default_factory=list)
    results: dict[str, UrlResult]
    """object URL -> item UUID or error (every URL of every item of the chunk)."""
