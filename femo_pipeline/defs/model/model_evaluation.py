"""femo's CNN on the test images: the run of the current lineage (trained here) and/or the shipped model."""

import datetime as dt
import json

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline import benchmark, evaluation, modeldata
from femo_pipeline import model as femo_model
from femo_pipeline import warehouse as wh
from femo_pipeline.defs._meta import md_table, png_md, warehouse_tables
from femo_pipeline.defs.model._bench import (
    FER2013,
    KAGGLE,
    MODEL_WRITER,
    checked_precision,
    json_value,
    latest_metadata,
    read_images,
    training_fingerprint,
)
from femo_pipeline.defs.model.model_training import emotion_model
from femo_pipeline.resources import FemoStorage


class EvaluationConfig(dg.Config):
    n_boot: int = Field(default=1000, description="Bootstrap resamples for the quick accuracy intervals.")
    seed: int = Field(default=0, description="Bootstrap seed.")
    tta: str = Field(default="validated", description="Test-time augmentation: 'validated' (what was chosen on the "
                     "model's validation split: a shipped model's sidecar; none for a model trained here), or one of "
                     f"{', '.join(femo_model.TTA_MODES)} for every model.")
    precision: str = Field(default="auto", description="Arithmetic of femo's models while predicting: auto (bf16 "
                           "where the CPU does it natively, as bench/train.py scored the shipped models; float32 "
                           "elsewhere), mixed_bfloat16 or float32.")


def shipped_runs() -> tuple[list[dict], dict[str, str]]:
    """Model-run records of the femo models committed with the package (none: the reason)."""
    runs, missing = [], {}
    for kind in ("fer2013", "ferplus"):
        path = femo_model.shipped_path(kind)
        if path is None:
            missing[f"femo CNN (shipped, {kind} labels)"] = (f"no shipped model: {femo_model.SHIPPED[kind].name} "
                                                             "is not in the package")
            continue
        sha = benchmark.sha256_file(path)
        card = {}
        for sidecar in (path.with_suffix(".json"), path.parent / f"{path.stem}.config.json"):
            if sidecar.is_file():
                card = json.loads(sidecar.read_text())
                break
        runs.append({
            "id": benchmark.run_id(f"femo-shipped-{kind}", sha), "reader": f"femo CNN (shipped, {kind} labels)",
            "origin": "shipped", "label_source": kind, "config": json.dumps(card) if card else None,
            "created": dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds"),
            "backend": card.get("backend"), "device": card.get("device"),
            "train_seconds": card.get("seconds"), "parameters": card.get("parameters"), "model_sha256": sha,
            "validation_accuracy": card.get("best_validation_accuracy", card.get("validation_accuracy")),
            "data_fingerprint": card.get("data_fingerprint"), "synthetic": False, "model_file": str(path),
            "tta": card.get("tta") if card.get("tta") in femo_model.TTA_MODES else "none",
        })
    return runs, missing


def trained_run(context, con, storage: FemoStorage) -> tuple[dict | None, str | None]:
    """The run emotion_model recorded last in this instance, if the current lineage may use it (else the reason)."""
    meta = latest_metadata(context, "emotion_model")
    run = json_value(meta["model_run"]) if meta and "model_run" in meta else None
    if meta and "skipped" in meta:
        run = {"skipped": meta["skipped"]}
    path = (run or {}).get("model_file")
    sha = benchmark.sha256_file(path) if path and __import__("os").path.exists(path) else None
    why = benchmark.trained_run_usable(run, synthetic_profile=storage.is_demo,
                                       current_fingerprint=training_fingerprint(con), file_sha256=sha)
    return (None, why) if why else (run, None)


def predict_images(path: str, frame: pd.DataFrame, tta: str = "none", precision: str = "float32") -> np.ndarray:
    net = femo_model.load(path, precision)
    size = net.input_shape[1]
    return femo_model.predict(net, modeldata.stack(list(frame["pixels"]), size), tta=tta)


def tta_for(run: dict, config: EvaluationConfig) -> str:
    if config.tta == "validated":
        return run.get("tta") or "none"
    if config.tta not in femo_model.TTA_MODES:
        raise dg.Failure(description=f"tta must be 'validated' or one of {', '.join(femo_model.TTA_MODES)}, "
                                     f"not {config.tta!r}")
    return config.tta


@dg.asset(deps=[emotion_model, "images"], kinds={"keras", "duckdb"},
          metadata=warehouse_tables("predictions", "model_runs"), **MODEL_WRITER)
def model_evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, duckdb: DuckDBResource,
                     storage: FemoStorage) -> dg.MaterializeResult:
    """femo's CNN (trained in this lineage and/or shipped) on FER-2013 test and Kaggle images -> predictions."""
    precision = checked_precision(config.precision)
    with duckdb.get_connection() as con:
        wh.ensure_schema(con)
        trained, why = trained_run(context, con, storage)
        shipped, not_used = shipped_runs()
        if why:
            not_used["femo CNN (trained here)"] = why
        runs = ([trained] if trained else []) + shipped
        declared = benchmark.declare(runs)
        test = read_images(con, FER2013, "AND i.split = 'test'")
        kaggle = read_images(con, KAGGLE)
        images = pd.concat([test, kaggle], ignore_index=True)
        summary, declared_probs = [], None
        for run in runs:
            tta = tta_for(run, config)
            probs = predict_images(run["model_file"], images, tta, precision) if len(images) else np.zeros((0, 7))
            if declared and run["id"] == declared["id"]:
                declared_probs = probs
            wh.record_model_run(con, {**run, "dagster_run_id": run.get("dagster_run_id") or context.run_id})
            wh.replace_predictions(con, run["id"], images["id"], probs)
            pred = probs.argmax(axis=1)[: len(test)]
            for name, keep in (("full test", np.ones(len(test), bool)), ("leak-free test", benchmark.leak_free(test))):
                s = evaluation.score(test.loc[keep, "emotion_id"], pred[keep], benchmark.FER7, config.n_boot, config.seed)
                summary.append({"reader": run["reader"], "test-time views": tta, "set": name, "images": s["images"],
                                "accuracy vs FER-2013 label": f"{100 * s['accuracy']:.1f} %",
                                "95 % CI": f"{100 * s['accuracy_ci95'][0]:.1f}-{100 * s['accuracy_ci95'][1]:.1f} %"})
        wh.set_info(con, {"declared_model_run": declared["id"] if declared else ""})
    for name, reason in not_used.items():
        context.log.warning(f"{name} not used: {reason}")
    metadata = {
        "model_run_ids": dg.MetadataValue.json([r["id"] for r in runs]),
        "declared_model_run": declared["id"] if declared else "",
        "declared_reader": declared["reader"] if declared else "none: no femo model (see not_used)",
        "not_used": dg.MetadataValue.json(not_used),
        "results": md_table(pd.DataFrame(summary)),
        "test_images": len(test), "kaggle_images": len(kaggle), "synthetic": storage.is_demo,
        "precision": precision,  # the arithmetic the predictions came from
    }
    if declared and len(test):
        from femo_pipeline import reports

        m = evaluation.confusion_matrix(test["emotion_id"], declared_probs[: len(test)].argmax(axis=1), benchmark.FER7)
        plot = reports.confusion_png(m.tolist(), benchmark.FER7, storage.path("plots", "confusion_femo_cnn.png"),
                                     f"{declared['reader']} on FER-2013 test")
        metadata["confusion_matrix"] = png_md(plot, "confusion")
    return dg.MaterializeResult(metadata=metadata)
