"""EncordRegisterDataOperator (synchronous mode) against the emulator: every item kind, duplicate
registrations skipped, unit errors per URL, the error budget, and a retried task resuming its job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException
from encord.exceptions import InvalidArgumentsError

from encord_emulator.testing import EmulatorServer
from encord_ingest.errors import ErrorCode
from encord_ingest.manifest import DEFAULT_MAX_BYTES, DEFAULT_MAX_URLS, ImageItem, Manifest
from encord_ingest.run_folder import RunFolder
from encord_ingest.storage import BlobStore
from encord_provider.operators.encord import EncordLinkDatasetOperator
from tests.provider.helpers import (
    BUCKET_URL,
    TaskStateStore,
    read_result,
    register_operator,
    task_context,
    write_manifest,
)

B = BUCKET_URL
EVERY_KIND: dict[str, Any] = {
    "videos": [
        {
            "objectUrl": f"{B}/v/clip.mp4",
            "clientMetadata": {"keyframes": [0, 10]},
            "videoMetadata": {
                "fps": 25.0,
                "duration": 4.0,
                "width": 640,
                "height": 480,
                "file_size": 1000,
                "mime_type": "video/mp4",
            },
        }
    ],
    "images": [
        {"objectUrl": f"{B}/i/a.jpg", "title": "a.jpg", "clientMetadata": {"site": "depot"}},
        {"objectUrl": f"{B}/i/b.png"},
    ],
    "image_groups": [
        {"title": "grp", "createVideo": False, "objectUrl_0": f"{B}/g/0.jpg", "objectUrl_1": f"{B}/g/1.jpg"},
        {"title": "seq", "createVideo": True, "objectUrl_0": f"{B}/s/0.jpg", "objectUrl_1": f"{B}/s/1.jpg"},
    ],
    "dicom_series": [{"title": "ct", "objectUrl_0": f"{B}/d/1.dcm", "objectUrl_1": f"{B}/d/2.dcm"}],
    "audio": [{"objectUrl": f"{B}/a/voice.mp3"}],
    "text": [{"objectUrl": f"{B}/t/notes.txt"}],
    "pdf": [{"objectUrl": f"{B}/p/doc.pdf"}],
    "nifti": [{"objectUrl": f"{B}/n/brain.nii.gz"}],
}
ALL_URLS = [
    f"{B}/v/clip.mp4",
    f"{B}/i/a.jpg",
    f"{B}/i/b.png",
    f"{B}/g/0.jpg",
    f"{B}/g/1.jpg",
    f"{B}/s/0.jpg",
    f"{B}/s/1.jpg",
    f"{B}/d/1.dcm",
    f"{B}/d/2.dcm",
    f"{B}/a/voice.mp3",
    f"{B}/t/notes.txt",
    f"{B}/p/doc.pdf",
    f"{B}/n/brain.nii.gz",
]


def item_uuids(report: dict[str, Any]) -> dict[str, str]:
    return {url: result["item_uuid"] for url, result in report["results"].items() if "item_uuid" in result}


@pytest.mark.usefixtures("integration")
def test_every_item_kind_is_registered_and_mapped_per_url(
    encord_conn: str, emulator: EmulatorServer, run_folder: Path, keypair: tuple[str, str]
) -> None:
    uri = write_manifest(run_folder, "c0", EVERY_KIND)
    xcom = register_operator(encord_conn, [uri]).execute(task_context(TaskStateStore()))
    report = read_result(run_folder, "c0.register.json")
    assert report["status"] == "DONE"
    assert report["counts"] == {"items": 10, "urls": 13, "registered_items": 10, "failed_items": 0}
    assert sorted(report["results"]) == sorted(ALL_URLS)
    by_name = {item["name"]: item for item in emulator.admin.folder_items("ingest/cams")}
    assert {name: item["item_type"] for name, item in by_name.items()} == {
        "v/clip.mp4": "video",
        "a.jpg": "image",
        "i/b.png": "image",
        "grp": "imageGroup",
        "seq": "imageSequence",
        "ct": "dicomSeries",
        "a/voice.mp3": "audio",
        "t/notes.txt": "plainText",
        "p/doc.pdf": "pdf",
        "n/brain.nii.gz": "nifti",
    }
    uuids = item_uuids(report)
    assert uuids[f"{B}/g/0.jpg"] == uuids[f"{B}/g/1.jpg"] == by_name["grp"]["uuid"]
    assert uuids[f"{B}/d/2.dcm"] == by_name["ct"]["uuid"]
    assert uuids[f"{B}/i/b.png"] == by_name["i/b.png"]["uuid"]
    assert by_name["a.jpg"]["client_metadata"] == {"site": "depot"}
    assert xcom == {
        "folder_uuid": by_name["a.jpg"]["parent"],
        "chunks": [
            {
                "chunk_uri": uri,
                "result_uri": (run_folder / "results" / "c0.register.json").as_uri(),
                "job_uuid": report["job_uuid"],
                "counts": report["counts"],
            }
        ],
        "counts": report["counts"],
    }
    result_text = (run_folder / "results" / "c0.register.json").read_text()
    secret_lines = [line for line in keypair[0].splitlines() if not line.startswith("-----")]
    assert not any(line in result_text or line in str(xcom) for line in secret_lines)


@pytest.mark.usefixtures("integration")
def test_registering_again_skips_duplicates_and_reports_the_same_items(
    encord_conn: str, emulator: EmulatorServer, run_folder: Path
) -> None:
    uri = write_manifest(run_folder, "c0", EVERY_KIND)
    register_operator(encord_conn, [uri]).execute({})
    first = item_uuids(read_result(run_folder, "c0.register.json"))
    emulator.admin.reset_counts()
    register_operator(encord_conn, [uri]).execute({})
    second = read_result(run_folder, "c0.register.json")
    assert item_uuids(second) == first
    assert second["counts"]["failed_items"] == 0
    assert emulator.admin.counts()["upload_jobs.start"] == 1
    assert emulator.admin.counts()["items.list"] >= 1
    assert len(emulator.admin.folder_items("ingest/cams")) == 10


@pytest.mark.usefixtures("integration")
def test_unit_errors_are_reported_per_url_and_fail_the_task_past_the_budget(
    encord_conn: str, emulator: EmulatorServer, run_folder: Path
) -> None:
    emulator.admin.set_unreadable(f"{B}/i/b.png")
    emulator.admin.set_unreadable(f"{B}/g/1.jpg")
    uri = write_manifest(run_folder, "c0", EVERY_KIND)
    with pytest.raises(
        AirflowException, match=r"2 of 10 items failed to register, more than the error budget"
    ) as error:
        register_operator(encord_conn, [uri]).execute({})
    assert f"{B}/i/b.png: Uploading image: cannot read object" in str(error.value)
    report = read_result(run_folder, "c0.register.json")
    assert report["status"] == "DONE"
    assert report["counts"] == {"items": 10, "urls": 13, "registered_items": 8, "failed_items": 2}
    failed = {url: r["error"] for url, r in report["results"].items() if "error" in r}
    assert sorted(failed) == [f"{B}/g/0.jpg", f"{B}/g/1.jpg", f"{B}/i/b.png"]
    assert {e["code"] for e in failed.values()} == {ErrorCode.UNIT_ERROR.value}
    assert failed[f"{B}/g/0.jpg"]["file"] == f"{B}/g/0.jpg"
    assert "cannot read object" in failed[f"{B}/g/1.jpg"]["detail"]
    assert len(item_uuids(report)) == 10
    xcom = register_operator(encord_conn, [uri], max_failed_items=2).execute({})
    assert xcom["counts"]["failed_items"] == 2
    assert register_operator(encord_conn, [uri], max_failed_items=0, max_failed_fraction=0.2).execute({})


@pytest.mark.usefixtures("integration")
def test_a_failed_job_fails_every_item(encord_conn: str, emulator: EmulatorServer, run_folder: Path) -> None:
    uri = write_manifest(run_folder, "c0", {"images": EVERY_KIND["images"]})
    emulator.admin.fail_next_job("ERROR")
    with pytest.raises(AirflowException, match="2 of 2 items failed to register"):
        register_operator(encord_conn, [uri]).execute({})
    report = read_result(run_folder, "c0.register.json")
    assert report["status"] == "ERROR"
    assert {r["error"]["code"] for r in report["results"].values()} == {ErrorCode.JOB_FAILED.value}


@pytest.mark.usefixtures("integration")
@pytest.mark.emulator(job_duration_s=0.6)
def test_a_retried_task_resumes_its_job_instead_of_starting_another(
    encord_conn: str, emulator: EmulatorServer, run_folder: Path
) -> None:
    first_chunk = write_manifest(run_folder, "c0", {"images": EVERY_KIND["images"]})
    second_chunk = write_manifest(run_folder, "c1", {"audio": EVERY_KIND["audio"]})
    store = TaskStateStore()
    # The first try dies while waiting: the job status call answers 400 (never retried).
    emulator.admin.inject("upload_jobs.get", 400, times=1)
    with pytest.raises(InvalidArgumentsError):
        register_operator(encord_conn, [first_chunk, second_chunk]).execute(task_context(store))
    saved = store.values[register_operator(encord_conn, []).STATE_KEY]
    assert sorted(saved["jobs"]) == [first_chunk, second_chunk]
    assert emulator.admin.counts()["upload_jobs.start"] == 2
    xcom = register_operator(encord_conn, [first_chunk, second_chunk]).execute(task_context(store))
    assert emulator.admin.counts()["upload_jobs.start"] == 2
    assert [chunk["job_uuid"] for chunk in xcom["chunks"]] == [
        saved["jobs"][first_chunk],
        saved["jobs"][second_chunk],
    ]
    assert xcom["counts"] == {"items": 3, "urls": 3, "registered_items": 3, "failed_items": 0}
    assert store.values == {}
    assert len(emulator.admin.folder_items("ingest/cams")) == 3


@pytest.mark.usefixtures("integration")
def test_a_saved_job_that_ended_in_error_is_replaced(
    encord_conn: str, emulator: EmulatorServer, run_folder: Path
) -> None:
    uri = write_manifest(run_folder, "c0", {"images": EVERY_KIND["images"]})
    store = TaskStateStore()
    emulator.admin.fail_next_job("CANCELLED")
    emulator.admin.inject("upload_jobs.get", 400, times=1)
    with pytest.raises(InvalidArgumentsError):
        register_operator(encord_conn, [uri]).execute(task_context(store))
    xcom = register_operator(encord_conn, [uri]).execute(task_context(store))
    assert emulator.admin.counts()["upload_jobs.start"] == 2
    assert xcom["counts"]["registered_items"] == 2


@pytest.mark.usefixtures("integration")
def test_registered_items_are_linked_to_a_dataset(
    encord_conn: str, emulator: EmulatorServer, run_folder: Path
) -> None:
    uri = write_manifest(run_folder, "c0", EVERY_KIND)
    emulator.admin.set_unreadable(f"{B}/i/b.png")
    result_uri = register_operator(encord_conn, [uri], max_failed_items=1).execute({})["chunks"][0][
        "result_uri"
    ]
    dataset = emulator.admin.add_dataset("training")
    link = EncordLinkDatasetOperator(
        task_id="link",
        result_uris=result_uri,
        dataset_hash=dataset,
        encord_conn_id=encord_conn,
        aws_conn_id=None,
    )
    assert link.execute({}) == {"dataset_hash": dataset, "linked_items": 9}
    [stored] = emulator.admin.datasets()
    expected = set(item_uuids(read_result(run_folder, "c0.register.json")).values())
    assert {entry["item"] for entry in stored["links"]} == expected


@pytest.mark.usefixtures("integration")
@pytest.mark.parametrize("layout", [(2, 1250, 1), (3, 2100, 2)], ids=["2x1250", "3x2100"])
def test_the_shards_of_a_run_share_upload_jobs_and_a_retry_resumes_them(
    encord_conn: str, emulator: EmulatorServer, run_folder: Path, layout: tuple[int, int, int]
) -> None:
    """Each shard planned fewer items than ``manifest_max_items`` (5,000): the run still makes
    ``ceil(new items / 5000)`` upload jobs, not one per shard. The first register try dies while
    waiting (the job status call answers 400, never retried); the retried combine step gives the
    same chunk URIs and the retried task resumes the saved jobs; every item lands once and the
    commit reads its UUID by chunk URI."""
    shards, per_shard, jobs = layout
    folder = RunFolder(BlobStore.from_uri(str(run_folder)))
    summaries = []
    for shard in range(shards):
        images = [ImageItem(object_url=f"{B}/s{shard}/{i:05d}.jpg") for i in range(per_shard)]
        key = f"manifests/shard-{shard:04d}-00000.json"
        summaries.append({"manifest_uris": [folder.store.write_bytes(key, Manifest(images).to_bytes())]})
    limits = {"max_items": 5000, "max_urls": DEFAULT_MAX_URLS, "max_bytes": DEFAULT_MAX_BYTES}
    uris = folder.combine_manifests(summaries, **limits)
    assert len(uris) == jobs == -(-shards * per_shard // 5000)
    store = TaskStateStore()
    emulator.admin.inject("upload_jobs.get", 400, times=1)
    with pytest.raises(InvalidArgumentsError):
        register_operator(encord_conn, uris).execute(task_context(store))
    assert emulator.admin.counts()["upload_jobs.start"] == jobs

    retried = folder.combine_manifests(summaries, **limits)
    assert retried == uris
    xcom = register_operator(encord_conn, retried).execute(task_context(store))

    assert emulator.admin.counts()["upload_jobs.start"] == jobs
    assert xcom["counts"]["registered_items"] == shards * per_shard
    spill = run_folder.parent / "spill"
    spill.mkdir()
    results = folder.run_results(folder.registered_chunks(summaries), [], spill=str(spill))
    urls = [f"{B}/s{shard}/{i:05d}.jpg" for shard in range(shards) for i in range(per_shard)]
    found = results.items.lookup(urls)
    assert found["item_uuid"].notna().sum() == shards * per_shard
    assert found["failure"].isna().all()
    assert len(results.job_uuids) == jobs
    assert len(emulator.admin.folder_items("ingest/cams")) == shards * per_shard
