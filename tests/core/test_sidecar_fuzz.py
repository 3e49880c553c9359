"""Mutated sidecars and tables never raise: every outcome is a parse result or an ItemError."""

from __future__ import annotations

import io
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encord_ingest.errors import ItemError
from encord_ingest.sidecars import ParsedSidecar, ParsedTable, SidecarConventions

CONV = SidecarConventions(max_sidecar_bytes=4096, max_table_bytes=16384)
MUTATIONS_PER_SEED = 500


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"file": ["a.jpg", "b/c.jpg"], "n": [1, 2], "tags": [["x"], []]}), sink)
    return sink.getvalue()


SEEDS: dict[str, bytes] = {
    "d/clip.mp4.json": b'{"site": "lab", "cam": {"iso": [100, 200], "ok": true}, "n": null, "e": "\\u00e9"}',
    "d/_defaults.yaml": b"base: &b {site: lab, iso: 100}\nderived:\n  <<: *b\n  iso: 200\nl: [1, two, 3.5]\n",
    "d/metadata.csv": b'file,weather,n\nx.jpg,sunny,1\n"y, z.jpg","rain\nheavy",2\n',
    "d/metadata.tsv": b"file\tweather\nx.jpg\tsunny\n",
    "d/metadata.jsonl": b'{"file": "a.jpg", "n": 1}\n{"file": "b.jpg", "cam": {"iso": 5}}\n',
    "d/metadata.parquet": _parquet(),
}


def _mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if choice == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif choice == 1:
            buf.insert(pos, rng.choice(b'{}[]:,"\\\n\t-&*!<>%@\xff\xef\x00'))
        elif choice == 2:
            del buf[pos:]
        elif choice == 3:
            buf[pos:pos] = buf[rng.randrange(len(buf) + 1) :][:16]
        else:
            del buf[pos : pos + rng.randint(1, 8)]
    return bytes(buf)


@pytest.mark.parametrize("key", sorted(SEEDS))
def test_mutations_never_raise(key: str) -> None:
    rng = random.Random(f"{key}-2026")
    assert not isinstance(CONV.parse(key, SEEDS[key]), ItemError)
    outcomes: set[str] = set()
    for _ in range(MUTATIONS_PER_SEED):
        result = CONV.parse(key, _mutate(SEEDS[key], rng))
        assert isinstance(result, ParsedSidecar | ParsedTable | ItemError)
        if isinstance(result, ItemError):
            assert result.file == key
            outcomes.add(result.code.value)
        else:
            outcomes.add("parsed")
    assert len(outcomes) >= 2, outcomes  # the mutations did reach both good and bad outcomes
