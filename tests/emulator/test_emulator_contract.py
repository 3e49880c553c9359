"""Contract: requests the real SDK put on the wire (with their real signatures) are accepted, and
every answer parses with the SDK's own models; a changed byte or an unknown key gives 401."""

from __future__ import annotations

import http.client
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from encord.http.v2.payloads import Page
from encord.metadata_schema import _ClientMetadataSchema
from encord.orm import storage as orm_storage
from encord.orm.cloud_integration import GetCloudIntegrationsResponse
from encord.orm.dataset import CreateDatasetResponseV2, DataRow
from encord.orm.dataset import Dataset as OrmDataset

from encord_emulator.testing import EmulatorServer, generate_ssh_keypair

WIRE = Path(__file__).parent / "wire"
CAPTURED = WIRE / "sdk-0.1.211-requests.captured.jsonl"
RECORDS: list[dict[str, Any]] = [json.loads(line) for line in CAPTURED.read_text().splitlines() if line]


def _key_id(record: dict[str, Any]) -> str:
    headers = record["headers"]
    if "Authorization" in headers:
        return str(headers["Authorization"].split(":")[0])
    match = re.search(r'keyid="([0-9a-f]{64})"', headers["Signature-Input"])
    assert match is not None
    return match[1]


KEY_IDS = sorted({_key_id(r) for r in RECORDS})

# UUIDs the recorded requests refer to; the emulator is seeded with them before the replay.
INTEGRATION = "11111111-2222-3333-4444-555555555555"
FOLDER_A = "52f1c7e9-ebdf-434f-97b2-a0b99e7b6c92"
FOLDER_B = "75354a98-2282-4972-9a30-6e9169bc7161"
ITEMS_A = ["3766ec12-4cb3-4ead-b1d2-6240d16a9dc8", "ea859824-d600-4bd2-ba01-495baf449d83"]
LINKED_ITEM = "d0dc2dc1-2754-4359-a326-b8aeb4b61b4c"
JOB_A = "1656d2c5-770e-4fa8-a1b5-0629f0846b90"
JOB_B = "5e7c7b1d-96e1-4c3f-8e94-2a6309318c62"
DATASET = "a6ab5ea2-04c8-457a-870a-ece305c33476"


def _page(model: type) -> Callable[[Any], Any]:
    return Page[model].model_validate  # type: ignore[valid-type]


def _legacy(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(body: Any) -> Any:
        assert body["status"] == 200, body
        return parse(body["response"])

    return check


# (method, path regex, parser of the 200 body with the SDK's models); None = expect 404.
V2 = "/v2/public"
CONTRACT: list[tuple[str, str, Callable[[Any], Any] | None]] = [
    (
        "GET",
        f"{V2}/organisation/client-metadata-schema-v2$",
        lambda b: b is None or _ClientMetadataSchema.model_validate(b),
    ),
    ("POST", f"{V2}/organisation/client-metadata-schema-v2$", lambda b: b is None),
    ("GET", rf"{V2}/cloud-integrations\?", GetCloudIntegrationsResponse.from_dict),
    ("POST", f"{V2}/storage/folders$", orm_storage.StorageFolder.from_dict),
    ("GET", f"{V2}/storage/folders/[0-9a-f-]+$", orm_storage.StorageFolder.from_dict),
    ("GET", rf"{V2}/storage/search/folders\?", _page(orm_storage.StorageFolder)),
    ("POST", f"{V2}/storage/folders/[0-9a-f-]+/data-upload-jobs$", uuid.UUID),
    (
        "GET",
        rf"{V2}/storage/folders/[0-9a-f-]+/data-upload-jobs/[0-9a-f-]+\?",
        orm_storage.UploadLongPollingState.from_dict,
    ),
    ("GET", rf"{V2}/storage/folders/[0-9a-f-]+/items\?", _page(orm_storage.StorageItem)),
    ("GET", rf"{V2}/storage/items/[0-9a-f-]+\?", orm_storage.StorageItem.from_dict),
    ("POST", f"{V2}/storage/items/get-bulk$", _page(orm_storage.StorageItem)),
    ("PATCH", f"{V2}/storage/folders/[0-9a-f-]+/items/[0-9a-f-]+$", orm_storage.StorageItem.from_dict),
    ("PATCH", f"{V2}/storage/items/patch-bulk$", _page(orm_storage.StorageItem)),
    ("POST", f"{V2}/datasets$", CreateDatasetResponseV2.from_dict),
    ("GET", f"{V2}/(ratelimited|badrequest)$", None),
]


def _contract(record: dict[str, Any]) -> Callable[[Any], Any] | None:
    if record["path"] == "/public":
        query = record["body"]["query_type"]
        return _legacy(OrmDataset.from_dict if query == "dataset" else DataRow.from_dict_list)
    for method, pattern, parse in CONTRACT:
        if record["method"] == method and re.match(pattern, record["path"]):
            return parse
    raise AssertionError(f"no contract entry for {record['method']} {record['path']}")


def _body_bytes(record: dict[str, Any]) -> bytes:
    """The bytes the SDK sent: ``requests`` serialises ``json=`` with ``json.dumps`` defaults."""
    return b"" if record["body"] is None else json.dumps(record["body"]).encode()


def send(url: str, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return response.status, json.loads(raw) if raw else None


def replay(
    url: str, record: dict[str, Any], *, body: bytes | None = None, path: str | None = None
) -> tuple[int, Any]:
    sent = _body_bytes(record) if body is None else body
    return send(url, record["method"], path or record["path"], record["headers"], sent)


def _seed(emu: EmulatorServer) -> None:
    admin = emu.admin
    admin.add_integration("my-s3", uuid=INTEGRATION)
    admin.add_folder("ingest-test", uuid=FOLDER_A)
    admin.add_folder("f2", uuid=FOLDER_B)
    admin.add_items(
        FOLDER_A,
        [
            {"uuid": ITEMS_A[0], "url": "s3://bucket/a.jpg", "client_metadata": {"capture.site": "X"}},
            {"uuid": ITEMS_A[1], "url": "s3://bucket/b.jpg"},
            {"uuid": LINKED_ITEM, "url": "s3://bucket/c.jpg"},
        ],
    )
    admin.add_job(FOLDER_A, uuid=JOB_A)
    admin.add_job(FOLDER_B, uuid=JOB_B)
    admin.add_dataset("ds", uuid=DATASET)


@pytest.fixture(scope="module")
def recorded_emu() -> Iterator[EmulatorServer]:
    """An emulator that trusts the recorded keys and ignores the signatures' age."""
    with EmulatorServer.start(public_keys=KEY_IDS, max_signature_age_s=None) as server:
        _seed(server)
        yield server


def test_every_recorded_request_is_covered() -> None:
    assert len(RECORDS) == 26
    assert {
        _contract(r) is not None or r["path"].endswith(("ratelimited", "badrequest")) for r in RECORDS
    } == {True}


@pytest.mark.parametrize(
    "record", RECORDS, ids=[f"{i:02d}-{r['method']}-{r['path'][:60]}" for i, r in enumerate(RECORDS)]
)
def test_recorded_request_is_accepted_and_answer_parses(
    recorded_emu: EmulatorServer, record: dict[str, Any]
) -> None:
    status, body = replay(recorded_emu.url, record)
    parse = _contract(record)
    if parse is None:
        assert (status, set(body)) == (404, {"message"})
        return
    assert status == 200, body
    parse(body)


@pytest.mark.parametrize("record", RECORDS, ids=[f"{i:02d}" for i in range(len(RECORDS))])
def test_one_changed_byte_is_rejected(recorded_emu: EmulatorServer, record: dict[str, Any]) -> None:
    body = _body_bytes(record)
    if body:
        index = body.index(b'"') + 1  # first character of the first key
        tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        status, answer = replay(recorded_emu.url, record, body=tampered)
    else:
        path = record["path"]
        status, answer = replay(recorded_emu.url, record, path=path[:-1] + ("x" if path[-1] != "x" else "y"))
    assert status == 401
    if record["path"] == "/public":
        assert answer["response"] == ["AUTHENTICATION_ERROR"]
    else:
        assert "authentication failed" in answer["message"]


@pytest.mark.parametrize(
    "record", RECORDS[:3] + RECORDS[-2:], ids=["schema", "schema-post", "schema-2", "legacy-1", "legacy-2"]
)
def test_changed_signature_is_rejected(recorded_emu: EmulatorServer, record: dict[str, Any]) -> None:
    headers = dict(record["headers"])
    if "Signature" in headers:
        signature = headers["Signature"]
        headers["Signature"] = signature[:13] + ("A" if signature[13] != "A" else "B") + signature[14:]
    else:
        key, signature = headers["Authorization"].split(":")
        headers["Authorization"] = f"{key}:{'0' if signature[0] != '0' else '1'}{signature[1:]}"
    status, _ = send(recorded_emu.url, record["method"], record["path"], headers, _body_bytes(record))
    assert status == 401


def test_unknown_key_is_rejected_and_counted() -> None:
    _, other_public = generate_ssh_keypair()
    with EmulatorServer.start(public_keys=[other_public], max_signature_age_s=None) as server:
        statuses = {replay(server.url, r)[0] for r in RECORDS}
        counts = server.admin.counts()
    assert statuses == {401}
    assert counts == {"auth.rejected": len(RECORDS)}


def test_old_signature_is_rejected_when_age_is_checked() -> None:
    with EmulatorServer.start(public_keys=KEY_IDS, max_signature_age_s=300) as server:
        status, body = replay(server.url, RECORDS[0])
    assert status == 401
    assert "older" in body["message"]


def test_unsigned_and_bearer_requests_are_rejected(recorded_emu: EmulatorServer) -> None:
    path = f"{V2}/storage/folders/{FOLDER_A}"
    assert send(recorded_emu.url, "GET", path, {}, b"")[0] == 401
    assert send(recorded_emu.url, "GET", path, {"Authorization": "Bearer abc"}, b"")[0] == 401
    assert send(recorded_emu.url, "POST", "/public", {"Authorization": "Bearer abc"}, b"{}")[0] == 401


def test_minimal_authored_responses_match_emulator_shapes(recorded_emu: EmulatorServer) -> None:
    """The emulator's bodies carry every key of the authored minimal bodies the SDK accepts."""
    authored = json.loads((WIRE / "responses.minimal-accepted-by-sdk.authored.json").read_text())
    folder = replay(recorded_emu.url, RECORDS[5])[1]
    item = replay(recorded_emu.url, RECORDS[10])[1]
    job = replay(recorded_emu.url, RECORDS[8])[1]
    assert set(authored["StorageFolder"]) <= set(folder)
    assert set(authored["StorageItem"]) <= set(item)
    assert set(authored["UploadLongPollingState"]) <= set(job)
