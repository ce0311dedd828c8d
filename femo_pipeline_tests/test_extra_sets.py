"""The extra labelled sets (FEMO_EXTRA_DIR, <root>/<set>/<emotion>/): the layout, who is shown parsed from file
names, every entry's outcome, the warehouse rows, and that the sets are scored only (never sampled or trained on)."""

from __future__ import annotations

import os

import cv2
import duckdb
import numpy as np
import pytest

from femo_pipeline import demo_data, folders
from femo_pipeline.defs.faces.faces import FaceCropConfig, SampleConfig
from femo_pipeline.sources import FACE_SET_NAMES, SOURCES
from femo_pipeline_tests.conftest import materialize

IMAGES = ["extra_face_images", "image_catalog", "data_sources", "emotions", "images"]


def _face(path, emotion: str, seed: int, ext: str = ".png", size: int = 64) -> bytes:
    data = cv2.imencode(ext, demo_data.draw_face(emotion, size, np.random.default_rng(seed)))[1].tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.fixture
def sets_tree(tmp_path):
    """Two sets (CK+-style and JAFFE-style names, one web-like without subjects) and entries that must each get an
    outcome: a file at the root, one in a set folder, a folder naming no emotion, a hidden set, a link that leads
    out of the root, a truncated file."""
    root = tmp_path / "extra"
    _face(root / "posed" / "anger" / "S005_001_00000011.png", "anger", 1)
    _face(root / "posed" / "anger" / "S005_001_00000012.png", "anger", 2)
    _face(root / "posed" / "anger" / "S006_002_00000004.png", "anger", 3)
    _face(root / "posed" / "happiness" / "S005_003_00000009.png", "happiness", 4)
    _face(root / "posed" / "contempt" / "S007_004_00000002.png", "contempt", 5)
    _face(root / "jaffe-like" / "sad" / "KA.SA1.33.tiff", "sadness", 6, ".tiff")
    _face(root / "jaffe-like" / "surprise" / "KM.SU3.18.tiff", "surprise", 7, ".tiff")
    good = _face(root / "web" / "happy" / "photo_01.jpg", "happiness", 8, ".jpg", 90)
    (root / "web" / "happy" / "broken_02.jpg").write_bytes(good[: len(good) // 3])
    _face(root / "web" / "notes" / "n.png", "neutral", 9)
    _face(root / "stray.png", "neutral", 10)
    _face(root / "web" / "loose.png", "neutral", 11)
    _face(root / ".hidden" / "happy" / "h.png", "happiness", 12)
    os.symlink("/etc/passwd", root / "posed" / "anger" / "out.png")
    return root


def test_each_folder_of_the_root_is_a_set_and_every_entry_has_an_outcome(sets_tree):
    entries = {e.rel_path: e for e in folders.scan_folder(sets_tree, with_splits=False, sets=True)}
    assert entries["posed/anger/S005_001_00000011.png"].split == "posed"
    assert entries["jaffe-like/sad/KA.SA1.33.tiff"].split == "jaffe-like"
    assert entries["jaffe-like/sad/KA.SA1.33.tiff"].emotion_id == 4
    assert entries["stray.png"].problem == "file outside any emotion folder"
    assert entries["web/loose.png"].problem == "file outside any emotion folder"
    assert "names no known emotion" in entries["web/notes/n.png"].problem
    assert entries[".hidden"].problem == "hidden folder, not read"
    assert "outside the source root" in entries["posed/anger/out.png"].problem

    table = folders.inspect_folder(sets_tree, list(entries.values()), workers=1, name_pattern=FACE_SET_NAMES)
    rows = {r["rel_path"]: r for r in table.drop(["content"]).to_pylist()}
    assert (rows["posed/anger/S005_001_00000011.png"]["subject"], rows["posed/anger/S005_001_00000011.png"]
            ["sequence"]) == ("S005", "001")
    assert (rows["jaffe-like/surprise/KM.SU3.18.tiff"]["subject"],
            rows["jaffe-like/surprise/KM.SU3.18.tiff"]["sequence"]) == ("KM", None)
    assert rows["web/happy/photo_01.jpg"]["subject"] is None and rows["web/happy/photo_01.jpg"]["status"] == "ok"
    assert rows["web/happy/broken_02.jpg"]["status"] == "quarantined"
    # a quarantined file keeps what its name says, like every row
    assert rows["posed/anger/out.png"]["subject"] is None and rows["posed/anger/out.png"]["status"] == "quarantined"


def test_a_root_holding_emotion_folders_directly_or_nothing_is_a_clear_error(tmp_path):
    _face(tmp_path / "flat" / "happy" / "a.png", "happiness", 1)
    with pytest.raises(folders.FolderLayoutError, match="one folder per labelled set.*put them in a folder named"):
        folders.scan_folder(tmp_path / "flat", with_splits=False, sets=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(folders.FolderLayoutError, match="found no folder"):
        folders.scan_folder(tmp_path / "empty", with_splits=False, sets=True)
    with pytest.raises(ValueError, match="splits or sets"):
        folders.scan_folder(tmp_path / "flat", with_splits=True, sets=True)


@pytest.mark.parametrize("name, want", [
    ("S005_001_00000011.png", ("S005", "001")), ("S130_012_00000023.png", ("S130", "012")),
    ("KA.AN1.39.tiff", ("KA", None)), ("NM.NE2.93.tiff", ("NM", None)),
    ("happy_01.png", (None, None)), ("S5_1_1.png", (None, None)), ("SA.png", (None, None)),
    ("Training_00001.jpg", (None, None)),
])
def test_the_default_name_pattern_reads_ck_and_jaffe_style_names_and_nothing_else(name, want):
    assert folders.name_fields(f"set/happy/{name}", FACE_SET_NAMES) == want


def test_a_name_pattern_of_ones_own_and_the_bad_ones():
    assert folders.name_fields("s/happy/p07-take3.png", r"^p(?P<subject>\d+)-take(?P<sequence>\d+)") == ("07", "3")
    assert folders.name_fields("s/happy/p07.png", r"^p(?P<subject>\d+)") == ("07", None)
    assert folders.name_fields("s/happy/p07.png", None) == (None, None)
    with pytest.raises(folders.NamePatternError, match="not a regular expression"):
        folders.name_pattern("(?P<subject>[")
    with pytest.raises(folders.NamePatternError, match="no group named subject"):
        folders.name_pattern(r"^(\d+)_")
    with pytest.raises(folders.NamePatternError, match="other than subject and sequence"):
        folders.name_pattern(r"^(?P<subject>\d+)_(?P<take>\d+)")


def _rows(data_dir, sql):
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_extra_sets_reach_the_warehouse_with_set_subject_and_sequence(sets_tree, tmp_path, monkeypatch):
    """FEMO_EXTRA_DIR, read at run time, is all it takes under the real profile: each image keeps its set's name
    (split), who is shown and the recording; every other entry is a quarantine row with its reason."""
    monkeypatch.setenv("FEMO_EXTRA_DIR", str(sets_tree))
    data_dir = tmp_path / "data"
    assert materialize(data_dir, selection=IMAGES, profile="real").success
    rows = _rows(data_dir, "SELECT split, e.emotion, subject, sequence, synthetic FROM images i JOIN emotions e ON "
                           "e.id = i.emotion_id WHERE source_id = 5 ORDER BY rel_path")
    assert rows == [("jaffe-like", "Sadness", "KA", None, False), ("jaffe-like", "Surprise", "KM", None, False),
                    ("posed", "Anger", "S005", "001", False), ("posed", "Anger", "S005", "001", False),
                    ("posed", "Anger", "S006", "002", False), ("posed", "Contempt", "S007", "004", False),
                    ("posed", "Happiness", "S005", "003", False), ("web", "Happiness", None, None, False)]
    reasons = dict(_rows(data_dir, "SELECT rel_path, reason FROM quarantined_files WHERE source_id = 5"))
    assert set(reasons) == {"posed/anger/out.png", "web/happy/broken_02.jpg", "web/notes/n.png", "stray.png",
                            "web/loose.png", ".hidden"}
    assert _rows(data_dir, "SELECT count(*) FROM images_extra")[0][0] == 8
    # another pattern, from the environment at run time: the JAFFE-like names no longer say who is shown
    monkeypatch.setenv("FEMO_EXTRA_NAME_PATTERN", r"^(?P<subject>S\d+)_")
    assert materialize(data_dir, selection=IMAGES, profile="real").success
    assert _rows(data_dir, "SELECT count(subject), count(sequence) FROM images WHERE source_id = 5") == [(5, 0)]


def test_a_bad_name_pattern_fails_the_ingest_with_the_reason(sets_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("FEMO_EXTRA_DIR", str(sets_tree))
    result = materialize(tmp_path / "data", selection=["extra_face_images"], profile="real", raise_on_error=False,
                         run_config={"ops": {"extra_face_images": {"config": {"name_pattern": r"^(\d+)"}}}})
    assert not result.success
    text = " ".join(e.step_failure_data.error.to_string() for e in result.all_events
                    if e.event_type_value == "STEP_FAILURE")
    assert "no group named subject" in text and "FEMO_EXTRA_NAME_PATTERN" in text


def test_the_extra_sets_are_scored_only():
    """Never in the balanced sample or the face crops by default; their layout is their own."""
    extra = SOURCES["extra"]
    assert extra.held_out and extra.sets and extra.env == "FEMO_EXTRA_DIR"
    assert "extra" not in SampleConfig().sources and "kaggle" in SampleConfig().sources
    assert "extra" not in FaceCropConfig().sources
    assert extra.description == "Extra labelled sets image files (<set>/<emotion>/) read, inspected and staged " \
                                "with their bytes."


def test_the_demo_generates_two_synthetic_sets_one_with_subjects(tmp_path):
    counts = demo_data.generate(tmp_path / "demo", demo_data.DemoSpec(
        fer_train_per_class=1, fer_test_per_class=1, kaggle_per_class=2, survey_rows=20, extra_per_class=4))
    root = tmp_path / "demo" / "extra"
    entries = folders.scan_folder(root, with_splits=False, sets=True)
    table = folders.inspect_folder(root, entries, workers=1, name_pattern=FACE_SET_NAMES).drop(["content"])
    rows = [r for r in table.to_pylist() if r["status"] == "ok"]
    assert {r["split"] for r in rows} == set(demo_data.EXTRA_SETS)
    posed = [r for r in rows if r["split"] == "posed-lab"]
    assert len(posed) == 7 * 4 and {r["subject"] for r in posed} == {"S001", "S002"}
    assert all(r["sequence"] for r in posed) and {r["label_raw"] for r in posed} >= {"contempt", "anger"}
    web = [r for r in rows if r["split"] == "web-crops"]
    assert len(web) == 7 * 4 and all(r["subject"] is None for r in web) and all(r["color_space"] == "RGB" for r in web)
    assert len({(r["width"], r["height"]) for r in web}) > 3  # other sizes and crops than FER-2013's 48 x 48
    assert counts["extra_files"] == len(table) == 7 * 4 * 2 + 2 and (root.parent / "SYNTHETIC.txt").exists()
