"""The ledger: atomic versions and pointer, crash safety, range reads, diff and merge rules."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from encord_ingest.ledger import (
    POINTER_NAME,
    KeyRange,
    Ledger,
    LedgerError,
    LedgerRow,
    LedgerSnapshot,
    ObjectState,
    Outcome,
    commit_run,
    diff_item,
    frame_to_parquet,
    merge_outcomes,
    metadata_outcome,
)
from encord_ingest.results import ResultMaps
from encord_ingest.storage import BlobStore


def row(key: str, **fields: Any) -> dict[str, Any]:
    url = f"s3://b/{key}"
    base = {
        "url": url,
        "key": key,
        "item_url": url,
        "kind": "image",
        "version": "v1",
        "size": 10,
        "sidecars": "{}",
        "input_fingerprint": "in-1",
        "metadata_hash": "md-1",
        "item_uuid": None,
        "last_run_id": "r0",
        "last_outcome": "new",
    }
    base.update(fields)
    return base


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


class CrashingStore:
    """A real local BlobStore that dies on the Nth write (a worker killed mid-commit)."""

    def __init__(self, store: BlobStore, crash_on_write: int):
        self.store = store
        self.writes = 0
        self.crash_on_write = crash_on_write

    def read_bytes(self, key: str) -> bytes:
        return self.store.read_bytes(key)

    def exists(self, key: str) -> bool:
        return self.store.exists(key)

    def write_bytes(self, key: str, data: bytes) -> str:
        self.writes += 1
        if self.writes == self.crash_on_write:
            raise SystemExit(f"worker killed before writing {key}")
        return self.store.write_bytes(key, data)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore.from_uri(str(tmp_path / "state"))


def test_empty_ledger_reads_as_no_rows(store: BlobStore) -> None:
    ledger = Ledger(store, "ledger/src")
    assert ledger.pointer() is None
    assert list(ledger.read_frame().columns)[:3] == ["url", "key", "item_url"]
    assert len(ledger.snapshot()) == 0


def test_write_then_read_round_trips_and_points_at_the_new_version(store: BlobStore) -> None:
    ledger = Ledger(store, "ledger/src")
    first = ledger.write(
        frame(row("b.jpg"), row("a.jpg", item_uuid="u-a")), "scheduled__2026-11-20T00:00:00+00:00"
    )
    assert first.rows == 2
    assert first.version_key.startswith("ledger/src/versions/")
    assert "scheduled__2026-11-20T00_00_00_00_00" in first.version_key
    back = ledger.read_frame()
    assert list(back["key"]) == ["a.jpg", "b.jpg"]
    snapshot = ledger.snapshot()
    assert snapshot.get("s3://b/a.jpg") == LedgerRow(**row("a.jpg", item_uuid="u-a"))
    assert snapshot.get("s3://b/b.jpg").item_uuid is None  # type: ignore[union-attr]

    second = ledger.write(frame(row("c.jpg")), "r2")
    assert second.previous_version_key == first.version_key
    assert list(ledger.read_frame()["key"]) == ["c.jpg"]
    assert json.loads(store.read_bytes(f"ledger/src/{POINTER_NAME}"))["version_key"] == second.version_key


@pytest.mark.parametrize("crash_on_write", [1, 2])
def test_a_crash_during_commit_leaves_the_previous_ledger(store: BlobStore, crash_on_write: int) -> None:
    Ledger(store, "ledger/src").write(frame(row("a.jpg")), "r1")
    crashing = Ledger(CrashingStore(store, crash_on_write), "ledger/src")
    with pytest.raises(SystemExit):
        crashing.write(frame(row("a.jpg", version="v2"), row("b.jpg")), "r2")
    versions = list(store.list("ledger/src/versions/"))
    assert len(versions) == 1 + (crash_on_write - 1)  # r1, plus the orphan when the pointer write died
    reread = Ledger(store, "ledger/src")
    assert reread.pointer().run_id == "r1"  # type: ignore[union-attr]
    assert reread.read_frame()[["key", "version"]].to_dict("records") == [{"key": "a.jpg", "version": "v1"}]
    retried = reread.write(frame(row("a.jpg", version="v2"), row("b.jpg")), "r2")
    assert retried.rows == 2
    assert list(reread.read_frame()["version"]) == ["v2", "v1"]


def test_a_version_that_does_not_match_its_pointer_is_refused(store: BlobStore) -> None:
    ledger = Ledger(store, "ledger/src")
    pointer = ledger.write(frame(row("a.jpg")), "r1")
    store.write_bytes(pointer.version_key, b"PAR1 torn")
    with pytest.raises(LedgerError, match=r"has sha256 \w+, the pointer expects"):
        ledger.read_frame()


def test_range_reads_return_only_the_shard_rows(store: BlobStore) -> None:
    ledger = Ledger(store, "l")
    keys = ["a/1.jpg", "a/2.jpg", "b/1.jpg", "b/2.jpg", "b/3.jpg", "c/1.jpg"]
    ledger.write(frame(*[row(k) for k in keys]), "r1")
    ranges = [KeyRange(prefix="a/", start_at="a/2"), KeyRange(prefix="b/", end_before="b/3")]
    assert list(ledger.read_frame(ranges)["key"]) == ["a/2.jpg", "b/1.jpg", "b/2.jpg"]
    assert sorted(ledger.snapshot([KeyRange(prefix="c/")]).rows) == ["s3://b/c/1.jpg"]
    assert len(ledger.read_frame([])) == 0


def test_range_reads_select_exactly_the_keys_in_range(store: BlobStore) -> None:
    """Ranges are applied over the key column (Arrow's byte order) and must select what
    in_range selects, key by key, for every combination of bounds, also past the BMP."""
    from itertools import product

    from encord_ingest.ledger import in_range

    keys = sorted(
        ["a", "a/1.jpg", "a/2.jpg", "a0", "b/1.jpg", "b/2.jpg", "b/3.jpg", "z\uff61.jpg", "z\U0001f600.jpg"]
    )
    ledger = Ledger(store, "l")
    ledger.write(frame(*[row(k) for k in keys]), "r1")
    marks = [None, "", "a", "a/", "a/2", "b/3", "z\uff61", "z\U0001f600.jpg"]
    for prefix, start_at, end_before in product(["", "a", "a/", "b/", "z"], marks, marks):
        ranges = [KeyRange(prefix, start_at, end_before), KeyRange(prefix="b/", end_before="b/2")]
        for chosen in (ranges[:1], ranges):
            expected = [k for k in keys if any(in_range(k, r) for r in chosen)]
            assert list(ledger.read_frame(chosen)["key"]) == expected, chosen


def snapshot(*rows: dict[str, Any]) -> LedgerSnapshot:
    return LedgerSnapshot(LedgerRow(**r) for r in rows)


def state(key: str, version: str = "v1", size: int = 10) -> ObjectState:
    return ObjectState(f"s3://b/{key}", version, size)


def test_diff_outcomes() -> None:
    ledger = snapshot(
        row("a.jpg"), row("g/1.jpg", item_url="s3://b/g/1.jpg"), row("g/2.jpg", item_url="s3://b/g/1.jpg")
    )
    assert diff_item([state("new.jpg")], "s3://b/new.jpg", "in-1", ledger) == (Outcome.NEW, None)
    outcome, known = diff_item([state("a.jpg")], "s3://b/a.jpg", "in-1", ledger)
    assert (outcome, known.key) == (Outcome.UNCHANGED, "a.jpg")  # type: ignore[union-attr]
    assert diff_item([state("a.jpg", "v2")], "s3://b/a.jpg", "in-1", ledger)[0] is Outcome.DATA_CHANGED
    assert diff_item([state("a.jpg", size=11)], "s3://b/a.jpg", "in-1", ledger)[0] is Outcome.DATA_CHANGED
    pending, known = diff_item([state("a.jpg")], "s3://b/a.jpg", "in-2", ledger)
    assert pending is None
    assert metadata_outcome(known, "md-1") is Outcome.UNCHANGED  # type: ignore[arg-type]
    assert metadata_outcome(known, "md-2") is Outcome.METADATA_CHANGED  # type: ignore[arg-type]
    group = [state("g/1.jpg"), state("g/2.jpg")]
    assert diff_item(group, "s3://b/g/1.jpg", "in-1", ledger)[0] is Outcome.UNCHANGED
    assert diff_item([*group, state("g/3.jpg")], "s3://b/g/1.jpg", "in-1", ledger)[0] is Outcome.DATA_CHANGED
    assert diff_item(group[:1], "s3://b/g/1.jpg", "in-1", ledger)[0] is Outcome.DATA_CHANGED
    assert diff_item([state("a.jpg")], "s3://b/a.jpg", "in-1", ledger, full_rescan=True) == (
        Outcome.NEW,
        None,
    )


def outcome_row(key: str, outcome: Outcome, **fields: Any) -> dict[str, Any]:
    base = row(key, **fields)
    base.pop("last_run_id")
    base.pop("last_outcome")
    base["outcome"] = outcome.value
    return base


def test_merge_rules() -> None:
    previous = frame(
        row("keep-other-day.jpg"),
        row("changed.jpg", item_uuid="u-c"),
        row("failed.jpg", metadata_hash="old"),
        row("gone.jpg"),
        row("now-skipped.jpg"),
        row("sync-failed.jpg", metadata_hash="old"),
    )
    outcomes = frame(
        outcome_row("new.jpg", Outcome.NEW, metadata_hash="md-n"),
        outcome_row("new-failed.jpg", Outcome.NEW),
        outcome_row("changed.jpg", Outcome.METADATA_CHANGED, metadata_hash="md-2", item_uuid="u-c"),
        outcome_row("failed.jpg", Outcome.FAILED, metadata_hash=None),
        outcome_row("gone.jpg", Outcome.GONE),
        outcome_row("now-skipped.jpg", Outcome.SKIPPED),
        outcome_row("sync-failed.jpg", Outcome.METADATA_CHANGED, metadata_hash="new"),
        outcome_row("x.jpg.json", Outcome.SIDECAR, item_url=None),
    )
    merged = merge_outcomes(
        previous,
        outcomes,
        "r9",
        item_uuids={"s3://b/new.jpg": "u-n"},
        failed_item_urls={"s3://b/new-failed.jpg", "s3://b/sync-failed.jpg"},
    )
    by_key = {r["key"]: r for r in merged.to_dict("records")}
    assert sorted(by_key) == ["changed.jpg", "failed.jpg", "keep-other-day.jpg", "new.jpg", "sync-failed.jpg"]
    assert (by_key["new.jpg"]["item_uuid"], by_key["new.jpg"]["last_run_id"]) == ("u-n", "r9")
    assert (by_key["changed.jpg"]["metadata_hash"], by_key["changed.jpg"]["item_uuid"]) == ("md-2", "u-c")
    assert by_key["changed.jpg"]["last_outcome"] == "metadata_changed"
    assert (by_key["failed.jpg"]["metadata_hash"], by_key["failed.jpg"]["last_run_id"]) == ("old", "r0")
    assert by_key["sync-failed.jpg"]["metadata_hash"] == "old"
    assert by_key["keep-other-day.jpg"]["last_run_id"] == "r0"


def test_any_member_url_names_a_group_for_uuids_and_failures() -> None:
    group = "s3://b/g/1.jpg"
    outcomes = frame(
        outcome_row("g/1.jpg", Outcome.NEW, item_url=group),
        outcome_row("g/2.jpg", Outcome.NEW, item_url=group),
        outcome_row("h/1.jpg", Outcome.NEW, item_url="s3://b/h/1.jpg"),
        outcome_row("h/2.jpg", Outcome.NEW, item_url="s3://b/h/1.jpg"),
    )
    merged = merge_outcomes(
        frame(row("other.jpg")).iloc[:0],
        outcomes,
        "r1",
        item_uuids={"s3://b/g/2.jpg": "u-g"},
        failed_item_urls={"s3://b/h/2.jpg"},
    )
    assert merged[["key", "item_uuid"]].to_dict("records") == [
        {"key": "g/1.jpg", "item_uuid": "u-g"},
        {"key": "g/2.jpg", "item_uuid": "u-g"},
    ]


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_damaged_version_falls_back_to_the_previous_one_with_a_warning(
    store: BlobStore, damage: str
) -> None:
    ledger = Ledger(store, "ledger/src")
    first = ledger.write(frame(row("a.jpg")), "r1")
    second = ledger.write(frame(row("a.jpg"), row("b.jpg")), "r2")
    if damage == "truncated":
        store.write_bytes(second.version_key, store.read_bytes(second.version_key)[:100])
    else:
        store.delete(second.version_key)
    reread = Ledger(store, "ledger/src")
    assert list(reread.read_frame()["key"]) == ["a.jpg"]
    warning = reread.check()
    assert warning is not None
    assert warning.startswith(
        f"LEDGER RECOVERED: ledger/src/{POINTER_NAME} names version {second.version_key}"
    )
    assert first.version_key in warning
    assert "'r2'" in warning
    assert "encord_reconcile__" in warning
    third = reread.write(frame(row("a.jpg"), row("c.jpg")), "r3")
    assert (third.previous_version_key, third.previous_sha256) == (first.version_key, first.sha256)
    fresh = Ledger(store, "ledger/src")
    assert list(fresh.read_frame()["key"]) == ["a.jpg", "c.jpg"]
    assert fresh.check() is None


def test_a_damaged_first_version_fails_saying_how_to_recover(store: BlobStore) -> None:
    ledger = Ledger(store, "ledger/src")
    pointer = ledger.write(frame(row("a.jpg")), "r1")
    store.delete(pointer.version_key)
    with pytest.raises(LedgerError) as raised:
        Ledger(store, "ledger/src").read_frame()
    message = str(raised.value)
    assert f"names version {pointer.version_key}, which is missing" in message
    assert "no previous version to fall back to" in message
    assert "encord_reconcile__<source>" in message


def test_a_damaged_previous_version_is_not_used_either(store: BlobStore) -> None:
    ledger = Ledger(store, "ledger/src")
    first = ledger.write(frame(row("a.jpg")), "r1")
    second = ledger.write(frame(row("b.jpg")), "r2")
    store.write_bytes(first.version_key, b"PAR1 torn")
    store.delete(second.version_key)
    with pytest.raises(LedgerError, match=rf"its previous version {first.version_key} has sha256 \w+"):
        Ledger(store, "ledger/src").read_frame()


def test_an_unreadable_pointer_fails_saying_how_to_recover(store: BlobStore) -> None:
    ledger = Ledger(store, "ledger/src")
    ledger.write(frame(row("a.jpg")), "r1")
    store.write_bytes(f"ledger/src/{POINTER_NAME}", store.read_bytes(f"ledger/src/{POINTER_NAME}")[:40])
    with pytest.raises(LedgerError, match=rf"ledger/src/{POINTER_NAME} cannot be read .*encord_reconcile__"):
        Ledger(store, "ledger/src").read_frame()


def test_a_broken_part_breaks_its_version_and_reads_fall_back_to_the_previous_parts(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery per part: any part of a version missing or torn makes the whole version unusable;
    reads (a shard's range, a commit) use the previous version's parts, listed in the pointer."""
    monkeypatch.setattr("encord_ingest.ledger.PART_ROWS", 2)
    ledger = Ledger(store, "ledger/src")
    first = ledger.write(frame(*[row(f"{k}.jpg") for k in "abcde"]), "r1")
    second = ledger.write(frame(*[row(f"{k}.jpg", version="v2") for k in "abcdef"]), "r2")
    assert (len(first.parts), len(second.parts)) == (3, 3)
    assert second.previous_parts == first.parts
    store.delete(second.parts[2].key)  # e.jpg, f.jpg
    reader = Ledger(store, "ledger/src")
    back = reader.read_frame([KeyRange(prefix="e")])  # a shard whose range meets the broken part
    assert back[["key", "version"]].to_dict("records") == [{"key": "e.jpg", "version": "v1"}]
    assert reader.warning is not None
    assert reader.warning.startswith(
        f"LEDGER RECOVERED: ledger/src/{POINTER_NAME} names version {second.version_key}, "
        f"whose part {second.parts[2].key} is missing. Read the previous version {first.version_key}"
    )
    assert list(reader.read_frame()["version"]) == ["v1"] * 5  # pinned: every later read too
    whole = Ledger(store, "ledger/src")
    assert whole.check() == reader.warning  # a check finds it without reading a range first
    third = commit_run(whole, "r3", [frame(outcome_row("g.jpg", Outcome.NEW))])
    assert (third.previous_version_key, third.previous_parts) == (first.version_key, first.parts)
    assert list(Ledger(store, "ledger/src").read_frame()["key"]) == [f"{k}.jpg" for k in "abcdeg"]
    store.write_bytes(first.parts[1].key, store.read_bytes(first.parts[1].key)[:50])
    store.delete(third.parts[0].key)
    with pytest.raises(LedgerError) as raised:
        Ledger(store, "ledger/src").check()
    previous_broken = f"its previous version {first.version_key}, whose part {first.parts[1].key} has sha256"
    assert f"which is missing; {previous_broken}" in str(raised.value)


def test_a_format_1_pointer_is_read_and_becomes_the_previous_version(store: BlobStore) -> None:
    """A ledger written before versions had parts: one file, a pointer without ``parts``."""
    data = frame_to_parquet(frame(row("b.jpg"), row("a.jpg")))
    store.write_bytes("ledger/src/versions/old.parquet", data)
    old_pointer = {
        "format": 1,
        "version_key": "ledger/src/versions/old.parquet",
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": 2,
        "run_id": "r1",
        "written_at": "2026-11-20T00:00:00Z",
        "previous_version_key": None,
    }
    store.write_bytes(f"ledger/src/{POINTER_NAME}", json.dumps(old_pointer).encode())
    ledger = Ledger(store, "ledger/src")
    assert list(ledger.read_frame([KeyRange(prefix="b")])["key"]) == ["b.jpg"]
    new = commit_run(ledger, "r2", [frame(outcome_row("c.jpg", Outcome.NEW))])
    assert new.format == 2
    assert new.rows == 3
    assert [(p.key, p.sha256) for p in new.previous_parts] == [
        (old_pointer["version_key"], old_pointer["sha256"])
    ]
    store.write_bytes(new.version_key, b"PAR1 torn")
    fallback = Ledger(store, "ledger/src")
    assert list(fallback.read_frame()["key"]) == ["a.jpg", "b.jpg"]
    assert fallback.warning is not None
    assert "Read the previous version ledger/src/versions/old.parquet" in fallback.warning


def test_a_range_by_range_commit_gives_the_ledger_of_a_whole_merge(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """commit_run with parts of 3 rows (so every rule meets range and part bounds) equals one
    merge_outcomes over everything, as the commit did before it streamed."""
    previous = frame(
        row("", url="https://b/reconciled.jpg", item_url="https://b/reconciled.jpg", version=""),
        row("", url="https://b/untouched.jpg", item_url="https://b/untouched.jpg", version=""),
        *[row(f"a/{i}.jpg", item_uuid=f"u-a{i}") for i in range(7)],
        row("g/1.jpg", item_url="s3://b/g/1.jpg"),
        row("g/2.jpg", item_url="s3://b/g/1.jpg"),
        *[row(f"z/{i}.jpg") for i in range(5)],
    )
    outcome_frames = [  # two shards' chunks, not in key order, one chunk partly out of order
        frame(
            outcome_row("m/new-2.jpg", Outcome.NEW, metadata_hash="md-n"),
            outcome_row("m/new-1.jpg", Outcome.NEW, metadata_hash="md-n"),
            outcome_row("m/limit.jpg", Outcome.SKIPPED, code="over_limit"),
            outcome_row("reconciled.jpg", Outcome.DATA_CHANGED, url="https://b/reconciled.jpg"),
        ),
        frame(
            outcome_row("a/1.jpg", Outcome.METADATA_CHANGED, metadata_hash="md-2", item_uuid="u-a1"),
            outcome_row("a/2.jpg", Outcome.GONE),
            outcome_row("a/3.jpg", Outcome.FAILED, metadata_hash=None),
            outcome_row("a/4.jpg", Outcome.SKIPPED, code="excluded"),
            outcome_row("a/5.jpg.json", Outcome.SIDECAR, item_url=None),
            outcome_row("g/1.jpg", Outcome.DATA_CHANGED, item_url="s3://b/g/1.jpg"),
            outcome_row("g/2.jpg", Outcome.DATA_CHANGED, item_url="s3://b/g/1.jpg"),
            outcome_row("g/3.jpg", Outcome.DATA_CHANGED, item_url="s3://b/g/1.jpg"),
            outcome_row("h/1.jpg", Outcome.NEW, item_url="s3://b/h/1.jpg"),
            outcome_row("h/2.jpg", Outcome.NEW, item_url="s3://b/h/1.jpg"),
            outcome_row("a/6.jpg", Outcome.UNCHANGED, item_uuid="u-a6"),
        ),
    ]
    uuids = {"s3://b/m/new-1.jpg": "u-n1", "s3://b/g/3.jpg": "u-g", "s3://b/h/2.jpg": "u-h"}
    failed = {"s3://b/m/new-2.jpg", "s3://b/g/2.jpg"}
    whole = Ledger(store, "whole")
    whole.write(previous, "r0")
    expected = merge_outcomes(
        whole.read_frame(),
        pd.concat(outcome_frames, ignore_index=True),
        "r1",
        item_uuids=uuids,
        failed_item_urls=failed,
    )
    monkeypatch.setattr("encord_ingest.ledger.PART_ROWS", 3)
    ranged = Ledger(store, "ranged")
    ranged.write(previous, "r0")
    assert len(ranged.pointer().parts) == 6  # type: ignore[union-attr]  # 16 rows, 3 a part
    results = ResultMaps(uuids, dict.fromkeys(failed, "failed"))
    pointer = commit_run(ranged, "r1", iter(outcome_frames), results=results)
    assert len(pointer.parts) > 3
    assert all(part.rows <= 3 for part in pointer.parts)
    got = ranged.read_frame()
    assert list(got["key"]) == sorted(got["key"])  # parts in key order, each sorted
    columns = list(got.columns)
    want = expected.sort_values(["key", "url"], kind="stable").reset_index(drop=True)[columns]
    assert got.sort_values(["key", "url"], kind="stable").reset_index(drop=True).equals(want)
    assert "https://b/reconciled.jpg" in set(got.loc[got["key"] == "reconciled.jpg", "url"])
    assert set(got.loc[got["key"] == "", "url"]) == {"https://b/untouched.jpg"}
    assert ranged.read_frame([KeyRange(prefix="g/")])["item_uuid"].isna().all()  # g failed as a whole


def test_a_commit_of_nothing_onto_nothing_writes_an_empty_version(store: BlobStore) -> None:
    ledger = Ledger(store, "empty")
    pointer = commit_run(ledger, "r1", [])
    assert (pointer.rows, len(pointer.parts), pointer.parts[0].first) == (0, 1, None)
    assert len(ledger.read_frame()) == 0
