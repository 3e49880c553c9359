"""Targets: the storage items an operation may write, with the metadata Encord holds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from encord_ingest.metadata import VIDEO_KIND
from encord_ingest.metadata_ops.columns import (
    DATA_HASH,
    DATA_INDEX,
    DATASET_HASH,
    FRAME_FILE,
    FRAME_INDEX,
    GROUP,
    GROUP_TITLE,
    ITEM_TYPE,
    ITEM_UUID,
    OBJECT_URL,
    TITLE,
)


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class Target(BaseModel):
    """One storage item an operation may write, with the metadata Encord holds for it."""

    model_config = ConfigDict(frozen=True)

    item_uuid: str
    title: str
    object_url: str | None = None
    item_type: str = ""
    """The ``StorageItemType`` wire value: ``video``, ``image``, ``imageGroup``, ..."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    dataset_hash: str | None = None
    data_hash: str | None = None
    data_index: int | None = None
    """Position of the data unit in its dataset (what Encord's docs call the data unit number)."""
    group_uuid: str | None = None
    group_title: str | None = None
    frame_index: int | None = None
    """Position of the frame among the group's child items."""

    @property
    def label(self) -> str:
        """How reports name the item: its object URL, else its title, else its UUID."""
        return self.object_url or self.title or self.item_uuid

    @property
    def kind(self) -> str:
        """The kind :func:`~encord_ingest.metadata.validate_reserved` checks (``video`` or not)."""
        return VIDEO_KIND if self.item_type == "video" else (self.item_type or "item")

    @property
    def frame_file(self) -> str | None:
        """The file name of a frame: the last part of its object URL (decoded), else of its title."""
        if self.frame_index is None:
            return None
        if self.object_url:
            return _basename(unquote(urlsplit(self.object_url).path))
        return _basename(self.title)

    def names(self, column: str) -> set[str]:
        """The identifier values a table row may use in ``column`` to name this target."""
        if column == ITEM_UUID:
            return {self.item_uuid.lower()}
        if column == OBJECT_URL:
            return {self.object_url} if self.object_url else set()
        if column == TITLE:
            return {self.title}
        if column == FRAME_INDEX:
            return {str(self.frame_index)} if self.frame_index is not None else set()
        if column == FRAME_FILE and self.frame_index is not None:
            return {name for name in (self.frame_file, self.title, _basename(self.title)) if name}
        if column == GROUP and self.group_uuid:
            return {self.group_uuid.lower(), *([self.group_title] if self.group_title else [])}
        return set()

    def info(self) -> dict[str, Any]:
        """The informational columns of this target in an export."""
        return {
            ITEM_UUID: self.item_uuid,
            OBJECT_URL: self.object_url,
            TITLE: self.title,
            ITEM_TYPE: self.item_type or None,
            DATASET_HASH: self.dataset_hash,
            DATA_HASH: self.data_hash,
            DATA_INDEX: self.data_index,
            GROUP: self.group_uuid,
            GROUP_TITLE: self.group_title,
            FRAME_INDEX: self.frame_index,
            FRAME_FILE: self.frame_file,
        }


def unique_targets(targets: Iterable[Target]) -> list[Target]:
    """The first target of each item UUID, in order (a project may reach one item twice)."""
    seen: dict[str, Target] = {}
    for target in targets:
        seen.setdefault(target.item_uuid, target)
    return list(seen.values())
