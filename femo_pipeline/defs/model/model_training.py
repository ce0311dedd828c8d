"""Model-group assets that train: the images as arrays (a short pooled read), then femo's CNN (no pool held)."""

import dataclasses
import datetime as dt
import json
import time
import typing

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field, create_model

from femo_pipeline import benchmark, devices, modeldata
from femo_pipeline import human_baseline as hb
from femo_pipeline import model as femo_model
from femo_pipeline import warehouse as wh
from femo_pipeline.defs._meta import md_table, png_md, warehouse_tables
from femo_pipeline.defs.model._bench import (
    EXTRA,
    FER2013,
    GROUP,
    KAGGLE,
    MODEL_WRITER,
    checked_precision,
    read_images,
    training_fingerprint,
)
from femo_pipeline.defs.model.humans import human_votes
from femo_pipeline.resources import FemoStorage

VOTES_SQL = "SELECT * EXCLUDE (fer2013new_rows, synthetic) FROM human_votes"


def _arrays(con, source_id: int, where: str, votes: pd.DataFrame) -> dict:
    """Images of one source as 48x48 arrays, with their FER+ votes (0 where none) and duplicate flags."""
    frame = read_images(con, source_id, where)
    x = modeldata.stack(list(frame.pop("pixels")), 48)
    frame = frame.merge(votes, left_on="id", right_on="image_id", how="left").drop(columns="image_id")
    frame[list(hb.VOTE_COLUMNS)] = frame[list(hb.VOTE_COLUMNS)].fillna(0).astype(np.int64)
    return {"frame": frame, "x": x}


def _fer2013(duckdb: DuckDBResource, split: str, extra=None) -> dict:
    """FER-2013 images of one split as arrays with votes and flags (and whatever `extra(con)` adds)."""
    start = time.perf_counter()
    with duckdb.get_connection() as con:
        votes = con.execute(VOTES_SQL).df()
        data = _arrays(con, FER2013, f"AND i.split = '{'train' if split == 'train' else 'test'}'", votes)
        more = extra(con, votes) if extra else {}
    frame = data["frame"]
    fingerprint = benchmark.data_fingerprint(frame["id"], frame["content_hash"], frame["emotion_id"])
    return {**data, **more, "fingerprint": fingerprint, "seconds": round(time.perf_counter() - start, 2)}


def _output(data: dict, split: str) -> dg.Output:
    frame = data["frame"]
    return dg.Output(data, metadata={
        "images": len(frame), "with_votes": int((frame[list(hb.VOTE_COLUMNS)].sum(axis=1) > 0).sum()),
        "leak_free": int(benchmark.leak_free(frame).sum()) if len(frame) else 0,
        "data_fingerprint": data["fingerprint"], "read_seconds": data["seconds"],
        "per_emotion": dg.MetadataValue.json({int(k): int(v) for k, v in frame["emotion_id"].value_counts().items()}),
        "split": split, **({"kaggle_images": len(data["kaggle"]["frame"])} if "kaggle" in data else {}),
        **({"extra_images": dg.MetadataValue.json(data["extra"]["frame"]["split"].value_counts().to_dict())}
           if "extra" in data else {}),
    })


@dg.asset(deps=["images", human_votes], kinds={"duckdb", "numpy"}, **MODEL_WRITER)
def training_images(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.Output:
    """FER-2013 Training as 48x48 arrays with labels, FER+ votes and duplicate flags (a short read; no training)."""
    return _output(_fer2013(duckdb, "train"), "train")


def _scoring_extras(con, votes: pd.DataFrame) -> dict:
    """What scoring needs beside the FER-2013 test images, read in the same short step: the Kaggle images and the
    extra labelled sets' (scored only, never trained on), the latest run emotion_model trained (trained_model_run
    wrote it), the Training fingerprint and its majority."""
    trained = con.execute("SELECT config FROM model_runs WHERE origin = 'trained' ORDER BY created DESC, id "
                          "LIMIT 1").fetchall()
    majority = con.execute(f"SELECT emotion_id FROM images WHERE source_id = {FER2013} AND split = 'train' "
                           "AND emotion_id < 7 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchall()
    return {"kaggle": _arrays(con, KAGGLE, "", votes), "extra": _arrays(con, EXTRA, "", votes),
            "trained_run": json.loads(trained[0][0]) if trained else None,
            "training_fingerprint": training_fingerprint(con), "majority": majority[0][0] if majority else None}


@dg.asset(deps=["images", human_votes, "trained_model_run"], kinds={"duckdb", "numpy"}, **MODEL_WRITER)
def evaluation_images(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.Output:
    """FER-2013 test, Kaggle and extra labelled sets' images as arrays with labels, FER+ votes and leak flags, and
    the latest trained run (a short read): what every reader is scored on. Never used for training."""
    return _output(_fer2013(duckdb, "test", _scoring_extras), "test")


# The launch description of each TrainConfig field; ModelConfig takes the fields, their types and their defaults
# from TrainConfig itself (targets and precision excepted: label_source sets the targets, and training here runs in
# "auto" precision unless told otherwise).
TRAIN_FIELD_DESCRIPTIONS = {
    "image_size": "Input side in pixels (FER-2013 is 48).",
    "crop": "Centre crop the network sees (0: none).",
    "epochs": "Training epochs.",
    "batch_size": "Batch size (0: about 100 steps per epoch, 16-128).",
    "seed": "Seed of the split, the weights and the augmentation.",
    "val_fraction": "Share of each class held out for validation.",
    "width": "Filters of the first block (doubling per block).",
    "block_convs": "3x3 convolutions in each block.",
    "optimizer": "sgd (Nesterov) or adam (AdamW).",
    "learning_rate": "Peak learning rate (warm-up, then cosine).",
    "warmup_epochs": "Epochs of linear warm-up.",
    "weight_decay": "Weight decay.",
    "label_smoothing": "Label smoothing of the loss.",
    "augment": "Flip, affine, brightness/contrast and erasing.",
    "augment_on": "Where augmentation runs: device (Keras ops inside the training graph) or cpu (OpenCV in the "
                  "batch feeder); the same distributions.",
    "patience": "Early stopping: stop once the best validation epoch is this many epochs old (0: never).",
    "class_weighting": "Weight classes by inverse frequency.",
    "max_minutes": "Stop after the epoch past this time (0: none).",
    "minutes": "Time budget: warm-up, then a cosine over the time left, stopping when it is spent (0: schedule by "
               "epochs).",
}


def _train_fields() -> dict:
    """(type, Field) of every TrainConfig field but targets and precision, its tuples as lists (run config)."""
    hints, fields = typing.get_type_hints(femo_model.TrainConfig), {}
    for f in dataclasses.fields(femo_model.TrainConfig):
        if f.name in ("targets", "precision"):
            continue
        if f.name not in TRAIN_FIELD_DESCRIPTIONS:
            raise TypeError(f"TrainConfig.{f.name} has no launch description in TRAIN_FIELD_DESCRIPTIONS")
        kind, default = hints[f.name], f.default
        if isinstance(default, tuple):
            kind, default = list[typing.get_args(kind)[0]], list(default)
        fields[f.name] = (kind, Field(default=default, description=TRAIN_FIELD_DESCRIPTIONS[f.name]))
    return fields


ModelConfig = create_model(
    "ModelConfig", __base__=dg.Config, __module__=__name__, **_train_fields(),
    precision=(str, Field(default="auto", description="Arithmetic while training: auto (bf16 where the CPU does it "
                          "natively, e.g. AVX512-BF16, float32 elsewhere), mixed_bfloat16 or float32. The saved "
                          "model is float32 either way.")),
    max_train_images=(int, Field(default=0, ge=0, description="Use at most this many training images (0: all).")),
    label_source=(str, Field(default="fer2013", description="fer2013 (its labels) or ferplus (FER+ vote "
                                                            "distributions as soft targets).")),
)
ModelConfig.__doc__ = "Launch settings of emotion_model: TrainConfig's fields, and what to train on."


def train_config(config: dg.Config, **overrides) -> femo_model.TrainConfig:
    """The TrainConfig for a Dagster config holding (some of) its fields."""
    names = {f.name for f in dataclasses.fields(femo_model.TrainConfig)}
    values = {k: v for k, v in config.model_dump().items() if k in names}
    merged = {**values, **overrides}
    if "block_convs" in merged:
        merged["block_convs"] = tuple(merged["block_convs"])
    try:
        return femo_model.TrainConfig(**merged)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None


def targets(frame: pd.DataFrame, label_source: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows to train on, y): FER-2013 labels, or FER+ seven-class vote counts (images with such votes only)."""
    if label_source == "fer2013":
        return np.arange(len(frame)), frame["emotion_id"].to_numpy(int)
    if label_source == "ferplus":
        votes = hb.seven_class_votes(frame)
        rows = np.flatnonzero(votes.sum(axis=1) > 0)
        return rows, votes[rows]
    raise dg.Failure(description=f"label_source must be fer2013 or ferplus, not {label_source!r}")


def resize(x: np.ndarray, size: int) -> np.ndarray:
    if size == x.shape[1]:
        return x
    import cv2

    return np.stack([cv2.resize(img[:, :, 0], (size, size), interpolation=cv2.INTER_AREA) for img in x])[..., None]


@dg.asset(group_name=GROUP, kinds={"keras"})
def emotion_model(context: dg.AssetExecutionContext, config: ModelConfig, training_images: dict,
                  storage: FemoStorage) -> dg.Output:
    """femo's Keras CNN trained on FER-2013 Training (validation carved from it; the test set selects nothing)."""
    from femo_pipeline import reports

    precision = checked_precision(config.precision)  # resolved, so the run records what it ran in
    tc = train_config(config, targets="votes" if config.label_source == "ferplus" else "labels",
                      precision=precision)  # every setting checked before any image is read
    frame, x = training_images["frame"], training_images["x"]
    if frame.empty:
        context.log.warning("emotion_model skipped: no FER-2013 training images in the warehouse")
        return dg.Output(None, metadata={"skipped": "no FER-2013 training images in the warehouse"})
    rows, y = targets(frame, config.label_source)
    if config.max_train_images and len(rows) > config.max_train_images:
        pick = np.sort(np.random.default_rng(config.seed).choice(len(rows), config.max_train_images, replace=False))
        rows, y = rows[pick], y[pick]
    if len(rows) == 0 or len(np.unique(femo_model.hard_labels(y))) < 2:
        raise dg.Failure(description=f"need training images of several emotions ({config.label_source} labels), "
                                     f"found {len(rows)} images")
    net, history, facts = femo_model.train(resize(x[rows], config.image_size), y, tc, log=context.log.info)
    folder = storage.root / "models" / "runs" / context.run_id
    path = femo_model.save(net, folder, history, tc, facts)
    sha = benchmark.sha256_file(path)
    curves = reports.curves_png(history, folder / "curves.png", " (SYNTHETIC)" if storage.is_demo else "")
    run = {
        "id": benchmark.run_id(f"femo-trained-{config.label_source}", sha),
        "reader": f"femo CNN (trained here, {config.label_source} labels)", "origin": "trained",
        "label_source": config.label_source, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": json.dumps({**dataclasses.asdict(tc), "max_train_images": config.max_train_images}),
        "backend": facts["backend"], "device": devices.describe(facts["device"]),
        "train_seconds": facts["seconds"], "parameters": facts["parameters"], "model_sha256": sha,
        "validation_accuracy": facts["best_validation_accuracy"],
        "data_fingerprint": training_images["fingerprint"], "synthetic": storage.is_demo,
        "dagster_run_id": context.run_id, "model_file": str(path),
        "caveat": benchmark.CAVEATS["synthetic"] if storage.is_demo else None,
    }
    cost = pd.DataFrame([{"fact": k, "value": v} for k, v in facts.items()])
    return dg.Output(run, metadata={
        "model_run": dg.MetadataValue.json(run),
        "model_run_id": run["id"],
        "model_file": dg.MetadataValue.path(str(path)),
        "model_sha256": sha,
        "best_validation_accuracy": f"{100 * (facts['best_validation_accuracy'] or float('nan')):.1f} %",
        "training": md_table(cost),
        "curves": png_md(curves, "training curves"),
        "synthetic": storage.is_demo,
    })


@dg.asset(kinds={"duckdb"}, metadata=warehouse_tables("model_runs"), **MODEL_WRITER)
def trained_model_run(context: dg.AssetExecutionContext, emotion_model: dict | None,
                      duckdb: DuckDBResource) -> dg.MaterializeResult:
    """The run emotion_model just trained, recorded in model_runs (a short pooled write), so that scoring finds it
    in the warehouse; a skipped training records nothing."""
    if emotion_model is None:
        return dg.MaterializeResult(metadata={"recorded": "nothing: emotion_model was skipped"})
    record = {**emotion_model, "config": json.dumps({**json.loads(emotion_model["config"]),
                                                     **{k: v for k, v in emotion_model.items() if k != "config"}})}
    with duckdb.get_connection() as con:
        wh.ensure_schema(con)
        wh.record_model_run(con, record)
    return dg.MaterializeResult(metadata={"model_run_id": emotion_model["id"], "reader": emotion_model["reader"]})
