"""ferplus_map: FER+ votes for any copy of the FER-2013 folders, by content hash; the shipped table reproduces the
../shared votes table exactly."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from femo_pipeline import ferplus_map as fm
from femo_pipeline_tests.conftest import SHARED

FERPLUS = SHARED / "datasets" / "ferplus"
FER2013 = SHARED / "datasets" / "fer2013"
REAL = (FERPLUS / "ferplus_votes_by_file.csv").exists() and (FERPLUS / "fer2013new.csv").exists() and FER2013.exists()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_usage_from_path():
    assert fm.usage_from_path("train/angry/Training_1.jpg") == "Training"
    assert fm.usage_from_path("test/sad/PublicTest_7.jpg") == "PublicTest"
    assert fm.usage_from_path("x\\test\\sad\\PrivateTest_7.jpg") == "PrivateTest"
    assert fm.usage_from_path("data/train/sad/img7.jpg") == "Training"
    assert fm.usage_from_path("test/sad/img7.jpg") is None


def test_match_files_by_hand(tmp_path):
    contents = {
        "train/angry/Training_1.jpg": b"A",
        "train/happy/Training_2.jpg": b"A",        # same bytes, same usage, other label: same row
        "test/angry/PublicTest_3.jpg": b"A",       # same bytes in a test usage: its own row
        "test/sad/PrivateTest_4.jpg": b"B",        # pixel-identical group: rows 5;6 with equal votes
        "test/sad/PublicTest_5.jpg": b"C",         # not in the map
        "test/fear/PublicTest_6.jpg": b"D",        # rows 7;8 whose votes differ
        "test/fear/img_no_prefix.jpg": b"E",       # in PublicTest and PrivateTest with different votes
        "test/fear/img_no_prefix2.jpg": b"B",      # only one test usage has these bytes
        "train/fear/img_no_prefix3.jpg": b"A",     # under train/: Training
    }
    for rel, data in contents.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "test" / "notes.txt").write_text("not an image")
    p = {k: _sha(k.encode())[:12] for k in "ABCDE"}
    mapping = pd.DataFrame([(p["A"], "Training", "0"), (p["A"], "PublicTest", "1"), (p["B"], "PrivateTest", "5;6"),
                            (p["D"], "PublicTest", "7;8"), (p["E"], "PublicTest", "2"), (p["E"], "PrivateTest", "3")],
                           columns=["sha256_prefix", "usage", "fer2013new_rows"])
    new = pd.DataFrame(0, index=range(9), columns=list(fm.VOTE_COLUMNS))
    for row in range(9):
        new.loc[row, "neutral"] = 10 - row
        new.loc[row, "happiness"] = row
    new.loc[6] = new.loc[5]                      # the group 5;6 has identical votes
    files = fm.hash_folder(tmp_path)
    assert len(files) == len(contents) and files["path"].is_monotonic_increasing
    table = fm.match_files(files, new, mapping).set_index("path")
    status = table["status"].to_dict()
    assert status == {
        "train/angry/Training_1.jpg": "matched", "train/happy/Training_2.jpg": "matched",
        "test/angry/PublicTest_3.jpg": "matched", "test/sad/PrivateTest_4.jpg": "matched",
        "test/sad/PublicTest_5.jpg": "not_in_map", "test/fear/PublicTest_6.jpg": "conflicting_rows",
        "test/fear/img_no_prefix.jpg": "ambiguous_usage", "test/fear/img_no_prefix2.jpg": "matched",
        "train/fear/img_no_prefix3.jpg": "matched"}
    assert table.loc["train/angry/Training_1.jpg", "fer2013_rows"] == "0"
    assert table.loc["train/happy/Training_2.jpg", "neutral"] == 10
    assert table.loc["test/angry/PublicTest_3.jpg", "fer2013_rows"] == "1"
    assert table.loc["test/angry/PublicTest_3.jpg", "happiness"] == 1
    assert table.loc["test/sad/PrivateTest_4.jpg", "fer2013_rows"] == "5;6"
    assert table.loc["test/sad/PrivateTest_4.jpg", "happiness"] == 5
    assert table.loc["test/fear/img_no_prefix2.jpg", "usage"] == "PrivateTest"
    assert pd.isna(table.loc["test/sad/PublicTest_5.jpg", "neutral"])
    votes = fm.votes_by_file(dict(zip(files["path"], files["sha256"])), new, mapping)
    assert len(votes) == 6 and votes["neutral"].dtype == np.int64
    assert (votes[list(fm.VOTE_COLUMNS)].sum(axis=1) == 10).all()


def test_shipped_map_is_small_unique_and_documented():
    table = fm.load_map()
    assert fm.MAP_PATH.stat().st_size < 400_000
    assert (table["sha256_prefix"].str.len() == fm.PREFIX_LEN).all()
    assert set(table["usage"]) == set(fm.USAGES)
    assert table["fer2013new_rows"].str.fullmatch(r"\d+(;\d+)*").all()
    rows = table["fer2013new_rows"].str.split(";").explode().astype(int)
    assert rows.between(0, fm.FER2013NEW_ROWS - 1).all() and not rows.duplicated().any()
    notice = (fm.MAP_PATH.parent / "FERPLUS_NOTICE.txt").read_text()
    assert "MIT License" in notice and "Copyright (c) Microsoft Corporation" in notice
    assert fm.FER2013NEW_SHA256 in notice


def test_bad_inputs(tmp_path):
    with pytest.raises(fm.FerplusMapError, match="not found"):
        fm.read_fer2013new(tmp_path / "none.csv")
    with pytest.raises(fm.FerplusMapError, match="lacks columns"):
        fm.read_fer2013new(b"Usage,Image name\nTraining,a.png\n")
    head = "Usage,Image name," + ",".join(fm.VOTE_COLUMNS) + "\n"
    with pytest.raises(fm.FerplusMapError, match="data rows"):
        fm.read_fer2013new((head + "Training,a.png" + ",1" * 10 + "\n").encode())
    with pytest.raises(fm.FerplusMapError, match="sha256"):
        fm.read_fer2013new(head.encode(), check_sha256=True)
    rows = ["Training,a.png" + ",1" * 10] * (fm.FER2013NEW_ROWS - 1)
    for bad in (",1" * 9 + ",", ",1" * 9 + ",-1", ",1" * 9 + ",x"):  # blank, negative, not a number
        with pytest.raises(fm.FerplusMapError, match=r"not whole numbers 0 or more in columns \['NF'\]"):
            fm.read_fer2013new((head + "\n".join([*rows, "Training,b.png" + bad]) + "\n").encode())
    with pytest.raises(fm.FerplusMapError, match="is a folder"):
        fm.read_fer2013new(tmp_path)
    (tmp_path / "m.csv").write_text("sha,usage\n")
    with pytest.raises(fm.FerplusMapError, match="columns"):
        fm.load_map(tmp_path / "m.csv")
    with pytest.raises(fm.FerplusMapError, match="path and sha256"):
        fm.match_files(pd.DataFrame({"path": ["a"]}), pd.DataFrame(), fm.load_map())


@pytest.mark.skipif(not REAL, reason="../shared FER-2013 folders and FER+ files not present")
def test_join_reproduces_the_shared_votes_table_exactly():
    expected = pd.read_csv(FERPLUS / "ferplus_votes_by_file.csv", dtype={"fer2013_rows": str})
    files = fm.hash_folder(FER2013)
    table = fm.match_files(files, FERPLUS / "fer2013new.csv")
    assert table["status"].value_counts().to_dict() == {"matched": 35576, "not_in_map": 311}
    unmatched = pd.read_csv(FERPLUS / "ferplus_unmatched_files.csv")
    assert set(table.loc[table["status"] == "not_in_map", "path"]) == set(unmatched["path"])
    got = fm.votes_by_file(files, fm.read_fer2013new(FERPLUS / "fer2013new.csv", check_sha256=True))
    fm._assert_same_votes(got, expected)           # same files, same rows, same votes
    merged = got.merge(expected, on="path", suffixes=("", "_expected"))
    assert len(merged) == len(expected) == len(got)
    for c in fm.VOTE_COLUMNS:
        assert (merged[c] == merged[f"{c}_expected"]).all()
    assert (merged["usage"] == merged["usage_expected"]).all()


@pytest.mark.skipif(not REAL, reason="../shared FER-2013 folders and FER+ files not present")
def test_builder_reproduces_the_shipped_file(tmp_path):
    summary = fm.build_map(FER2013, FERPLUS / "ferplus_votes_by_file.csv", FERPLUS / "fer2013_folder_to_ferplus.csv",
                           FERPLUS / "fer2013new.csv", tmp_path / "map.csv.gz")
    assert summary["voted_files"] == 35576 and summary["distinct_hashes"] == 34034
    assert (tmp_path / "map.csv.gz").read_bytes() == fm.MAP_PATH.read_bytes()
