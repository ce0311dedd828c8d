"""The answer in words: the headline from verdict and panel rows, the seed spread and the equal-views table; the
declared mix of the two heads chosen on validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from femo_pipeline import answer, declared

DECLARED = "femo CNN (shipped, both heads, prior-corrected)"


def _verdict(reader, metric, acc, human, low, high, verdict, images=100):
    return {"dataset": "leak-free test", "reference": "ferplus", "variant": "seven_classes", "reader": reader,
            "against": "human", "metric": metric, "images": images, "accuracy_reader": acc, "accuracy_against": human,
            "difference_pp": 100 * (acc - human), "ci_low_pp": low, "ci_high_pp": high, "verdict": verdict}


def _panel(reader, k, value, panel_value, verdict, metric="accuracy"):
    d = 100 * (value - panel_value)
    return {"reader": reader, "k": k, "reference": "ferplus", "variant": "seven_classes", "metric": metric,
            "images": 100, "value": value, "panel_value": panel_value, "difference_pp": d, "ci_low_pp": d - 1,
            "ci_high_pp": d + 1, "verdict": verdict}


def _tables():
    verdicts = pd.DataFrame([
        _verdict(DECLARED, "accuracy", 0.80, 0.77, 2.0, 4.0, "better"),
        _verdict(DECLARED, "balanced_recall", 0.66, 0.67, -3.0, 1.0, "no detectable difference"),
        _verdict(f"{DECLARED}, 2 views (mirror)", "accuracy", 0.81, 0.77, 3.0, 5.0, "better"),
        _verdict("femo CNN (seed 2014, both heads, prior-corrected)", "accuracy", 0.79, 0.77, 1.0, 3.0, "better"),
        _verdict("femo CNN (seed 2015, both heads, prior-corrected)", "accuracy", 0.785, 0.77, 0.5, 2.5, "better"),
    ])
    panel = pd.DataFrame([_panel(DECLARED, 1, 0.80, 0.76, "better"), _panel(DECLARED, 2, 0.80, 0.78, "better"),
                          _panel(DECLARED, 3, 0.80, 0.81, "no detectable difference"),
                          _panel(DECLARED, 5, 0.80, 0.83, "worse")])
    return verdicts, panel


def test_the_headline_says_how_many_people_and_both_metrics_and_when_they_disagree():
    verdicts, panel = _tables()
    spread = answer.seed_spread(verdicts, panel, DECLARED)
    text = answer.headline(verdicts, panel, DECLARED, synthetic=False, spread=spread)
    assert text.startswith("On the 100 leak-free test images, at one view,")
    assert "like a panel of about 2.7 people" in text  # 0.80 crosses the panel curve between 2 (78 %) and 3 (81 %)
    assert "against a panel of 3: 80.0 % vs 81.0 %" in text
    assert "accuracy 80.0 % vs 77.0 %, +3.0 points (95 % CI +2.0 to +4.0): better" in text
    assert "class-balanced recall 66.0 % vs 67.0 %" in text and "no detectable difference" in text
    assert "The two metrics disagree" in text
    assert "Over 3 training seeds" in text and "+1.5 to +3.0 points" in text
    demo = answer.headline(verdicts, panel, DECLARED, synthetic=True)
    assert demo.startswith("SYNTHETIC DEMO") and "made-up faces and votes" in demo
    same = verdicts.copy()
    same.loc[same["metric"] == "balanced_recall", "verdict"] = "better"
    assert "disagree" not in answer.headline(same, panel, DECLARED, synthetic=False)
    assert answer.headline(verdicts, panel, None, synthetic=False).startswith("No verdict")
    assert "better than" not in answer.headline(verdicts.iloc[0:0], panel, DECLARED, False)  # no votes: no verdict


def test_beyond_the_panels_it_says_fewer_or_more():
    verdicts, panel = _tables()
    low = panel.assign(value=0.70)
    assert "fewer than 1 person" in answer.panel_sentence(low, DECLARED)
    high = panel.assign(value=0.90)
    assert "more than 5 people" in answer.panel_sentence(high, DECLARED)
    assert answer.panel_sentence(panel.iloc[0:0], DECLARED) is None


def test_seed_spread_and_equal_views():
    verdicts, panel = _tables()
    spread = answer.seed_spread(verdicts, panel, DECLARED).set_index("figure")
    row = spread.loc["accuracy minus one person (points)"]
    assert row["n"] == 3 and row["mean"] == pytest.approx((3.0 + 2.0 + 1.5) / 3)
    assert row["sd"] == pytest.approx(np.std([3.0, 2.0, 1.5], ddof=1)) and row["values"] == "3.0, 2.0, 1.5"
    assert spread.loc["accuracy minus a panel of 3 (points)", "n"] == 1
    views = answer.views_table(verdicts)
    mine = views[views["reader"] == DECLARED].set_index("views")
    assert list(mine.index) == [1, 2] and mine.loc[2, "accuracy"] == 0.81


def test_the_declared_mix_is_chosen_on_validation_by_both_metrics():
    rng = np.random.default_rng(0)
    n = 600
    truth = rng.choice(7, n, p=[.1, .02, .1, .3, .1, .08, .3])
    votes = np.zeros((n, 10), int)
    column = [4, 5, 6, 1, 3, 2, 0]  # FER+ column of each study id
    for i, t in enumerate(truth):
        votes[i, column[t]] = 8
        votes[i, 0] += 2  # two Neutral votes everywhere: people lean to Neutral
    labels = truth
    # the crowd head over-predicts Neutral; the FER-2013 head is right more often on rare classes
    crowd = np.full((n, 7), 0.02)
    crowd[np.arange(n), truth] = 0.5
    crowd[np.isin(truth, (1, 2, 4)), 6] += 0.6  # Neutral wins on disgust, fear and sadness
    fer = np.full((n, 7), 0.05)
    fer[np.arange(n), truth] = 0.7
    probs = {"ferplus": crowd / crowd.sum(1, keepdims=True), "fer2013": fer / fer.sum(1, keepdims=True)}
    prior = declared.crowd_prior(votes, labels)
    assert prior.sum() == pytest.approx(1) and prior.argmax() in (3, 6)
    table = declared.choose(probs, votes, labels, prior)
    assert len(table) == len(declared.WEIGHTS) * len(declared.TAUS)
    best = table.iloc[0]
    assert best["criterion"] == table["criterion"].max()
    plain = table[(table["w"] == 1.0) & (table["tau"] == 0.0)].iloc[0]
    assert best["balanced_recall"] > plain["balanced_recall"] and best["says_neutral"] < plain["says_neutral"]
    mixed = declared.mix(probs, 0.5, 0.5, prior)
    assert mixed.shape == (n, 7) and np.allclose(mixed.sum(1), 1)
    assert np.allclose(declared.mix(probs, 1.0, 0.0, prior), probs["ferplus"], atol=1e-6)


def test_other_seeds_are_readers_only_of_the_test_images_they_predicted(tmp_path, monkeypatch):
    """A seed's recorded probabilities (in content-hash order) become a reader of the warehouse's test images when
    the fingerprint matches, mixed by the seed's own rule; on other images it is refused with the reason."""
    import json

    from femo_pipeline import factor_grid
    from femo_pipeline.defs.model import model_evaluation
    from femo_pipeline.model import shipped

    rng = np.random.default_rng(2)
    test = pd.DataFrame({"id": np.arange(10, 20), "content_hash": [f"h{i % 8}" for i in range(10)],
                         "emotion_id": rng.integers(0, 7, 10)})
    test.loc[8:, "emotion_id"] = test.loc[:1, "emotion_id"].to_numpy()  # copies carry their original's label
    probs = {k: rng.dirichlet(np.ones(7), 10) for k in ("fer2013", "ferplus")}
    for k in probs:  # a copy of a face gets the same answer
        probs[k][8:] = probs[k][:2]
    monkeypatch.setattr(shipped, "SEEDS_DIR", tmp_path)
    np.savez(tmp_path / "seed7.npz", **{k: factor_grid.by_content_rows(test, p) for k, p in probs.items()})
    prior = np.full(7, 1 / 7)
    (tmp_path / "seed7.json").write_text(json.dumps({
        "seed": 7, "mix": {"w": 0.5, "tau": 0.0}, "prior": prior.tolist(), "device": "1 x NVIDIA H200 (GPU)",
        "test_fingerprint": factor_grid.content_fingerprint(test)}))
    base = {"id": "femo-shipped-mixed-x", "reader": "mixed", "origin": "shipped", "synthetic": False}
    [(run, got)], refused = model_evaluation.seed_runs(base, test)
    assert not refused and run["origin"] == "shipped seed" and run["reader"].startswith("femo CNN (seed 7,")
    assert run["device"] == "1 x NVIDIA H200 (GPU)"
    assert np.allclose(got, declared.mix(probs, 0.5, 0.0, prior))
    other = test.assign(emotion_id=(test["emotion_id"] + 1) % 7)
    none, refused = model_evaluation.seed_runs(base, other)
    assert none == [] and "other test images" in next(iter(refused.values()))
