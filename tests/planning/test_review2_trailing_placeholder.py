"""Review2 finding, NOT FIXED (do not land without a decision): a file-name prefix template that
ends with a placeholder (``bucket.prefix: raw/{{ data_interval_start:%Y%m }}``, no ``/`` or text
after it) still matches rules and globs relative to a manual run's prefix override, not to the
rendering the scheduled runs use: an item the scheduled run registered is skipped by an anchored
glob in a manual run of its sub-folder and its ledger row dropped. Such a template's match can run
into the file name (``\\d{1,3}`` or ``[^/]+?`` at the very end), so it is not used as glob root."""

from __future__ import annotations

from pathlib import Path

from encord_ingest.ledger import item_urls_by_title
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.sources.filters import FilterConfig
from encord_ingest.sources.local import LocalSource
from encord_ingest.storage import BlobStore
from tests.planning.helpers import Harness, png, write_tree


def test_a_prefix_run_of_a_template_ending_in_a_placeholder_keeps_the_ledger_rows(
    tmp_path: Path, data_root: Path
) -> None:
    key = "raw/202611a/x.jpg"
    write_tree(data_root, {key: png()})
    config = PlanningConfig(
        filters=FilterConfig(exclude=["/*.jpg"]), prefix_template="raw/{{ data_interval_start:%Y%m }}"
    )
    store = BlobStore.from_uri(str(tmp_path / "state"))
    harness = Harness(LocalSource(data_root), store, config=config, prefixes=("raw/202611",))
    first = harness.plan("r1")
    assert first.outcome_of(key) == "new"
    harness.commit(first, item_uuids={u: f"uuid-{t}" for t, u in item_urls_by_title(first.frames).items()})
    harness.prefixes = ["raw/202611a/"]
    again = harness.plan("manual")
    harness.commit(again)
    assert again.outcome_of(key) == "unchanged"  # fails: skipped 'excluded'
    assert key in set(harness.ledger.read_frame()["key"])
