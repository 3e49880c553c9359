"""finish_run reads the run's outcomes chunk by chunk: the same final table, counts, report rows
and error-budget counts as one whole outcome table gave."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from encord_ingest.config import SourceConfig
from encord_ingest.pipeline import RunOptions, final_outcomes, finish_run
from encord_ingest.run_folder import FINAL_OUTCOMES, RunFolder
from encord_ingest.scan.config import PlanningConfig
from encord_ingest.scan.outcomes import OUTCOME_COLUMNS
from tests.planning.helpers import Harness, png

Local = Callable[..., Harness]


def tree() -> dict[str, object]:
    files: dict[str, object] = {"raw/a/blob.bin": b"x", "raw/b/.DS_Store": b"x"}
    for folder in ("a", "b", "c"):
        for image in range(4):
            files[f"raw/{folder}/{image}.jpg"] = png()
        files[f"raw/{folder}/bad.jpg"] = png()
        files[f"raw/{folder}/bad.jpg.json"] = {"capture.count": "many"}
        files[f"raw/{folder}/metadata.csv"] = "file,layer\n0.jpg,table\nmissing.jpg,x\n"
    return files


def report_rows(report: str, section: str) -> list[str]:
    body = report.split(f"## {section}\n", 1)[1].strip("\n").split("\n\n", 1)[0]
    return body.splitlines()[2:]


def test_a_streamed_finish_matches_the_whole_table(
    local: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = local(tree(), config=PlanningConfig(outcome_chunk_rows=4))
    summaries = harness.plan("r1", shards=3).summaries
    assert len(summaries) == 3
    assert sum(len(s["outcome_uris"]) for s in summaries) >= 6
    folder = RunFolder.of(harness.store, "r1")
    whole = pd.concat(list(folder.outcomes(summaries, columns=None)), ignore_index=True)
    registration = folder.registration_results(folder.registered_chunks(summaries))
    assert registration.failed_urls  # no register results: every new item failed
    expected = final_outcomes(whole, registration, {}).reset_index(drop=True)

    monkeypatch.setattr("encord_ingest.pipeline.REPORT_ROWS", 1)
    config = SourceConfig.model_validate(
        {
            "name": "local",
            "bucket": {"uri": "file:///data"},
            "state_uri": str(tmp_path / "state"),
            "encord": {"integration": "i", "folder": "f"},
        }
    )
    result = finish_run(config, harness.store, RunOptions(run_id="r1", prefixes=["raw/"]), summaries)

    written = pd.read_parquet(io.BytesIO(folder.read(str(result.outcomes_uri))))
    assert str(result.outcomes_uri).endswith(FINAL_OUTCOMES)
    assert written.equals(expected[list(OUTCOME_COLUMNS)].astype(written.dtypes))
    assert result.counts == dict(sorted(expected["outcome"].value_counts().items()))
    data = expected[expected["kind"].notna() & ~expected["outcome"].isin(["skipped", "gone"])]
    failed_items = data.loc[data["outcome"] == "failed", "item_url"].nunique()
    assert (result.failed, result.items) == (failed_items, data["item_url"].nunique())
    assert result.objects == len(expected)

    failed = expected[expected["outcome"] == "failed"]
    shown = f"| `{failed['key'].iloc[0]}` | {failed['message'].iloc[0]} |"
    more = f"| ... | {len(failed) - 1} more in {FINAL_OUTCOMES} |"
    assert report_rows(result.markdown, "Failed objects") == [shown, more]
    skipped = expected[expected["outcome"] == "skipped"]
    assert len(skipped) == 2
    assert report_rows(result.markdown, "Skipped objects") == [
        f"| `{skipped['key'].iloc[0]}` | {skipped['code'].iloc[0]} |  |",
        f"| ... | 1 more in {FINAL_OUTCOMES} | |",
    ]
    warned = expected[expected["warning"].notna()]
    assert len(warned) >= 2
    assert report_rows(result.markdown, "Warnings") == [
        f"| `{warned['key'].iloc[0]}` | {warned['warning'].iloc[0]} |",
        f"| ... | {len(warned) - 1} more in {FINAL_OUTCOMES} |",
    ]
    for outcome, count in result.counts.items():
        assert f"| {outcome} | {count} |" in result.markdown
