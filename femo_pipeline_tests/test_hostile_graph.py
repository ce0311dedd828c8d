"""A hostile corpus through the whole graph, model stages included: every file ingest calls usable is decoded by
every later stage (face detection, training and evaluation arrays, the API's PNG) without a failed step, and every
other file is a quarantine row with its reason.

The demo inputs are generated first; hostile files are then planted among them (images in odd depths, channel
layouts and formats, damaged files, decompression bombs, links and hard links out of the root, a FIFO, names
that are not UTF-8) and a hostile survey replaces the demo's, and every other asset is materialized."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import dagster as dg
import duckdb
import numpy as np
import pytest
from PIL import Image

from femo_pipeline_tests.conftest import DEMO_RUN_CONFIG, GRID_ASSETS, materialize
from femo_pipeline_tests.test_hostile_ingest import SECRET, corrupt_jpeg, face
from femo_pipeline_tests.test_imaging import _png_with_broken_idat_crc


def _face(seed: int, size: int = 64) -> np.ndarray:
    return cv2.GaussianBlur(np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8), (5, 5), 0)


def _encode(pixels: np.ndarray, ext: str) -> bytes:
    return cv2.imencode(ext, pixels)[1].tobytes()


def _pillow(pixels: np.ndarray, mode: str, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, fmt, **save)
    return buffer.getvalue()


def usable_files(seed: int) -> dict[str, bytes]:
    """Files ingest must keep, and every later stage must read: odd depths, channels and formats."""
    grey = _face(seed)
    rgb = np.dstack([grey, np.roll(grey, 3, 0), np.roll(grey, 5, 1)])
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)
    buffer = io.BytesIO()
    palette.save(buffer, "PNG", transparency=0)
    cmyk = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(cmyk, "JPEG")
    return {
        "grey16.png": _encode(grey.astype(np.uint16) * 257, ".png"),
        "rgba16.png": _encode(np.dstack([rgb, grey]).astype(np.uint16) * 257, ".png"),
        "grey_alpha.png": _pillow(np.dstack([grey, grey]), "LA", "PNG"),
        "palette_transparent.png": buffer.getvalue(),
        "cmyk.jpg": cmyk.getvalue(),
        "progressive.jpg": _pillow(rgb, "RGB", "JPEG", progressive=True),
        "tiff16.tif": _encode(grey.astype(np.uint16) * 257, ".tiff"),
        "bitmap.bmp": _encode(rgb, ".bmp"),
        "anim.gif": _pillow(grey, "L", "GIF"),
        "photo.webp": _encode(rgb, ".webp"),
        "long_strip.png": _encode(np.tile(grey[:16], (1, 40)), ".png"),  # 16 x 2560
    }


def quarantined_files() -> dict[str, tuple[bytes, str]]:
    """Files ingest must refuse, with the start of the reason."""
    return {
        "broken_crc.png": (_png_with_broken_idat_crc(), "corrupt PNG"),
        "int32.tif": (_encode(np.arange(64 * 64, dtype=np.int32).reshape(64, 64), ".tiff"), "unsupported TIFF"),
        "float.tif": (_encode(np.random.default_rng(1).random((64, 64)).astype(np.float32), ".tiff"),
                      "unsupported TIFF"),
        "bomb16.png": (_encode(np.zeros((6300, 6300, 4), np.uint16), ".png"), "too large to decode"),
        "corrupt.jpg": (corrupt_jpeg(), "corrupt JPEG"),
        "truncated.png": (_encode(_face(3), ".png")[:200], "truncated PNG"),
        "empty.jpg": (b"", "empty file"),
        "text.jpg": (b"not an image at all\n" * 20, "not an image"),
    }


def plant(folder: Path, prefix: str, outside: Path, seed: int) -> dict[str, str | None]:
    """Hostile files in one emotion folder; returns {file name: None (usable) or the start of its reason}."""
    expected: dict[str, str | None] = {}
    for name, data in usable_files(seed).items():
        (folder / f"{prefix}_{name}").write_bytes(data)
        expected[f"{prefix}_{name}"] = None
    for name, (data, reason) in quarantined_files().items():
        (folder / f"{prefix}_{name}").write_bytes(data)
        expected[f"{prefix}_{name}"] = reason
    (folder / f"{prefix}_link_out.jpg").symlink_to(outside / "secret.jpg")
    expected[f"{prefix}_link_out.jpg"] = "outside the source root"
    os.link(outside / "hard.jpg", folder / f"{prefix}_hard_link.jpg")
    expected[f"{prefix}_hard_link.jpg"] = "hard link"
    os.mkfifo(folder / f"{prefix}_pipe.jpg")
    expected[f"{prefix}_pipe.jpg"] = "not a regular file"
    with open(os.fsencode(folder) + f"/{prefix}_caf".encode() + b"\xe9.png", "wb") as fh:
        fh.write(_encode(_face(seed + 1), ".png"))
    expected[f"{prefix}_caf\\xe9.png"] = None
    return expected


def hostile_survey(path: Path) -> None:
    """Two rows after the header: an id of 5,000 digits, and an hour of 200 KiB of digits."""
    header, *rows = path.read_text().splitlines()
    names = header.split(",")

    def row(values: dict) -> str:
        return ",".join(values.get(name, "0") for name in names)

    huge = row({"id": "9" * 5000, "Hours": "12", "Day": "3"})
    wide = row({"id": "987654321987", "Hours": "1" * 200 * 1024, "Day": "3"})
    path.write_text("\n".join([header, huge, wide, *rows]) + "\n")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_hostile_corpus_runs_through_the_whole_graph_without_a_failed_step(tmp_path):
    data_dir = tmp_path / "data"
    demo_config = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}
    assert materialize(data_dir, selection=["demo_source_files"], run_config=demo_config).success
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(SECRET)
    (outside / "hard.jpg").write_bytes(face(77))
    demo = data_dir / "demo"
    planted = {}
    for source, folder, prefix in (("fer2013", "train/happy", "Training_h"), ("fer2013", "test/sad", "PublicTest_h"),
                                   ("kaggle", "fear", "k"), ("extra", "posed-lab/happy", "S900_001")):
        for name, reason in plant(demo / source / folder, prefix, outside, len(planted)).items():
            planted[(source, f"{folder}/{name}")] = reason
    hostile_survey(demo / "survey.csv")

    rest = {"ops": {k: v for k, v in DEMO_RUN_CONFIG["ops"].items() if k != "demo_source_files"}}
    selection = dg.AssetSelection.all() - dg.AssetSelection.assets("demo_source_files", *GRID_ASSETS)
    result = materialize(data_dir, selection=selection, run_config=rest, raise_on_error=False)
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert failed == [] and result.success
    done = {e.asset_key.path[-1] for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert {"images", "face_crops", "emotion_model", "model_evaluation", "contender_predictions",
            "benchmark_report", "serving_snapshot", "survey_responses"} <= done

    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        images = {(k, p): i for k, p, i in con.execute(
            "SELECT d.source_key, i.rel_path, i.id FROM images i JOIN data_sources d ON d.id = i.source_id").fetchall()}
        reasons = {(k, p): r for k, p, r in con.execute(
            "SELECT d.source_key, q.rel_path, q.reason FROM quarantined_files q "
            "JOIN data_sources d ON d.id = q.source_id").fetchall()}
        predicted = {i for (i,) in con.execute("SELECT DISTINCT image_id FROM predictions").fetchall()}
        cropped = {i for (i,) in con.execute("SELECT image_id FROM face_crops").fetchall()}
        rejected = dict(con.execute("SELECT row_number, reason FROM survey_rejected_rows").fetchall())
        kept = con.execute("SELECT count(*) FROM survey_responses").fetchone()[0]
    for key, reason in planted.items():
        if reason is None:
            assert key in images, (key, reasons.get(key))
        else:
            assert key in reasons and reasons[key].startswith(reason), (key, reasons.get(key))
    tested = [images[k] for k, r in planted.items() if r is None and k[1].startswith(("test/", "fear/", "posed-lab/"))]
    assert tested and set(tested) <= predicted  # the models read every usable test, Kaggle and extra-set file
    kaggle = [images[k] for k, r in planted.items() if r is None and k[0] == "kaggle"]
    assert set(kaggle) <= cropped  # face detection read them
    assert rejected[1] == "id outside the signed 64-bit range" and rejected[2] == "Hours outside 0-23"
    assert kept > 200  # the survey went on past both rows
