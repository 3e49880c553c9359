"""Helpers for the planning tests: build trees, run plans, read their outputs back."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from encord_ingest.ledger import Ledger, commit_run, item_urls_by_title
from encord_ingest.manifest import Manifest
from encord_ingest.results import ResultMaps
from encord_ingest.run_folder import RunFolder
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.outcomes import read_outcomes
from encord_ingest.scan.scanner import ScanContext, scan_shard
from encord_ingest.schema import MetadataSchema, parse_schema
from encord_ingest.sources.base import Source
from encord_ingest.sources.sharding import Shard, plan_shards
from encord_ingest.storage import BlobStore
from encord_ingest.sync import MetadataChange, read_changes

SCHEMA = parse_schema(
    {
        "keys": {
            "capture.site": "varchar",
            "capture.count": "number",
            "capture.camera": "varchar",
            "capture.time": "datetime",
            "review.status": {"type": "enum", "values": ["pending", "approved"]},
            "layer": "varchar",
        }
    },
    file="test-schema.yaml",
)


def as_bytes(value: str | bytes | dict[str, Any]) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict):
        return json.dumps(value).encode()
    return value.encode()


def write_tree(root: Path, files: dict[str, Any]) -> None:
    """Write ``key -> content`` (bytes, text, or a dict written as JSON) under ``root``."""
    for key, content in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(as_bytes(content))


def png(width: int = 4, height: int = 3) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def dicom(series_uid: str, instance: int, *, study_uid: str = "1.2.3.4", pad: int = 0) -> bytes:
    """A small, valid DICOM file of ``series_uid`` with InstanceNumber ``instance``.

    ``pad`` adds a private text element of that many bytes before the series tags, so that the
    SeriesInstanceUID sits past the first ranged read.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.PatientID = "anon"
    if pad:
        dataset.add_new(0x00091010, "UT", "x" * pad)
    dataset.StudyInstanceUID = study_uid
    dataset.SeriesInstanceUID = series_uid
    dataset.InstanceNumber = instance
    dataset.Rows, dataset.Columns = 2, 2
    dataset.SamplesPerPixel, dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 1, 8, 8, 7
    dataset.PixelRepresentation = 0
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.PixelData = bytes(4)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@dataclass
class RunResult:
    """One planned run read back from its run folder."""

    run_id: str
    summaries: list[dict[str, Any]]
    outcomes: pd.DataFrame
    manifests: list[Manifest]
    changes: list[MetadataChange]
    frames: list[pd.DataFrame] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for summary in self.summaries:
            for outcome, count in summary["counts"].items():
                total[outcome] = total.get(outcome, 0) + count
        return total

    def outcome(self, key: str) -> dict[str, Any]:
        rows = self.outcomes[self.outcomes["key"] == key]
        assert len(rows) == 1, f"{key}: {len(rows)} rows"
        row = rows.iloc[0].to_dict()
        return {
            str(name): (None if isinstance(value, float) and pd.isna(value) else value)
            for name, value in row.items()
        }

    def outcome_of(self, key: str) -> str:
        return str(self.outcome(key)["outcome"])

    def items(self) -> list[Any]:
        return [item for manifest in self.manifests for item in manifest.items]

    def item(self, title: str) -> Any:
        found = [item for item in self.items() if item.title == title]
        assert len(found) == 1, f"{title}: {len(found)} items in {[i.title for i in self.items()]}"
        return found[0]

    def change(self, url: str) -> MetadataChange:
        found = [change for change in self.changes if change.object_url == url]
        assert len(found) == 1, f"{url}: {len(found)} changes"
        return found[0]


class Harness:
    """Plans a source into a state store with a ledger, the way the DAG does, one run at a time."""

    def __init__(
        self,
        source: Source,
        store: BlobStore,
        *,
        prefixes: tuple[str, ...] = ("raw/",),
        config: PlanningConfig | None = None,
        schema: MetadataSchema = SCHEMA,
    ):
        self.source = source
        self.store = store
        self.prefixes = list(prefixes)
        self.config = config or PlanningConfig()
        self.schema = schema
        self.ledger = Ledger(store, "ledger/test-source")

    def run_store(self, run_id: str) -> BlobStore:
        return self.store.child(f"runs/{run_id}")

    def plan(
        self,
        run_id: str,
        *,
        shards: int = 1,
        full_rescan: bool = False,
        config: PlanningConfig | None = None,
        schema: MetadataSchema | None = None,
        replay_unchanged: bool = True,
        shard_list: list[Shard] | None = None,
    ) -> RunResult:
        """Scan the harness's prefixes in ``shards`` shards (or exactly ``shard_list``)."""
        run_store = self.run_store(run_id)
        summaries = [
            scan_shard(
                ScanContext(
                    source=self.source,
                    shard=shard,
                    config=config or self.config,
                    run=RunFolder(run_store),
                    run_id=run_id,
                    schema=schema or self.schema,
                    ledger=self.ledger,
                    full_rescan=full_rescan,
                    replay_unchanged=replay_unchanged,
                )
            )
            for shard in (
                shard_list if shard_list is not None else plan_shards(self.source, self.prefixes, shards)
            )
        ]
        return self.read(run_id, summaries)

    def _read_uri(self, run_id: str, uri: str) -> bytes:
        marker = f"runs/{run_id}/"
        return self.run_store(run_id).read_bytes(uri.split(marker, 1)[1])

    def read(self, run_id: str, summaries: list[dict[str, Any]]) -> RunResult:
        frames = [read_outcomes(self._read_uri(run_id, u)) for s in summaries for u in s["outcome_uris"]]
        manifests = [
            Manifest.from_bytes(self._read_uri(run_id, u), source=u)
            for s in summaries
            for u in s["manifest_uris"]
        ]
        changes = [
            change
            for s in summaries
            for u in s["metadata_uris"]
            for change in read_changes(self._read_uri(run_id, u), source=u)
        ]
        outcomes = (
            pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["key", "outcome"])
        )
        return RunResult(run_id, summaries, outcomes, manifests, changes, frames)

    def commit(
        self, result: RunResult, *, item_uuids: dict[str, str] | None = None, failed_item_urls: Any = ()
    ) -> None:
        results = ResultMaps(item_uuids, dict.fromkeys(failed_item_urls, "failed"))
        commit_run(self.ledger, result.run_id, result.frames, results=results)

    def commit_registered(self, result: RunResult) -> None:
        """Commit ``result`` as if Encord registered every item it planned (UUID ``uuid-<title>``)."""
        titles = item_urls_by_title(result.frames)
        self.commit(result, item_uuids={url: f"uuid-{title}" for title, url in titles.items()})


def spy_replays(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders the no-change fast path (:mod:`encord_ingest.scan.unchanged`) takes from now on."""
    from encord_ingest.scan import unchanged

    taken: list[str] = []
    replay = unchanged.UnchangedFolders.replay

    def spy(self: unchanged.UnchangedFolders, batch: Any) -> bool:
        done = replay(self, batch)
        if done:
            taken.append(batch.folder)
        return done

    monkeypatch.setattr(unchanged.UnchangedFolders, "replay", spy)
    return taken
