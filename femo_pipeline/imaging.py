"""Inspect image bytes: format, size, colour space, content hash, and why a file cannot be used.

Pure module (no Dagster). Every outcome is a row: a file that cannot be used gets status "quarantined" and a
reason, never an exception, so one bad file never stops an ingest.
"""

from __future__ import annotations

import hashlib
import io
import warnings

import cv2
import numpy as np
from PIL import Image

OK = "ok"
QUARANTINED = "quarantined"

DEFAULT_MAX_PIXELS = 40_000_000  # larger images are treated as decompression bombs
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

# Magic numbers of the formats we accept, checked on the bytes (never trust the file name).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
)

# Dagster metadata / warehouse column names of one inspection row.
INSPECTION_FIELDS = (
    "height", "width", "channels", "image_format", "color_space", "file_size_bytes", "content_hash", "status", "reason",
)


def sniff_format(data: bytes) -> str | None:
    """The image format named by the file's leading bytes, or None."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _truncation_problem(data: bytes, fmt: str) -> str | None:
    tail = data[-1024:]
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        return "truncated JPEG: no end-of-image marker"
    if fmt == "PNG" and b"IEND" not in tail:
        return "truncated PNG: no IEND chunk"
    return None


def color_space_of(pixels: np.ndarray) -> str:
    """'Grayscale' when every pixel has equal channels (whatever the storage), else 'RGB' (the study's values)."""
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return "Grayscale"
    colour = pixels[:, :, :3]
    if np.array_equal(colour[:, :, 0], colour[:, :, 1]) and np.array_equal(colour[:, :, 1], colour[:, :, 2]):
        return "Grayscale"
    return "RGB"


def decode(data: bytes) -> np.ndarray | None:
    """Decode bytes to a numpy array as stored (grey, BGR or BGRA); None when OpenCV cannot decode them."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Describe one image file's bytes. Returns a dict with INSPECTION_FIELDS; status 'ok' or 'quarantined'."""
    row = dict.fromkeys(INSPECTION_FIELDS)
    row["file_size_bytes"] = len(data)
    row["content_hash"] = content_hash(data)

    def bad(reason: str) -> dict:
        row["status"], row["reason"] = QUARANTINED, reason
        return row

    if not data:
        return bad("empty file (0 bytes)")
    if len(data) > max_bytes:
        return bad(f"file too large: {len(data)} bytes > limit {max_bytes}")
    fmt = sniff_format(data)
    row["image_format"] = fmt
    if fmt is None:
        return bad("not an image: unrecognised file signature")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            header = Image.open(io.BytesIO(data))
            width, height = header.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return bad("decompression bomb: declared size is too large")
    except Exception as exc:  # PIL raises many types for broken headers
        return bad(f"unreadable {fmt} header: {type(exc).__name__}")
    if width <= 0 or height <= 0:
        return bad(f"invalid size {width}x{height}")
    if width * height > max_pixels:
        return bad(f"decompression bomb: {width}x{height} = {width * height} pixels > limit {max_pixels}")
    problem = _truncation_problem(data, fmt)
    if problem:
        return bad(problem)
    pixels = decode(data)
    if pixels is None:
        # OpenCV cannot read GIF/WEBP builds everywhere: fall back to Pillow before giving up.
        try:
            pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        except Exception as exc:
            return bad(f"corrupt {fmt}: cannot decode pixels ({type(exc).__name__})")
    if pixels.shape[0] != height or pixels.shape[1] != width:
        return bad(f"corrupt {fmt}: header says {width}x{height}, pixels are {pixels.shape[1]}x{pixels.shape[0]}")
    row.update(
        height=int(height),
        width=int(width),
        channels=1 if pixels.ndim == 2 else int(pixels.shape[2]),
        color_space=color_space_of(pixels),
        status=OK,
    )
    return row


def aspect_ratio(width: int | None, height: int | None) -> float | None:
    """Width over height, rounded to 4 places (1.0 means square), as the study's aspect_ratio column."""
    if not width or not height:
        return None
    return round(width / height, 4)
