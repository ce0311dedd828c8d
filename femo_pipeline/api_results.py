"""Benchmark routes of the HTTP API: the paired verdicts and every reader's guess for one image.

A FastAPI APIRouter included by api.create_app. It reads the serving snapshot through the app's read-only
SnapshotReader (app.state.reader) with parameterised SQL only; unknown ids answer 404, bad values 422, and no
answer names a file path.
"""

from __future__ import annotations

from enum import Enum

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam

from femo_pipeline import headline
from femo_pipeline.api.rendering import crowd_plurality
from femo_pipeline.vocab import VOTE_COLUMNS

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EMOTION_COLUMNS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")

router = APIRouter(tags=["benchmark"])


class Dataset(str, Enum):
    leak_free = "leak-free test"
    full = "full test"


class Reference(str, Enum):
    ferplus = "ferplus"
    fer2013 = "fer2013"


def _reader(request: Request):
    return request.app.state.reader


def _finite(row: dict) -> dict:
    """NaN is not JSON: it becomes null."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


@router.get("/benchmark", summary="Is AI better than humans? Paired verdicts, scores and the readers")
def benchmark(request: Request,
              dataset: Dataset = Query(Dataset.leak_free, description="leak-free test (headline) or full test"),
              reference: Reference | None = Query(None, description="ferplus or fer2013 (default: both)")) -> dict:
    reader = _reader(request)
    where, params = "dataset = ?", [dataset.value]
    if reference is not None:
        where += " AND reference = ?"
        params.append(reference.value)
    declared = reader.query("SELECT value FROM warehouse_info WHERE key = 'declared_model_run'")
    declared_id = declared[0]["value"] if declared and declared[0]["value"] else None
    verdicts = reader.query(
        "SELECT v.reference, v.variant, v.metric, v.reader, v.against, v.model_run_id, v.declared, v.images, "
        "v.accuracy_reader, v.accuracy_reader_low, v.accuracy_reader_high, v.accuracy_against, "
        "v.accuracy_against_low, v.accuracy_against_high, v.difference_pp, v.ci_low_pp, v.ci_high_pp, v.verdict "
        f"FROM verdicts v WHERE {where} ORDER BY v.against, v.reference, v.variant, v.metric, v.reader", params)
    panels = reader.query(
        "SELECT reference, variant, metric, reader, model_run_id, k, images, value, ci_low, ci_high, panel_value, "
        "panel_ci_low, panel_ci_high, difference_pp, ci_low_pp, ci_high_pp, verdict FROM panel_scores "
        f"WHERE {where} ORDER BY reference, metric, reader, k", params)
    scores = reader.query(
        "SELECT reference, variant, reader, model_run_id, metric, value, ci_low, ci_high, n FROM benchmark_scores "
        f"WHERE {where} ORDER BY reference, variant, reader, metric", params)
    runs = reader.query(
        "SELECT id, reader, origin, label_source, created, backend, device, train_seconds, parameters, "
        "validation_accuracy, synthetic, caveat FROM model_runs WHERE id IN "
        "(SELECT model_run_id FROM benchmark_scores WHERE model_run_id IS NOT NULL) ORDER BY origin, reader")
    synthetic = reader.query("SELECT value FROM warehouse_info WHERE key = 'synthetic'")
    report = headline.read(request.app.state.reports_dir) if hasattr(request.app.state, "reports_dir") else None
    return {
        "question": "Is AI better than humans at reading facial emotions?",
        "answer": report["headline"] if report else None,  # the report's sentence (SYNTHETIC DEMO under demo)
        "dataset": dataset.value,
        "synthetic": bool(synthetic and synthetic[0]["value"] == "true") or bool(report and report["synthetic"]),
        "declared_model_run": declared_id,
        "headline": next((_finite(v) for v in verdicts if v["declared"] and v["against"] == "human"
                          and v["reference"] == "ferplus" and v["variant"] == "seven_classes"
                          and v["metric"] == "accuracy"), None),
        "verdicts": [_finite(v) for v in verdicts],
        "panels": [_finite(p) for p in panels],  # panels of k people against each reader (the answer as a curve)
        "scores": [_finite(s) for s in scores],
        "model_runs": [_finite({**r, "created": str(r["created"])}) for r in runs],
        "units": "accuracies are fractions (0-1); differences and their intervals are percentage points",
    }


@router.get("/images/{image_id}/predictions", summary="Every reader's guess for one image, and the FER+ votes")
def image_predictions(request: Request,
                      image_id: int = PathParam(..., ge=INT64_MIN, le=INT64_MAX,
                                                description="Image id (a signed 64-bit integer)")) -> dict:
    reader = _reader(request)
    found = reader.query("SELECT i.id, i.emotion_id, e.emotion, i.split, i.usage FROM images i "
                         "JOIN emotions e ON e.id = i.emotion_id WHERE i.id = ?", [image_id])
    if not found:
        raise HTTPException(404, f"no image with id {image_id}")
    image = found[0]
    probabilities = ", ".join(f"p.p_{c}" for c in EMOTION_COLUMNS)
    rows = reader.query(
        f"SELECT p.model_run_id, r.reader, r.origin, r.synthetic, r.caveat, p.emotion_id, e.emotion, {probabilities} "
        "FROM predictions p JOIN model_runs r ON r.id = p.model_run_id JOIN emotions e ON e.id = p.emotion_id "
        "WHERE p.image_id = ? ORDER BY r.origin, r.reader", [image_id])
    votes = reader.query(f"SELECT {', '.join(chr(34) + c + chr(34) for c in VOTE_COLUMNS)}, synthetic "
                         "FROM human_votes WHERE image_id = ?", [image_id])
    crowd = crowd_plurality(votes[0])[0] if votes else []  # the emotions most annotators chose
    predictions = [{
        "model_run_id": r["model_run_id"], "reader": r["reader"], "origin": r["origin"],
        "synthetic": r["synthetic"], "caveat": r["caveat"],
        "emotion_id": r["emotion_id"], "emotion": r["emotion"],
        "correct": r["emotion_id"] == image["emotion_id"],
        "agrees_with_crowd": r["emotion"].lower() in crowd if crowd else None,
        "probabilities": _finite({c: r[f"p_{c}"] for c in EMOTION_COLUMNS}),
    } for r in rows]
    return {
        "image_id": image["id"], "label_id": image["emotion_id"], "label": image["emotion"],
        "split": image["split"], "usage": image["usage"],
        "human_votes": {c: votes[0][c] for c in VOTE_COLUMNS} if votes else None,
        "human_votes_synthetic": votes[0]["synthetic"] if votes else None,
        "predictions": predictions,
        "links": {"image": f"/images/{image['id']}", "png": f"/images/{image['id']}.png"},
    }
