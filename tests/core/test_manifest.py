"""Import manifests: SDK wire form, documented JSON form, validation and chunking."""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from encord_ingest.errors import ErrorCode
from encord_ingest.manifest import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_URLS,
    MAX_URL_BYTES,
    AudioItem,
    AudioMetadata,
    ChunkLimitError,
    DicomSeriesItem,
    GroupFrame,
    ImageGroupItem,
    ImageItem,
    ImageMetadata,
    Item,
    Manifest,
    ManifestError,
    NiftiItem,
    PdfItem,
    PdfMetadata,
    TextItem,
    TextMetadata,
    VideoItem,
    VideoMetadata,
    check_item_limits,
    check_object_url,
    chunk_manifest,
)
from encord_provider.upload_items import upload_items

INTEGRATION = "11111111-2222-3333-4444-555555555555"
SHARED_WIRE = Path(__file__).resolve().parents[1] / "fixtures" / "encord-sdk-wire"

# What encord 0.1.211 put on the wire for one item of every kind
# (encord-sdk-wire/upload-job-payload.dataItems.captured.json, "dataItems" member).
CAPTURED_DATA_ITEMS: dict[str, Any] = {
    "videos": [
        {
            "objectUrl": "s3://bucket/v.mp4",
            "title": "v.mp4",
            "clientMetadata": {"keyframes": [0, 10]},
            "externalFileType": "VIDEO",
            "videoMetadata": {
                "fps": 25.0,
                "duration": 12.5,
                "width": 1920,
                "height": 1080,
                "fileSize": 10485760,
                "mimeType": "video/mp4",
            },
        }
    ],
    "imageGroups": [
        {
            "images": [{"url": "s3://bucket/f0.jpg"}, {"url": "s3://bucket/f1.jpg"}],
            "title": "seq-1",
            "clientMetadata": {},
            "createVideo": True,
            "externalFileType": "IMG_GROUP",
        }
    ],
    "dicomSeries": [
        {
            "dicomFiles": [{"url": "s3://bucket/s/1.dcm"}, {"url": "s3://bucket/s/2.dcm"}],
            "title": "series-1",
            "clientMetadata": {},
            "externalFileType": "DICOM",
        }
    ],
    "images": [
        {
            "objectUrl": "s3://bucket/a.jpg",
            "title": "a.jpg",
            "clientMetadata": {"capture.site": "X"},
            "externalFileType": "IMAGE",
            "imageMetadata": {"mimeType": "image/jpeg", "fileSize": 1024, "height": 480, "width": 640},
        }
    ],
    "imageGroupsFromItems": [],
    "audio": [
        {
            "objectUrl": "s3://bucket/a.mp3",
            "clientMetadata": {},
            "audioMetadata": {
                "duration": 3.5,
                "fileSize": 56000,
                "mimeType": "audio/mpeg",
                "sampleRate": 44100,
                "bitDepth": 16,
                "codec": "mp3",
                "numChannels": 2,
            },
            "externalFileType": "AUDIO",
        }
    ],
    "timeSeries": [],
    "nifti": [{"objectUrl": "s3://bucket/n.nii.gz", "clientMetadata": {}, "externalFileType": "NIFTI"}],
    "text": [
        {
            "objectUrl": "s3://bucket/t.txt",
            "clientMetadata": {},
            "externalFileType": "PLAIN_TEXT",
            "textMetadata": {"fileSize": 12, "mimeType": "text/plain"},
        }
    ],
    "pdf": [
        {
            "objectUrl": "s3://bucket/p.pdf",
            "clientMetadata": {},
            "pdfMetadata": {"fileSize": 2048, "numPages": 3},
            "externalFileType": "PDF",
        }
    ],
    "scenes": [],
    "skipDuplicateUrls": True,
    "upsertMetadata": True,
}
SDK_LISTS = ("videos", "imageGroups", "dicomSeries", "images", "audio", "nifti", "text", "pdf")


def captured_items() -> dict[str, Item]:
    """The items behind CAPTURED_DATA_ITEMS, keyed by their camelCase SDK list."""
    return {
        "videos": VideoItem(
            object_url="s3://bucket/v.mp4",
            title="v.mp4",
            client_metadata={"keyframes": [0, 10]},
            video_metadata=VideoMetadata(
                fps=25.0, duration=12.5, width=1920, height=1080, file_size=10485760, mime_type="video/mp4"
            ),
        ),
        "imageGroups": ImageGroupItem(
            title="seq-1", create_video=True, frames=["s3://bucket/f0.jpg", "s3://bucket/f1.jpg"]
        ),
        "dicomSeries": DicomSeriesItem(
            title="series-1", files=["s3://bucket/s/1.dcm", "s3://bucket/s/2.dcm"]
        ),
        "images": ImageItem(
            object_url="s3://bucket/a.jpg",
            title="a.jpg",
            client_metadata={"capture.site": "X"},
            image_metadata=ImageMetadata(mime_type="image/jpeg", file_size=1024, height=480, width=640),
        ),
        "audio": AudioItem(
            object_url="s3://bucket/a.mp3",
            audio_metadata=AudioMetadata(
                duration=3.5,
                file_size=56000,
                mime_type="audio/mpeg",
                sample_rate=44100,
                bit_depth=16,
                codec="mp3",
                num_channels=2,
            ),
        ),
        "nifti": NiftiItem(object_url="s3://bucket/n.nii.gz"),
        "text": TextItem(
            object_url="s3://bucket/t.txt", text_metadata=TextMetadata(file_size=12, mime_type="text/plain")
        ),
        "pdf": PdfItem(object_url="s3://bucket/p.pdf", pdf_metadata=PdfMetadata(file_size=2048, num_pages=3)),
    }


def full_manifest() -> Manifest:
    return Manifest(captured_items().values(), skip_duplicate_urls=True, upsert_metadata=True)


# --- SDK form ----------------------------------------------------------------------------------


def test_sdk_payload_equals_the_captured_upload_job_body() -> None:
    from encord.orm.storage import PostUploadJobParams

    params = PostUploadJobParams(
        data_items=upload_items(full_manifest()), integration_hash=uuid.UUID(INTEGRATION), ignore_errors=True
    )
    assert params.to_dict() == {
        "dataItems": CAPTURED_DATA_ITEMS,
        "integrationHash": INTEGRATION,
        "ignoreErrors": True,
    }


def test_embedded_capture_equals_the_shared_capture_file() -> None:
    captured = json.loads((SHARED_WIRE / "upload-job-payload.dataItems.captured.json").read_text())
    assert captured["dataItems"] == CAPTURED_DATA_ITEMS


@pytest.mark.parametrize("sdk_list", SDK_LISTS)
def test_every_kind_alone_becomes_its_captured_sdk_entry(sdk_list: str) -> None:
    manifest = Manifest([captured_items()[sdk_list]], skip_duplicate_urls=True, upsert_metadata=False)
    wire = upload_items(manifest).to_dict()
    expected = {key: [] for key, value in CAPTURED_DATA_ITEMS.items() if isinstance(value, list)}
    expected[sdk_list] = CAPTURED_DATA_ITEMS[sdk_list]
    assert wire == {**expected, "skipDuplicateUrls": True, "upsertMetadata": False}


def test_image_group_with_frame_metadata_sdk_entry() -> None:
    frame_media = ImageMetadata(mime_type="image/png", file_size=10, height=2, width=3)
    group = ImageGroupItem(
        title="g",
        create_video=False,
        client_metadata={"rig": "r1"},
        frames=[GroupFrame(url="gs://b/0.png", image_metadata=frame_media), "gs://b/1.png"],
    )
    assert upload_items(Manifest([group])).to_dict()["imageGroups"] == [
        {
            "images": [
                {
                    "url": "gs://b/0.png",
                    "imageMetadata": {"mimeType": "image/png", "fileSize": 10, "height": 2, "width": 3},
                },
                {"url": "gs://b/1.png"},
            ],
            "title": "g",
            "clientMetadata": {"rig": "r1"},
            "createVideo": False,
            "externalFileType": "IMG_GROUP",
        }
    ]


class _EncordStub(BaseHTTPRequestHandler):
    """Just enough of Encord for StorageFolder.add_private_data_to_folder_start; records requests."""

    folder_uuid = "5b1d7a3e-6c1f-4a51-9a0e-2f7d1c9b1a01"
    requests: list[tuple[str, str, Any]]

    def _reply(self, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, None))
        self._reply(
            {
                "uuid": self.folder_uuid,
                "parent": None,
                "name": "ingest",
                "description": "",
                "clientMetadata": None,
                "owner": "emu@example.com",
                "createdAt": "2025-01-01T00:00:00+00:00",
                "lastEditedAt": "2025-01-01T00:00:00+00:00",
                "userRole": "admin",
                "syncedDatasetHash": None,
                "pathToRoot": [],
            }
        )

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body))
        self._reply("4c6f8e2a-1b3d-4f5e-8a7b-9c0d1e2f3a4b")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def encord_stub() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    requests: list[tuple[str, str, Any]] = []
    handler = type("Handler", (_EncordStub,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_the_unmodified_sdk_sends_the_manifest_as_captured(encord_stub: tuple[str, list[Any]]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from encord import EncordUserClient

    domain, requests = encord_stub
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    client = EncordUserClient.create_with_ssh_private_key(key.decode(), domain=domain)
    folder = client.get_storage_folder(uuid.UUID(_EncordStub.folder_uuid))
    job = folder.add_private_data_to_folder_start(
        INTEGRATION, upload_items(full_manifest()), ignore_errors=True
    )

    assert job == uuid.UUID("4c6f8e2a-1b3d-4f5e-8a7b-9c0d1e2f3a4b")
    method, path, body = requests[-1]
    assert (method, path) == (
        "POST",
        f"/v2/public/storage/folders/{_EncordStub.folder_uuid}/data-upload-jobs",
    )
    assert body == {"dataItems": CAPTURED_DATA_ITEMS, "integrationHash": INTEGRATION, "ignoreErrors": True}


# --- documented JSON form ----------------------------------------------------------------------

DOCS_ENTRIES: dict[str, tuple[str, dict[str, Any]]] = {
    "videos": (
        "videos",
        {
            "objectUrl": "s3://bucket/v.mp4",
            "title": "v.mp4",
            "clientMetadata": {"keyframes": [0, 10]},
            "videoMetadata": {
                "fps": 25.0,
                "duration": 12.5,
                "width": 1920,
                "height": 1080,
                "file_size": 10485760,
                "mime_type": "video/mp4",
            },
        },
    ),
    "imageGroups": (
        "image_groups",
        {
            "title": "seq-1",
            "createVideo": True,
            "objectUrl_0": "s3://bucket/f0.jpg",
            "objectUrl_1": "s3://bucket/f1.jpg",
            "clientMetadata": {},
        },
    ),
    "dicomSeries": (
        "dicom_series",
        {
            "title": "series-1",
            "objectUrl_0": "s3://bucket/s/1.dcm",
            "objectUrl_1": "s3://bucket/s/2.dcm",
            "clientMetadata": {},
        },
    ),
    "images": (
        "images",
        {
            "objectUrl": "s3://bucket/a.jpg",
            "title": "a.jpg",
            "clientMetadata": {"capture.site": "X"},
            "imageMetadata": {"mime_type": "image/jpeg", "file_size": 1024, "height": 480, "width": 640},
        },
    ),
    "audio": (
        "audio",
        {
            "objectUrl": "s3://bucket/a.mp3",
            "clientMetadata": {},
            "audioMetadata": {
                "duration": 3.5,
                "file_size": 56000,
                "mime_type": "audio/mpeg",
                "sample_rate": 44100,
                "bit_depth": 16,
                "codec": "mp3",
                "num_channels": 2,
            },
        },
    ),
    "nifti": ("nifti", {"objectUrl": "s3://bucket/n.nii.gz", "clientMetadata": {}}),
    "text": (
        "text",
        {
            "objectUrl": "s3://bucket/t.txt",
            "clientMetadata": {},
            "textMetadata": {"file_size": 12, "mime_type": "text/plain"},
        },
    ),
    "pdf": (
        "pdf",
        {
            "objectUrl": "s3://bucket/p.pdf",
            "clientMetadata": {},
            "pdfMetadata": {"file_size": 2048, "num_pages": 3},
        },
    ),
}


@pytest.mark.parametrize("sdk_list", SDK_LISTS)
def test_every_kind_docs_json_and_round_trip(sdk_list: str) -> None:
    docs_key, entry = DOCS_ENTRIES[sdk_list]
    manifest = Manifest([captured_items()[sdk_list]])
    doc = manifest.to_docs_json()
    assert doc == {docs_key: [entry], "skip_duplicate_urls": True, "upsert_metadata": False}
    assert Manifest.from_docs_json(doc) == manifest
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


def test_full_manifest_docs_keys_in_documented_order_and_bytes_round_trip() -> None:
    manifest = full_manifest()
    doc = manifest.to_docs_json()
    assert list(doc) == [
        "videos",
        "images",
        "image_groups",
        "dicom_series",
        "audio",
        "text",
        "pdf",
        "nifti",
        "skip_duplicate_urls",
        "upsert_metadata",
    ]
    assert json.loads(manifest.to_bytes()) == doc
    assert Manifest.from_bytes(manifest.to_bytes(), source="chunk.json") == manifest


def test_docs_images_match_what_the_sdk_sends_as_external_files() -> None:
    # encord-sdk-wire/upload-job-payload.externalFiles.captured.json: the documented form, sent unchecked.
    manifest = Manifest(
        [
            ImageItem(object_url="s3://bucket/a.jpg", title="a.jpg", client_metadata={"capture.site": "X"}),
            ImageItem(object_url="s3://bucket/b.jpg"),
        ]
    )
    assert manifest.to_docs_json() == {
        "images": [
            {"objectUrl": "s3://bucket/a.jpg", "title": "a.jpg", "clientMetadata": {"capture.site": "X"}},
            {"objectUrl": "s3://bucket/b.jpg", "clientMetadata": {}},
        ],
        "skip_duplicate_urls": True,
        "upsert_metadata": False,
    }


@pytest.mark.parametrize(("skip", "upsert"), [(True, False), (False, True), (True, True), (False, False)])
def test_flags_reach_both_outputs_and_survive_a_round_trip(skip: bool, upsert: bool) -> None:
    manifest = Manifest(
        [NiftiItem(object_url="s3://b/n.nii")], skip_duplicate_urls=skip, upsert_metadata=upsert
    )
    doc = manifest.to_docs_json()
    wire = upload_items(manifest).to_dict()
    assert (doc["skip_duplicate_urls"], doc["upsert_metadata"]) == (skip, upsert)
    assert (wire["skipDuplicateUrls"], wire["upsertMetadata"]) == (skip, upsert)
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


def test_manifest_defaults_to_skipping_duplicates_without_upsert() -> None:
    manifest = Manifest()
    assert (manifest.skip_duplicate_urls, manifest.upsert_metadata, len(manifest)) == (True, False, 0)


def test_frame_metadata_round_trips_as_numbered_keys() -> None:
    frame_media = ImageMetadata(mime_type="image/png", file_size=10, height=2, width=3)
    group = ImageGroupItem(
        title="g", frames=["gs://b/0.png", GroupFrame(url="gs://b/1.png", image_metadata=frame_media)]
    )
    entry = group.to_docs()
    assert entry == {
        "title": "g",
        "createVideo": False,
        "objectUrl_0": "gs://b/0.png",
        "objectUrl_1": "gs://b/1.png",
        "imageMetadata_1": {"mime_type": "image/png", "file_size": 10, "height": 2, "width": 3},
        "clientMetadata": {},
    }
    assert Manifest.from_docs_json({"image_groups": [entry]}).items == [group]


def test_interleaved_items_are_kept_grouped_by_kind_in_stable_order() -> None:
    image_a, image_b = ImageItem(object_url="s3://b/a.jpg"), ImageItem(object_url="s3://b/b.jpg")
    video = VideoItem(object_url="s3://b/v.mp4")
    manifest = Manifest([image_a, video, image_b])
    assert manifest.items == [video, image_a, image_b]
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


def test_hand_written_docs_json_reads_with_documented_defaults_and_camel_case_media() -> None:
    manifest = Manifest.from_docs_json(
        {
            "videos": [
                {
                    "objectUrl": "s3://b/v.mp4",
                    "videoMetadata": {
                        "fps": 30,
                        "duration": 2,
                        "width": 4,
                        "height": 4,
                        "fileSize": 9,
                        "mimeType": "video/mp4",
                    },
                }
            ],
            "dicom_series": [{"title": "s", "objectUrl_1": "s3://b/2.dcm", "objectUrl_0": "s3://b/1.dcm"}],
        }
    )
    video, series = manifest.items
    assert isinstance(video, VideoItem)
    assert isinstance(series, DicomSeriesItem)
    assert video.video_metadata == VideoMetadata(
        fps=30.0, duration=2.0, width=4, height=4, file_size=9, mime_type="video/mp4"
    )
    assert video.client_metadata == {}
    assert series.files == ["s3://b/1.dcm", "s3://b/2.dcm"]
    assert (manifest.skip_duplicate_urls, manifest.upsert_metadata) == (False, False)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "chunk-7.json: expected a JSON object at the top, got []"),
        ({"scenes": []}, "chunk-7.json: unknown top-level key(s) ['scenes']"),
        ({"images": {}}, "chunk-7.json: images: expected a JSON array, got {}"),
        ({"images": ["s3://b/a.jpg"]}, "chunk-7.json: images[0]: expected a JSON object, got 's3://b/a.jpg'"),
        (
            {"skip_duplicate_urls": "yes"},
            "chunk-7.json: skip_duplicate_urls: expected true or false, got 'yes'",
        ),
        (
            {"images": [{"objectUrl": "s3://b/a.jpg"}, {"objectURL": "s3://b/b.jpg"}]},
            "chunk-7.json: images[1]: unknown key(s) ['objectURL']",
        ),
        (
            {"image_groups": [{"title": "g", "objectUrl_0": "s3://b/0.jpg", "objectUrl_2": "s3://b/2.jpg"}]},
            "chunk-7.json: image_groups[0]: objectUrl_N keys must run 0..N without gaps, got indexes [0, 2]",
        ),
        (
            {"image_groups": [{"title": "g", "objectUrl_0": "s3://b/0.jpg", "imageMetadata_1": {}}]},
            "chunk-7.json: image_groups[0]: imageMetadata_N without a matching objectUrl_N: indexes [1]",
        ),
        (
            {"dicom_series": [{"title": "s", "objectUrl_0": "s3://b/0.dcm", "imageMetadata_0": {}}]},
            "chunk-7.json: dicom_series[0]: unknown key(s) ['imageMetadata_0']",
        ),
        (
            {"dicom_series": [{"title": "s"}]},
            "chunk-7.json: dicom_series[0]: files: List should have at least 1 item",
        ),
        (
            {"videos": [{"objectUrl": "s3://b/v.mp4", "videoMetadata": {"fps": -1}}]},
            "chunk-7.json: videos[0]: video_metadata.fps: Input should be greater than 0",
        ),
        (
            {"images": [{"objectUrl": "s3://b/a.jpg"}], "videos": [{"objectUrl": "s3://b/a.jpg"}]},
            "chunk-7.json: items: Value error, object URL 's3://b/a.jpg' appears in more than one item",
        ),
    ],
)
def test_bad_docs_json_names_the_source_and_the_entry(doc: Any, message: str) -> None:
    with pytest.raises(ManifestError) as raised:
        Manifest.from_docs_json(doc, source="chunk-7.json")
    assert str(raised.value).startswith(message)


def test_bytes_that_are_not_json_name_the_source() -> None:
    with pytest.raises(ManifestError, match=r"^s3://runs/r1/chunk-0\.json: not UTF-8 JSON"):
        Manifest.from_bytes(b"{\xff", source="s3://runs/r1/chunk-0.json")


# --- item models -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sdk_list", "urls"),
    [
        ("videos", ["s3://bucket/v.mp4"]),
        ("imageGroups", ["s3://bucket/f0.jpg", "s3://bucket/f1.jpg"]),
        ("dicomSeries", ["s3://bucket/s/1.dcm", "s3://bucket/s/2.dcm"]),
        ("images", ["s3://bucket/a.jpg"]),
        ("audio", ["s3://bucket/a.mp3"]),
        ("nifti", ["s3://bucket/n.nii.gz"]),
        ("text", ["s3://bucket/t.txt"]),
        ("pdf", ["s3://bucket/p.pdf"]),
    ],
)
def test_object_urls_and_key_url(sdk_list: str, urls: list[str]) -> None:
    item = captured_items()[sdk_list]
    assert (item.object_urls(), item.key_url) == (urls, urls[0])


def test_manifest_counts_urls_and_lists_key_urls() -> None:
    manifest = full_manifest()
    assert (len(manifest), manifest.url_count) == (8, 10)
    assert manifest.key_urls()[:3] == ["s3://bucket/v.mp4", "s3://bucket/a.jpg", "s3://bucket/f0.jpg"]


def test_kind_discriminates_items_from_plain_dicts() -> None:
    manifest = Manifest.model_validate(
        {"items": [{"kind": "image_group", "title": "g", "create_video": True, "frames": ["s3://b/0.jpg"]}]}
    )
    group = manifest.items[0]
    assert isinstance(group, ImageGroupItem)
    assert group.is_sequence
    assert group.frames == [GroupFrame(url="s3://b/0.jpg")]


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: ImageGroupItem(title="g", frames=[]), "List should have at least 1 item"),
        (lambda: DicomSeriesItem(title="s", files=[]), "List should have at least 1 item"),
        (lambda: DicomSeriesItem(files=["s3://b/1.dcm"]), "title"),
        (lambda: ImageGroupItem(title="", frames=["s3://b/0.jpg"]), "at least 1 character"),
        (lambda: ImageGroupItem(title="g", frames=["s3://b/0.jpg", "s3://b/0.jpg"]), "listed twice"),
        (lambda: DicomSeriesItem(title="s", files=["s3://b/1.dcm", "s3://b/1.dcm"]), "listed twice"),
        (
            lambda: VideoMetadata(fps=-25, duration=1, width=1, height=1, file_size=1, mime_type="video/mp4"),
            "fps",
        ),
        (
            lambda: VideoMetadata(fps=0, duration=1, width=1, height=1, file_size=1, mime_type="video/mp4"),
            "fps",
        ),
        (lambda: ImageMetadata(mime_type="jpeg", file_size=1, height=1, width=1), "mime_type"),
        (lambda: PdfMetadata(file_size=-1, num_pages=1), "file_size"),
        (
            lambda: AudioMetadata.model_validate({"duration": "3", "file_size": 1, "mime_type": "audio/x"}),
            "duration",
        ),
        (lambda: ImageItem(object_url="s3://b/a b.jpg"), "without whitespace"),
        (lambda: ImageItem(object_url="b/a.jpg"), "scheme://"),
        (lambda: ImageItem(object_url="s3://b/a.jpg", client_metadata={"x": float("nan")}), "plain JSON"),
        (lambda: ImageItem(object_url="s3://b/a.jpg", client_metadata={"x": object()}), "plain JSON"),
        (lambda: ImageItem(object_url="s3://b/a.jpg", title=""), "at least 1 character"),
        (lambda: NiftiItem(object_url="s3://b/n.nii", nifti_metadata={}), "Extra inputs"),
    ],
)
def test_invalid_items_are_refused(build: Any, fragment: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        build()


def test_duplicate_url_across_items_is_refused() -> None:
    with pytest.raises(ValidationError, match=re.escape("'s3://b/0.jpg' appears in more than one item")):
        Manifest([ImageItem(object_url="s3://b/0.jpg"), ImageGroupItem(title="g", frames=["s3://b/0.jpg"])])


def test_client_metadata_is_stored_as_json_reads_it_back() -> None:
    item = ImageItem(object_url="s3://b/a.jpg", client_metadata={"tags": ("a", "b"), "n": 1})
    assert item.client_metadata == {"tags": ["a", "b"], "n": 1}


def test_url_length_limit_is_16_kib_of_utf8() -> None:
    prefix = "s3://b/"
    at_limit = prefix + "k" * (MAX_URL_BYTES - len(prefix))
    assert ImageItem(object_url=at_limit).object_url == at_limit
    assert check_object_url(at_limit) is None
    over = at_limit[:-1] + "é"  # one more byte in UTF-8, same number of characters
    with pytest.raises(ValidationError, match=f"at most {MAX_URL_BYTES} bytes"):
        ImageItem(object_url=over)
    error = check_object_url(over, file="k/é")
    assert error is not None
    assert (error.code, error.file, error.expected) == (
        ErrorCode.URL_TOO_LONG,
        "k/é",
        f"an object URL of at most {MAX_URL_BYTES} bytes",
    )


def test_check_object_url_reports_malformed_urls() -> None:
    error = check_object_url("s3://b/a\tb.jpg")
    assert error is not None
    assert (error.code, error.file, error.value) == (
        ErrorCode.INVALID_URL,
        "s3://b/a\tb.jpg",
        repr("s3://b/a\tb.jpg"),
    )
    assert check_object_url("https://bucket.s3.eu-west-2.amazonaws.com/a%20b.jpg") is None


# --- chunking ----------------------------------------------------------------------------------


def images(count: int, start: int = 0, metadata: dict[str, Any] | None = None) -> list[ImageItem]:
    return [
        ImageItem(object_url=f"s3://b/img-{i:05d}.jpg", client_metadata=metadata or {})
        for i in range(start, start + count)
    ]


def groups(count: int, frames: int) -> list[ImageGroupItem]:
    return [
        ImageGroupItem(title=f"g{g}", frames=[f"s3://b/g{g}/{f:03d}.jpg" for f in range(frames)])
        for g in range(count)
    ]


def mixed_manifest() -> Manifest:
    items: list[Item] = [*images(7, metadata={"site": "depot"}), *groups(3, 4)]
    items += [VideoItem(object_url=f"s3://b/v{i}.mp4", client_metadata={"n": "x" * i * 9}) for i in range(6)]
    items += [
        DicomSeriesItem(title=f"s{i}", files=[f"s3://b/s{i}/{f}.dcm" for f in range(i + 1)]) for i in range(4)
    ]
    items += [TextItem(object_url="s3://b/t.txt"), PdfItem(object_url="s3://b/p.pdf")]
    return Manifest(items, skip_duplicate_urls=True, upsert_metadata=True)


def test_chunking_by_item_count_with_the_limit_exactly_met() -> None:
    manifest = Manifest(images(10))
    assert list(chunk_manifest(manifest, max_items=10)) == [manifest]
    chunks = list(chunk_manifest(manifest, max_items=4))
    assert [len(chunk) for chunk in chunks] == [4, 4, 2]
    assert [item for chunk in chunks for item in chunk.items] == manifest.items


def test_chunking_by_url_count_never_splits_a_group() -> None:
    manifest = Manifest(groups(5, 3))  # 15 URLs
    assert list(chunk_manifest(manifest, max_urls=15)) == [manifest]
    chunks = list(chunk_manifest(manifest, max_urls=7))
    assert [(len(chunk), chunk.url_count) for chunk in chunks] == [(2, 6), (2, 6), (1, 3)]


def test_chunking_by_bytes_with_the_limit_exactly_met() -> None:
    manifest = mixed_manifest()
    size = len(manifest.to_bytes())
    assert list(chunk_manifest(manifest, max_bytes=size)) == [manifest]
    chunks = list(chunk_manifest(manifest, max_bytes=size - 1))
    assert [len(chunk) for chunk in chunks] == [len(manifest) - 1, 1]
    assert all(len(chunk.to_bytes()) <= size - 1 for chunk in chunks)


@pytest.mark.parametrize("max_bytes", [400, 520, 777, 1500, 3000])
def test_byte_chunks_are_full_and_within_the_limit(max_bytes: int) -> None:
    manifest = mixed_manifest()
    chunks = list(chunk_manifest(manifest, max_bytes=max_bytes))
    assert [item for chunk in chunks for item in chunk.items] == manifest.items
    for chunk, following in itertools.pairwise(chunks):
        assert len(chunk.to_bytes()) <= max_bytes
        grown = Manifest([*chunk.items, following.items[0]], skip_duplicate_urls=True, upsert_metadata=True)
        assert len(grown.to_bytes()) > max_bytes  # greedy: the next item would not have fitted
    assert len(chunks[-1].to_bytes()) <= max_bytes


def test_chunks_keep_the_flags_and_respect_all_limits_at_once() -> None:
    manifest = mixed_manifest()
    chunks = list(chunk_manifest(manifest, max_items=5, max_urls=9, max_bytes=900))
    assert [item for chunk in chunks for item in chunk.items] == manifest.items
    for chunk in chunks:
        assert (chunk.skip_duplicate_urls, chunk.upsert_metadata) == (True, True)
        assert len(chunk) <= 5
        assert chunk.url_count <= 9
        assert len(chunk.to_bytes()) <= 900


def test_an_item_too_large_for_any_chunk_is_named_before_any_chunk() -> None:
    big = ImageItem(object_url="s3://b/big.jpg", client_metadata={"notes": "x" * 500})
    manifest = Manifest([*images(3), big])
    alone = len(Manifest([big]).to_bytes())
    with pytest.raises(ChunkLimitError) as raised:
        chunk_manifest(manifest, max_bytes=alone - 1)  # raises before iteration starts
    error = raised.value.error
    assert (error.code, error.file, error.value) == (ErrorCode.ITEM_TOO_LARGE, "s3://b/big.jpg", str(alone))
    assert str(raised.value) == error.message
    assert check_item_limits(big, max_bytes=alone - 1) == error
    assert check_item_limits(big, max_bytes=alone) is None
    assert [len(chunk) for chunk in chunk_manifest(manifest, max_bytes=alone)] == [3, 1]


def test_a_group_with_more_urls_than_a_chunk_holds_is_an_item_error() -> None:
    group = groups(1, 5)[0]
    with pytest.raises(ChunkLimitError) as raised:
        chunk_manifest(Manifest([group]), max_urls=4)
    assert (raised.value.error.code, raised.value.error.file, raised.value.error.value) == (
        ErrorCode.ITEM_TOO_LARGE,
        "s3://b/g0/000.jpg",
        "5",
    )


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_items": 0}, "max_items: expected 1..500000, got 0"),
        ({"max_items": 500_001}, "max_items: expected 1..500000, got 500001"),
        ({"max_urls": 1_000_001}, "max_urls: expected 1..1000000, got 1000001"),
        ({"max_bytes": 0}, "max_bytes: expected a positive number of bytes, got 0"),
    ],
)
def test_bad_limits_are_refused(limits: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        chunk_manifest(Manifest(images(1)), **limits)


def test_defaults_sit_well_below_encords_limits_and_empty_manifests_yield_nothing() -> None:
    assert (DEFAULT_MAX_ITEMS, DEFAULT_MAX_URLS, DEFAULT_MAX_BYTES) == (10_000, 100_000, 20 * 1024 * 1024)
    assert list(chunk_manifest(Manifest())) == []
    manifest = Manifest(images(DEFAULT_MAX_ITEMS + 1))
    assert [len(chunk) for chunk in chunk_manifest(manifest)] == [DEFAULT_MAX_ITEMS, 1]
