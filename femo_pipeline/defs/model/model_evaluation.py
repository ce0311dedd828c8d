"""femo's CNN on the test images: the run trained in this lineage (if any), the shipped heads, the declared mix of
the two heads, and the shipped recipe's other seeds. Inference only: the images come from evaluation_images (a
short pooled read) and the `predictions` asset writes what this computes."""

import datetime as dt
import hashlib
import json

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from femo_pipeline import benchmark, declared, evaluation, factor_grid
from femo_pipeline import model as femo_model
from femo_pipeline.defs._meta import md_table
from femo_pipeline.defs.model._bench import GROUP, checked_precision, scored_images
from femo_pipeline.defs.model.model_training import resize
from femo_pipeline.resources import FemoStorage

VIEWS = {"none": "1 view", "flip": "2 views (mirror)", "flip_scale": "6 views (mirror, zoom)"}
MIXED = "femo CNN (shipped, both heads, prior-corrected)"


class EvaluationConfig(dg.Config):
    n_boot: int = Field(default=1000, ge=1, description="Bootstrap resamples for the quick accuracy intervals.")
    seed: int = Field(default=0, ge=0, description="Bootstrap seed.")
    tta: str = Field(default="flip", description="Test-time views of the extra row every model gets beside its "
                     f"one-view row (the headline compares one view): one of {', '.join(femo_model.TTA_MODES)}; "
                     "none: no extra row. Every reader gets the same views.")
    precision: str = Field(default="auto", description="Arithmetic of femo's models while predicting: auto (bf16 "
                           "where the CPU does it natively, as bench/train.py scored the shipped models; float32 "
                           "elsewhere), mixed_bfloat16 or float32.")


def shipped_runs() -> tuple[list[dict], dict[str, str]]:
    """Model-run records of the femo heads committed with the package (none: the reason)."""
    runs, missing = [], {}
    for kind in femo_model.HEADS:
        path = femo_model.shipped_path(kind)
        if path is None:
            missing[f"femo CNN (shipped, {kind} labels)"] = (f"no shipped model: {femo_model.SHIPPED[kind].name} "
                                                             "is not in the package")
            continue
        sha = benchmark.sha256_file(path)
        sidecar = path.with_suffix(".json")
        card = femo_model.package_json(sidecar) if sidecar.is_file() else {}
        runs.append({
            "id": benchmark.run_id(f"femo-shipped-{kind}", sha), "reader": f"femo CNN (shipped, {kind} labels)",
            "origin": "shipped", "label_source": kind, "config": json.dumps(card) if card else None,
            "created": dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds"),
            "backend": card.get("backend"), "device": card.get("device"),
            "train_seconds": card.get("seconds"), "parameters": card.get("parameters"), "model_sha256": sha,
            "validation_accuracy": card.get("best_validation_accuracy", card.get("validation_accuracy")),
            "data_fingerprint": card.get("data_fingerprint"), "synthetic": False, "model_file": str(path),
        })
    return runs, missing


def mixed_run(heads: list[dict], mix: dict | None) -> dict | None:
    """The declared reader's record when both shipped heads and their validated mix are there."""
    if mix is None or len(heads) != 2:
        return None
    digest = hashlib.sha256("".join(sorted(h["model_sha256"] for h in heads)).encode()
                            + json.dumps(mix, sort_keys=True).encode()).hexdigest()
    chosen = mix["validation"][0] if mix.get("validation") else {}
    base = next(h for h in heads if h["label_source"] == "ferplus")
    return {**base, "id": benchmark.run_id("femo-shipped-mixed", digest), "reader": MIXED,
            "label_source": "ferplus+fer2013", "model_sha256": digest, "model_file": None,
            "validation_accuracy": chosen.get("accuracy"),
            "config": json.dumps({"w": mix["w"], "tau": mix["tau"], "prior": mix["prior"], "rule": mix["rule"],
                                  "validation": chosen, "heads": [h["id"] for h in heads]})}


def seed_runs(mix_base: dict | None, test: pd.DataFrame) -> tuple[list[tuple[dict, np.ndarray]], dict[str, str]]:
    """The shipped recipe's other seeds as readers of the FER-2013 test images: each seed's two heads mixed by
    the rule chosen on its own validation split, from the test probabilities recorded when it was scored."""
    out, refused = [], {}
    if mix_base is None:
        return out, refused
    fingerprint = factor_grid.content_fingerprint(test) if len(test) else None
    for record in femo_model.seed_records():
        reader = f"femo CNN (seed {record['seed']}, both heads, prior-corrected)"
        if record.get("test_fingerprint") != fingerprint:
            refused[reader] = "its predictions were recorded on other test images (the real FER-2013 test set)"
            continue
        with np.load(record["probabilities"]) as z:
            probs = {k: factor_grid.from_content(test, z[k].astype(np.float64)) for k in femo_model.HEADS}
        mixed = declared.mix(probs, record["mix"]["w"], record["mix"]["tau"], record["prior"])
        sha = benchmark.sha256_file(record["probabilities"])
        run = {**mix_base, "id": benchmark.run_id(f"femo-seed{record['seed']}-mixed", sha), "reader": reader,
               "origin": "shipped seed", "model_sha256": sha, "device": record.get("device"),
               "train_seconds": record.get("seconds"), "validation_accuracy": None,
               "config": json.dumps({k: v for k, v in record.items() if k != "probabilities"}, default=str)}
        out.append((run, mixed))
    return out, refused


def _views_run(run: dict, mode: str) -> dict:
    return {**run, "id": f"{run['id']}-{mode}", "reader": f"{run['reader']}, {VIEWS[mode]}"}


@dg.asset(group_name=GROUP, kinds={"keras"})
def model_evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, evaluation_images: dict,
                     storage: FemoStorage) -> dg.Output:
    """femo's CNN (trained in this lineage, shipped, the declared mix of both heads, other seeds) on the FER-2013
    test, Kaggle and extra sets' images, one view and the extra views row; no pool held (`predictions` writes)."""
    precision = checked_precision(config.precision)
    if config.tta not in femo_model.TTA_MODES:
        raise dg.Failure(description=f"tta must be one of {', '.join(femo_model.TTA_MODES)}, not {config.tta!r}")
    test, kaggle = evaluation_images["frame"], evaluation_images["kaggle"]["frame"]
    ids, x = scored_images(evaluation_images)
    trained, why = usable_trained_run(evaluation_images, storage)
    heads, not_used = shipped_runs()
    if why:
        not_used["femo CNN (trained here)"] = why
    entries, probs_of = [], {}
    for run in ([trained] if trained else []) + heads:
        net = femo_model.load(run["model_file"], precision)
        size = net.input_shape[1]
        xs = resize(x, size)
        for mode in dict.fromkeys(("none", config.tta)):
            probs = femo_model.predict(net, xs, tta=mode) if len(xs) else np.zeros((0, 7))
            entries.append((run if mode == "none" else _views_run(run, mode), ids, probs))
            probs_of[run["label_source"], run["origin"], mode] = probs
    mix = femo_model.declared_mix()
    mixed = mixed_run(heads, mix)
    if mixed:
        for mode in dict.fromkeys(("none", config.tta)):
            both = {k: probs_of[k, "shipped", mode] for k in femo_model.HEADS}
            probs = declared.mix(both, mix["w"], mix["tau"], mix["prior"])
            entries.append((mixed if mode == "none" else _views_run(mixed, mode), ids, probs))
        seeds, refused = seed_runs(mixed, test)
        not_used.update(refused)
        entries += [(run, test["id"].to_numpy(np.int64), probs) for run, probs in seeds]
    elif heads:
        not_used[MIXED] = "the two shipped heads or their validated mix (shipped/declared.json) are missing"
    one_view = [run for run, _, _ in entries if not run["id"].endswith(tuple(f"-{m}" for m in VIEWS))
                and run["origin"] != "shipped seed"]
    declared_run = mixed or benchmark.declare(one_view)
    summary = []
    for run, _, probs in entries:
        pred = probs[: len(test)].argmax(axis=1)
        for name, keep in (("full test", np.ones(len(test), bool)), ("leak-free test", benchmark.leak_free(test))):
            if not keep.any():
                continue
            s = evaluation.score(test.loc[keep, "emotion_id"], pred[keep], benchmark.FER7, config.n_boot, config.seed)
            summary.append({"reader": run["reader"], "set": name, "images": s["images"],
                            "accuracy vs FER-2013 label": f"{100 * s['accuracy']:.1f} %",
                            "95 % CI": f"{100 * s['accuracy_ci95'][0]:.1f}-{100 * s['accuracy_ci95'][1]:.1f} %"})
    for name, reason in not_used.items():
        context.log.warning(f"{name} not used: {reason}")
    value = {"entries": [({k: v for k, v in run.items() if k != "model_file"}, run_ids, probs)
                         for run, run_ids, probs in entries],
             "declared": declared_run["id"] if declared_run else None, "not_used": not_used, "precision": precision}
    return dg.Output(value, metadata={
        "readers": len(entries),
        "declared_reader": declared_run["reader"] if declared_run else "none: no femo model (see not_used)",
        "not_used": dg.MetadataValue.json(not_used),
        "results": md_table(pd.DataFrame(summary), 40),
        "test_images": len(test), "kaggle_images": len(kaggle), "synthetic": storage.is_demo,
        "precision": precision,  # the arithmetic the predictions came from
    })


def usable_trained_run(evaluation_images: dict, storage: FemoStorage) -> tuple[dict | None, str | None]:
    """The run emotion_model recorded last in the warehouse (read with the images), if the current lineage may
    use it: its file unchanged, trained on the Training images the warehouse holds now, under this profile."""
    import os

    run = evaluation_images.get("trained_run")
    if run is None:
        return None, "emotion_model has not been trained in this warehouse"
    path = run.get("model_file")
    # a file replaced by a folder or a FIFO is no model file: as if it were gone (never read, never waited on)
    sha = benchmark.sha256_file(path) if path and os.path.isfile(path) and not os.path.islink(path) else None
    why = benchmark.trained_run_usable(run, synthetic_profile=storage.is_demo,
                                       current_fingerprint=evaluation_images["training_fingerprint"],
                                       file_sha256=sha)
    return (None, why) if why else (run, None)
