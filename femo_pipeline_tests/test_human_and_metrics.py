"""Evaluation math and the human baseline, on hand-made cases and on the real FER+ votes when present."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from femo_pipeline import evaluation
from femo_pipeline import human_baseline as hb
from femo_pipeline_tests.conftest import SHARED, materialize

VOTES = SHARED / "datasets" / "ferplus" / "ferplus_votes_by_file.csv"


def test_metrics_by_hand():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 0, 0]
    assert evaluation.confusion_matrix(y_true, y_pred, [0, 1, 2]).tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 0]]
    assert evaluation.accuracy(y_true, y_pred) == pytest.approx(3 / 6)
    assert evaluation.per_class_recall(y_true, y_pred, [0, 1, 2]) == {0: 0.5, 1: pytest.approx(2 / 3), 2: 0.0}
    # F1: class 0: tp1 fp2 fn1 -> 2/5; class 1: tp2 fp1 fn1 -> 4/6; class 2: tp0 fp0 fn1 -> 0
    assert evaluation.macro_f1(y_true, y_pred, [0, 1, 2]) == pytest.approx((2 / 5 + 4 / 6 + 0) / 3)
    assert np.isnan(evaluation.per_class_recall(y_true, y_pred, [3])[3])


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    correct = np.array([1] * 70 + [0] * 30)
    stat = lambda idx: correct[idx].mean()  # noqa: E731
    lo, hi = evaluation.bootstrap_ci(stat, len(correct), n_boot=500, seed=3)
    assert (lo, hi) == evaluation.bootstrap_ci(stat, len(correct), n_boot=500, seed=3)
    assert 0.58 < lo < 0.7 < hi < 0.8


def _votes(rows):
    frame = pd.DataFrame([{c: 0 for c in hb.VOTE_COLUMNS} | r for r in rows])
    frame["usage"] = "PublicTest"
    frame["path"] = [f"test/x/{i}.jpg" for i in range(len(frame))]
    frame["label_id"] = frame["fer2013_label"].map(hb.emotion_id)
    return frame


def test_human_baseline_by_hand():
    votes = _votes([
        {"fer2013_label": "angry", "anger": 6, "neutral": 4},
        {"fer2013_label": "happy", "happiness": 5, "surprise": 5},
        {"fer2013_label": "sad", "sadness": 3, "unknown": 4, "NF": 3},
    ])
    assert hb.plurality(votes).tolist() == [0, -1, -1]
    scores = hb.per_image_scores(votes)
    assert scores["votes_for_fer2013_label"].tolist() == [6, 5, 3]
    assert scores["loo_agreement"].tolist() == pytest.approx([6, 0, 4 / 3])
    summary = hb.summarise(votes, n_boot=50)
    assert summary["single_annotator_vs_fer2013_label"] == pytest.approx(14 / 30)
    assert summary["single_annotator_vs_other_nine"] == pytest.approx(22 / 90)
    assert summary["ferplus_plurality_vs_fer2013_label"] == 1.0 and summary["images_with_a_ferplus_plurality"] == 1
    assert summary["single_annotator_recall_per_fer2013_class"][0] == 0.6


def test_bad_votes_files(tmp_path):
    with pytest.raises(hb.VotesFormatError, match="not found"):
        hb.read_votes(tmp_path / "none.csv")
    (tmp_path / "v.csv").write_text("usage,path\nPublicTest,a.jpg\n")
    with pytest.raises(hb.VotesFormatError, match="lacks columns"):
        hb.read_votes(tmp_path / "v.csv")


_HEADER = "usage,path,fer2013_label," + ",".join(hb.VOTE_COLUMNS)
_GOOD = "PublicTest,test/angry/a.jpg,angry,1,0,0,0,8,0,0,0,1,0"


def _votes_file(tmp_path, *rows: str, header: str = _HEADER):
    path = tmp_path / "votes.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize("row, message", [
    ("PublicTest,test/angry/b.jpg,angry,1,,0,0,8,0,0,0,1,0", "not a whole number 0-999"),  # blank: never a NaN cast
    ("PublicTest,test/angry/b.jpg,angry,1,-50,0,0,8,0,0,0,1,0", "not a whole number"),
    ("PublicTest,test/angry/b.jpg,angry,1,1.5,0,0,8,0,0,0,1,0", "not a whole number"),
    ("PublicTest,test/angry/b.jpg,angry,x,0,0,0,8,0,0,0,1,0", "on lines \\[3\\]"),
    ("PublicTest,test/angry/b.jpg,angry,\u0661,0,0,0,8,0,0,0,1,0", "not a whole number"),
    ("PublicTest,test/angry/b.jpg,angry,0,0,0,0,0,0,0,0,0,0", "no votes at all"),
    ("PublicTest,test/angry/b.jpg,3,1,0,0,0,8,0,0,0,1,0", "unknown FER-2013 labels"),
    ("PublicTest,test/angry/b.jpg,,1,0,0,0,8,0,0,0,1,0", "unknown FER-2013 labels"),
])
def test_a_bad_vote_or_label_cell_is_refused_with_its_line(tmp_path, row, message):
    with pytest.raises(hb.VotesFormatError, match=message):
        hb.read_votes(_votes_file(tmp_path, _GOOD, row))


def test_votes_are_read_as_counts_and_a_column_named_twice_is_refused(tmp_path):
    votes = hb.read_votes(_votes_file(tmp_path, _GOOD))
    assert votes["anger"].tolist() == [8] and votes["anger"].dtype == np.int64 and votes["label_id"].tolist() == [0]
    with pytest.raises(hb.VotesFormatError, match=r"more than once"):
        hb.read_votes(_votes_file(tmp_path, _GOOD + ",0", header=_HEADER + ",happiness"))


def test_a_votes_path_that_is_a_folder_or_a_fifo_is_a_clear_error_not_a_hang(tmp_path):
    import os
    import time

    os.mkfifo(tmp_path / "fifo.csv")
    start = time.monotonic()
    with pytest.raises(hb.VotesFormatError, match="not a regular file"):
        hb.read_votes(tmp_path / "fifo.csv")
    assert time.monotonic() - start < 2
    with pytest.raises(hb.VotesFormatError, match="is a folder"):
        hb.read_votes(tmp_path)
    result = materialize(tmp_path / "d", selection=["human_baseline"], raise_on_error=False,
                         run_config={"ops": {"human_baseline": {"config": {"votes_csv": str(tmp_path)}}}})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "is a folder" in str(failure.event_specific_data.error)


@pytest.mark.skipif(not VOTES.exists(), reason="FER+ votes not present")
def test_human_baseline_asset_on_real_votes(tmp_path):
    result = materialize(tmp_path, selection=["human_baseline"],
                         run_config={"ops": {"human_baseline": {"config": {"votes_csv": str(VOTES), "n_boot": 200}}}})
    assert result.success
    report = json.loads((tmp_path / "reports" / "human_baseline.json").read_text())
    assert report["images"] == 3577 + 3570 and report["votes"] == 10 * report["images"]
    lo, hi = report["single_annotator_vs_fer2013_label_ci95"]
    assert 0.3 < lo < report["single_annotator_vs_fer2013_label"] < hi < 0.9
    # the other nine annotators agree with one annotator more often than FER-2013's single label does
    assert report["single_annotator_vs_other_nine"] > report["single_annotator_vs_fer2013_label"]


def test_human_baseline_skips_without_votes(tmp_path):
    result = materialize(tmp_path, selection=["human_baseline"],
                         run_config={"ops": {"human_baseline": {"config": {"votes_csv": str(tmp_path / "no.csv")}}}})
    assert result.success
    assert "not found" in result.asset_materializations_for_node("human_baseline")[0].metadata["skipped"].value
