"""What the register step records per manifest chunk (``results/<name>.register.json``), and the
lookups ``commit_and_report`` joins outcome rows with.

The result files are written by the register operator (``encord_provider``) and read back by
:class:`~.run_folder.RunFolder` for the ledger commit, the metadata sync (item UUIDs of new items)
and the dataset link. For the commit and the report, a run's results (an item UUID or a failure
per object URL) are looked up one outcome batch at a time (:class:`ItemResults`): from a
:class:`ResultIndex` spilled to local disk, so a first run of a million new items never holds
them all, or from plain mappings (:class:`ResultMaps`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field

from encord_ingest.errors import ItemError

if TYPE_CHECKING:
    import pandas as pd

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

    def url_results(self) -> Iterator[tuple[str, str | None, str | None]]:
        """``(url, item UUID, None)`` or ``(url, None, failure)`` per URL (a UUID wins)."""
        for url, result in self.results.items():
            if result.item_uuid:
                yield url, result.item_uuid, None
            elif result.error is not None:
                yield url, None, result.error.message


LOOKUP_COLUMNS = ("item_uuid", "failure")
"""What :meth:`ItemResults.lookup` gives per URL: the Encord item UUID learnt, the failure reason."""


class ItemResults(Protocol):
    """A run's results per object URL: an item UUID learnt at registration, or why it failed."""

    def lookup(self, urls: Iterable[str]) -> pd.DataFrame:
        """The results of those of ``urls`` that have one: a frame indexed by URL (each once)
        with :data:`LOOKUP_COLUMNS` (missing values null)."""
        ...


def _lookup_frame(rows: Sequence[tuple[str, str | None, str | None]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=["url", *LOOKUP_COLUMNS], dtype=object)
    return frame.set_index("url")


class ResultMaps:
    """:class:`ItemResults` from mappings held in memory: object URL -> item UUID, object URL ->
    failure reason (a URL in both failed)."""

    def __init__(
        self, item_uuids: Mapping[str, str] | None = None, failures: Mapping[str, str] | None = None
    ):
        self.item_uuids, self.failures = item_uuids or {}, failures or {}

    def lookup(self, urls: Iterable[str]) -> pd.DataFrame:
        uuids, failures = self.item_uuids, self.failures
        rows = [
            (url, uuids.get(url), failures.get(url))
            for url in dict.fromkeys(urls)
            if url in uuids or url in failures
        ]
        return _lookup_frame(rows)


class ResultIndex:
    """:class:`ItemResults` spilled to a local folder: one Parquet file per result file added
    (URL, item UUID, failure), with its smallest and largest URL in memory. A lookup reads only
    the files whose URL span meets the asked URLs' span (an outcome batch's URLs are close in
    key order, and so are a chunk's), so memory holds one batch's results, not the run's.

    The same URL in several additions: its item UUID is the last one added, its failure the last
    one added (a URL with both failed), as :class:`ResultMaps` built by updating dicts in order."""

    def __init__(self, folder: str):
        self.folder = folder
        self.files: list[tuple[str, str, str]] = []  # (path, smallest URL, largest URL)

    def add(self, rows: Iterable[tuple[str, str | None, str | None]]) -> None:
        """One result file's ``(url, item UUID, failure)`` rows (later additions win)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        urls, uuids, failures = [], [], []
        for url, item_uuid, failure in rows:
            urls.append(url)
            uuids.append(item_uuid)
            failures.append(failure)
        if not urls:
            return
        path = f"{self.folder}/results-{len(self.files):05d}.parquet"
        order = pa.array([len(self.files)] * len(urls), pa.int32())
        text = pa.string()
        schema = pa.schema([("url", text), ("item_uuid", text), ("failure", text), ("order", pa.int32())])
        columns = {"url": urls, "item_uuid": uuids, "failure": failures, "order": order}
        table = pa.table(columns, schema=schema)
        pq.write_table(table, path, compression="none")
        self.files.append((path, min(urls), max(urls)))

    def lookup(self, urls: Iterable[str]) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        wanted = [url for url in dict.fromkeys(urls) if isinstance(url, str)]
        if not wanted or not self.files:
            return _lookup_frame([])
        low, high, values = min(wanted), max(wanted), pa.array(wanted, pa.string())
        tables = []
        for path, first, last in self.files:
            if last < low or first > high:
                continue
            table = pq.read_table(path)
            table = table.filter(pc.is_in(table["url"], value_set=values))
            if table.num_rows:
                tables.append(table)
        if not tables:
            return _lookup_frame([])
        found = pa.concat_tables(tables).to_pandas().sort_values("order", kind="stable")
        latest: pd.DataFrame = found.groupby("url", sort=False)[list(LOOKUP_COLUMNS)].last().astype(object)
        return latest.where(latest.notna(), None)
