"""Inspect image bytes: format, size, colour space, content hash, and why a file cannot be used.

Pure module (no Dagster). Every outcome is a row: a file that cannot be used gets status "quarantined" and a
reason, never an exception, so one bad file never stops an ingest. `decode` is the pipeline's one decoder
(OpenCV, pixels normalized to 8 bits once): a file is usable only when it returns its pixels, so no later stage
meets a file it cannot read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import threading
import warnings

import cv2
import numpy as np
from PIL import Image

OK = "ok"
QUARANTINED = "quarantined"

DEFAULT_MAX_PIXELS = 40_000_000  # larger images are treated as decompression bombs
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# the most memory one decoded image may take (its header's width x height x channels x bytes per sample): an 8-bit
# colour image at the pixel limit fits; a 6300x6300 RGBA image of 16-bit samples (317 MB) does not
DEFAULT_MAX_DECODED_BYTES = 128 * 1024 * 1024
DEFAULT_MIN_SIDE = 16  # smaller images (e.g. 1x1) carry no face; FER-2013 is 48x48

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


# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): their segment holds the image size
_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))


def header_size(data: bytes, fmt: str | None) -> tuple[int, int] | None:
    """(width, height) read straight from a PNG's IHDR chunk or a JPEG's frame header, or None when the bytes
    do not show it plainly (then Pillow reads the header and names what is wrong). A few microseconds instead
    of Pillow's tens: for small faces the header parse was a third of the inspection time."""
    layout = header_layout(data, fmt)
    return layout[:2] if layout else None


# channels OpenCV decodes a PNG colour type to (grey, RGB, palette, grey + alpha, RGBA): a palette counts 4, as
# one with transparency decodes to BGRA
_PNG_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}


def header_layout(data: bytes, fmt: str | None) -> tuple[int, int, int, int] | None:
    """(width, height, channels, bytes per sample) of the decoded pixels, read from a PNG's IHDR chunk or a JPEG's
    frame header; None when the bytes do not show it plainly."""
    if fmt == "PNG":
        if len(data) >= 26 and data[12:16] == b"IHDR" and data[25] in _PNG_CHANNELS:
            width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
            return (width, height, _PNG_CHANNELS[data[25]], 2 if data[24] == 16 else 1) if width and height else None
        return None
    if fmt != "JPEG":
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # image data before any frame header: not plain
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if length < 8 or i + 10 > n:
                return None
            height, width = (data[i + 5] << 8) | data[i + 6], (data[i + 7] << 8) | data[i + 8]
            channels = 1 if data[i + 9] == 1 else 3
            return (width, height, channels, 2 if data[i + 4] > 8 else 1) if width and height else None
        i += 2 + length
    return None


def _pillow_layout(header: Image.Image) -> tuple[int, int, int, int]:
    """header_layout's values from a header Pillow opened (any format), channels counted high: 4 unless grey."""
    from PIL import ImageMode

    mode = ImageMode.getmode(header.mode)
    channels = 1 if len(mode.bands) == 1 and header.mode != "P" else 4
    return (*header.size, channels, np.dtype(mode.typestr).itemsize)


def _truncation_problem(data: bytes, fmt: str) -> str | None:
    # searched in place in the last KiB (a slice would copy it, a sizeable share of a small face's cost)
    start = max(0, len(data) - 1024)
    if fmt == "JPEG" and data.find(b"\xff\xd9", start) < 0:
        return "truncated JPEG: no end-of-image marker"
    if fmt == "PNG" and data.find(b"IEND", start) < 0:
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
    """Decode bytes to 8-bit pixels as every stage uses them (grey 2-D, BGR or BGRA); None when OpenCV cannot
    decode them or their samples are not integers of 8 or 16 bits. The one decoder of the pipeline: ingest
    keeps an image only when this returns its pixels."""
    return normalize(_imdecode(data))[0]


def _imdecode(data: bytes) -> np.ndarray | None:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def normalize(pixels: np.ndarray | None) -> tuple[np.ndarray | None, str | None]:
    """(8-bit pixels, None) or (None, why not): 16-bit samples keep their high byte (in place, no second
    full-depth copy); grey is 2-D; other sample types and channel counts are refused."""
    if pixels is None:
        return None, None
    if pixels.dtype == np.uint16:
        np.right_shift(pixels, 8, out=pixels)
        pixels = pixels.astype(np.uint8)
    elif pixels.dtype != np.uint8:
        return None, f"samples of type {pixels.dtype.name} (only 8- or 16-bit integers are read)"
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] == 2:  # grey + alpha (OpenCV expands it; kept for other builds)
        pixels = pixels[:, :, 0]
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (3, 4)):
        return None, f"pixels of shape {pixels.shape} (grey, BGR or BGRA expected)"
    return pixels, None


# libjpeg's warnings that mean the data is damaged: it goes on decoding (grey or smeared blocks) and only prints
# them on stderr, so OpenCV and Pillow both return pixels. They are caught on the stderr file descriptor.
_LIBJPEG_CORRUPT = re.compile(
    rb"^(Corrupt JPEG data[^\n]*|Premature end of JPEG file|Invalid SOS parameters[^\n]*"
    rb"|Inconsistent progression sequence[^\n]*)$", re.MULTILINE
)


class _StderrCapture:
    """Runs a call with file descriptor 2 pointed at a temporary file of this process and returns what was written.

    A lock keeps threads of one process from interleaving; each process (workers are forked) has its own file.
    Lines that are not libjpeg's are written back to the real stderr afterwards. Inside `held()` the descriptor
    stays pointed at the file for many calls (a folder chunk): each call then costs one lseek instead of five
    system calls, and whatever else was written meanwhile goes back to stderr when the block ends.
    """

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.lock = threading.RLock()
        self._file = None
        self._saved: int | None = None  # the real stderr while held() redirects it

    def _fd(self) -> int:
        if self._file is None:
            self._file = tempfile.TemporaryFile()
        return self._file.fileno()

    def _drain(self, fd: int) -> bytes:
        size = os.lseek(fd, 0, os.SEEK_END)
        if not size:
            return b""
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, size)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        return text

    @contextlib.contextmanager
    def held(self):
        """Keep stderr redirected for the calls of this block (same thread)."""
        with self.lock:
            if self._saved is not None:  # already held further up
                yield
                return
            saved = None
            try:
                fd = self._fd()
                saved = os.dup(2)
                os.dup2(fd, 2)
            except OSError:
                if saved is not None:
                    os.close(saved)
                yield
                return
            self._saved = saved
            try:
                yield
            finally:
                saved, self._saved = self._saved, None
                os.dup2(saved, 2)
                os.close(saved)
                rest = self._drain(fd)
                if rest:
                    with contextlib.suppress(OSError):
                        os.write(2, rest)

    def write_back(self, text: bytes) -> None:
        """Hand output that was not libjpeg's to the real stderr (held() has it aside meanwhile)."""
        with self.lock, contextlib.suppress(OSError):
            os.write(self._saved if self._saved is not None else 2, text)

    def run(self, fn, *args):
        with self.lock:
            if self._saved is not None:  # inside held(): fd 2 already points at the file
                result = fn(*args)
                return result, self._drain(self._file.fileno())
            try:
                fd = self._fd()
                saved = os.dup(2)
            except OSError:  # no stderr to borrow: decode without the check
                return fn(*args), b""
            try:
                os.dup2(fd, 2)
                try:
                    result = fn(*args)
                finally:
                    os.dup2(saved, 2)
            finally:
                os.close(saved)
            text = self._drain(fd)
        return result, text


_STDERR = _StderrCapture()


# libpng's messages (an error makes OpenCV return nothing; the message says why)
_LIBPNG_ERROR = re.compile(rb"^libpng error: ([^\n]*)$", re.MULTILINE)


def decode_checked(data: bytes, fmt: str | None = None) -> tuple[np.ndarray | None, str | None]:
    """decode()'s pixels, or None and the reason the file cannot be used: libjpeg's corruption warning (it
    returned smeared pixels), libpng's error, or samples that are refused."""
    fmt = fmt or sniff_format(data)
    said = None
    if fmt in ("JPEG", "PNG"):
        pixels, printed = _STDERR.run(_imdecode, data)
        if printed:
            pattern = _LIBJPEG_CORRUPT if fmt == "JPEG" else _LIBPNG_ERROR
            found = pattern.search(printed)
            other = pattern.sub(b"", printed).strip()
            if other:  # someone else's output (or a harmless warning) caught in passing: hand it back
                _STDERR.write_back(other + b"\n")
            said = found.group(1).decode("ascii", "replace") if found else None
    else:
        pixels = _imdecode(data)
    if said and fmt == "JPEG":
        return None, f"corrupt JPEG: {said}"
    if pixels is None:
        return None, f"corrupt {fmt}: cannot decode pixels" + (f" ({said})" if said else "")
    pixels, refused = normalize(pixels)
    return (pixels, None) if refused is None else (None, f"unsupported {fmt}: {refused}")


def held_stderr():
    """A block in which many inspect_image calls share one redirect of stderr (see _StderrCapture.held)."""
    return _STDERR.held()


def inspect_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
    min_side: int = DEFAULT_MIN_SIDE, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
) -> dict:
    """Describe one image file's bytes. Returns a dict with INSPECTION_FIELDS; status 'ok' or 'quarantined'."""
    return dict(zip(INSPECTION_FIELDS, inspect_values(data, max_pixels, max_bytes, min_side, max_decoded_bytes)))


def _bad(data: bytes, digest: str, fmt: str | None, reason: str) -> tuple:
    return None, None, None, fmt, None, len(data), digest, QUARANTINED, reason


def inspect_values(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
                   min_side: int = DEFAULT_MIN_SIDE, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> tuple:
    """inspect_image's values as a tuple in INSPECTION_FIELDS order (a folder ingest builds Arrow columns from
    them: no dict per file). A file is usable only when decode() - the decoder of every later stage - returns
    its pixels; its decoded size is checked on the header first, so memory stays bounded by max_decoded_bytes."""
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return _bad(data, digest, None, "empty file (0 bytes)")
    if len(data) > max_bytes:
        return _bad(data, digest, None, f"file too large: {len(data)} bytes > limit {max_bytes}")
    fmt = sniff_format(data)
    if fmt is None:
        return _bad(data, digest, None, "not an image: unrecognised file signature")
    layout = header_layout(data, fmt)
    if layout is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                layout = _pillow_layout(Image.open(io.BytesIO(data)))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            return _bad(data, digest, fmt, "decompression bomb: declared size is too large")
        except Exception as exc:  # PIL raises many types for broken headers
            return _bad(data, digest, fmt, f"unreadable {fmt} header: {type(exc).__name__}")
    width, height, channels, sample_bytes = layout
    if width <= 0 or height <= 0:
        return _bad(data, digest, fmt, f"invalid size {width}x{height}")
    if width * height > max_pixels:
        return _bad(data, digest, fmt,
                    f"decompression bomb: {width}x{height} = {width * height} pixels > limit {max_pixels}")
    if min(width, height) < min_side:
        return _bad(data, digest, fmt, f"too small: {width}x{height} px, the shorter side is under {min_side} px")
    decoded = width * height * channels * sample_bytes
    if decoded > max_decoded_bytes:
        return _bad(data, digest, fmt, f"too large to decode: {width}x{height} x {channels} channels x "
                    f"{sample_bytes} bytes = {decoded:,} bytes > limit {max_decoded_bytes:,}")
    problem = _truncation_problem(data, fmt)
    if problem:
        return _bad(data, digest, fmt, problem)
    pixels, problem = decode_checked(data, fmt)
    if pixels is None:
        return _bad(data, digest, fmt, problem)
    if pixels.shape[0] != height or pixels.shape[1] != width:
        return _bad(data, digest, fmt,
                    f"corrupt {fmt}: header says {width}x{height}, pixels are {pixels.shape[1]}x{pixels.shape[0]}")
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
    return int(height), int(width), channels, fmt, color_space_of(pixels), len(data), digest, OK, None


def aspect_ratio(width: int | None, height: int | None) -> float | None:
    """Width over height, rounded to 4 places (1.0 means square), as the study's aspect_ratio column."""
    if not width or not height:
        return None
    return round(width / height, 4)
