"""Optional write-through persistence of the emulator's state to a SQLite file.

Every table has a ``uuid`` key, a few plain columns for ad-hoc inspection (``sqlite3 state.sqlite
'select name, url, client_metadata from items'``) and ``data``, the record's full JSON, which is
what a restart loads. ``kv`` holds the metadata schema and the unreadable URLs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol


class Record(Protocol):
    @property
    def uuid(self) -> str: ...

    def model_dump_json(self) -> str: ...


TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "integrations": ("title", "provider"),
    "folders": ("parent", "name"),
    "items": ("folder", "name", "url", "item_type", "client_metadata"),
    "jobs": ("folder", "status"),
    "datasets": ("title",),
    "projects": ("title",),
}


class SqliteStore:
    """Upserts records as they change; :meth:`load` returns everything for a restart."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._conn:
            for table, columns in TABLE_COLUMNS.items():
                plain = ", ".join(f"{c} TEXT" for c in columns)
                self._conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (uuid TEXT PRIMARY KEY, {plain}, data TEXT NOT NULL)"
                )
            self._conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def put(self, table: str, records: Iterable[Record]) -> None:
        columns = TABLE_COLUMNS[table]
        rows = [(r.uuid, *(_column(r, c) for c in columns), r.model_dump_json()) for r in records]
        if not rows:
            return
        marks = ", ".join("?" for _ in range(len(columns) + 2))
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*columns, "data"))
        sql = f"INSERT INTO {table} VALUES ({marks}) ON CONFLICT(uuid) DO UPDATE SET {updates}"
        with self._lock, self._conn:
            self._conn.executemany(sql, rows)

    def remove(self, table: str, uuids: Iterable[str]) -> None:
        if table not in TABLE_COLUMNS:
            raise ValueError(f"unknown table {table!r}")
        with self._lock, self._conn:
            self._conn.executemany(f"DELETE FROM {table} WHERE uuid = ?", [(u,) for u in uuids])

    def put_kv(self, key: str, value: Any) -> None:
        with self._lock, self._conn:
            self._conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value)))

    def load(self) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """``({table: [record JSON, ...]}, {kv key: value})``, tables in insertion order."""
        with self._lock:
            tables = {
                t: [row[0] for row in self._conn.execute(f"SELECT data FROM {t} ORDER BY rowid")]
                for t in TABLE_COLUMNS
            }
            kv = {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM kv")}
        return tables, kv

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _column(record: Record, column: str) -> str | None:
    value = getattr(record, column)
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)
