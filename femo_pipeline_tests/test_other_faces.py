"""Every reader on labelled faces other than FER-2013's (Kaggle's web images, each extra set): the statistics by
hand, the table's bookkeeping, the report's section, and the rows a whole demo run writes."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd

from femo_pipeline import other_faces, report_text


def test_resampling_subjects_widens_the_interval_when_frames_of_a_person_agree():
    """Two people, five frames each, one always read right, one always wrong: resampling images pretends to ten
    independent faces; resampling the two people gives every mix of them (both right, one each, both wrong)."""
    labels = np.zeros(10, int)
    answers = np.array([0] * 5 + [1] * 5)
    by_image = other_faces.image_scores(labels, answers, np.arange(10), n_boot=2000, seed=1)["accuracy"]
    by_subject = other_faces.image_scores(labels, answers, np.repeat([0, 1], 5), n_boot=2000, seed=1)["accuracy"]
    assert by_image[0] == by_subject[0] == 0.5
    assert by_subject[1:] == (0.0, 1.0)
    assert 0.1 <= by_image[1] < 0.5 < by_image[2] <= 0.9


def test_balanced_recall_counts_every_class_alike():
    labels = np.array([0] * 8 + [5] * 2)
    answers = np.array([0] * 8 + [0] * 2)  # every face read as Anger: the two Surprise faces missed
    scores = other_faces.image_scores(labels, answers, np.arange(10), n_boot=200)
    assert scores["accuracy"][0] == 0.8 and scores["balanced_recall"][0] == 0.5
    assert scores["balanced_recall"][1] <= 0.5 <= scores["balanced_recall"][2]


def _frame(subjects, sequences, labels, split="posed"):
    return pd.DataFrame({"id": np.arange(len(labels)), "emotion_id": labels, "subject": subjects,
                         "sequence": sequences, "split": split})


def test_per_subject_and_per_sequence_rows_by_hand():
    frame = _frame(["A", "A", "B", "B", None, None], ["1", "2", "1", "1", None, None], [0, 0, 1, 1, 2, 2])
    answers = np.array([0, 1, 1, 1, 0, 2])
    rows = {(r["variant"], r["metric"]): r for r in other_faces.score_rows("posed", frame, answers, "r", "run-r",
                                                                           n_boot=500, seed=0)}
    assert rows["per_image", "accuracy"]["value"] == 4 / 6 and rows["per_image", "accuracy"]["n"] == 6
    assert rows["per_image", "balanced_recall"]["value"] == (1 / 2 + 1 + 1 / 2) / 3
    # A read right once in two, B twice in two: each person counts once
    assert rows["per_subject", "accuracy"]["value"] == 0.75 and rows["per_subject", "accuracy"]["n"] == 2
    # recordings A/1 (right), A/2 (wrong), B/1 (both right); resampled by person: A alone, B alone or both
    sequence = rows["per_sequence", "accuracy"]
    assert sequence["value"] == 2 / 3 and sequence["n"] == 3 and (sequence["ci_low"], sequence["ci_high"]) == (0.5, 1)
    assert all(r["reference"] == "folder_label" and r["model_run_id"] == "run-r" for r in rows.values())
    web = other_faces.score_rows("web", _frame([None] * 3, [None] * 3, [0, 1, 2]), np.array([0, 1, 1]), "r", None,
                                 n_boot=50, seed=0)
    assert {r["variant"] for r in web} == {"per_image"}


def test_every_set_is_a_dataset_classes_left_out_are_counted_and_a_reader_without_answers_is_named():
    kaggle = _frame([None] * 3, [None] * 3, [0, 3, 7], split=None)
    extra = pd.concat([_frame(["S1", "S1", "S2"], ["1", "1", "2"], [0, 3, 7], split="posed"),
                       _frame([None, None], [None, None], [4, 5], split="full test")]).reset_index(drop=True)
    extra["id"] = np.arange(10, 10 + len(extra))
    answers = [("run-a", i, e) for i, e in zip([0, 1, 2, 10, 11, 12, 13, 14], [0, 3, 3, 0, 0, 3, 4, 5])]
    answers += [("run-b", i, 0) for i in (0, 1, 2, 13, 14)]  # no answer on the posed set
    predictions = pd.DataFrame(answers, columns=["model_run_id", "image_id", "emotion_id"])
    rows, sets = other_faces.tables(kaggle, extra, predictions, {"A": "run-a", "B": "run-b"}, {"full test"},
                                    n_boot=100)
    assert [s["dataset"] for s in sets] == [other_faces.KAGGLE, "full test (extra set)", "posed"]
    posed = sets[2]
    assert posed["images"] == 2 and posed["left_out"] == {"Contempt": 1} and posed["subjects"] == 1  # S2: contempt
    assert posed["resampled"] == "subjects" and posed["not_scored"] == ["B"] and sets[0]["not_scored"] == []
    assert sets[0]["left_out"] == {"Contempt": 1} and sets[0]["resampled"] == "images"
    accuracy = rows[(rows["variant"] == "per_image") & (rows["metric"] == "accuracy")].set_index(["dataset", "reader"])
    assert accuracy.loc[("posed", "A"), "value"] == 0.5 and accuracy.loc[("posed", "A"), "n"] == 2
    assert accuracy.loc[(other_faces.KAGGLE, "A"), "value"] == 1.0 and ("posed", "B") not in accuracy.index
    assert accuracy.loc[("full test (extra set)", "B"), "value"] == 0.0
    assert set(rows["model_run_id"]) == {"run-a", "run-b"}


def test_the_report_section_is_one_table_of_every_reader_per_set_at_one_view():
    rows, sets = other_faces.tables(
        _frame([None] * 2, [None] * 2, [0, 3], split=None), _frame(["S1", "S2"], ["1", "1"], [0, 7]),
        pd.DataFrame([(r, i, 0) for r in ("run-a", "run-a2") for i in (0, 1)],
                     columns=["model_run_id", "image_id", "emotion_id"]),
        {"femo CNN": "run-a", "femo CNN, 2 views (mirror)": "run-a2"}, set(), n_boot=50)
    lines = "\n".join(report_text.other_faces_lines({"other_faces": {"sets": sets, "scores": rows.to_dict("records")}}))
    assert "## Other faces" in lines and "never used for training, tuning or selection" in lines
    assert "- posed: 1 images of 1 classes, 1 subjects, 1 sequences; left out (no reader answers it): 1 Contempt" \
        in lines
    assert "| set | reader | images | accuracy (95 % CI) | balanced recall (95 % CI) | per subject (95 % CI) |" in lines
    assert "| posed | femo CNN | 1 | 100.0 % (100.0-100.0 %) | 100.0 % (100.0-100.0 %) | 100.0 % (100.0-100.0 %) |" \
        in lines
    assert "| Kaggle web images | femo CNN | 2 | 50.0 %" in lines
    assert "2 views (mirror) |" not in lines  # the mirrored rows stay in benchmark_scores
    assert report_text.other_faces_lines({}) == []


def test_a_demo_run_scores_every_reader_on_every_other_set(demo_run):
    """The whole demo graph: every reader predicts the two synthetic extra sets, benchmark_scores holds a row per
    reader and set (per subject on the posed set, whose names carry subjects), and the report shows the table."""
    data_dir, result = demo_run
    assert result.success
    meta = result.asset_materializations_for_node("evaluation_images")[0].metadata
    assert set(meta["extra_images"].value) == {"posed-lab", "web-crops"}
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        readers = {r for (r,) in con.execute("SELECT DISTINCT reader FROM benchmark_scores WHERE dataset = "
                                             "'leak-free test' AND variant = 'per_image'").fetchall()}
        other = con.execute("SELECT dataset, reader, variant, metric, value, ci_low, ci_high, n FROM benchmark_scores "
                            "WHERE reference = 'folder_label'").df()
        subjects = con.execute("SELECT count(DISTINCT subject) FROM images WHERE source_id = 5 AND split = "
                               "'posed-lab' AND emotion_id < 7").fetchone()[0]
        extra_ids = {i for (i,) in con.execute("SELECT id FROM images WHERE source_id = 5 AND emotion_id < 7")
                     .fetchall()}
        predicted = con.execute("SELECT model_run_id, count(*) FROM predictions WHERE list_contains(?, image_id) "
                                "GROUP BY 1", [sorted(extra_ids)]).fetchall()
    assert predicted and all(n == len(extra_ids) for _, n in predicted)
    per_image = other[(other["variant"] == "per_image") & (other["metric"] == "accuracy")]
    seeds = {r for r in readers if "seed" in r}
    for dataset in ("posed-lab", "web-crops", other_faces.KAGGLE):
        assert set(per_image.loc[per_image["dataset"] == dataset, "reader"]) == readers - seeds
    assert ((other["value"] >= 0) & (other["value"] <= 1)).all()
    per_subject = other[other["variant"] == "per_subject"]
    assert set(per_subject["dataset"]) == {"posed-lab"} and set(per_subject["n"]) == {subjects}
    report = json.loads((data_dir / "reports" / "benchmark.json").read_text())
    posed = next(s for s in report["other_faces"]["sets"] if s["dataset"] == "posed-lab")
    assert posed["left_out"] == {"Contempt": posed["images"] // 6} and posed["resampled"] == "subjects"
    md = (data_dir / "reports" / "benchmark.md").read_text()
    assert "## Other faces" in md and "| posed-lab | " in md and "| web-crops | " in md
