"""Pure functions: emotion vocabulary and image inspection."""

from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from femo_pipeline import imaging
from femo_pipeline.vocab import EMOTIONS, emotion_id
from femo_pipeline_tests.conftest import FER2013_DIR, requires_fer2013


def encode(img: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    "label,expected",
    [("angry", 0), ("Anger", 0), ("disgust", 1), ("fear", 2), ("happy", 3), ("happiness", 3), ("sad", 4),
     ("sadness", 4), ("surprise", 5), ("neutral", 6), ("neutrality", 6), ("contempt", 7), (" Happy ", 3)],
)
def test_emotion_aliases_map_to_study_ids(label, expected):
    assert emotion_id(label) == expected


def test_unknown_label_is_none_and_vocabulary_matches_study():
    assert emotion_id("others") is None
    assert EMOTIONS == {0: "Anger", 1: "Disgust", 2: "Fear", 3: "Happiness", 4: "Sadness", 5: "Surprise",
                        6: "Neutral", 7: "Contempt"}


def test_grey_jpeg_is_described():
    img = np.tile(np.arange(48, dtype=np.uint8) * 5, (40, 1))  # 48 wide, 40 high
    data = encode(img, ".jpg")
    row = imaging.inspect_image(data)
    assert row["status"] == "ok" and row["reason"] is None
    assert (row["width"], row["height"], row["channels"]) == (48, 40, 1)
    assert row["image_format"] == "JPEG" and row["color_space"] == "Grayscale"
    assert row["file_size_bytes"] == len(data)
    assert row["content_hash"] == imaging.content_hash(data) and len(row["content_hash"]) == 64


def test_colour_space_comes_from_pixels_not_channels():
    grey3 = cv2.cvtColor(np.random.default_rng(0).integers(0, 255, (20, 30), dtype=np.uint8), cv2.COLOR_GRAY2BGR)
    row = imaging.inspect_image(encode(grey3))
    assert row["channels"] == 3 and row["color_space"] == "Grayscale"
    colour = grey3.copy()
    colour[5, 5] = (10, 200, 30)
    assert imaging.inspect_image(encode(colour))["color_space"] == "RGB"


def test_format_is_sniffed_from_bytes():
    png = encode(np.zeros((4, 4), np.uint8))
    assert imaging.sniff_format(png) == "PNG"
    assert imaging.sniff_format(encode(np.zeros((4, 4), np.uint8), ".jpg")) == "JPEG"
    assert imaging.sniff_format(b"GIF89a....") == "GIF"
    assert imaging.sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert imaging.sniff_format(b"<html>") is None


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height (valid CRC) but carries only a tiny image body."""
    small = encode(np.zeros((2, 2), np.uint8))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return small[:8] + chunk + small[8 + 25 :]


@pytest.mark.parametrize(
    "data,reason_start",
    [
        (b"", "empty file"),
        (b"just some text\n" * 10, "not an image"),
        (_png_with_size(60000, 60000), "decompression bomb"),
    ],
)
def test_bad_bytes_are_quarantined_with_reason(data, reason_start):
    row = imaging.inspect_image(data)
    assert row["status"] == "quarantined"
    assert row["reason"].startswith(reason_start), row["reason"]


def test_truncated_and_corrupt_files_are_quarantined():
    img = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    jpg, png = encode(img, ".jpg"), encode(img)
    assert imaging.inspect_image(jpg[: len(jpg) // 2])["reason"].startswith("truncated JPEG")
    assert imaging.inspect_image(png[: len(png) // 2])["reason"].startswith("truncated PNG")
    garbage = png[:40] + bytes(range(256)) * 4 + png[-12:]
    row = imaging.inspect_image(garbage)
    assert row["status"] == "quarantined" and ("corrupt" in row["reason"] or "unreadable" in row["reason"])


def test_end_marker_counts_only_in_the_last_kib():
    img = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    jpg, png = encode(img, ".jpg"), encode(img)
    assert imaging._truncation_problem(jpg, "JPEG") is None and imaging._truncation_problem(png, "PNG") is None
    # the marker kept, then pushed just out of the last 1024 bytes by trailing junk: truncated; one byte less: not
    assert imaging._truncation_problem(jpg + b"\0" * 1023, "JPEG") is not None
    assert imaging._truncation_problem(jpg + b"\0" * 1022, "JPEG") is None
    assert imaging._truncation_problem(png + b"\0" * 1021, "PNG") is not None  # IEND + its 4-byte CRC
    assert imaging._truncation_problem(png + b"\0" * 1016, "PNG") is None


def test_limits_are_configurable():
    data = encode(np.zeros((100, 100), np.uint8))
    assert imaging.inspect_image(data, max_pixels=9_999)["reason"].startswith("decompression bomb")
    assert imaging.inspect_image(data, max_bytes=10)["reason"].startswith("file too large")
    assert imaging.inspect_image(data, max_pixels=10_000)["status"] == "ok"


def test_aspect_ratio():
    assert imaging.aspect_ratio(48, 48) == 1.0
    assert imaging.aspect_ratio(640, 480) == pytest.approx(1.3333)
    assert imaging.aspect_ratio(None, 10) is None


def _jpeg_with(cut: bool) -> bytes:
    img = cv2.GaussianBlur(np.random.default_rng(3).integers(0, 255, (96, 96), dtype=np.uint8), (5, 5), 0)
    data = encode(img, ".jpg")
    mid = (data.index(b"\xff\xda") + len(data)) // 2
    if cut:  # part of the entropy-coded data missing: libjpeg warns "premature end of data segment"
        return data[:mid] + data[mid + 100 :]
    junk = bytes(np.random.default_rng(0).integers(0, 255, 64, dtype=np.uint8))
    return data[:mid] + junk + data[mid + 64 :]  # garbage in the middle: "extraneous bytes before marker"


@pytest.mark.parametrize("cut,warning", [(True, "premature end of data segment"), (False, "extraneous bytes")])
def test_jpeg_with_damaged_middle_is_quarantined(cut, warning):
    data = _jpeg_with(cut)
    assert imaging.decode(data) is not None  # OpenCV (and Pillow) still hand back pixels: the check is libjpeg's
    row = imaging.inspect_image(data)
    assert row["status"] == "quarantined"
    assert row["reason"].startswith("corrupt JPEG: Corrupt JPEG data") and warning in row["reason"], row["reason"]


def test_other_stderr_output_is_not_swallowed(capfd):
    data = _jpeg_with(True)

    def noisy(d):
        os.write(2, b"someone else's line\n")
        return imaging.decode(d)

    pixels, printed = imaging._STDERR.run(noisy, data)
    assert pixels is not None and b"someone else's line" in printed
    _, warning = imaging.decode_checked(encode(np.zeros((20, 20), np.uint8), ".jpg"))
    assert warning is None


@pytest.mark.parametrize("shape", [(1, 1), (15, 200), (200, 15)])
def test_tiny_images_are_quarantined(shape):
    row = imaging.inspect_image(encode(np.zeros(shape, np.uint8)))
    assert row["status"] == "quarantined" and row["reason"].startswith("too small"), row["reason"]
    assert imaging.inspect_image(encode(np.zeros(shape, np.uint8)), min_side=1)["status"] == "ok"
    assert imaging.inspect_image(encode(np.zeros((16, 16), np.uint8)))["status"] == "ok"


@requires_fer2013
def test_real_fer2013_jpegs_pass_the_strict_check():
    files = sorted((FER2013_DIR / "train" / "disgust").glob("*.jpg"))
    assert files
    bad = {f.name: r["reason"] for f in files if (r := imaging.inspect_image(f.read_bytes()))["status"] != "ok"}
    assert bad == {}


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header is rewritten to declare width x height."""
    data = bytearray(encode(np.zeros((16, 16), np.uint8), ".jpg"))
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_the_fast_header_reader_agrees_with_pillow_or_steps_aside():
    """header_size reads PNG/JPEG sizes without Pillow; where the bytes are not plain it returns None (Pillow then
    reads them), and a declared size it reads is held to the same limits (a bomb stays a bomb)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(4)
    img = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    for ext, params in ((".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])):
        ok, buf = cv2.imencode(ext, img, params)
        data = buf.tobytes()
        assert imaging.header_size(data, imaging.sniff_format(data)) == Image.open(io.BytesIO(data)).size == (53, 37)
    jpg = encode(img, ".jpg")
    with_exif = jpg[:2] + b"\xff\xe1" + (66).to_bytes(2, "big") + b"Exif\x00\x00" + bytes(58) + jpg[2:]
    assert imaging.header_size(with_exif, "JPEG") == (53, 37)  # other segments are stepped over
    assert imaging.header_size(b"\xff\xd8\xff\xda\x00\x08" + bytes(20), "JPEG") is None  # scan before a frame
    assert imaging.header_size(jpg[:20], "JPEG") is None  # cut before the frame header
    assert imaging.header_size(b"\xff\xd8\xff\xe0\x00\x01" + bytes(40), "JPEG") is None  # impossible length
    assert imaging.header_size(b"\xff\xd8\x00" + bytes(40), "JPEG") is None  # not a marker
    assert imaging.header_size(b"GIF89a" + bytes(20), "GIF") is None  # other formats: Pillow's job
    assert imaging.header_size(_jpeg_with_size(0, 16), "JPEG") is None  # size from a later DNL: Pillow's job
    assert imaging.inspect_image(_jpeg_with_size(60000, 60000))["reason"].startswith("decompression bomb")
    row = imaging.inspect_image(_jpeg_with_size(40, 16))  # the header lies about the pixels
    assert row["status"] == "quarantined" and row["reason"].startswith("corrupt JPEG"), row["reason"]


def test_held_stderr_catches_each_file_and_hands_back_other_output(capfd):
    """One redirect for a chunk of files: each damaged JPEG is still named, a clean one is not, and what someone
    else wrote to stderr meanwhile reaches stderr when the block ends."""
    damaged, clean = _jpeg_with(True), encode(np.zeros((20, 20), np.uint8), ".jpg")
    with imaging.held_stderr():
        rows = [imaging.inspect_image(d) for d in (damaged, clean, damaged)]
        os.write(2, b"a line of someone else's\n")
        assert imaging.inspect_image(clean)["status"] == "ok"
    assert [r["status"] for r in rows] == ["quarantined", "ok", "quarantined"]
    assert "premature end of data segment" in rows[2]["reason"]
    assert "a line of someone else's" in capfd.readouterr().err
    os.write(2, b"after the block\n")  # stderr is the real one again
    assert "after the block" in capfd.readouterr().err


def _png_with_broken_idat_crc(size: int = 64) -> bytes:
    img = cv2.GaussianBlur(np.random.default_rng(4).integers(0, 255, (size, size), dtype=np.uint8), (5, 5), 0)
    data = bytearray(encode(img))
    at = data.index(b"IDAT")
    length = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 + length] ^= 0xFF  # first byte of the chunk's CRC
    return bytes(data)


def test_a_png_that_opencv_refuses_is_quarantined_not_rescued_by_another_decoder():
    """Every later stage decodes with OpenCV: a file only Pillow can read would pass ingest and fail them."""
    data = _png_with_broken_idat_crc()
    assert imaging.decode(data) is None
    row = imaging.inspect_image(data)
    assert row["status"] == "quarantined" and row["reason"].startswith("corrupt PNG"), row["reason"]
    assert "CRC" in row["reason"]  # libpng's own words


@pytest.mark.parametrize("shape", [(40, 50), (40, 50, 3), (40, 50, 4)])
def test_16_bit_images_are_kept_and_decode_to_8_bit_for_every_stage(shape):
    from femo_pipeline import faces, modeldata

    rng = np.random.default_rng(5)
    img = rng.integers(0, 65535, shape).astype(np.uint16)
    data = encode(img)
    row = imaging.inspect_image(data)
    assert row["status"] == "ok", row["reason"]
    pixels = imaging.decode(data)
    assert pixels.dtype == np.uint8 and pixels.shape == shape[:2] + ((shape[2],) if len(shape) == 3 else ())
    assert np.array_equal(pixels, (img >> 8).astype(np.uint8))
    assert modeldata.to_gray_square(data, 48).shape == (48, 48)
    assert faces.face_crop(data)["status"] == "no_face"  # detection ran on 8-bit pixels


@pytest.mark.parametrize("dtype,name", [(np.int32, "int32"), (np.float32, "float32")])
def test_images_with_samples_that_are_not_integers_of_8_or_16_bits_are_quarantined(dtype, name):
    data = encode((np.random.default_rng(6).random((40, 40)) * 1000).astype(dtype), ".tiff")
    row = imaging.inspect_image(data)
    assert row["status"] == "quarantined" and name in row["reason"], row["reason"]
    assert imaging.decode(data) is None


def test_decoded_size_is_checked_on_the_header_before_decoding(monkeypatch):
    """A 6300x6300 RGBA PNG of 16-bit samples is a few hundred KB on disk and 317 MB decoded: refused from its
    header, never handed to the decoder."""
    flat = cv2.imencode(".png", np.zeros((6300, 6300, 4), np.uint16))[1].tobytes()
    assert len(flat) < 2_000_000
    calls = []
    monkeypatch.setattr(imaging.cv2, "imdecode", lambda *a: calls.append(a))
    row = imaging.inspect_image(flat)
    assert row["status"] == "quarantined" and row["reason"].startswith("too large to decode"), row["reason"]
    assert "317,520,000 bytes" in row["reason"] and calls == []
    small = encode(np.zeros((100, 100, 4), np.uint16))
    monkeypatch.undo()
    assert imaging.inspect_image(small, max_decoded_bytes=100 * 100 * 8)["status"] == "ok"
    assert imaging.inspect_image(small, max_decoded_bytes=100 * 100 * 8 - 1)["reason"].startswith("too large to decode")


def test_grey_with_alpha_png_decodes_to_channels_every_stage_handles():
    import io

    from PIL import Image

    from femo_pipeline import modeldata

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (30, 30, 2), dtype=np.uint8), "LA").save(buf, "PNG")
    data = buf.getvalue()
    assert imaging.inspect_image(data)["status"] == "ok"
    assert imaging.decode(data).shape[2] in (3, 4)
    assert modeldata.to_gray_square(data, 48).shape == (48, 48)
