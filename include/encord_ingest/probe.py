"""Optional media probing, for Encord's "strict client-only" integrations. Off by default.

Encord trusts ``imageMetadata`` / ``videoMetadata`` sent at registration instead of opening the
file itself. Images: width, height and MIME type from the header, read with Pillow from the
first bytes of the object (a ranged read, doubled a few times when a large EXIF block pushes the
size past the first read). Videos, by ``ProbeConfig.video_backend``:

- ``pyav``: PyAV (the ``av`` package, whose wheels bundle FFmpeg's libraries) in-process, so no
  FFmpeg is needed on the PATH; imported only when a video is probed;
- ``ffprobe``: the ``ffprobe`` executable (FFmpeg) on the PATH;
- ``auto`` (default): PyAV when importable, else ffprobe when on the PATH, else every video fails.

Local objects are probed in place. Others are read whole (up to ``video_max_bytes``), since MP4's
index may sit at the end: into memory for PyAV, into a temporary file for ffprobe (which cannot
seek in a pipe). Every failure is a ``probe_failed`` :class:`~encord_ingest.errors.ItemError`
for that item only.
"""

from __future__ import annotations

import importlib.util
import io
import json
import mimetypes
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

from encord_ingest.errors import ErrorCode, ItemError
from encord_ingest.manifest import ImageMetadata, TextMetadata, VideoMetadata

ReadBytes = Callable[[str, int | None], bytes]
"""``read(key, max_bytes)``: a source's ranged read (``Source.read_bytes``)."""

VideoBackend = Literal["pyav", "ffprobe"]
BACKEND_NAMES: dict[VideoBackend, str] = {"pyav": "PyAV", "ffprobe": "ffprobe"}

VIDEO_MIME_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".ogv": "video/ogg",
    ".ogg": "video/ogg",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
}


class ProbeConfig(BaseModel):
    """Which media to probe and how much to read. Both probes are off by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    images: bool = False
    videos: bool = False
    image_header_bytes: int = Field(default=64 * 1024, ge=1024)
    image_max_header_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    video_backend: Literal["auto", "pyav", "ffprobe"] = "auto"
    """``auto``: PyAV when importable, else ffprobe when on the PATH (see the module docstring)."""
    ffprobe: str = "ffprobe"
    ffprobe_timeout_s: float = Field(default=60.0, gt=0)
    video_max_bytes: int = Field(default=512 * 1024**2, ge=1)
    client_only: bool = False
    """The integration is "strict client-only": Encord never opens the files, so every item must
    carry media metadata. Images and videos are then probed whatever ``images``/``videos`` say,
    text gets its size and MIME type, and items of kinds the pipeline cannot describe (audio,
    PDF, NIfTI, DICOM) fail at planning with ``probe_failed`` instead of failing in Encord."""

    @property
    def probe_images(self) -> bool:
        return self.images or self.client_only

    @property
    def probe_videos(self) -> bool:
        return self.videos or self.client_only


def _probe_error(file: str, expected: str, detail: str) -> ItemError:
    return ItemError.of(ErrorCode.PROBE_FAILED, file, expected=expected, detail=detail)


#: Kinds whose media metadata this pipeline cannot compute (Encord's audio and PDF metadata need
#: a decoder; NIfTI and DICOM have no client-side metadata form at all).
NOT_DESCRIBABLE = {"audio": "audioMetadata", "pdf": "pdfMetadata", "nifti": None, "dicom_series": None}


def client_only_error(kind: str, key: str) -> ItemError:
    """Why an item of ``kind`` cannot go through a strict client-only integration."""
    needed = NOT_DESCRIBABLE.get(kind)
    detail = (
        f"a strict client-only integration needs {needed}, which the pipeline cannot compute for {kind} files"
        if needed
        else f"a strict client-only integration cannot take {kind} items: Encord has no client-side "
        "metadata for them"
    )
    return _probe_error(key, "images, image groups, videos or text (probe.client_only)", detail)


def text_metadata(key: str, size: int) -> TextMetadata:
    """``textMetadata`` from the listing alone: the size, and the MIME type by extension."""
    return TextMetadata(file_size=size, mime_type=mimetypes.guess_type(key)[0] or "text/plain")


def image_size_from_header(head: bytes) -> tuple[int, int, str]:
    """``(width, height, mime type)`` from the first bytes of an image (raises on failure)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(head)) as image:
            mime = image.get_format_mimetype() or Image.MIME.get(image.format or "", "")
            if not mime:
                raise ValueError(f"no MIME type known for format {image.format!r}")
            return image.width, image.height, mime


def probe_image(read: ReadBytes, key: str, size: int, config: ProbeConfig) -> ImageMetadata | ItemError:
    """``imageMetadata`` of one image from ranged reads of its header."""
    limit = config.image_header_bytes
    while True:
        head = read(key, limit)
        try:
            width, height, mime = image_size_from_header(head)
        except Exception as exc:  # noqa: BLE001 (recorded as the item's probe error, or read more)
            whole = len(head) >= size or len(head) < limit
            if whole or limit >= config.image_max_header_bytes:
                return _probe_error(key, "an image header Pillow can read", f"{type(exc).__name__}: {exc}")
            limit = min(limit * 4, config.image_max_header_bytes)
            continue
        return ImageMetadata(mime_type=mime, file_size=size, width=width, height=height)


def ffprobe_available(config: ProbeConfig) -> bool:
    """True when the configured ffprobe executable is on the PATH."""
    return shutil.which(config.ffprobe) is not None


def _rate(text: Any) -> float:
    if not isinstance(text, str) or not text or text.startswith("0/"):
        return 0.0
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return 0.0


def video_metadata_from_ffprobe(report: dict[str, Any], *, file_size: int, mime_type: str) -> VideoMetadata:
    """``videoMetadata`` from ``ffprobe -show_streams -show_format -of json`` output (raises on gaps)."""
    streams = [s for s in report.get("streams", []) if s.get("codec_type") == "video"]
    if not streams:
        raise ValueError("no video stream")
    stream = streams[0]
    fps = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))
    duration = float(stream.get("duration") or report.get("format", {}).get("duration") or 0)
    return VideoMetadata(
        fps=fps,
        duration=duration,
        width=int(stream["width"]),
        height=int(stream["height"]),
        file_size=file_size,
        mime_type=mime_type,
    )


def run_ffprobe(path: str, config: ProbeConfig) -> dict[str, Any]:
    """ffprobe's JSON report of a local path or URL (raises on failure)."""
    command = [config.ffprobe, "-v", "error", "-print_format", "json", "-show_streams", "-show_format", path]
    done = subprocess.run(command, capture_output=True, timeout=config.ffprobe_timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode("utf-8", "replace").strip()[:300] or f"exit {done.returncode}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def pyav_available() -> bool:
    """True when PyAV (the ``av`` package) is installed; does not import it."""
    return importlib.util.find_spec("av") is not None


def choose_video_backend(config: ProbeConfig) -> VideoBackend | None:
    """The backend ``config.video_backend`` names, or for ``auto`` the first one present (None if none)."""
    if config.video_backend != "auto":
        return config.video_backend
    if pyav_available():
        return "pyav"
    if ffprobe_available(config):
        return "ffprobe"
    return None


def video_metadata_from_pyav(source: str | BinaryIO, *, file_size: int, mime_type: str) -> VideoMetadata:
    """``videoMetadata`` of a local path or seekable binary file, read with PyAV (raises on failure)."""
    import av

    with av.open(source, mode="r") as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        return VideoMetadata(
            fps=float(rate or 0),
            duration=duration,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            file_size=file_size,
            mime_type=mime_type,
        )


def _describe(exc: Exception) -> str:
    """``Type: reason``; FFmpeg errors without their errno and placeholder file name."""
    reason = getattr(exc, "strerror", None) if type(exc).__module__ == "av.error" else None
    return f"{type(exc).__name__}: {reason or exc}"


def video_mime_type(key: str) -> str:
    """The MIME type of a video key by extension (``video/mp4`` when unknown)."""
    return VIDEO_MIME_TYPES.get(Path(key).suffix.lower(), "video/mp4")


def _missing_backend(backend: VideoBackend, config: ProbeConfig) -> str | None:
    """Why the chosen backend cannot run here (None when it can)."""
    if backend == "pyav" and not pyav_available():
        return "PyAV (the 'av' package) is not installed"
    if backend == "ffprobe" and not ffprobe_available(config):
        return f"{config.ffprobe!r} is not on the PATH"
    return None


def _probe_with(
    backend: VideoBackend,
    read: ReadBytes,
    key: str,
    size: int,
    *,
    config: ProbeConfig,
    local_path: str | None,
) -> VideoMetadata:
    mime_type = video_mime_type(key)
    if backend == "pyav":
        source = local_path if local_path is not None else io.BytesIO(read(key, None))
        return video_metadata_from_pyav(source, file_size=size, mime_type=mime_type)
    if local_path is not None:
        report = run_ffprobe(local_path, config)
    else:
        with tempfile.NamedTemporaryFile(suffix=Path(key).suffix) as copy:
            copy.write(read(key, None))
            copy.flush()
            report = run_ffprobe(copy.name, config)
    return video_metadata_from_ffprobe(report, file_size=size, mime_type=mime_type)


def probe_video(
    read: ReadBytes, key: str, size: int, config: ProbeConfig, local_path: str | None = None
) -> VideoMetadata | ItemError:
    """``videoMetadata`` of one video (``local_path`` avoids reading a local object into memory)."""
    backend = choose_video_backend(config)
    if backend is None:
        detail = f"PyAV (the 'av' package) is not installed and {config.ffprobe!r} is not on the PATH"
        return _probe_error(key, "a video PyAV or ffprobe can read", detail)
    expected = f"a video {BACKEND_NAMES[backend]} can read"
    missing = _missing_backend(backend, config)
    if missing is not None:
        return _probe_error(key, expected, missing)
    if local_path is None and size > config.video_max_bytes:
        return _probe_error(key, expected, f"{size} bytes exceed video_max_bytes={config.video_max_bytes}")
    try:
        return _probe_with(backend, read, key, size, config=config, local_path=local_path)
    except Exception as exc:  # noqa: BLE001 (recorded as the item's probe error)
        return _probe_error(key, expected, _describe(exc))
