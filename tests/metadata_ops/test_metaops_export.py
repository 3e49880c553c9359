"""Export (Parquet and CSV, one row per item, one column per key) and the export -> edit -> apply
round trip, which changes exactly the edited cells; one test on moto's S3."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from standins import create_bucket, moto_s3_server, s3_client
from standins.gcs import GcsEmulator

from encord_emulator.testing import EmulatorServer
from encord_ingest.sync import present
from tests.metadata_ops.helpers import B, apply_operator, export_operator, read_csv, write_csv

HELD: dict[str, dict[str, Any]] = {
    "a.jpg": {"site": "north", "fps": 30, "indoor": True, "team.other": 7, "title": "A title"},
    "b.jpg": {"site": "south", "shot_at": "2024-05-01T10:00:00Z", "weather": "rain", "emb.x": [0.5, 1.5]},
    "v.mp4": {"keyframes": [0, 12], "config": {"sampling_rate": 0}, "fps": 29.97, "team.other": "seven"},
}


def seed(emulator: EmulatorServer) -> dict[str, str]:
    folder = emulator.admin.add_folder("rt")
    specs = [
        {
            "url": f"{B}/rt/{name}",
            "name": name,
            "client_metadata": metadata,
            "item_type": "video" if name.endswith(".mp4") else "image",
        }
        for name, metadata in HELD.items()
    ]
    return dict(zip(HELD, emulator.admin.add_items(folder, specs), strict=True))


def everything(emulator: EmulatorServer) -> dict[str, dict[str, Any]]:
    return {item["name"]: present(item["client_metadata"]) for item in emulator.admin.all_items()}


def test_export_writes_one_row_per_item_and_one_column_per_key(
    emulator: EmulatorServer, encord_conn: str, tmp_path: Path
) -> None:
    uuids = seed(emulator)
    result = export_operator(
        encord_conn,
        scope="folder",
        target_ids=["rt"],
        output_uri=(tmp_path / "out").as_uri(),
        name="rt export",
    ).execute({})
    assert result == {
        "parquet_uri": (tmp_path / "out" / "rt-export.parquet").as_uri(),
        "csv_uri": (tmp_path / "out" / "rt-export.csv").as_uri(),
        "items": 3,
        "keys": 10,
    }
    rows = read_csv(tmp_path / "out" / "rt-export.csv")
    assert rows[0] == [
        "item_uuid",
        "object_url",
        "title",
        "item_type",
        "config",
        "emb.x",
        "fps",
        "indoor",
        "keyframes",
        "shot_at",
        "site",
        "team.other",
        "meta:title",
        "weather",
    ]
    assert rows[1] == [
        uuids["a.jpg"],
        f"{B}/rt/a.jpg",
        "a.jpg",
        "image",
        "",
        "",
        "30",
        "true",
        "",
        "",
        "north",
        "7",
        "A title",
        "",
    ]
    assert rows[3][4] == '{"sampling_rate": 0}'
    assert rows[3][8] == "[0, 12]"
    table = pq.read_table(tmp_path / "out" / "rt-export.parquet")
    assert table.column_names == rows[0]
    records = table.to_pylist()
    assert records[2]["keyframes"] == [0, 12]
    assert records[2]["config"] == {"sampling_rate": 0}
    assert records[1]["emb.x"] == [0.5, 1.5]
    assert records[0]["indoor"] is True
    assert records[0]["team.other"] == "7"
    assert records[2]["team.other"] == "seven"


def test_dataset_export_lists_index_and_title(
    emulator: EmulatorServer, encord_conn: str, tmp_path: Path
) -> None:
    uuids = seed(emulator)
    dataset = emulator.admin.add_dataset("ds")
    emulator.admin.link_items(dataset, [uuids["v.mp4"], uuids["a.jpg"]])
    export_operator(
        encord_conn, scope="dataset", target_ids=[dataset], output_uri=(tmp_path / "o").as_uri()
    ).execute({})
    rows = read_csv(tmp_path / "o" / "metadata.csv")
    header = rows[0]
    assert header[:7] == [
        "item_uuid",
        "object_url",
        "title",
        "item_type",
        "dataset_hash",
        "data_hash",
        "data_index",
    ]
    assert [(r[2], r[6], r[4]) for r in rows[1:]] == [("v.mp4", "0", dataset), ("a.jpg", "1", dataset)]


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_csv_round_trip_changes_exactly_the_edited_cells(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path, mode: str
) -> None:
    seed(emulator)
    export_operator(
        encord_conn, scope="folder", target_ids=["rt"], output_uri=tmp_path.as_uri(), name="rt"
    ).execute({})
    rows = read_csv(tmp_path / "rt.csv")
    column = rows[0].index
    rows[1][column("site")] = "N1"  # a.jpg
    rows[3][column("fps")] = "30"  # v.mp4
    rows[2][column("weather")] = ""  # b.jpg: an empty cell is an absent key
    write_csv(tmp_path / "rt.csv", rows)
    emulator.admin.reset_counts()
    result = apply_operator(
        encord_conn,
        scope="folder",
        target_ids=["rt"],
        table_uri=(tmp_path / "rt.csv").as_uri(),
        mode=mode,
        schema_path=schema_path,
    ).execute({})
    b_expected = dict(HELD["b.jpg"])
    if mode == "replace":
        del b_expected["weather"]
    assert everything(emulator) == {
        "a.jpg": {**HELD["a.jpg"], "site": "N1"},
        "b.jpg": b_expected,
        "v.mp4": {**HELD["v.mp4"], "fps": 30},
    }
    assert result["counts"]["changed"] == (3 if mode == "replace" else 2)
    # replace removes keys: the merge patch is read back and, on this shallow-merge server, rewritten
    assert emulator.admin.counts()["items.patch_bulk"] == (2 if mode == "replace" else 1)


def test_parquet_round_trip_changes_exactly_the_edited_cell(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, tmp_path: Path
) -> None:
    seed(emulator)
    export_operator(
        encord_conn, scope="folder", target_ids=["rt"], output_uri=tmp_path.as_uri(), name="rt"
    ).execute({})
    table = pq.read_table(tmp_path / "rt.parquet")
    records = table.to_pylist()
    records[1]["weather"] = "fog"
    records[2]["keyframes"] = [0, 12, 24]
    pq.write_table(pa.Table.from_pylist(records, schema=table.schema), tmp_path / "rt.parquet")
    result = apply_operator(
        encord_conn,
        scope="folder",
        target_ids=["rt"],
        table_uri=(tmp_path / "rt.parquet").as_uri(),
        mode="replace",
        schema_path=schema_path,
    ).execute({})
    assert result["counts"]["changed"] == 2
    assert everything(emulator) == {
        "a.jpg": HELD["a.jpg"],
        "b.jpg": {**HELD["b.jpg"], "weather": "fog"},
        "v.mp4": {**HELD["v.mp4"], "keyframes": [0, 12, 24]},
    }


def test_round_trip_through_s3(
    emulator: EmulatorServer, encord_conn: str, schema_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Export to and apply from moto's S3 (real HTTP), with the table and the report in the bucket."""
    seed(emulator)
    with moto_s3_server() as endpoint:
        create_bucket("metaops")
        extra = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_METAOPS", json.dumps({"conn_type": "aws", "extra": extra}))
        export_operator(
            encord_conn,
            scope="folder",
            target_ids=["rt"],
            output_uri="s3://metaops/exports",
            name="rt",
            aws_conn_id="aws_metaops",
        ).execute({})
        s3 = s3_client(endpoint)
        text = s3.get_object(Bucket="metaops", Key="exports/rt.csv")["Body"].read().decode()
        s3.put_object(Bucket="metaops", Key="edits/rt.csv", Body=text.replace(",north,", ",N2,").encode())
        result = apply_operator(
            encord_conn,
            scope="folder",
            target_ids=["rt"],
            table_uri="s3://metaops/edits/rt.csv",
            schema_path=schema_path,
            aws_conn_id="aws_metaops",
        ).execute({})
        report = json.load(
            io.BytesIO(s3.get_object(Bucket="metaops", Key="edits/reports/rt.report.json")["Body"].read())
        )
    assert result["report_uri"] == "s3://metaops/edits/reports/rt.report.json"
    assert report["counts"]["written"] == 1
    assert everything(emulator)["a.jpg"] == {**HELD["a.jpg"], "site": "N2"}


def test_round_trip_through_gcs(
    emulator: EmulatorServer,
    encord_conn: str,
    schema_path: str,
    gcs: GcsEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Export to and apply from the GCS emulator (real HTTP) through ``gcs_conn_id``, with the table
    and the report in the bucket; a ``gcs_conn_id`` that names no connection fails, so it is the
    one used."""
    seed(emulator)
    gcs.create_bucket("metaops-gcs")
    extra = {"anonymous": True, "project": "test-project"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_GCP_METAOPS", json.dumps({"conn_type": "google_cloud_platform", "extra": extra})
    )
    export_operator(
        encord_conn,
        scope="folder",
        target_ids=["rt"],
        output_uri="gs://metaops-gcs/exports",
        name="rt",
        gcs_conn_id="gcp_metaops",
    ).execute({})
    bucket = gcs.client().bucket("metaops-gcs")
    text = bucket.blob("exports/rt.csv").download_as_bytes().decode()
    bucket.blob("edits/rt.csv").upload_from_string(text.replace(",north,", ",N3,").encode())
    options: dict[str, Any] = {
        "scope": "folder",
        "target_ids": ["rt"],
        "table_uri": "gs://metaops-gcs/edits/rt.csv",
        "schema_path": schema_path,
    }
    with pytest.raises(Exception, match="gcp_missing"):
        apply_operator(encord_conn, gcs_conn_id="gcp_missing", **options).execute({})
    result = apply_operator(encord_conn, gcs_conn_id="gcp_metaops", **options).execute({})
    report = json.loads(bucket.blob("edits/reports/rt.report.json").download_as_bytes())
    assert result["report_uri"] == "gs://metaops-gcs/edits/reports/rt.report.json"
    assert report["counts"]["written"] == 1
    assert everything(emulator)["a.jpg"] == {**HELD["a.jpg"], "site": "N3"}
