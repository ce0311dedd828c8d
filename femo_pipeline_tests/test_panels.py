"""Panels of k people against models on the same references: the arithmetic checked by hand on small vote
tables, ties, panels that leave too few votes, and the shared references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from femo_pipeline import fair, panels

# FER+ vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
HAPPY, NEUTRAL, SURPRISE, ANGER = 1, 0, 2, 4  # FER+ columns
S_HAPPY, S_SURPRISE, S_NEUTRAL, S_ANGER = 3, 5, 6, 0  # study ids


def _votes(*rows: dict) -> np.ndarray:
    out = np.zeros((len(rows), 10), int)
    for i, row in enumerate(rows):
        for col, count in row.items():
            out[i, col] = count
    return out


def test_a_unanimous_image_is_read_right_by_any_panel_and_a_split_one_by_none():
    votes = _votes({HAPPY: 10}, {HAPPY: 5, NEUTRAL: 5})
    for k in (1, 3, 5):
        s = panels.panel_scored(votes, k, {"model": [S_HAPPY, S_HAPPY]}, repeats=50, seed=k)
        assert s.weight.tolist() == [1.0, 1.0]
        credit = s.image_credit("panel")
        assert credit[0] == pytest.approx(1.0)
        # 5 happy, 5 neutral: a panel of 1 always leaves the other class in the majority of the rest
        if k == 1:
            assert credit[1] == pytest.approx(0.0)
    one = panels.panel_scored(votes, 1, {"model": [S_HAPPY, S_HAPPY]}, repeats=4000, seed=0)
    # the model says happy; the rest's plurality is happy exactly when the panel took the neutral vote
    assert one.image_credit("model")[1] == pytest.approx(0.5, abs=0.03)
    assert one.accuracy("model") == pytest.approx(0.75, abs=0.02) and one.accuracy("panel") == pytest.approx(0.5)


def test_ties_in_the_reference_and_in_the_panel_share_the_credit():
    # 2 happy, 2 surprise, 1 neutral; panel of 1 takes the neutral vote with chance 1/5: the rest is a 2-2 tie
    votes = _votes({HAPPY: 2, SURPRISE: 2, NEUTRAL: 1})
    s = panels.panel_scored(votes, 1, {"happy": [S_HAPPY], "neutral": [S_NEUTRAL]}, repeats=20000, seed=3)
    # by hand: panel happy (2/5) -> rest H1 S2 N1 -> surprise: panel 0, model happy 0
    #          panel surprise (2/5) -> rest H2 S1 N1 -> happy: model happy 1
    #          panel neutral (1/5) -> rest H2 S2: tie, credit 1/2 to happy, 0 to neutral
    assert s.image_credit("happy")[0] == pytest.approx(2 / 5 + 1 / 10, abs=0.01)
    assert s.image_credit("neutral")[0] == pytest.approx(0.0)
    assert s.image_credit("panel")[0] == pytest.approx(0.0)
    # a panel of 2 drawing one happy and one surprise vote is itself tied: it answers each with chance 1/2
    votes = _votes({HAPPY: 1, SURPRISE: 1, ANGER: 2})
    s2 = panels.panel_scored(votes, 2, {}, repeats=20000, seed=4)
    # panels: {H,S} 1/6 -> rest A2 -> tie answer H/S, credit 0; {H,A} 2/6 -> rest S1 A1 tie: panel tie H/A, credit
    # 1/2 * 1/2 (answer A meets half a reference); {S,A} 2/6 -> likewise 1/4; {A,A} 1/6 -> rest H1 S1: 0
    assert s2.image_credit("panel")[0] == pytest.approx(2 / 6 * 0.25 + 2 / 6 * 0.25, abs=0.01)
    assert s2.mass.sum() == pytest.approx(1.0)


def test_images_that_cannot_hold_the_panel_and_a_reference_are_left_out_for_every_reader():
    votes = _votes({HAPPY: 3}, {HAPPY: 6}, {})
    s = panels.panel_scored(votes, 3, {"model": [S_HAPPY, S_ANGER, S_ANGER]}, repeats=10)
    assert s.weight.tolist() == [0.0, 1.0, 0.0]
    assert s.mass[0].sum() == 0 and s.mass[2].sum() == 0
    assert s.image_credit("model").tolist() == [0.0, 0.0, 0.0] and s.image_credit("panel")[1] == 1.0
    assert s.accuracy("model") == 0.0 and s.accuracy("panel") == 1.0
    # against the FER-2013 label the rest is not needed: three votes fill a panel of three
    s_label = panels.panel_scored(votes, 3, {"model": [S_HAPPY, S_HAPPY, S_HAPPY]}, [S_HAPPY] * 3,
                                  reference="fer2013", repeats=10)
    assert s_label.weight.tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError):
        panels.panel_scored(votes, 0)
    with pytest.raises(ValueError):
        panels.panel_scored(votes, 1, reference="fer2013")


def test_panel_and_models_meet_the_very_same_references():
    rng = np.random.default_rng(0)
    votes = np.zeros((300, 10), int)
    for i in range(300):
        votes[i, :7] = rng.multinomial(10, rng.dirichlet(np.ones(7) * 0.5))
    pred = {"a": rng.integers(0, 7, 300), "b": rng.integers(0, 7, 300)}
    s = panels.panel_scored(votes, 2, pred, repeats=30, seed=9)
    # a model's credit per class is the reference mass of its answer: the mass the panel was scored on
    for name, p in pred.items():
        assert np.allclose(s.credit[name], s.mass * np.eye(7)[p])
    assert np.allclose(s.mass.sum(axis=1), s.weight)
    assert (s.credit["panel"] <= s.mass + 1e-12).all()
    # the same seed gives the same splits; a reader's presence does not change them
    again = panels.panel_scored(votes, 2, {"a": pred["a"]}, repeats=30, seed=9)
    assert np.array_equal(again.mass, s.mass) and np.array_equal(again.credit["panel"], s.credit["panel"])
    # larger panels agree with the rest more often
    accs = [panels.panel_scored(votes, k, {}, repeats=30, seed=k).accuracy("panel") for k in (1, 3, 5)]
    assert accs[0] < accs[1] < accs[2]


def test_the_panel_table_and_how_many_people_a_model_is_worth():
    rng = np.random.default_rng(1)
    n = 400
    probs = rng.dirichlet(np.ones(7) * 0.3, n)
    votes = np.zeros((n, 10), int)
    order = [4, 5, 6, 1, 3, 2, 0]  # FER+ column of each study id
    for i in range(n):
        votes[i, order] = rng.multinomial(10, probs[i])
    truth = probs.argmax(axis=1)
    flip = rng.random(n) < 0.2
    good = np.where(flip, rng.integers(0, 7, n), truth)  # right where the crowd's tendency is, 80 % of the time
    table = panels.panel_table(votes, None, {"good": good, "chance": rng.integers(0, 7, n)}, sizes=(1, 3, 5),
                               repeats=10, n_boot=200)
    assert set(table["metric"]) == {"accuracy", "balanced_recall"} and set(table["k"]) == {1, 3, 5}
    acc = table[(table["metric"] == "accuracy") & (table["reader"] == "good")].set_index("k")
    assert (acc["difference_pp"] - 100 * (acc["value"] - acc["panel_value"])).abs().max() < 1e-9
    chance = panels.worth(table, "chance")
    assert chance["people"] == 1.0 and chance["beyond"] == "below" and chance["beats"] == 0
    w = panels.worth(table, "good")
    assert 1.0 <= w["people"] <= 5.0
    # the crossing point lies between the last panel it beats and the first that beats it
    gaps = (acc["value"] - acc["panel_value"]).to_dict()
    if w["beyond"] == "":
        lo = max(k for k, g in gaps.items() if g > 0)
        assert lo <= w["people"] <= min(k for k, g in gaps.items() if g < 0)
    with pytest.raises(ValueError):
        panels.worth(table, "nobody")


def test_balanced_recall_is_the_mean_of_the_per_class_recalls():
    votes = _votes({HAPPY: 10}, {HAPPY: 10}, {HAPPY: 10}, {ANGER: 10})
    s = fair.score(votes, {"m": [S_HAPPY, S_HAPPY, S_HAPPY, S_HAPPY]}, human=None)
    row = fair.compare_balanced(s, "m", "m", classes=range(7), n_boot=100)
    # happiness recall 1, anger recall 0, other classes never the reference: (1 + 0) / 2
    assert row["accuracy_reader"] == pytest.approx(0.5) and row["metric"] == "balanced_recall"
    assert fair.compare(s, "m", "m", n_boot=100)["accuracy_reader"] == pytest.approx(0.75)
    assert pd.notna(row["ci_low_pp"])
