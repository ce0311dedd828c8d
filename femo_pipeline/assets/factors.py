"""What affects the model (the study's question): training-set size, label quality and duplicates."""

import dataclasses
import json

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from femo_pipeline import benchmark, fair
from femo_pipeline import human_baseline as hb
from femo_pipeline import model as femo_model
from femo_pipeline.assets._bench import GROUP, skipped
from femo_pipeline.assets._meta import md_table, png_md
from femo_pipeline.assets.model_training import targets
from femo_pipeline.files import write_text_atomic
from femo_pipeline.resources import FemoStorage


class DataFactorsConfig(dg.Config):
    fractions: list[float] = Field(default=[0.1, 0.25, 0.5, 1.0], description="Shares of Training to train on.")
    label_sources: list[str] = Field(default=["fer2013", "ferplus"], description="fer2013 labels, ferplus votes.")
    duplicates_at: list[float] = Field(default=[1.0], description="Fractions also trained without duplicate and "
                                                                   "conflicting images (quality of the data).")
    epochs: int = Field(default=6, description="Epochs per training run.")
    width: int = Field(default=16, description="Filters of the first block (femo's recipe, narrower).")
    budget_minutes: float = Field(default=55.0, description="Training time for all runs, shared by size (real: "
                                                            "<= 60 min on 2 cores).")
    tiny_in_demo: bool = Field(default=True, description="Demo profile: 1 epoch, width 8, 0.5 and 1.0 only.")
    seed: int = Field(default=2013, description="Seed of the subsets and of training.")


def plan(config: DataFactorsConfig, demo: bool) -> tuple[list[tuple[str, float, bool]], int, int]:
    fractions, epochs, width = config.fractions, config.epochs, config.width
    if demo and config.tiny_in_demo:
        fractions, epochs, width = [f for f in fractions if f >= 0.5] or [1.0], 1, 8
    runs = [(s, f, False) for s in config.label_sources for f in fractions]
    runs += [(s, f, True) for s in config.label_sources for f in config.duplicates_at if f in fractions]
    return runs, epochs, width


def leak_free_scores(test: dict, pred: np.ndarray) -> list[dict]:
    """Accuracy of one model on the leak-free test images with votes, against both references (seven classes)."""
    frame = test["frame"]
    keep = benchmark.leak_free(frame) & (frame[list(hb.VOTE_COLUMNS)].sum(axis=1) > 0).to_numpy()
    out = []
    for reference in fair.REFERENCES:
        s = fair.score(frame[keep], {"model": pred[keep]}, frame.loc[keep, "emotion_id"].to_numpy(int),
                       reference=reference, variant="seven_classes")
        r = fair.paired_bootstrap(s.image_credit("model"), s.image_credit("model"), s.weight, 500, 0)
        out.append({"reference": reference, "accuracy": float(r["a"]), "ci_low": float(r["a_low"]),
                    "ci_high": float(r["a_high"]), "test_images": int(keep.sum())})
    return out


@dg.asset(group_name=GROUP, kinds={"keras", "json"})
def data_factors(context: dg.AssetExecutionContext, config: DataFactorsConfig, training_images: dict,
                 evaluation_images: dict, storage: FemoStorage) -> dg.MaterializeResult:
    """femo's recipe on 10-100 % of Training, FER-2013 vs FER+ labels, with and without duplicates, scored leak-free."""
    from femo_pipeline import reports

    frame, x = training_images["frame"], training_images["x"]
    if frame.empty or evaluation_images["frame"].empty:
        return skipped(context, "data_factors", "no FER-2013 training or test images in the warehouse")
    runs, epochs, width = plan(config, storage.is_demo)
    clean = benchmark.leak_free(frame) & (frame["duplicate_count"].to_numpy() <= 1)
    total = sum(f for _, f, _ in runs)
    rows = []
    for source, fraction, dedup in runs:
        base, y = targets(frame, source)
        pick = np.random.default_rng(config.seed).permutation(len(base))[: max(14, int(round(fraction * len(base))))]
        pick = np.sort(pick)
        if dedup:
            pick = pick[clean[base[pick]]]
        idx, yy = base[pick], y[pick]
        if len(np.unique(femo_model.hard_labels(yy))) < 2:
            continue
        tc = dataclasses.replace(femo_model.TrainConfig(), epochs=epochs, width=width, seed=config.seed,
                          targets="votes" if source == "ferplus" else "labels",
                          max_minutes=config.budget_minutes * fraction / total)
        net, _, facts = femo_model.train(x[idx], yy, tc, log=lambda m: None)
        pred = femo_model.predict(net, evaluation_images["x"]).argmax(axis=1)
        for score in leak_free_scores(evaluation_images, pred):
            rows.append({"label_source": source, "fraction": fraction, "without_duplicates": dedup,
                         "train_images": int(facts["train_images"]), "epochs_run": facts["epochs_run"],
                         "seconds": facts["seconds"], **score})
        context.log.info(f"data_factors: {source} {fraction:.0%}{' no duplicates' if dedup else ''}: "
                         f"{rows[-2]['accuracy']:.3f} / {rows[-1]['accuracy']:.3f} ({facts['seconds']:.0f} s)")
    results = pd.DataFrame(rows)
    out = write_text_atomic(json.dumps(rows, indent=1), storage.path("reports", "data_factors.json"))
    plot = reports.factors_png(results, storage.path("reports", "data_factors.png"),
                               "What affects the model" + (" (SYNTHETIC)" if storage.is_demo else "")) \
        if len(results) else None
    shown = results.assign(accuracy=[f"{100 * a:.1f} % ({100 * lo:.1f}-{100 * hi:.1f})" for a, lo, hi in
                                     zip(results["accuracy"], results["ci_low"], results["ci_high"])]) \
        if len(results) else results
    return dg.MaterializeResult(metadata={
        "results": md_table(shown, 40), "runs": len(runs), "epochs": epochs, "width": width,
        **({"plot": png_md(plot, "accuracy vs training images")} if plot else {}),
        "json": dg.MetadataValue.path(str(out)), "synthetic": storage.is_demo,
    })
