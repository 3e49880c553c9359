"""Bucket sources: list objects as a stream, read them, shard them, name them by URL."""

from __future__ import annotations

from encord_ingest.sources.base import KeyBounds, LevelEntry, ObjectInfo, Source, folder_chain, folder_of
from encord_ingest.sources.factory import open_source, split_uri
from encord_ingest.sources.filters import FilterConfig, KeyFilter, SkipReason
from encord_ingest.sources.gcs import GCSSource
from encord_ingest.sources.local import LocalSource
from encord_ingest.sources.prefix import resolve_prefixes
from encord_ingest.sources.s3 import S3Source
from encord_ingest.sources.sharding import Shard, ShardPart, find_folder_files, iter_shard, plan_shards
from encord_ingest.sources.urls import UrlBuilder, encode_key

__all__ = [
    "FilterConfig",
    "GCSSource",
    "KeyBounds",
    "KeyFilter",
    "LevelEntry",
    "LocalSource",
    "ObjectInfo",
    "S3Source",
    "Shard",
    "ShardPart",
    "SkipReason",
    "Source",
    "UrlBuilder",
    "encode_key",
    "find_folder_files",
    "folder_chain",
    "folder_of",
    "iter_shard",
    "open_source",
    "plan_shards",
    "resolve_prefixes",
    "split_uri",
]
