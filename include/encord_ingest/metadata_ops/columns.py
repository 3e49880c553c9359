"""Scopes and the columns of change tables and exports."""

from __future__ import annotations

from enum import StrEnum

from encord_ingest.schema import KEYFRAMES_KEY, VIDEO_CONFIG_KEY


class Scope(StrEnum):
    """What the target ids of an operation name."""

    FOLDER = "folder"
    DATASET = "dataset"
    PROJECT = "project"
    GROUP_FRAMES = "group_frames"


ITEM_UUID = "item_uuid"
OBJECT_URL = "object_url"
TITLE = "title"
ITEM_TYPE = "item_type"
DATASET_HASH = "dataset_hash"
DATA_HASH = "data_hash"
DATA_INDEX = "data_index"
GROUP = "group"
GROUP_TITLE = "group_title"
FRAME_INDEX = "frame_index"
FRAME_FILE = "frame_file"

#: Identifier columns per scope, in order of preference: the first one present names the rows.
ID_COLUMNS: dict[Scope, tuple[str, ...]] = {
    Scope.FOLDER: (ITEM_UUID, OBJECT_URL, TITLE),
    Scope.DATASET: (ITEM_UUID, OBJECT_URL, TITLE),
    Scope.PROJECT: (ITEM_UUID, OBJECT_URL, TITLE),
    Scope.GROUP_FRAMES: (ITEM_UUID, OBJECT_URL, FRAME_INDEX, FRAME_FILE),
}
#: Columns an export writes besides the metadata keys; never read as metadata.
INFO_COLUMNS: tuple[str, ...] = (
    ITEM_UUID,
    OBJECT_URL,
    TITLE,
    ITEM_TYPE,
    DATASET_HASH,
    DATA_HASH,
    DATA_INDEX,
    GROUP,
    GROUP_TITLE,
    FRAME_INDEX,
    FRAME_FILE,
)
ESCAPE_PREFIX = "meta:"
"""Column prefix for a metadata key that is also the name of an info column (``meta:title``)."""
KEYFRAME_KEYS = (KEYFRAMES_KEY, VIDEO_CONFIG_KEY)


def column_for_key(key: str) -> str:
    """The table column of a metadata key."""
    return ESCAPE_PREFIX + key if key in INFO_COLUMNS or key.startswith(ESCAPE_PREFIX) else key


def key_for_column(column: str) -> str | None:
    """The metadata key of a table column, ``None`` for an info column."""
    if column in INFO_COLUMNS:
        return None
    return column[len(ESCAPE_PREFIX) :] if column.startswith(ESCAPE_PREFIX) else column
