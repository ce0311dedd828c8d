"""fair.py: humans and models against the same references, paired bootstrap verdicts. Formulas checked by hand."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from femo_pipeline import fair
from femo_pipeline_tests.conftest import SHARED

VOTES = SHARED / "datasets" / "ferplus" / "ferplus_votes_by_file.csv"
ANGER, DISGUST, FEAR, HAPPY, SAD, SURPRISE, NEUTRAL = range(7)


def _votes(*images: dict) -> pd.DataFrame:
    return pd.DataFrame([{c: 0 for c in fair.VOTE_COLUMNS} | img for img in images])


# Three images, worked out by hand in the comments below.
#   1: neutral 4, happiness 4, unknown 2 (a tie once a vote is taken out)
#   2: contempt 5, anger 3, unknown 2   (the others' plurality is always contempt)
#   3: sadness 3, fear 2, surprise 1    (6 votes; leaving out a sadness vote leaves a sadness/fear tie)
VOTES3 = _votes({"neutral": 4, "happiness": 4, "unknown": 2},
                {"contempt": 5, "anger": 3, "unknown": 2},
                {"sadness": 3, "fear": 2, "surprise": 1})
LABELS3 = np.array([HAPPY, ANGER, FEAR])
MODEL3 = {"model": np.array([NEUTRAL, ANGER, SAD])}


def test_answer_order_maps_ferplus_columns_onto_study_ids():
    m = fair.answer_order(VOTES3)
    assert m[0, NEUTRAL] == 4 and m[0, HAPPY] == 4 and m[0, 8] == 2
    assert m[1, 7] == 5 and m[1, ANGER] == 3
    assert m[2, SAD] == 3 and m[2, FEAR] == 2 and m[2, SURPRISE] == 1
    assert (fair.answer_order(VOTES3[list(fair.VOTE_COLUMNS)].to_numpy()) == m).all()
    with pytest.raises(ValueError, match="shape"):
        fair.answer_order(np.zeros((2, 8)))
    with pytest.raises(ValueError, match="lack columns"):
        fair.answer_order(VOTES3.drop(columns="NF"))


def test_leave_one_out_all_votes_by_hand():
    s = fair.score(VOTES3, MODEL3, reference="ferplus", variant="all_votes")
    # image 1: leave out neutral (x4) -> happiness; leave out happiness (x4) -> neutral;
    #          leave out unknown (x2) -> tie {neutral, happiness}, 1/2 each.
    #          human: 0 (no vote names its reference); model 'neutral': 4*0 + 4*1 + 2*1/2 = 5.
    # image 2: the others' plurality is contempt for every vote. Human: the 5 contempt votes match it (5); the
    #          model (anger) cannot answer contempt: 0.
    # image 3: leave out sadness (x3) -> tie {sadness, fear}; leave out fear (x2) -> sadness; surprise (x1) -> sadness.
    #          human: 3 * 1/2 = 1.5; model 'sadness': 3 * 1/2 + 2 + 1 = 4.5.
    assert s.weight.tolist() == [10, 10, 6]
    assert s.image_credit("human").tolist() == pytest.approx([0, 5, 1.5])
    assert s.image_credit("model").tolist() == pytest.approx([5, 0, 4.5])
    assert s.accuracy("human") == pytest.approx(6.5 / 26)          # per-vote weighting: sum credits / votes
    assert s.accuracy("model") == pytest.approx(9.5 / 26)
    per_image = s.per_image()
    assert per_image["human"].tolist() == pytest.approx([0, 0.5, 0.25])
    assert per_image["model"].tolist() == pytest.approx([0.5, 0, 0.75])
    # reference mass per class (ties split): neutral 5, happiness 5 (image 1); contempt 10 (image 2);
    # sadness 1.5 + 2 + 1 = 4.5 and fear 1.5 (image 3). Mass sums to the votes.
    mass = s.mass.sum(axis=0)
    assert mass[NEUTRAL] == 5 and mass[HAPPY] == 5 and mass[7] == 10
    assert mass[SAD] == pytest.approx(4.5) and mass[FEAR] == pytest.approx(1.5) and mass.sum() == 26
    human, model = s.recall("human", range(10)), s.recall("model", range(10))
    assert human[NEUTRAL] == 0 and human[SAD] == pytest.approx(1.5 / 4.5) and human[7] == 0.5 and human[FEAR] == 0
    assert model[NEUTRAL] == 1 and model[HAPPY] == 0 and model[SAD] == 1 and model[7] == 0 and model[FEAR] == 0
    assert np.isnan(model[ANGER]) and np.isnan(human[DISGUST])   # no reference of that class


def test_strict_rule_makes_every_non_emotion_vote_a_human_miss():
    s = fair.score(VOTES3, MODEL3, variant="all_votes", non_emotion_answers_match=False)
    assert s.image_credit("human").tolist() == pytest.approx([0, 0, 1.5])   # the 5 contempt matches are gone
    assert s.accuracy("model") == pytest.approx(9.5 / 26)                   # the model never answers those


def test_leave_one_out_seven_classes_by_hand():
    s = fair.score(VOTES3, MODEL3, reference="ferplus", variant="seven_classes")
    # contempt/unknown/NF votes vanish as readers and from references.
    # image 1: neutral 4, happiness 4 -> human 0, model 'neutral' 4 (met by the 4 happiness votes' references)
    # image 2: anger 3 -> leaving one out leaves anger 2: human 3, model 'anger' 3
    # image 3: unchanged: human 1.5, model 4.5
    assert s.weight.tolist() == [8, 3, 6]
    assert s.image_credit("human").tolist() == pytest.approx([0, 3, 1.5])
    assert s.image_credit("model").tolist() == pytest.approx([4, 3, 4.5])
    assert s.accuracy("human") == pytest.approx(4.5 / 17)
    assert s.accuracy("model") == pytest.approx(11.5 / 17)
    assert s.mass.shape == (3, 7)


def test_ties_give_the_same_credit_to_both_readers():
    # image 3 alone: a model answering 'fear' earns exactly what the fear/sadness voters earn together
    s = fair.score(VOTES3.iloc[[2]], {"fear": [FEAR], "sadness": [SAD], "surprise": [SURPRISE]})
    assert s.image_credit("fear")[0] == pytest.approx(1.5)        # only the 3 tied references, 1/2 each
    assert s.image_credit("human")[0] == pytest.approx(1.5)       # the 3 sadness votes, 1/2 each
    assert s.image_credit("sadness")[0] == pytest.approx(4.5)
    assert s.image_credit("surprise")[0] == 0


def test_votes_without_a_reference_are_left_out():
    votes = _votes({"anger": 1, "unknown": 1}, {"fear": 1}, {"happiness": 2})
    s7 = fair.score(votes, {"m": [ANGER, FEAR, HAPPY]}, variant="seven_classes")
    # image 1 and 2: a single seven-class vote has no others -> weight 0; image 3: two votes agree
    assert s7.weight.tolist() == [0, 0, 2]
    assert s7.accuracy("human") == 1 and s7.accuracy("m") == 1
    assert s7.per_image()["human"].isna().tolist() == [True, True, False]
    sa = fair.score(votes, {"m": [ANGER, FEAR, HAPPY]}, variant="all_votes")
    # image 1: leave out anger -> unknown (model misses, human 'anger' misses); leave out unknown -> anger (the
    # human's 'unknown' misses, the model's 'anger' matches)
    assert sa.weight.tolist() == [2, 0, 2]
    assert sa.image_credit("human").tolist() == [0, 0, 2] and sa.image_credit("m").tolist() == [1, 0, 2]


def test_fer2013_label_reference_by_hand():
    for variant, weight, human, model in (("all_votes", [10, 10, 6], [4, 3, 2], [0, 10, 0]),
                                          ("seven_classes", [8, 3, 6], [4, 3, 2], [0, 3, 0])):
        s = fair.score(VOTES3, MODEL3, LABELS3, reference="fer2013", variant=variant)
        # each vote scores when it names the label; the model's prediction once per (scored) vote
        assert s.weight.tolist() == weight
        assert s.image_credit("human").tolist() == human
        assert s.image_credit("model").tolist() == model
        assert s.accuracy("human") == pytest.approx(9 / sum(weight))
        assert s.recall("model")[ANGER] == 1 and s.recall("model")[HAPPY] == 0
        assert s.recall("human")[HAPPY] == pytest.approx(4 / weight[0])
    with pytest.raises(ValueError, match="labels"):
        fair.score(VOTES3, MODEL3, reference="fer2013")


def test_bad_inputs():
    with pytest.raises(ValueError, match="predictions"):
        fair.score(VOTES3, {"m": [0, 7, 1]})
    with pytest.raises(ValueError, match="predictions"):
        fair.score(VOTES3, {"m": [0, 1]})
    with pytest.raises(ValueError, match="variant"):
        fair.score(VOTES3, variant="eight")
    with pytest.raises(ValueError, match="twice"):
        fair.score(VOTES3, {"human": [0, 0, 0]})


def test_paired_bootstrap_ratio_of_sums_and_constant_difference():
    # unequal weights: accuracy is a ratio of sums, not a mean of per-image ratios
    r = fair.paired_bootstrap(np.array([2.0, 0.0]), np.array([0.0, 1.0]), np.array([2.0, 1.0]), n_boot=200)
    assert r["a"] == pytest.approx(2 / 3) and r["b"] == pytest.approx(1 / 3) and r["diff"] == pytest.approx(1 / 3)
    # model always exactly one vote-credit ahead per vote: every resample gives the same difference
    r = fair.paired_bootstrap(np.ones(50), np.zeros(50), np.ones(50), n_boot=300, seed=1)
    assert r["diff_low"] == r["diff_high"] == 1.0
    # seeded
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, 80).astype(float), rng.integers(0, 2, 80).astype(float)
    assert fair.paired_bootstrap(a, b, np.ones(80), seed=4) == fair.paired_bootstrap(a, b, np.ones(80), seed=4)


def test_paired_bootstrap_agrees_with_scipy():
    rng = np.random.default_rng(5)
    n = 600
    w = rng.integers(5, 11, n).astype(float)
    b = rng.binomial(w.astype(int), 0.6).astype(float)
    a = np.minimum(w, b + rng.binomial(2, 0.5, n))
    ours = fair.paired_bootstrap(a, b, w, n_boot=4000, seed=0)
    ref = stats.bootstrap((a, b, w), lambda x, y, z, axis=-1: (x.sum(axis) - y.sum(axis)) / z.sum(axis),
                          paired=True, vectorized=True, n_resamples=4000, method="percentile",
                          rng=np.random.default_rng(1)).confidence_interval
    assert ours["diff_low"] == pytest.approx(ref.low, abs=0.004)
    assert ours["diff_high"] == pytest.approx(ref.high, abs=0.004)


def _one_vote_images(both_right: int, both_wrong: int, model_only: int, human_only: int):
    """One vote per image, FER-2013 label 'anger' everywhere: a vote for anger is a human hit."""
    kinds = [(1, 1)] * both_right + [(0, 0)] * both_wrong + [(1, 0)] * model_only + [(0, 1)] * human_only
    votes = _votes(*({"anger": 1} if human else {"happiness": 1} for _, human in kinds))
    model = np.array([ANGER if m else HAPPY for m, _ in kinds])
    return votes, np.full(len(kinds), ANGER), model


def test_intervals_overlap_but_the_paired_interval_excludes_zero():
    votes, labels, model = _one_vote_images(both_right=100, both_wrong=80, model_only=20, human_only=0)
    s = fair.score(votes, {"model": model}, labels, reference="fer2013")
    c = fair.compare(s, "model", n_boot=2000, seed=0)
    assert c["accuracy_reader"] == pytest.approx(0.6) and c["accuracy_against"] == pytest.approx(0.5)
    assert c["difference_pp"] == pytest.approx(10.0)
    # the two separate 95 % intervals overlap (about +-7 points each) ...
    assert c["accuracy_reader_low"] < c["accuracy_against_high"]
    # ... yet the paired difference (20 discordant images, all for the model) is clearly positive:
    # sd of the difference ~ sqrt(0.1 * 0.9 / 200) = 2.1 points -> about [6, 14]
    assert 4 < c["ci_low_pp"] < 10 < c["ci_high_pp"] < 16
    assert c["verdict"] == "better"
    assert c["images"] == 200 and c["votes"] == 200


def test_worse_and_no_detectable_difference():
    votes, labels, model = _one_vote_images(both_right=100, both_wrong=80, model_only=0, human_only=20)
    c = fair.compare(fair.score(votes, {"model": model}, labels, reference="fer2013"), "model")
    assert c["difference_pp"] == pytest.approx(-10.0) and c["ci_high_pp"] < 0 and c["verdict"] == "worse"
    votes, labels, model = _one_vote_images(both_right=100, both_wrong=80, model_only=10, human_only=10)
    c = fair.compare(fair.score(votes, {"model": model}, labels, reference="fer2013"), "model")
    assert c["difference_pp"] == pytest.approx(0.0) and c["ci_low_pp"] < 0 < c["ci_high_pp"]
    assert c["verdict"] == "no detectable difference"
    assert fair.verdict(0.1, 2) == "better" and fair.verdict(-2, -0.1) == "worse"
    assert fair.verdict(float("nan"), float("nan")) == "not measurable"


def test_model_against_model_is_paired_too():
    votes, labels, m1 = _one_vote_images(both_right=100, both_wrong=80, model_only=20, human_only=0)
    m2 = np.where(np.arange(200) < 190, m1, HAPPY)        # m2 = m1 except 10 images where m1 was right
    s = fair.score(votes, {"m1": m1, "m2": m2}, labels, reference="fer2013")
    c = fair.compare(s, "m1", against="m2")
    assert c["difference_pp"] == pytest.approx(5.0) and c["verdict"] == "better"
    assert fair.compare(s, "m2", against="m1")["verdict"] == "worse"


def test_per_class_by_hand():
    s = fair.score(VOTES3, MODEL3, variant="all_votes")
    table = fair.compare_per_class(s, "model", n_boot=200).set_index("emotion_id")
    assert list(table.index) == list(range(7))
    assert table.loc[NEUTRAL, "recall_reader"] == 1 and table.loc[NEUTRAL, "recall_against"] == 0
    assert table.loc[NEUTRAL, "difference_pp"] == pytest.approx(100)
    assert table.loc[SAD, "recall_against"] == pytest.approx(1 / 3) and table.loc[SAD, "reference_mass"] == 4.5
    assert table.loc[ANGER, "verdict"] == "not measurable"     # no anger references
    contempt = fair.compare_per_class(s, "model", classes=[7], n_boot=200).iloc[0]
    assert contempt["emotion"] == "Contempt" and contempt["recall_against"] == 0.5 and contempt["recall_reader"] == 0
    with pytest.raises(ValueError, match="classes"):
        fair.compare_per_class(fair.score(VOTES3, MODEL3), "model", classes=[7])


def test_per_class_paired_intervals_detect_class_differences():
    # 100 fear images and 100 happy images, one vote each, labelled as voted by default
    fear_votes = [{"fear": 1}] * 100
    happy_votes = [{"happiness": 1}] * 100
    votes = _votes(*fear_votes, *happy_votes)
    labels = np.array([FEAR] * 100 + [HAPPY] * 100)
    human_wrong = np.r_[np.arange(30), 100 + np.arange(5)]          # human votes 'surprise' here
    votes.loc[human_wrong, ["fear", "happiness"]] = 0
    votes.loc[human_wrong, "surprise"] = 1
    model = labels.copy()
    model[100:130] = SAD                                             # model misses 30 happy faces
    s = fair.score(votes, {"model": model}, labels, reference="fer2013")
    table = fair.compare_per_class(s, "model").set_index("emotion_id")
    assert table.loc[FEAR, "difference_pp"] == pytest.approx(30) and table.loc[FEAR, "verdict"] == "better"
    assert table.loc[HAPPY, "difference_pp"] == pytest.approx(-25) and table.loc[HAPPY, "verdict"] == "worse"
    # overall 85 % vs 82.5 %: 30 images for the model, 25 for the human -> no detectable difference
    assert fair.compare(s, "model")["verdict"] == "no detectable difference"


def test_fair_comparison_tables():
    verdicts, per_class = fair.fair_comparison(VOTES3, LABELS3, MODEL3 | {"other": [HAPPY, ANGER, FEAR]},
                                               n_boot=100)
    assert len(verdicts) == 2 * 2 * 2 and set(verdicts["reader"]) == {"model", "other"}
    assert set(verdicts["against"]) == {"human"} and len(per_class) == 8 * 7
    row = verdicts.set_index(["reference", "variant", "reader"]).loc[("ferplus", "seven_classes", "model")]
    assert row["accuracy_reader"] == pytest.approx(11.5 / 17) and row["accuracy_against"] == pytest.approx(4.5 / 17)
    mm, _ = fair.fair_comparison(VOTES3, LABELS3, MODEL3 | {"other": [HAPPY, ANGER, FEAR]}, against="other",
                                 n_boot=100)
    assert set(mm["reader"]) == {"human", "model"}


@pytest.mark.skipif(not VOTES.exists(), reason="FER+ votes not present")
def test_real_ferplus_votes_sanity():
    from femo_pipeline import human_baseline as hb
    from femo_pipeline.vocab import emotion_id

    votes = pd.read_csv(VOTES)
    test = votes[votes["split"] == "test"].reset_index(drop=True)
    labels = test["fer2013_label"].map(emotion_id).to_numpy()
    readers = {"fer2013_label": labels, "always_neutral": np.full(len(test), NEUTRAL)}
    seven = fair.score(test, readers, labels, variant="seven_classes")
    assert 0.76 < seven.accuracy("human") < 0.775
    # the all-votes human figure is the existing human baseline's 'single annotator vs the other nine'
    loo = hb.per_image_scores(test.assign(label_id=labels))
    every = fair.score(test, readers, labels, variant="all_votes")
    assert every.accuracy("human") == pytest.approx(loo["loo_agreement"].sum() / loo["votes"].sum())
    by_label = fair.score(test, readers, labels, reference="fer2013", variant="all_votes")
    assert by_label.accuracy("human") == pytest.approx(
        loo["votes_for_fer2013_label"].sum() / loo["votes"].sum())
    assert by_label.accuracy("fer2013_label") == 1.0
    assert 0.3 < seven.accuracy("always_neutral") < 0.4
    start = time.perf_counter()
    c = fair.compare(seven, "fer2013_label", n_boot=2000)
    assert time.perf_counter() - start < 3          # ~0.3 s measured for 7,143 images x 2,000 resamples
    assert c["verdict"] == "worse" and -14 < c["ci_low_pp"] < c["difference_pp"] < c["ci_high_pp"] < -9


def test_evaluation_metrics_on_sklearn_keep_their_edge_cases():
    from femo_pipeline import evaluation

    # a prediction outside `classes` is ignored by the matrix and is a miss for recall
    assert evaluation.confusion_matrix([0, 0, 1], [0, 9, 1], [0, 1]).tolist() == [[1, 0], [0, 1]]
    assert evaluation.per_class_recall([0, 0, 1], [0, 9, 1], [0, 1]) == {0: 0.5, 1: 1.0}
    # no listed true class at all, a single label, empty input
    assert evaluation.confusion_matrix([5, 5], [0, 1], [0, 1]).tolist() == [[0, 0], [0, 0]]
    assert evaluation.confusion_matrix([1, 1], [1, 1], [0, 1]).tolist() == [[0, 0], [0, 2]]
    assert np.isnan(evaluation.accuracy([], [])) and np.isnan(evaluation.macro_f1([], [], [0]))
    assert np.isnan(evaluation.per_class_recall([], [], [0])[0])
    # a class with neither true nor predicted examples is left out of macro-F1; all of them -> NaN
    assert evaluation.macro_f1([0, 0], [0, 0], [0, 1]) == 1.0
    assert np.isnan(evaluation.macro_f1([2], [2], [0, 1]))
