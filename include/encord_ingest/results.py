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

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, NotRequired, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

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


class ResultFileError(ValueError):
    """A result file that is not in the form its step writes (names the file, the field and the form)."""


T = TypeVar("T")
_NAME = re.compile(r"^[A-Za-z_]\w*$")


def _field(location: Sequence[int | str]) -> str:
    """``items['s3://b/a.jpg'].errors[0].code`` for a validation error's location."""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


def parse_result_file(validate: Callable[[bytes], T], data: bytes, *, source: str, form: str) -> T:
    """``validate(data)`` (JSON); :class:`ResultFileError` naming ``source``, the first bad field
    and the expected ``form`` when it does not fit."""
    try:
        return validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        got = f" (got {str(first['input'])[:80]!r})" if first["type"] != "json_invalid" else ""
        raise ResultFileError(
            f"{source}: {_field(first['loc'])}: {first['msg']}{got}; expected {form}"
        ) from None


class ResultFile(BaseModel):
    """A JSON result file of a run (register, sync, metadata operation): written indented with
    ``None`` fields left out, read back whole."""

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=1, exclude_none=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "result file") -> Self:
        """Read back a file written by :meth:`to_bytes` (:class:`ResultFileError` if malformed)."""
        form = f"a {cls.__name__} JSON document"
        return parse_result_file(cls.model_validate_json, data, source=source, form=form)


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
        return _url_rows((url, result.item_uuid, result.error) for url, result in self.results.items())


def _url_rows(
    results: Iterable[tuple[str, str | None, ItemError | None]],
) -> Iterator[tuple[str, str | None, str | None]]:
    for url, item_uuid, error in results:
        if item_uuid:
            yield url, item_uuid, None
        elif error is not None:
            yield url, None, error.message


class _UrlRow(TypedDict):
    item_uuid: NotRequired[str | None]
    error: NotRequired[ItemError | None]


class _RegisterRows(TypedDict):
    job_uuid: str
    results: dict[str, _UrlRow]


_REGISTER_ROWS = TypeAdapter(_RegisterRows)
REGISTER_FORM = (
    'a register result: {"job_uuid": "<uuid>", "results": {"<object URL>": {"item_uuid": "<uuid>"} '
    'or {"error": {"code": "...", "file": "...", ...}}}}'
)


def register_url_results(data: bytes, *, source: str) -> tuple[str, list[tuple[str, str | None, str | None]]]:
    """The job UUID and :meth:`RegisterReport.url_results` of a register result file, without
    building a model per URL (the file's shape is checked in one pass; only errors become models)."""
    rows = parse_result_file(_REGISTER_ROWS.validate_json, data, source=source, form=REGISTER_FORM)
    results = rows["results"].items()
    return rows["job_uuid"], list(_url_rows((u, r.get("item_uuid"), r.get("error")) for u, r in results))


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
