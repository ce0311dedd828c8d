"""The CNN (tiny runs on generated faces), the contenders' inputs, and the model assets through to the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from femo_pipeline import demo_data, model, modeldata
from femo_pipeline.vocab import FER2013_CLASSES

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


@pytest.mark.slow  # trains a network: outside the quick loop
def test_bf16_training_saves_a_float32_file_that_loads_in_either_precision(tmp_path):
    """Trained in mixed bf16 (bf16 arithmetic, float32 weights), the file is float32 (it runs on any CPU); loaded
    with precision mixed_bfloat16 it computes in bf16 again, with the same weights and nearly the same outputs."""
    x, y = _faces(12)
    config = model.TrainConfig(epochs=1, width=8, seed=1, precision="mixed_bfloat16")
    net, history, facts = model.train(x, y, config, log=lambda _: None)
    assert model.policy(net) == "mixed_bfloat16" and net.layers[-1].dtype_policy.name == "float32"
    probs = model.predict(net, x[:20])
    path = model.save(net, tmp_path, history, config, facts)
    plain = model.load(path)
    assert model.policy(plain) == "float32"
    assert {layer.dtype_policy.name for layer in plain.layers} == {"float32"}
    fast = model.load(path, "mixed_bfloat16")
    assert model.policy(fast) == "mixed_bfloat16" and fast.layers[-1].dtype_policy.name == "float32"
    for a, b in zip(net.get_weights(), fast.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    again = model.predict(fast, x[:20])
    assert again.dtype == np.float32 and np.allclose(again, probs, atol=1e-6)
    assert np.abs(model.predict(plain, x[:20]) - probs).max() < 0.05  # float32 vs bf16 arithmetic: close
    assert np.array_equal(model.predict(model.with_precision(fast, "float32"), x[:20]), model.predict(plain, x[:20]))


def test_precision_names(monkeypatch):
    from femo_pipeline.model import precision  # resolve_precision looks cpu_has_bf16 up there

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert model.resolve_precision("auto") == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert model.resolve_precision("auto") == "float32"
    assert model.resolve_precision("float32") == "float32"
    with pytest.raises(ValueError, match="unknown precision 'float16'"):
        model.resolve_precision("float16")
    import dagster as dg

    from femo_pipeline.defs.model._bench import checked_precision

    assert checked_precision("auto") == "float32"  # resolved, as the run records it
    with pytest.raises(dg.Failure, match="unknown precision 'float16'"):
        checked_precision("float16")


@pytest.mark.slow  # trains a network: outside the quick loop
def test_time_budget_stops_training_after_the_epoch_that_passes_it():
    x, y = _faces(4)
    _, history, facts = model.train(x, y, model.TrainConfig(epochs=50, width=8, max_minutes=1e-6), log=lambda _: None)
    assert facts["epochs_run"] == 1 and len(history["loss"]) == 1


def test_time_budgeted_schedule_warms_up_by_steps_then_decays_to_zero_with_the_time():
    rate = model.time_budget_rate
    assert [rate(s, 0.0, 4, 0.0, 100.0, 0.1) for s in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    # after a warm-up that ended at 20 s of a 100 s budget: the cosine runs over the 80 s left
    assert rate(4, 20.0, 4, 20.0, 100.0, 0.1) == pytest.approx(0.1)
    assert rate(50, 60.0, 4, 20.0, 100.0, 0.1) == pytest.approx(0.05)
    assert rate(99, 100.0, 4, 20.0, 100.0, 0.1) == pytest.approx(0.0, abs=1e-12)
    assert rate(99, 250.0, 4, 20.0, 100.0, 0.1) == pytest.approx(0.0, abs=1e-12)  # past the budget: zero
    assert rate(0, 0.0, 0, 0.0, 100.0, 0.1) == pytest.approx(0.1)  # no warm-up: starts at the peak


@pytest.mark.slow  # trains a network: outside the quick loop
def test_a_time_budget_runs_the_schedule_to_its_end_and_stops_mid_epoch(monkeypatch):
    """With `minutes`, epochs is only an upper bound: training stops when the time is spent (here after a few
    epochs of 50), the last rate set is near zero, and the epoch it stopped in is still validated and logged.
    The schedule runs on a simulated clock (0.25 s per reading, two readings a step), so the outcome does not
    depend on how fast this machine compiles and trains (on a loaded 2-core VM the first steps alone once took
    the whole 6 s)."""
    from femo_pipeline.model import training

    ticks = iter(np.arange(0.0, 1e6, 0.25))
    monkeypatch.setattr(training, "CLOCK", lambda: float(next(ticks)))
    x, y = _faces(12)
    lines = []
    config = model.TrainConfig(epochs=50, width=8, batch_size=16, minutes=0.1, warmup_epochs=1)
    net, history, facts = model.train(x, y, config, log=lines.append)
    assert facts["schedule"] == "time"
    assert 1 <= facts["epochs_run"] < 50 and len(history["val_accuracy"]) == facts["epochs_run"]
    assert any("time budget of 0.1 min spent" in line for line in lines)
    assert facts["final_learning_rate"] < 0.2 * model.peak_learning_rate(config, 16)  # decayed


def test_test_time_views_and_their_average():
    x, _ = _faces(2)
    views = model.tta_views(x.astype(np.float32), "flip_scale")
    assert len(views) == 6 and all(v.shape == x.shape for v in views)
    assert np.array_equal(views[1], x[:, :, ::-1])  # the mirror
    assert not np.array_equal(views[2], x) and np.array_equal(views[3], views[2][:, :, ::-1])  # zoomed, mirrored
    assert [len(model.tta_views(x, m)) for m in model.TTA_MODES] == [1, 2, 6]
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        model.tta_views(x, "crops")
    net = model.build_model(model.TrainConfig(width=4))
    plain, mirrored = model.predict(net, x), model.predict(net, x[:, :, ::-1])
    assert np.allclose(model.predict(net, x, tta="flip"), (plain + mirrored) / 2, atol=1e-6)
    assert np.allclose(model.predict(net, x, flip_tta=True), model.predict(net, x, tta="flip"), atol=1e-6)
    assert np.allclose(model.predict(net, x, tta="flip_scale").sum(axis=1), 1, atol=1e-5)


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


def _tiny_model(folder, name="femo_cnn_fer2013.keras"):
    x, y = _faces(3)
    net, _, facts = model.train(x, y, model.TrainConfig(epochs=1, width=8, augment=False), log=lambda _: None)
    folder.mkdir(parents=True, exist_ok=True)
    net.save(folder / name)
    return folder / name, net, x


def test_without_a_shipped_model_the_fallback_says_so(tmp_path, monkeypatch):
    from femo_pipeline.defs.model.model_evaluation import shipped_runs

    # SHIPPED is one dict, read by femo_pipeline.model.shipped and through the package: patched in place
    monkeypatch.setitem(model.SHIPPED, "fer2013", tmp_path / "a.keras")
    monkeypatch.setitem(model.SHIPPED, "ferplus", tmp_path / "b.keras")
    assert model.shipped_path("fer2013") is None
    runs, missing = shipped_runs()
    assert runs == [] and set(missing) == {"femo CNN (shipped, fer2013 labels)", "femo CNN (shipped, ferplus labels)"}
    assert all(why.startswith("no shipped model") for why in missing.values())


def test_shipped_model_is_recorded_by_content_and_predicts(tmp_path, monkeypatch):
    from femo_pipeline import benchmark
    from femo_pipeline.defs.model.model_evaluation import shipped_runs

    path, net, x = _tiny_model(tmp_path / "shipped")
    path.with_suffix(".json").write_text(json.dumps({"best_validation_accuracy": 0.61, "seconds": 120.0}))
    monkeypatch.setitem(model.SHIPPED, "fer2013", path)  # in place: the package and model.shipped share it
    monkeypatch.setitem(model.SHIPPED, "ferplus", tmp_path / "none.keras")
    [run], missing = shipped_runs()
    assert run["origin"] == "shipped" and run["synthetic"] is False and run["validation_accuracy"] == 0.61
    assert run["model_sha256"] == benchmark.sha256_file(path) and run["id"].endswith(run["model_sha256"][:16])
    assert list(missing) == ["femo CNN (shipped, ferplus labels)"]
    assert np.allclose(model.predict(model.load(run["model_file"]), x[:5]), model.predict(net, x[:5]), atol=1e-5)


@pytest.mark.slow  # trains a network: outside the quick loop
def test_the_recipe_learns_separable_faces_at_a_small_batch():
    """The default recipe (SGD, cosine) must learn the demo's drawn faces, whose classes are separable, at the small
    automatic batch of a small set: the learning rate scales with the batch (at batch 16 the unscaled rate left
    them at chance, 1 in 7). Without augmentation: on 360 faces, 15 epochs of the full augmentation learn on some
    seeds and CPUs and not on others (on one Intel Xeon, two of three seeds stayed far below the unaugmented runs),
    so with it this test passed or failed by the machine it ran on."""
    x, y = _faces(60, seed=0)
    xt, yt = _faces(20, seed=1)
    net, _, facts = model.train(x, y, model.TrainConfig(epochs=15, width=16, augment=False), log=lambda _: None)
    assert facts["batch_size_used"] == 16
    assert model.peak_learning_rate(model.TrainConfig(), 16) == model.TrainConfig().learning_rate / 8
    accuracy = (model.predict(net, xt).argmax(axis=1) == yt).mean()
    assert accuracy > 0.4, accuracy  # chance is 0.14


def test_augmentation_varies_each_face_within_range_and_is_reproducible():
    x, _ = _faces(4)
    first = model.augment_batch(x, np.random.default_rng(3))
    again = model.augment_batch(x, np.random.default_rng(3))
    other = model.augment_batch(x, np.random.default_rng(4))
    assert first.shape == x.shape and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 255
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    moved = np.abs(first - x.astype(np.float32)).mean(axis=(1, 2, 3))
    assert (moved > 1).all()  # every face changed, none replaced by noise: still closer to itself than to others
    own = [np.corrcoef(first[i].ravel(), x[i].ravel().astype(np.float32))[0, 1] for i in range(len(x))]
    assert np.median(own) > 0.2


def test_the_launch_config_takes_every_training_field_and_default_from_train_config():
    """ModelConfig is built from TrainConfig (no copied defaults): the same fields with the same defaults, and
    train_config turns it back into the same TrainConfig; a run config's values reach it."""
    import dataclasses

    from femo_pipeline.defs.model.model_training import ModelConfig, train_config

    defaults = {f.name: f.default for f in dataclasses.fields(model.TrainConfig)}
    launch = ModelConfig().model_dump()
    assert set(defaults) - set(launch) == {"targets"}
    assert all(launch[k] == (list(v) if isinstance(v, tuple) else v) for k, v in defaults.items()
               if k not in ("targets", "precision"))
    assert train_config(ModelConfig(), precision="float32") == model.TrainConfig()
    changed = train_config(ModelConfig(epochs=3, block_convs=[1, 2, 2, 2], minutes=1.5), precision="float32")
    assert (changed.epochs, changed.block_convs, changed.minutes) == (3, (1, 2, 2, 2), 1.5)
