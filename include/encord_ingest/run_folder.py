"""One run's folder in the source's state store: its layout, its writers and its readers.

::

    <state_uri>/runs/<run key>/manifests/shard-<i>-<n>.json     items to register (written by the scan)
                               manifests/combined-<n>.json      the shards' last chunks re-packed
                               registration.json                the chunks the register step got
                               metadata/shard-<i>-<n>.jsonl     metadata changes (scan)
                               outcomes/shard-<i>-<n>.parquet   one row per object (scan)
                               summaries/shard-<i>.json         the shard's summary (scan, last)
                               results/shard-<i>-<n>.register.json | .sync.json | .sync.dry-run.json
                                                                what Encord answered (operators)
                               report.md                        the human-readable run report
                               events/plan.json | report.md     an event run's batch: messages,
                                                                rules, key ranges, receipts

The run key is derived from the Airflow ``run_id`` only, so a retried task or a re-run of the
same DAG run writes to the same place. Chunk URIs travel through XCom; a result lives in
``results/`` beside its chunk's folder (:func:`result_uri`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from encord_ingest.manifest import Manifest
from encord_ingest.results import RegisterReport, ResultFileError, ResultIndex, register_url_results
from encord_ingest.scan.outcomes import COMMIT_COLUMNS, write_outcome_frames
from encord_ingest.scan.writers import BlobWriter, ManifestWriter
from encord_ingest.storage import BlobStore
from encord_ingest.sync import read_changes, sync_failures

RUNS_FOLDER = "runs"
MANIFESTS = "manifests"
METADATA = "metadata"
OUTCOMES = "outcomes"
SUMMARIES = "summaries"
RESULTS = "results"
CHUNK_SUFFIXES = {MANIFESTS: ".json", METADATA: ".jsonl", OUTCOMES: ".parquet"}
REGISTER_SUFFIX = ".register.json"
REGISTER_FAILURE_SUFFIX = ".register.failed.txt"
"""Why a register task failed before writing a chunk's result (the cause named in the report)."""
SYNC_SUFFIX = ".sync.json"
DRY_RUN_SYNC_SUFFIX = ".sync.dry-run.json"
OUTCOME_BATCH_ROWS = 10_000
"""Rows per DataFrame that :meth:`RunFolder.outcomes` hands out (the commit's and report's unit)."""
REPORT_NAME = "report.md"
FINAL_OUTCOMES = "final_outcomes.parquet"
"""After the commit: the final outcome of every object (registered, failed with its reason, ...)."""
REGISTRATION_PLAN = "registration.json"
"""The manifest chunks given to the register step (:meth:`RunFolder.combine_manifests`)."""
COMBINED_STEM = "combined"
EVENT_PLAN = "events/plan.json"
EVENT_REPORT = "events/report.md"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def run_key(run_id: str) -> str:
    """A folder name for a run: the run id with anything unsafe in a key replaced by ``_``."""
    key = _UNSAFE.sub("_", run_id).strip("._")
    if not key:
        raise ValueError(f"run id {run_id!r} gives an empty run key")
    return key


def parent_and_name(uri: str) -> tuple[str, str]:
    """``scheme://a/b/c.json`` -> (``scheme://a/b``, ``c.json``)."""
    head, sep, name = uri.rstrip("/").rpartition("/")
    if not sep or not name or head.endswith(":/") or head.endswith(":"):
        raise ValueError(f"{uri!r}: expected the URI of a file inside a folder")
    return head, name


def result_uri(chunk_uri: str, suffix: str) -> str:
    """Where the result of a chunk goes: ``results/`` beside the chunk's folder."""
    folder, name = parent_and_name(chunk_uri)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{parent_and_name(folder)[0]}/{RESULTS}/{stem}{suffix}"


def shard_stem(shard: int) -> str:
    return f"shard-{shard:04d}"


def chunk_uris(summaries: Iterable[Mapping[str, Any]], kind: str) -> list[str]:
    """All ``manifest_uris`` or ``metadata_uris`` of the shard summaries, in shard order."""
    return [uri for summary in summaries for uri in summary.get(f"{kind}_uris", [])]


@dataclass
class RunResults:
    """What the Encord steps recorded for a run (:meth:`RunFolder.run_results`): per object URL
    (an item UUID or a failure, looked up a batch of URLs at a time), and the run's totals."""

    items: ResultIndex
    job_uuids: list[str] = field(default_factory=list)
    missing_chunks: list[str] = field(default_factory=list)
    sync_counts: dict[str, int] = field(default_factory=dict)


@dataclass
class SyncResults:
    """What the metadata sync step did, read back from its result files."""

    failed_urls: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


class RunFolder:
    """The files of one run under ``store`` (a :class:`BlobStore` rooted at the run's folder)."""

    def __init__(self, store: BlobStore):
        self.store = store

    @classmethod
    def of(cls, state: BlobStore, run_id: str) -> RunFolder:
        """The folder of run ``run_id`` in a source's state store."""
        return cls(state.child(f"{RUNS_FOLDER}/{run_key(run_id)}"))

    def uri(self, key: str = "") -> str:
        return self.store.uri(key)

    def key(self, uri: str) -> str:
        """The key in this folder of a URI this folder gave out (a chunk or result URI)."""
        base = self.store.uri().rstrip("/") + "/"
        if not uri.startswith(base):
            raise ValueError(f"{uri!r} is not inside the run folder {base!r}")
        return uri[len(base) :]

    def read(self, uri: str) -> bytes:
        return self.store.read_bytes(self.key(uri))

    # --- the scan's writers ----------------------------------------------------------------------

    def chunk_writer(self, kind: str, shard: int) -> BlobWriter:
        """Numbered chunks of ``kind`` (manifests, metadata, outcomes) of one shard."""
        return BlobWriter(self.store, kind, shard_stem(shard), CHUNK_SUFFIXES[kind])

    def write_summary(self, shard: int, data: bytes) -> str:
        return self.store.write_bytes(f"{SUMMARIES}/{shard_stem(shard)}.json", data)

    def summary_uri(self, shard: int) -> str:
        return self.store.uri(f"{SUMMARIES}/{shard_stem(shard)}.json")

    def clear_results(self, shard: int) -> None:
        """Delete register/sync results of an earlier attempt of this run (a cleared or re-run DAG
        run reuses the run folder and the chunk names): they describe other chunk contents. The
        registration plan goes too: :meth:`combine_manifests` writes it again from the new chunks."""
        for key in list(self.store.list(f"{RESULTS}/{shard_stem(shard)}-")):
            self.store.delete(key)
        self.store.delete(REGISTRATION_PLAN)

    # --- between the scan and the register step -------------------------------------------------

    def combine_manifests(
        self, summaries: Sequence[Mapping[str, Any]], *, max_items: int, max_urls: int, max_bytes: int
    ) -> list[str]:
        """The manifest chunks to register, one upload job each, saved as ``registration.json``.

        Every shard's chunks but its last are full: they stay as they are. The last chunks of two or
        more shards are re-packed together, in shard order, into ``manifests/combined-<n>.json``
        under the same limits, so a run makes ``ceil(new items / max_items)`` upload jobs whatever
        the number of shards. The same chunks give the same files and URIs: a retried step rewrites
        them, and a retried register task resumes the job it saved for a chunk URI.
        """
        per_shard = [list(summary.get("manifest_uris", [])) for summary in summaries]
        tails = [uris[-1] for uris in per_shard if uris]
        writer = ManifestWriter(
            BlobWriter(self.store, MANIFESTS, COMBINED_STEM, CHUNK_SUFFIXES[MANIFESTS]),
            max_items=max_items,
            max_urls=max_urls,
            max_bytes=max_bytes,
        )
        for key in list(self.store.list(f"{RESULTS}/{COMBINED_STEM}-")):
            self.store.delete(key)  # results of an earlier attempt's combined chunks
        if len(tails) < 2:
            uris = [uri for chunks in per_shard for uri in chunks]
        else:
            for tail in tails:
                for item in Manifest.from_bytes(self.read(tail), source=tail).items:
                    error = writer.add(item)
                    if error is not None:  # the scan checked every item against the same limits
                        raise ValueError(f"{tail}: {error.message}")
            writer.flush()
            uris = [uri for chunks in per_shard for uri in chunks[:-1]] + writer.writer.uris
        writer.writer.remove_leftovers()
        self.store.write_bytes(REGISTRATION_PLAN, json.dumps({"manifest_uris": uris}, indent=1).encode())
        return uris

    def registered_chunks(self, summaries: Iterable[Mapping[str, Any]]) -> list[str]:
        """The manifest chunks the register step was given (``registration.json``); without that
        file (the step did not run), the shards' own chunks."""
        try:
            plan = json.loads(self.store.read_bytes(REGISTRATION_PLAN))
        except FileNotFoundError:
            return chunk_uris(summaries, "manifest")
        return [str(uri) for uri in plan["manifest_uris"]]

    # --- readers ---------------------------------------------------------------------------------

    def outcomes(
        self, summaries: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = COMMIT_COLUMNS
    ) -> Iterator[Any]:
        """The outcome tables of the given shard summaries as DataFrames of at most
        :data:`OUTCOME_BATCH_ROWS` rows, in order (a chunk is decoded once, then handed out a
        batch at a time: Python strings of one batch, not of a whole chunk); by default only the
        columns :func:`~.ledger.commit_run` needs."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        for summary in summaries:
            for uri in summary.get("outcome_uris", []):
                table = pq.read_table(
                    pa.BufferReader(self.read(uri)), columns=list(columns) if columns else None
                )
                for start in range(0, max(table.num_rows, 1), OUTCOME_BATCH_ROWS):
                    yield table.slice(start, OUTCOME_BATCH_ROWS).to_pandas()
                del table

    def register_reports(self) -> Iterator[RegisterReport]:
        """Every register result of the run (``results/*.register.json``), read one at a time."""
        keys = [key for key in self.store.list(f"{RESULTS}/") if key.endswith(REGISTER_SUFFIX)]
        for key in keys:
            yield RegisterReport.from_bytes(self.store.read_bytes(key), source=key)

    def run_results(
        self, manifest_uris: Sequence[str], change_uris: Sequence[str], *, spill: str
    ) -> RunResults:
        """What the Encord steps recorded for the run, read one result file at a time into a
        :class:`~.results.ResultIndex` in the local folder ``spill`` (a registration failure is the
        reason shown over a sync failure of the same URL). The items of a manifest chunk without a
        register result (its task crashed), or with a malformed one, are failed, so they stay out of
        the ledger and are planned again next run; so are the changes of a metadata chunk without a
        readable sync result. A malformed result's reason names the file, the field and the form."""
        results = RunResults(ResultIndex(spill))
        for counts, failed in self._sync_chunks(change_uris):
            results.items.add((url, None, reason) for url, reason in failed.items())
            for name, value in (counts or {}).items():
                results.sync_counts[name] = results.sync_counts.get(name, 0) + int(value)
        for chunk, report, malformed in self._register_chunks(manifest_uris):
            if report is None:
                results.missing_chunks.append(chunk)
                results.items.add(self._unregistered(chunk, malformed))
                continue
            job_uuid, rows = report
            results.job_uuids.append(job_uuid)
            results.items.add(rows)
        return results

    def _register_chunks(
        self, manifest_uris: Sequence[str]
    ) -> Iterator[tuple[str, tuple[str, list[tuple[str, str | None, str | None]]] | None, str]]:
        """Each chunk with its register result's job UUID and URL results (``None`` without a
        result, or with a malformed one: then why, else ``""``)."""
        for chunk in manifest_uris:
            uri = result_uri(chunk, REGISTER_SUFFIX)
            try:
                yield chunk, register_url_results(self.read(uri), source=uri), ""
            except FileNotFoundError:
                yield chunk, None, ""
            except ResultFileError as error:
                yield chunk, None, f": its register result is malformed: {error}"

    def _unregistered(self, chunk: str, malformed: str = "") -> Iterator[tuple[str, None, str]]:
        """The failure of every item of a chunk without a readable register result."""
        cause = malformed or self._register_failure(chunk)
        reason = f"registration did not complete for chunk {chunk}{cause}"
        for item in Manifest.from_bytes(self.read(chunk), source=chunk).items:
            yield item.key_url, None, reason

    def _register_failure(self, chunk: str) -> str:
        """``": the register task failed: <cause>"`` when the task recorded one, else ``""``."""
        try:
            cause = self.read(result_uri(chunk, REGISTER_FAILURE_SUFFIX)).decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
        return f": the register task failed: {cause.strip()}"

    def _sync_chunks(
        self, change_uris: Sequence[str]
    ) -> Iterator[tuple[dict[str, int] | None, dict[str, str]]]:
        """Each metadata chunk with its sync counts (``None`` without a result: then every change
        of the chunk failed) and its failed URLs with their reasons."""
        for chunk in change_uris:
            uri = result_uri(chunk, SYNC_SUFFIX)
            try:
                yield sync_failures(self.read(uri), source=uri)
            except (FileNotFoundError, ResultFileError) as error:
                reason = f"metadata sync did not complete for chunk {chunk}"
                if isinstance(error, ResultFileError):
                    reason += f": its sync result is malformed: {error}"
                changes = read_changes(self.read(chunk), source=chunk)
                yield None, {change.object_url: reason for change in changes}

    def sync_results(self, change_uris: Sequence[str], *, dry_run: bool) -> SyncResults:
        """Failed URLs and summed counts of the sync results; a chunk without a result failed whole."""
        results = SyncResults()
        if dry_run:
            return results
        for counts, failed in self._sync_chunks(change_uris):
            for name, value in (counts or {}).items():
                results.counts[name] = results.counts.get(name, 0) + int(value)
            results.failed_urls.update(failed)
        return results

    def write_event_plan(self, plan_json: bytes, markdown: str) -> str:
        """Write an event run's plan (JSON) and its events report; returns the plan's URI."""
        self.store.write_bytes(EVENT_REPORT, markdown.encode("utf-8"))
        return self.store.write_bytes(EVENT_PLAN, plan_json)

    def read_event_plan(self) -> bytes:
        return self.store.read_bytes(EVENT_PLAN)

    def write_final_outcomes(self, frames: Iterable[Any]) -> str | None:
        """Write the final outcome table, DataFrames of :data:`OUTCOME_COLUMNS` one chunk at a time,
        as one Parquet file (through a local temporary file, one row group per chunk); returns its
        URI, or ``None`` (and writes nothing) when there are no rows."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="final-outcomes-") as folder:
            path = f"{folder}/{FINAL_OUTCOMES}"
            if not write_outcome_frames(frames, path):
                return None
            return self.store.write_file(FINAL_OUTCOMES, path)

    def write_report(self, markdown: str) -> str:
        """Write ``report.md``; returns its URI."""
        return self.store.write_bytes(REPORT_NAME, markdown.encode("utf-8"))
