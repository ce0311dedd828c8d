"""Face detection/cropping, curation lists and the balanced sample."""

from __future__ import annotations

import re

import cv2
import duckdb
import numpy as np
import pandas as pd
import pytest

from femo_pipeline import faces, sampling
from femo_pipeline_tests.conftest import FER2013_DIR, materialize, put_back, requires_fer2013

FER_FACE = FER2013_DIR / "test" / "happy" / "PrivateTest_10077120.jpg"


def _scene(shape, placements, seed=0):
    """A blurred-noise background with FER faces pasted at (x, y, size)."""
    rng = np.random.default_rng(seed)
    canvas = cv2.GaussianBlur(rng.integers(60, 190, shape, dtype=np.uint8), (31, 31), 0)
    face = cv2.imread(str(FER_FACE), cv2.IMREAD_GRAYSCALE)
    for x, y, size in placements:
        canvas[y:y + size, x:x + size] = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    return canvas


def _png(pixels) -> bytes:
    return cv2.imencode(".png", pixels)[1].tobytes()


@requires_fer2013
def test_face_is_found_cropped_and_downscaled_detection_agrees():
    scene = _scene((720, 1280), [(700, 200, 260)])
    full = faces.detect_faces(scene, faces.FaceParams(detect_max_side=0))
    small = faces.detect_faces(scene, faces.FaceParams(detect_max_side=640))
    assert full and small
    assert faces.iou(full[0], (700, 200, 260, 260)) > 0.4
    assert faces.iou(full[0], small[0]) > 0.7
    out = faces.face_crop(_png(scene))
    assert out["status"] == "ok" and out["n_faces"] == 1 and out["reason"] is None
    crop = cv2.imdecode(np.frombuffer(out["crop_png"], np.uint8), cv2.IMREAD_UNCHANGED)
    assert crop.shape[0] == pytest.approx(out["box_h"] * 1.4, abs=3)  # 20 % margin each side


@requires_fer2013
def test_several_faces_keep_the_largest():
    scene = _scene((480, 640), [(40, 100, 150), (330, 60, 260)], seed=1)
    out = faces.face_crop(_png(scene))
    assert out["status"] == "multiple_faces" and out["n_faces"] == 2 and "largest" in out["reason"]
    assert faces.iou((out["box_x"], out["box_y"], out["box_w"], out["box_h"]), (330, 60, 260, 260)) > 0.4


def test_no_face_and_unreadable_have_reasons():
    blank = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    out = faces.face_crop(_png(blank))
    assert out["status"] == "no_face" and "no face" in out["reason"] and out["crop_png"] is None
    assert faces.face_crop(b"not an image")["status"] == "unreadable"


def test_crop_stays_inside_the_image_and_iou():
    pixels = np.zeros((100, 100), np.uint8)
    assert faces.crop(pixels, (0, 0, 50, 50), 0.5).shape == (75, 75)
    assert faces.crop(pixels, (80, 80, 20, 20), 0.5).shape == (30, 30)
    assert faces.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert faces.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert faces.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


H = [f"{i:064x}" for i in range(1, 7)]


def _lists(tmp_path, relabel: str, exclude: str | bytes):
    (tmp_path / "r.csv").write_text(relabel)
    (tmp_path / "e.csv").write_bytes(exclude if isinstance(exclude, bytes) else exclude.encode())
    return tmp_path / "r.csv", tmp_path / "e.csv"


def test_curation_lists_load_and_apply(tmp_path):
    r, e = _lists(tmp_path, f"content_hash,new_label,note\n# a comment\n{H[0].upper()},happy,smiling\n{H[5]},Fear,\n",
                  f"content_hash,reason,note\n{H[1]},not a face,cartoon\n")
    curation = sampling.load_curation(r, e)
    assert curation.relabel == {H[0]: 3, H[5]: 2} and curation.exclude == {H[1]: "not a face"}
    images = pd.DataFrame({"image_id": [1, 2, 3], "emotion_id": [0, 4, 6], "content_hash": H[:3]})
    kept, excluded, stats = sampling.apply_curation(images, curation)
    assert list(kept["image_id"]) == [1, 3] and list(kept["emotion_id"]) == [3, 6]
    assert list(kept["original_emotion_id"]) == [0, 6] and list(kept["relabelled"]) == [True, False]
    assert list(excluded["reason"]) == ["not a face"]
    assert stats["relabel_entries_unmatched"] == [H[5]] and stats["excluded_images"] == 1


@pytest.mark.parametrize(
    "relabel,exclude,message",
    [
        (f"content_hash,new_label\n{H[0]},joyful\n", "content_hash,reason\n", "unknown labels"),
        ("content_hash,new_label\nabc,happy\n", "content_hash,reason\n", "no sha256"),
        ("hash,label\n", "content_hash,reason\n", "lacks columns"),
        ("content_hash,new_label\n", f"content_hash,reason\n{H[0]},\n", "needs a reason"),
        (f"content_hash,new_label\n{H[0]},happy\n{H[0]},sad\n", "content_hash,reason\n", "listed twice"),
        ("content_hash,new_label\n", f"content_hash,reason\n{H[0]},blurry\n{H[0]},cartoon\n", "listed twice"),
        (f"content_hash,new_label,note\n{H[0]},happy,x,y,z\n", "content_hash,reason\n",
         r"lines \[2\] have more cells than the header"),
        ("content_hash,new_label,new_label\n", "content_hash,reason\n", "more than once"),
        ("content_hash,new_label\n", b"content_hash,reason\n" + H[0].encode() + b",caf\xe9\n", "not UTF-8"),
    ],
)
def test_bad_curation_lists_are_clear_errors(tmp_path, relabel, exclude, message):
    r, e = _lists(tmp_path, relabel, exclude)
    with pytest.raises(sampling.CurationError, match=message):
        sampling.load_curation(r, e)


def test_a_hash_sign_inside_a_cell_is_text_and_comments_are_whole_lines(tmp_path):
    r, e = _lists(tmp_path, "content_hash,new_label,note\n  # an indented comment\n",
                  f"content_hash,reason,note\n{H[1]},see report #12 (blurry),\n")
    assert sampling.load_curation(r, e).exclude == {H[1]: "see report #12 (blurry)"}


def test_a_curation_path_that_is_absent_a_folder_or_a_fifo_is_a_clear_error_not_a_hang(tmp_path):
    import os
    import time

    r, _ = _lists(tmp_path, "content_hash,new_label\n", "content_hash,reason\n")
    os.mkfifo(tmp_path / "fifo.csv")
    start = time.monotonic()
    for path, message in ((tmp_path / "typo.csv", "not found"), (tmp_path, "is a folder"),
                          (tmp_path / "fifo.csv", "not a regular file")):
        with pytest.raises(sampling.CurationError, match=message):
            sampling.load_curation(r, path)  # a typo must not switch curation off
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("config, message", [
    ({"sources": []}, "no sources to sample"), ({"sources": ["kagle"]}, "unknown sources \\['kagle'\\]"),
    ({"per_class": 0}, "greater than or equal to 1"), ({"seed": -1}, "greater than or equal to 0"),
])
def test_a_sample_asked_of_nothing_fails_with_the_reason_and_keeps_the_last_sample(tmp_path, config, message):
    result = materialize(tmp_path, selection=["balanced_sample"], raise_on_error=False,
                         run_config={"ops": {"balanced_sample": {"config": config}}})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    data = failure.event_specific_data
    text = data.error.to_string() + (data.user_failure_data.description if data.user_failure_data else "")
    assert re.search(message, text), text


def test_training_settings_out_of_range_are_named_before_anything_is_built():
    from femo_pipeline.model import TrainConfig

    with pytest.raises(ValueError, match=r"seed=-1, val_fraction=1.5"):
        TrainConfig(seed=-1, val_fraction=1.5)
    with pytest.raises(ValueError, match=r"block_convs=\(2, 0\)"):
        TrainConfig(block_convs=(2, 0))
    assert TrainConfig(epochs=1, width=8, patience=0).epochs == 1
    assert TrainConfig(image_size=40).crop == 44  # a crop as large as the image or larger is no crop, as before


def test_balanced_sample_is_seeded_and_order_free():
    rng = np.random.default_rng(0)
    images = pd.DataFrame({"image_id": np.arange(500), "source_id": rng.integers(3, 5, 500),
                           "emotion_id": rng.integers(0, 7, 500)})
    images.loc[images["emotion_id"] == 1, "emotion_id"] = np.where(
        np.arange((images["emotion_id"] == 1).sum()) < 3, 1, 2)  # a rare class
    a = sampling.balanced_sample(images, 10, seed=1)
    b = sampling.balanced_sample(images.sample(frac=1, random_state=5), 10, seed=1)
    assert a["image_id"].tolist() == b["image_id"].tolist()
    assert sampling.balanced_sample(images, 10, seed=2)["image_id"].tolist() != a["image_id"].tolist()
    sizes = a.groupby(["source_id", "emotion_id"]).size()
    available = images.groupby(["source_id", "emotion_id"]).size()
    assert (sizes == available.clip(upper=10)).all()
    with pytest.raises(ValueError):
        sampling.balanced_sample(images, 0, seed=1)


def test_face_and_sample_assets(demo_run, tmp_path):
    data_dir, result = demo_run  # the session's demo run (conftest.py): balanced_sample is put back at the end
    assert result.success
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        crops = con.execute("SELECT f.status, f.crop_path, i.source_id FROM face_crops f JOIN images i ON i.id = f.image_id").fetchall()
        conflict = con.execute("SELECT content_hash, min(id) FROM images WHERE duplicate_label_conflict GROUP BY 1").fetchone()
        some = con.execute("SELECT content_hash, id FROM images WHERE source_id = 3 AND emotion_id = 0 ORDER BY id LIMIT 1").fetchone()
    assert len(crops) == 40 and {c[2] for c in crops} == {3}  # the Kaggle images (no web keys in tests)
    for status, path, _ in crops:
        assert (status in ("ok", "multiple_faces")) == (path is not None)
        if path:
            assert (data_dir / path).exists()
    meta = result.asset_materializations_for_node("balanced_sample")[0].metadata
    # default per_class (40) exceeds every demo class: the whole demo set (86 FER + 40 Kaggle) is drawn, less
    # the three copies of the demo's duplicated image, which carry two labels and are left out
    assert meta["dagster/row_count"].value == 7 * 12 + 2 + 40 - 3 and meta["classes_short_of_per_class"].value
    assert meta["curation"].value["left_out_as_duplicates"] == {"same bytes carry different labels": 3}

    r, e = _lists(tmp_path, f"content_hash,new_label,note\n{some[0]},Contempt,test\n",
                  f"content_hash,reason,note\n{conflict[0]},label conflict,test\n")
    config = {"ops": {"balanced_sample": {"config": {"per_class": 3, "seed": 7, "relabel_csv": str(r),
                                                     "exclude_csv": str(e)}}}}
    runs = []
    with put_back(data_dir, "balanced_sample"):  # the shared run's sample again afterwards (seeded: same rows)
        for _ in range(2):
            assert materialize(data_dir, selection=["balanced_sample"], run_config=config).success
            with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
                runs.append(con.execute("SELECT * FROM balanced_sample ORDER BY image_id").fetchall())
                hashes = {h for (h,) in con.execute(
                    "SELECT content_hash FROM balanced_sample s JOIN images i ON i.id = s.image_id").fetchall()}
                relabelled = con.execute(
                    "SELECT emotion_id, original_emotion_id FROM balanced_sample WHERE relabelled").fetchall()
    assert runs[0] == runs[1]  # idempotent and seeded
    assert conflict[0] not in hashes
    per_group = pd.DataFrame(runs[0], columns=["image_id", "source_id", "emotion_id", "orig", "rel", "seed"])
    assert per_group.groupby(["source_id", "emotion_id"]).size().max() <= 3
    assert all(r == (7, 0) for r in relabelled)  # the relabelled Anger image, if drawn, is Contempt now
