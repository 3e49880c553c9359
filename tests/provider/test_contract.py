"""The contract check, proved against the emulator in each of its modes: every answer must name
the mode the emulator was started in, and the JSON it writes must start an emulator that the
check then measures the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from encord_emulator.__main__ import _options, build_parser
from encord_emulator.behaviour import behaviour_options
from encord_emulator.testing import EmulatorServer
from encord_provider.contract import ContractReport, main, run_check, url_variant
from tests.provider.helpers import BUCKET_URL, FAST_HOOK_PARAMS, connection_json

OBJECT_URL = f"{BUCKET_URL}/contract/image.jpg"
BOUND = 1024 * 1024


def _check(conn: str, emulator: EmulatorServer) -> ContractReport:
    emulator.admin.add_integration("ingest-s3")
    return run_check(
        conn,
        "scratch/contract",
        "ingest-s3",
        OBJECT_URL,
        body_bound=BOUND,
        allow_schema_key=True,
        hook_params=FAST_HOOK_PARAMS,
        search_wait_s=0.3,
    )


def _answers(report: ContractReport) -> dict[str, str]:
    return {a.name: a.answer for a in report.answers}


def _assert_cleaned_up(emulator: EmulatorServer) -> None:
    assert emulator.admin.folders() == []
    assert emulator.admin.all_items() == []
    assert (emulator.admin.schema() or {}).get("encord_contract_check.number", {}).get("ty") != "number"


def test_default_emulator_is_measured_as_its_defaults(emulator: EmulatorServer, encord_conn: str) -> None:
    report = _check(encord_conn, emulator)
    assert _answers(report) == {
        "folder_search": "substring",
        "patch_semantics": "merge",
        "null_handling": "stored",
        "duplicates": "not-listed",
        "concurrent_duplicates": "deduplicated",
        "url_normalisation": "byte-exact",
        "schema_validation": "off",
        "max_body_bytes": f">= {BOUND}",
        "rate_limit_headers": "none",
    }
    _assert_cleaned_up(emulator)


STRICT = {
    "folder_search": "prefix",
    "patch_semantics": "replace",
    "report_skipped_duplicates": True,
    "concurrent_jobs_deduplicate": False,
    "job_duration_s": 0.3,
    "schema_enforcement": "reject",
    "max_body_bytes": 300_000,
    "rate_limit_headers": {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "598"},
}


@pytest.mark.emulator(**STRICT)
def test_a_strict_emulator_is_measured_as_configured(emulator: EmulatorServer, encord_conn: str) -> None:
    report = _check(encord_conn, emulator)
    answers = _answers(report)
    assert answers["folder_search"] == "prefix"
    assert answers["patch_semantics"] == "replace"
    assert answers["duplicates"] == "listed"
    assert answers["concurrent_duplicates"] == "registered-twice"
    assert answers["schema_validation"] == "reject"
    assert 0.97 * 300_000 <= int(answers["max_body_bytes"]) <= 300_000
    assert answers["rate_limit_headers"] == "present"
    options = report.to_json()["emulator_options"]
    headers = {name.lower(): value for name, value in options["rate_limit_headers"].items()}
    assert headers == {"x-ratelimit-limit": "600", "x-ratelimit-remaining": "598"}
    _assert_cleaned_up(emulator)


@pytest.mark.emulator(patch_semantics="merge-recursive", normalise_urls=True, duplicates_as="unit-error")
def test_merge_patch_normalised_urls_and_duplicates_as_errors_are_measured(
    emulator: EmulatorServer, encord_conn: str
) -> None:
    answers = _answers(_check(encord_conn, emulator))
    assert answers["patch_semantics"] == "merge-recursive"
    assert answers["null_handling"] == "deletes"
    assert answers["duplicates"] == "unit-error"
    assert answers["url_normalisation"] == "normalised"
    assert answers["concurrent_duplicates"] == "deduplicated"
    _assert_cleaned_up(emulator)


@pytest.mark.emulator(normalise_urls=True)
def test_normalised_urls_are_measured_when_duplicates_are_successes(
    emulator: EmulatorServer, encord_conn: str
) -> None:
    assert _answers(_check(encord_conn, emulator))["url_normalisation"] == "normalised"


@pytest.mark.parametrize("mode", ["exact", "unindexed"])
def test_folder_search_modes(mode: str, keypair: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with EmulatorServer.start(public_keys=[keypair[1]], folder_search=mode) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_ENCORD_CC", connection_json(keypair[0], emulator.url))
        assert _answers(_check("encord_cc", emulator))["folder_search"] == mode
        _assert_cleaned_up(emulator)


@pytest.mark.emulator(**STRICT)
def test_the_json_starts_an_emulator_that_measures_the_same(
    emulator: EmulatorServer,
    encord_conn: str,
    *,
    keypair: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emulator.admin.add_integration("ingest-s3")
    out = tmp_path / "contract.json"
    argv = ["--conn-id", encord_conn, "--folder", "scratch/contract", "--integration", "ingest-s3"]
    argv += [
        "--object-url",
        OBJECT_URL,
        "--out",
        str(out),
        "--max-body-bound",
        str(BOUND),
        "--allow-schema-key",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "folder_search" in printed
    assert "prefix" in printed
    document = json.loads(out.read_text())
    first = {name: result["answer"] for name, result in document["results"].items()}
    options: dict[str, Any] = behaviour_options(out)
    assert options["patch_semantics"] == "replace"
    assert options["schema_enforcement"] == "reject"
    assert "job_duration_s" not in options  # not measured: jobs must overlap for the race to show
    with EmulatorServer.start(public_keys=[keypair[1]], job_duration_s=0.3, **options) as replay:
        monkeypatch.setenv("AIRFLOW_CONN_ENCORD_REPLAY", connection_json(keypair[0], replay.url))
        second = _answers(_check("encord_replay", replay))
    assert {k: v for k, v in second.items() if k != "max_body_bytes"} == {
        k: v for k, v in first.items() if k != "max_body_bytes"
    }
    assert int(second["max_body_bytes"]) <= int(first["max_body_bytes"])


def test_the_emulator_command_line_takes_the_behaviour_file_and_its_own_flags_win(tmp_path: Path) -> None:
    path = tmp_path / "contract.json"
    measured = {
        "folder_search": "exact",
        "max_body_bytes": 5000,
        "patch_semantics": "replace",
        "from_the_future": 1,
    }
    path.write_text(json.dumps({"format": "encord-contract/1", "emulator_options": measured}))
    with pytest.warns(UserWarning, match="from_the_future: not an option of this emulator"):
        options = _options(
            build_parser().parse_args(["--behaviour-file", str(path), "--folder-search", "prefix"])
        )
    assert options["folder_search"] == "prefix"
    assert options["max_body_bytes"] == 5000
    assert options["patch_semantics"] == "replace"
    path.write_text(json.dumps({"emulator_options": {}}))
    with pytest.raises(ValueError, match="field 'format'"):
        behaviour_options(path)


def test_url_variant_spells_the_same_object_differently() -> None:
    assert url_variant("https://b.s3.eu-west-2.amazonaws.com/a/image.jpg") == (
        "https://B.S3.EU-WEST-2.AMAZONAWS.COM/a/imag%65.jpg"
    )


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.emulator(folder_search="exact", schema_enforcement="reject")
def test_the_manual_dag_writes_the_json(emulator: EmulatorServer, encord_conn: str, tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "dags" / "encord_contract_check.py"
    spec = importlib.util.spec_from_file_location("encord_contract_check", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    emulator.admin.add_integration("ingest-s3")
    out = tmp_path / "contract.json"
    conf = {
        "encord_conn_id": encord_conn,
        "integration": "ingest-s3",
        "object_url": OBJECT_URL,
        "out_uri": out.as_uri(),
        "max_body_bound": BOUND,
        "allow_schema_key": True,
    }
    dag_run = module.dag.test(run_conf=conf, logical_date=None)
    assert dag_run.state == "success"
    results = json.loads(out.read_text())["results"]
    assert results["folder_search"]["answer"] == "exact"
    assert results["schema_validation"]["answer"] == "reject"
    _assert_cleaned_up(emulator)


def test_an_object_that_cannot_be_registered_fails_only_the_checks_that_need_it(
    emulator: EmulatorServer, encord_conn: str
) -> None:
    emulator.admin.set_unreadable(OBJECT_URL)
    answers = _answers(_check(encord_conn, emulator))
    assert answers.pop("folder_search") == "substring"
    assert answers.pop("rate_limit_headers") == "none"
    assert set(answers.values()) == {"error"}
    assert len(answers) == 7
    _assert_cleaned_up(emulator)
