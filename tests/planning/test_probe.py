"""Optional media probing: Pillow image headers from ranged reads, ffprobe for videos."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.manifest import ImageMetadata, VideoMetadata
from encord_ingest.probe import ProbeConfig, probe_image, probe_video, video_metadata_from_ffprobe
from encord_ingest.sources.local import LocalSource
from tests.planning.helpers import write_tree


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
    config = ProbeConfig(videos=True, ffprobe="ffprobe-that-is-not-installed")
    error = probe_video(source.read_bytes, "v/clip.mp4", 12, config)
    assert isinstance(error, ItemError)
    assert error.message == (
        "v/clip.mp4: expected a video ffprobe can read, 'ffprobe-that-is-not-installed' is not on the PATH "
        "[probe_failed]"
    )


@pytest.mark.skipif(
    shutil.which("ffprobe") is None or shutil.which("ffmpeg") is None,
    reason="FFmpeg (ffprobe, ffmpeg) is not installed on this machine and PyAV is not a dependency: "
    "the ffprobe path is implemented and its report parsing is tested, but no real video is probed",
)
def test_video_probe_with_ffprobe(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=2", str(clip)],
        check=True,
    )
    source = LocalSource(tmp_path)
    size = clip.stat().st_size
    for local_path in (str(clip), None):
        media = probe_video(source.read_bytes, "clip.mp4", size, ProbeConfig(videos=True), local_path)
        assert isinstance(media, VideoMetadata)
        assert (media.width, media.height, media.fps, media.mime_type) == (64, 48, 25.0, "video/mp4")
        assert media.duration == pytest.approx(2.0, abs=0.1)
