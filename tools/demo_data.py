"""A small, realistic demo dataset: every data kind, sidecars of every kind, one broken sidecar.

The media files are real enough for a person to open (Pillow images, a WAV tone, a one-page
PDF, DICOM slices from pydicom's bundled test files, and a 3 s H.264 MP4 of a moving colour bar
encoded with PyAV). Every object has the same bytes on every run (with the locked versions).
"""

from __future__ import annotations

import io
import json
import math
import struct
import wave
from collections.abc import Iterator

DAY_PREFIX = "raw/2026/11/20/"


def _image(width: int, height: int, colour: tuple[int, int, int], fmt: str = "JPEG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def _wav_tone(seconds: float = 0.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate)))
        out.writeframes(b"".join(struct.pack("<h", f) for f in frames))
    return buffer.getvalue()


def _pdf(text: str) -> bytes:
    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def mp4_clip(width: int, height: int, fps: int, frames: int, codec: str = "libx264") -> bytes:
    """A real MP4 of a colour bar moving left to right, encoded with PyAV (deterministic bytes)."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        if not isinstance(stream, av.VideoStream):
            raise ValueError(f"{codec!r} is not a video encoder")
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1  # threaded encoders split work by core count
        bar = max(width // 8, 2)
        for index in range(frames):
            picture = np.full((height, width, 3), (20, 20, 40), dtype=np.uint8)
            left = index * (width - bar) // max(frames - 1, 1)
            picture[:, left : left + bar] = (255, (index * 8) % 256, 0)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _dicom_series(count: int, series_uid: str) -> Iterator[tuple[str, bytes]]:
    import pydicom
    from pydicom.data import get_testdata_file

    template = get_testdata_file("CT_small.dcm", download=False)
    if not isinstance(template, str):
        raise RuntimeError("pydicom's bundled test file CT_small.dcm is missing")
    for number in range(1, count + 1):
        ds = pydicom.dcmread(template)
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = number
        ds.SOPInstanceUID = f"{series_uid}.{number}"
        buffer = io.BytesIO()
        ds.save_as(buffer)
        yield f"slice_{number:03d}.dcm", buffer.getvalue()


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2).encode()


def demo_objects(prefix: str = DAY_PREFIX) -> dict[str, bytes]:
    """Every object of the demo bucket, key -> bytes.

    Sidecar keys are short (``camera.model``); the demo source flattens nested objects and
    prefixes every key with ``fleet.`` to match ``include/schemas/example.yaml``.
    """
    objects: dict[str, bytes] = {
        f"{prefix}_defaults.yaml": b"capture:\n  site: depot-7\n  indoor: false\n",
        # Images: per-file sidecars in each naming convention, plus a folder table.
        f"{prefix}images/cam_front_0001.jpg": _image(64, 48, (200, 30, 30)),
        f"{prefix}images/cam_front_0001.jpg.json": _json({"camera": {"model": "fc-100", "exposure_ms": 8.5}}),
        f"{prefix}images/cam_front_0002.jpg": _image(64, 48, (30, 200, 30)),
        f"{prefix}images/cam_front_0002.json": _json(
            {"camera": {"model": "fc-100"}, "review": {"status": "pending"}}
        ),
        f"{prefix}images/cam_rear_0001.png": _image(64, 48, (30, 30, 200), "PNG"),
        f"{prefix}images/cam_rear_0001.png.metadata.json": _json(
            {"camera": {"model": "rc-7"}, "operator": "alice"}
        ),
        f"{prefix}images/metadata.csv": (
            b"file,capture.weather,capture.time,review.status\n"
            b"cam_front_0001.jpg,rain,2026-11-20T08:15:00+01:00,approved\n"
            b"cam_front_0002.jpg,clear,2026-11-20T09:00:00Z,\n"
            b"cam_rear_0001.png,fog,2026-11-20T10:30:00Z,approved\n"
            b"cam_side_0002.jpg,snow,2026-11-20T11:00:00Z,approved\n"
        ),
        # Two bad sidecars: each fails its own image with a precise reason; the rest still lands.
        f"{prefix}images/cam_side_0001.jpg": _image(64, 48, (90, 90, 90)),
        f"{prefix}images/cam_side_0001.jpg.json": b'{"camera": {"model": "sc-2"}, "review": }',
        f"{prefix}images/cam_side_0002.jpg": _image(64, 48, (60, 60, 60)),
        f"{prefix}images/cam_side_0002.jpg.json": _json({"camera": {"exposure_ms": "fast"}}),
        # Video with keyframes (unsorted, with a duplicate: normalised) and sampling config.
        f"{prefix}video/drive_0001.mp4": mp4_clip(64, 48, fps=30, frames=90),
        f"{prefix}video/drive_0001.mp4.yaml": (
            b"camera:\n  model: roof-4k\n  fps: 30\nkeyframes: [60, 0, 30, 30]\n"
            b"config:\n  sampling_rate: 2\n  keyframe_mode: frame\n"
        ),
        # Audio, PDF and text with sidecars.
        f"{prefix}audio/call_0001.wav": _wav_tone(),
        f"{prefix}audio/call_0001.wav.json": _json({"review": {"notes": "Driver call, clear audio."}}),
        f"{prefix}docs/inspection_0001.pdf": _pdf("Inspection report 0001"),
        f"{prefix}docs/inspection_0001.pdf.json": _json({"review": {"status": "approved"}}),
        f"{prefix}text/notes_0001.txt": b"Driver reported glare at the depot exit.\n",
        f"{prefix}text/notes_0001.txt.json": _json({"review": {"notes": "Transcribed by vendor."}}),
        # An image sequence (frames in natural order) and an image group, with folder defaults.
        f"{prefix}sequences/seq_0001/_defaults.yaml": b"camera:\n  model: roof-4k\n",
        f"{prefix}groups/group_0001/_defaults.yaml": b"capture:\n  indoor: true\n",
    }
    for index in (1, 2, 10, 11):
        objects[f"{prefix}sequences/seq_0001/frame_{index}.jpg"] = _image(32, 24, (index * 20, 0, 0))
    for name in ("left", "centre", "right"):
        objects[f"{prefix}groups/group_0001/{name}.jpg"] = _image(32, 24, (0, 120, 0))
    for name, data in _dicom_series(3, "1.2.826.0.1.3680043.8.498.1"):
        objects[f"{prefix}dicom/study_0001/{name}"] = data
    return objects
