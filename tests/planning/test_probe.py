"""Optional media probing: Pillow image headers from ranged reads; PyAV or ffprobe for videos."""

from __future__ import annotations

import io
import shutil
import sys
import wave
from pathlib import Path
from typing import Any

import pytest
from demo_data import mp4_clip

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.manifest import ImageMetadata, VideoMetadata
from encord_ingest.probe import (
    ProbeConfig,
    choose_video_backend,
    probe_image,
    probe_video,
    video_metadata_from_ffprobe,
)
from encord_ingest.sources.local import LocalSource
from tests.planning.helpers import png, write_tree


def jpeg_with_big_exif(width: int, height: int, exif_bytes: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(
        buffer, format="JPEG", exif=b"Exif\x00\x00" + b"\x00" * exif_bytes
    )
    return buffer.getvalue()


def test_image_header_reads_grow_past_a_large_exif_block(tmp_path: Path) -> None:
    data = jpeg_with_big_exif(33, 21, 30_000)
    write_tree(tmp_path, {"a.jpg": data})
    source = LocalSource(tmp_path)
    reads: list[int | None] = []

    def read(key: str, max_bytes: int | None) -> bytes:
        reads.append(max_bytes)
        return source.read_bytes(key, max_bytes)

    media = probe_image(read, "a.jpg", len(data), ProbeConfig(images=True, image_header_bytes=1024))
    assert media == ImageMetadata(mime_type="image/jpeg", file_size=len(data), width=33, height=21)
    assert reads == [1024, 4096, 16384, 65536]


def test_image_probe_failure_is_an_item_error(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.jpg": b"\xff\xd8\xff garbage"})
    source = LocalSource(tmp_path)
    error = probe_image(source.read_bytes, "a.jpg", 13, ProbeConfig(images=True))
    assert isinstance(error, ItemError)
    assert (error.code, error.file) == (ErrorCode.PROBE_FAILED, "a.jpg")
    assert error.expected == "an image header Pillow can read"


FFPROBE_REPORT: dict[str, Any] = {
    "streams": [
        {"index": 0, "codec_type": "audio", "sample_rate": "48000"},
        {
            "index": 1,
            "codec_type": "video",
            "codec_name": "h264",
            "width": 1920,
            "height": 1080,
            "r_frame_rate": "30000/1001",
            "avg_frame_rate": "30000/1001",
            "duration": "12.512500",
        },
    ],
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "12.540000", "size": "1048576"},
}


def test_video_metadata_from_an_ffprobe_report() -> None:
    media = video_metadata_from_ffprobe(FFPROBE_REPORT, file_size=1048576, mime_type="video/mp4")
    assert media == VideoMetadata(
        fps=30000 / 1001, duration=12.5125, width=1920, height=1080, file_size=1048576, mime_type="video/mp4"
    )
    no_stream_duration = {
        "streams": [{**FFPROBE_REPORT["streams"][1], "duration": None}],
        "format": {"duration": "3.5"},
    }
    assert (
        video_metadata_from_ffprobe(no_stream_duration, file_size=1, mime_type="video/webm").duration == 3.5
    )
    with pytest.raises(ValueError, match="no video stream"):
        video_metadata_from_ffprobe(
            {"streams": [FFPROBE_REPORT["streams"][0]]}, file_size=1, mime_type="video/mp4"
        )


def test_video_probe_without_ffprobe_is_a_precise_item_error(tmp_path: Path) -> None:
    write_tree(tmp_path, {"v/clip.mp4": b"\x00\x00\x00\x18ftypisom"})
    source = LocalSource(tmp_path)
    config = ProbeConfig(videos=True, video_backend="ffprobe", ffprobe="ffprobe-that-is-not-installed")
    error = probe_video(source.read_bytes, "v/clip.mp4", 12, config)
    assert isinstance(error, ItemError)
    assert error.message == (
        "v/clip.mp4: expected a video ffprobe can read, 'ffprobe-that-is-not-installed' is not on the PATH "
        "[probe_failed]"
    )


def test_auto_backend_prefers_pyav_then_ffprobe_then_fails_precisely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = ProbeConfig(videos=True, ffprobe="ffprobe-that-is-not-installed")
    assert choose_video_backend(absent) == "pyav"
    # PyAV is installed here; an absent package is simulated the way Python itself marks one.
    monkeypatch.setitem(sys.modules, "av", None)
    assert choose_video_backend(absent) is None
    assert choose_video_backend(absent.model_copy(update={"ffprobe": sys.executable})) == "ffprobe"
    write_tree(tmp_path, {"v/clip.mp4": b"\x00\x00\x00\x18ftypisom"})
    read = LocalSource(tmp_path).read_bytes
    pyav = ProbeConfig(videos=True, video_backend="pyav")
    errors = [probe_video(read, "v/clip.mp4", 12, config) for config in (absent, pyav)]
    assert [error.message for error in errors if isinstance(error, ItemError)] == [
        "v/clip.mp4: expected a video PyAV or ffprobe can read, PyAV (the 'av' package) is not installed "
        "and 'ffprobe-that-is-not-installed' is not on the PATH [probe_failed]",
        "v/clip.mp4: expected a video PyAV can read, PyAV (the 'av' package) is not installed [probe_failed]",
    ]


def test_video_probe_with_pyav_on_a_real_mp4(tmp_path: Path) -> None:
    data = mp4_clip(64, 48, fps=24, frames=12, codec="mpeg4")
    write_tree(tmp_path, {"v/clip.mp4": data})
    source = LocalSource(tmp_path)
    reads: list[int | None] = []

    def read(key: str, max_bytes: int | None) -> bytes:
        reads.append(max_bytes)
        return source.read_bytes(key, max_bytes)

    config = ProbeConfig(videos=True, video_backend="pyav")
    for local_path in (str(source.path("v/clip.mp4")), None):
        media = probe_video(read, "v/clip.mp4", len(data), config, local_path)
        assert isinstance(media, VideoMetadata)
        assert (media.width, media.height, media.fps, media.mime_type, media.file_size) == (
            64,
            48,
            24.0,
            "video/mp4",
            len(data),
        )
        assert media.duration == pytest.approx(12 / 24, abs=1 / 24)
    assert reads == [None]
    capped = probe_video(read, "v/clip.mp4", len(data), config.model_copy(update={"video_max_bytes": 100}))
    assert isinstance(capped, ItemError)
    assert capped.detail == f"{len(data)} bytes exceed video_max_bytes=100"
    assert reads == [None]


def test_video_probe_with_pyav_fails_per_item(tmp_path: Path) -> None:
    clip = mp4_clip(64, 48, fps=24, frames=12, codec="mpeg4")
    write_tree(
        tmp_path,
        {"v/broken.mp4": b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64, "v/cut.mov": clip[: len(clip) // 2]},
    )
    source = LocalSource(tmp_path)
    config = ProbeConfig(videos=True, video_backend="pyav")
    for local_path in (str(source.path("v/broken.mp4")), None):
        error = probe_video(source.read_bytes, "v/broken.mp4", 80, config, local_path)
        assert isinstance(error, ItemError)
        assert error.message == (
            "v/broken.mp4: expected a video PyAV can read, "
            "InvalidDataError: Invalid data found when processing input [probe_failed]"
        )
    cut = probe_video(source.read_bytes, "v/cut.mov", len(clip) // 2, config)
    assert isinstance(cut, ItemError)
    assert (cut.code, cut.file, cut.expected) == (
        ErrorCode.PROBE_FAILED,
        "v/cut.mov",
        "a video PyAV can read",
    )


def test_video_probe_of_a_file_without_video_stream(tmp_path: Path) -> None:
    silence = io.BytesIO()
    with wave.open(silence, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 800)
    write_tree(tmp_path, {"a/tone.mp4": silence.getvalue()})
    source = LocalSource(tmp_path)
    error = probe_video(source.read_bytes, "a/tone.mp4", 1, ProbeConfig(videos=True, video_backend="pyav"))
    assert isinstance(error, ItemError)
    assert error.detail == "ValueError: no video stream"


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (FFmpeg) is not on the PATH")
def test_video_probe_with_ffprobe(tmp_path: Path) -> None:
    data = mp4_clip(64, 48, fps=25, frames=50)
    write_tree(tmp_path, {"clip.mp4": data})
    source = LocalSource(tmp_path)
    config = ProbeConfig(videos=True, video_backend="ffprobe")
    for local_path in (str(source.path("clip.mp4")), None):
        media = probe_video(source.read_bytes, "clip.mp4", len(data), config, local_path)
        assert isinstance(media, VideoMetadata)
        assert (media.width, media.height, media.fps, media.mime_type) == (64, 48, 25.0, "video/mp4")
        assert media.duration == pytest.approx(2.0, abs=1 / 25)


def test_strict_client_only_probes_everything_it_can_and_fails_the_rest_at_planning(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from encord_ingest.grouping import Draft
    from encord_ingest.manifest import ImageItem, TextItem
    from encord_ingest.scan.items import build_item
    from encord_ingest.sources.base import ObjectInfo

    write_tree(tmp_path, {"a.png": png(5, 7), "notes.txt": "hello", "tone.wav": b"RIFF", "s/1.dcm": b"x"})
    source = LocalSource(tmp_path)

    def draft(kind: str, *keys: str) -> Draft:
        members = [
            ObjectInfo(
                key=k, size=(tmp_path / k).stat().st_size, version="v", last_modified=datetime.now(UTC)
            )
            for k in keys
        ]
        return Draft(kind=kind, title=keys[0], members=members, metadata_key=keys[0])

    strict = ProbeConfig(client_only=True)  # images/videos flags left off: client_only implies them
    image = build_item(draft("image", "a.png"), ["https://b.s3.amazonaws.com/a.png"], {}, source, strict)
    assert isinstance(image, ImageItem)
    assert image.image_metadata is not None
    assert (image.image_metadata.width, image.image_metadata.height) == (5, 7)
    text = build_item(
        draft("text", "notes.txt"), ["https://b.s3.amazonaws.com/notes.txt"], {}, source, strict
    )
    assert isinstance(text, TextItem)
    assert text.text_metadata is not None
    assert (text.text_metadata.file_size, text.text_metadata.mime_type) == (5, "text/plain")
    audio = build_item(
        draft("audio", "tone.wav"), ["https://b.s3.amazonaws.com/tone.wav"], {}, source, strict
    )
    assert isinstance(audio, ItemError)
    assert audio.code is ErrorCode.PROBE_FAILED
    assert "needs audioMetadata" in audio.message
    assert "tone.wav" in audio.message
    series = build_item(
        draft("dicom_series", "s/1.dcm"), ["https://b.s3.amazonaws.com/s/1.dcm"], {}, source, strict
    )
    assert isinstance(series, ItemError)
    assert "cannot take dicom_series items" in series.message
    # Without the option nothing is probed and nothing fails.
    plain = build_item(
        draft("audio", "tone.wav"), ["https://b.s3.amazonaws.com/tone.wav"], {}, source, ProbeConfig()
    )
    assert not isinstance(plain, ItemError)
