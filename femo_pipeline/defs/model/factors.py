"""What affects the model (the study's question): training-set size, label quality and duplicates."""

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline import benchmark, fair
from femo_pipeline import human_baseline as hb
from femo_pipeline import model as femo_model
from femo_pipeline import warehouse as wh
from femo_pipeline.defs._meta import md_table, warehouse_tables
from femo_pipeline.defs.model._bench import GROUP, MODEL_WRITER, skipped
from femo_pipeline.resources import FemoStorage


class DataFactorsConfig(dg.Config):
    fractions: list[float] = Field(default=[0.1, 0.25, 0.5, 1.0], description="Shares of Training to train on.")
    label_sources: list[str] = Field(default=["fer2013", "ferplus"], description=(
        "fer2013: FER-2013's labels; ferplus: the plurality of the FER+ crowd's seven-class votes (the same images "
        "less those nobody voted an emotion for); ferplus_votes: the vote distributions as soft targets."))
    duplicates_at: list[float] = Field(default=[1.0], description="Fractions also trained without duplicate and "
                                                                   "conflicting images (quality of the data).")
    epochs_at_full: float = Field(default=6.0, description=(
        "Training images each run sees, in epochs of the whole of Training: a run on a share f trains "
        "epochs_at_full / f epochs, so every run gets the same compute and a whole warm-up + cosine schedule."))
    batch_size: int = Field(default=128, description="Batch of every run (smaller only where a subset is tiny).")
    width: int = Field(default=16, description="Filters of the first block (femo's recipe, narrower).")
    budget_minutes: float = Field(default=90.0, description=(
        "Safety cap on the training time of all runs, shared equally (the default plan takes under an hour on 2 "
        "cores); a run stopped by it is marked cut_by_budget: its schedule did not finish."))
    tiny_in_demo: bool = Field(default=True, description="Demo profile: 1 epoch at full, width 8, 0.5 and 1.0 only.")
    seed: int = Field(default=2013, description="Seed of the subsets and of training.")


LABEL_SOURCES = ("fer2013", "ferplus", "ferplus_votes")


def plan(config: DataFactorsConfig, demo: bool) -> tuple[list[tuple[str, float, bool]], float, int]:
    """The runs (label source, share of Training, without duplicates), epochs at full size and width."""
    fractions, epochs_at_full, width = config.fractions, config.epochs_at_full, config.width
    unknown = [s for s in config.label_sources if s not in LABEL_SOURCES]
    stray = [f for f in config.duplicates_at if f not in fractions]
    if stray:
        raise dg.Failure(description=f"data_factors config: duplicates_at {stray} must be among fractions {fractions}")
    bad = [f for f in [*fractions, *config.duplicates_at] if not 0 < f <= 1]
    if unknown or bad or epochs_at_full <= 0:
        raise dg.Failure(description=f"data_factors config: label sources must be among {LABEL_SOURCES} "
                                     f"(not {unknown}), shares in (0, 1] (not {bad}), epochs_at_full > 0")
    if demo and config.tiny_in_demo:
        fractions, epochs_at_full, width = [f for f in fractions if f >= 0.5] or [1.0], 1.0, 8
    runs = [(s, f, False) for s in config.label_sources for f in fractions]
    runs += [(s, f, True) for s in config.label_sources for f in config.duplicates_at if f in fractions]
    return runs, epochs_at_full, width


def run_rows(frame: pd.DataFrame, source: str, fraction: float, dedup: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows of Training, targets) of one run. The share is drawn once from all of Training with the seed, so
    both label sources train on the same images (FER+ less the images nobody voted an emotion for); without
    duplicates drops every image with a byte copy (in Training or Test) and every conflicting one."""
    n = len(frame)
    pick = np.sort(np.random.default_rng(seed).permutation(n)[: max(14, int(round(fraction * n)))])
    if dedup:
        clean = benchmark.leak_free(frame) & (frame["duplicate_count"].to_numpy() <= 1)
        pick = pick[clean[pick]]
    if source == "fer2013":
        return pick, frame["emotion_id"].to_numpy(int)[pick]
    votes = hb.seven_class_votes(frame)[pick]
    keep = votes.sum(axis=1) > 0
    votes = votes[keep]
    return pick[keep], (votes if source == "ferplus_votes" else femo_model.hard_labels(votes))


def leak_free_scores(test: dict, pred: np.ndarray) -> list[dict]:
    """Accuracy of one model on the leak-free test images with votes, against both references (seven classes)."""
    frame = test["frame"]
    keep = benchmark.leak_free(frame) & (hb.seven_class_votes(frame).sum(axis=1) > 0)
    out = []
    for reference in fair.REFERENCES:
        s = fair.score(frame[keep], {"model": pred[keep]}, frame.loc[keep, "emotion_id"].to_numpy(int),
                       reference=reference, variant="seven_classes")
        r = fair.paired_bootstrap(s.image_credit("model"), s.image_credit("model"), s.weight, 500, 0)
        out.append({"reference": reference, "accuracy": float(r["a"]), "ci_low": float(r["a_low"]),
                    "ci_high": float(r["a_high"]), "test_images": int(keep.sum())})
    return out


COLUMNS = ["label_source", "fraction", "without_duplicates", "reference", "train_images", "validation_images",
           "epochs", "epochs_run", "batch_size", "seconds", "cut_by_budget", "best_validation_accuracy", "accuracy",
           "ci_low", "ci_high", "test_images"]


@dg.asset(group_name=GROUP, kinds={"keras", "pandas"})
def data_factors(context: dg.AssetExecutionContext, config: DataFactorsConfig, training_images: dict,
                 evaluation_images: dict, storage: FemoStorage) -> dg.Output:
    """What affects the model: femo's recipe (narrower) on 10-100 % of Training, FER-2013 labels vs the FER+
    crowd's, with and without duplicates, every run with the same compute, scored on the leak-free test against
    both references. Trains without the warehouse; data_factors_table stores the result."""

    frame, x = training_images["frame"], training_images["x"]
    if frame.empty or evaluation_images["frame"].empty:
        skipped(context, "data_factors", "no FER-2013 training or test images in the warehouse")
        return dg.Output(pd.DataFrame(columns=[*COLUMNS, "synthetic"]),
                         metadata={"skipped": "no FER-2013 training or test images"})
    runs, epochs_at_full, width = plan(config, storage.is_demo)
    cap = config.budget_minutes / max(1, len(runs))
    context.log.info(f"data_factors: {len(runs)} runs of {epochs_at_full:g} epochs of Training each (width "
                     f"{width}), at most {cap:.1f} min a run")
    rows = []
    for i, (source, fraction, dedup) in enumerate(runs, 1):
        idx, yy = run_rows(frame, source, fraction, dedup, config.seed)
        name = f"{source} {fraction:.0%}{' without duplicates' if dedup else ''}"
        if len(np.unique(femo_model.hard_labels(yy))) < 2:
            context.log.warning(f"data_factors: {name}: fewer than two classes in {len(idx)} images, not trained")
            continue
        epochs = max(1, int(round(epochs_at_full / fraction)))
        n_train = int(len(idx) * 0.9)
        batch = config.batch_size if n_train >= 10 * config.batch_size else femo_model.auto_batch_size(n_train)
        tc = dataclasses.replace(femo_model.TrainConfig(), epochs=epochs, width=width, seed=config.seed,
                                 batch_size=batch, targets="votes" if source == "ferplus_votes" else "labels",
                                 max_minutes=cap)
        net, _, facts = femo_model.train(x[idx], yy, tc, log=lambda m: None)
        pred = femo_model.predict(net, evaluation_images["x"]).argmax(axis=1)
        cut = facts["epochs_run"] < epochs
        for score in leak_free_scores(evaluation_images, pred):
            rows.append({"label_source": source, "fraction": fraction, "without_duplicates": dedup,
                         "train_images": facts["train_images"], "validation_images": facts["validation_images"],
                         "epochs": epochs, "epochs_run": facts["epochs_run"], "batch_size": batch,
                         "seconds": facts["seconds"], "cut_by_budget": cut,
                         "best_validation_accuracy": facts["best_validation_accuracy"], **score})
        scored = {r["reference"]: r["accuracy"] for r in rows[-len(fair.REFERENCES):]}
        context.log.info(f"data_factors {i}/{len(runs)}: {name}: {facts['train_images']} images, {epochs} epochs "
                         f"({facts['seconds']:.0f} s): leak-free accuracy {scored['fer2013']:.3f} vs FER-2013 "
                         f"labels, {scored['ferplus']:.3f} vs the crowd")
        if cut:
            context.log.warning(f"data_factors: {name} stopped by the time cap after {facts['epochs_run']} of "
                                f"{epochs} epochs (budget_minutes): its schedule did not finish")
    results = pd.DataFrame(rows, columns=COLUMNS).assign(synthetic=storage.is_demo)  # the profile it trained on
    # the plot is drawn once, by benchmark_report from the warehouse table (shown in its metadata and the report)
    return dg.Output(results, metadata={
        "results": md_table(shown(results), 40), "runs": len(runs), "epochs_at_full": epochs_at_full,
        "width": width, "cut_by_budget": int(results["cut_by_budget"].sum()) if len(results) else 0,
        "synthetic": storage.is_demo,
    })


def shown(results: pd.DataFrame) -> pd.DataFrame:
    """The results with accuracy and interval as one readable column."""
    if not len(results):
        return results
    text = [f"{100 * a:.1f} % ({100 * lo:.1f}-{100 * hi:.1f})"
            for a, lo, hi in zip(results["accuracy"], results["ci_low"], results["ci_high"])]
    return results.drop(columns=["ci_low", "ci_high"]).assign(accuracy=text)


@dg.asset(kinds={"duckdb"}, metadata=warehouse_tables("data_factors"), **MODEL_WRITER)
def data_factors_table(context: dg.AssetExecutionContext, data_factors: pd.DataFrame, duckdb: DuckDBResource,
                       storage: FemoStorage) -> dg.MaterializeResult:
    """data_factors' results as the warehouse table `data_factors` (replaced whole; a short pooled write)."""
    frame = data_factors.assign(created=pd.Timestamp.now(tz="UTC").tz_localize(None))
    if "synthetic" not in frame:  # an output from before the column existed: its profile is unknown, say demo
        frame = frame.assign(synthetic=True)
    with duckdb.get_connection() as con:
        wh.ensure_schema(con)
        columns = [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = "
                                             "'data_factors' AND schema_name = 'main' ORDER BY column_index").fetchall()]
        wh.replace_rows(con, "data_factors", frame.reindex(columns=columns))
        n = con.execute("SELECT count(*) FROM data_factors").fetchone()[0]
    return dg.MaterializeResult(metadata={"rows": n, "table": "data_factors",
                                          "synthetic": bool(frame["synthetic"].any()) if len(frame) else storage.is_demo})
