"""Every reader on labelled faces other than FER-2013's: the Kaggle web images and each extra labelled set, each a
dataset of its own, scored against the folder label at one answer per image. Pure module (numpy, pandas; no
Dagster).

Metrics: accuracy and class-balanced recall (the mean over the set's classes of each class's recall), each with a
percentile bootstrap 95 % interval. Where file names say who is shown (images.subject), the bootstrap draws
subjects, not images: frames of one person are not independent evidence, and resampling them as if they were
gives intervals that are too narrow (a cluster bootstrap; images without a subject are clusters of one). A
per-subject row then gives the mean of the subjects' own accuracies (each person counts once), and a per-sequence
row the mean over recordings where names carry one. Images of a class the readers cannot answer (contempt: they
answer the seven FER-2013 classes) are left out and counted.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from femo_pipeline.bootstrap import _resample_counts
from femo_pipeline.vocab import EMOTIONS

KAGGLE = "Kaggle web images"
REFERENCE = "folder_label"  # the emotion folder each file sits in
CLASSES = 7  # the readers answer study ids 0-6


def _percentiles(values: list[np.ndarray], level: float = 0.95) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    drawn = np.concatenate(values)
    if np.isnan(drawn).all():
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(drawn, [tail, 100 - tail])
    return float(low), float(high)


def _codes(values: pd.Series) -> np.ndarray:
    return pd.factorize(values, use_na_sentinel=False)[0]


def clusters(frame: pd.DataFrame) -> np.ndarray:
    """Resampling unit of each image: its subject where the file name gave one, else the image itself."""
    subject = frame["subject"] if "subject" in frame else pd.Series([None] * len(frame), index=frame.index)
    known = subject.notna().to_numpy()
    keys = np.where(known, "s:" + subject.fillna("").astype(str), "i:" + frame["id"].astype(str))
    return _codes(pd.Series(keys))


def image_scores(labels: np.ndarray, answers: np.ndarray, cluster: np.ndarray, n_boot: int = 2000,
                 seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """{"accuracy": (value, low, high), "balanced_recall": (...)} over the images, the interval from resampling
    clusters (cluster: a resampling unit per image, 0..m-1)."""
    m = int(cluster.max()) + 1 if len(cluster) else 0
    right = np.zeros((m, CLASSES))
    total = np.zeros((m, CLASSES))
    np.add.at(right, (cluster, labels), (answers == labels).astype(float))
    np.add.at(total, (cluster, labels), 1.0)

    def stats(r: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = r.sum(-1) / t.sum(-1)
            recall = np.where(t > 0, r / np.where(t > 0, t, 1), np.nan)
            balanced = np.full(recall.shape[:-1], np.nan)
            present = (t > 0).any(-1)
            balanced[present] = np.nanmean(recall[present], axis=-1)
        return accuracy, balanced

    point = stats(right.sum(0), total.sum(0))
    drawn: tuple[list, list] = ([], [])
    for counts in (_resample_counts(m, n_boot, seed) if m else []):
        for into, values in zip(drawn, stats(counts @ right, counts @ total)):
            into.append(values)
    return {name: (float(value), *_percentiles(values)) for name, value, values in
            zip(("accuracy", "balanced_recall"), point, drawn)}


def unit_mean(correct: np.ndarray, unit: np.ndarray, cluster: np.ndarray, n_boot: int = 2000,
              seed: int = 0) -> tuple[float, float, float, int]:
    """(mean over units of each unit's accuracy, low, high, units): a unit is a subject or a sequence; the interval
    resamples clusters (the subject a sequence belongs to, or the unit itself), each carrying its units."""
    units = pd.DataFrame({"unit": unit, "cluster": cluster, "correct": correct.astype(float)})
    per_unit = units.groupby("unit").agg(accuracy=("correct", "mean"), cluster=("cluster", "first"))
    per_cluster = per_unit.groupby("cluster")["accuracy"].agg(["sum", "count"])
    sums, counts_per = per_cluster["sum"].to_numpy(), per_cluster["count"].to_numpy(float)
    drawn = [(k @ sums) / (k @ counts_per) for k in _resample_counts(len(sums), n_boot, seed)] if len(sums) else []
    return float(per_unit["accuracy"].mean()), *_percentiles(drawn), len(per_unit)


def datasets(kaggle: pd.DataFrame, extra: pd.DataFrame, taken: set[str]) -> dict[str, pd.DataFrame]:
    """{dataset name: its images}: Kaggle's, then each extra set by its folder name (a name the benchmark uses
    already gets ' (extra set)')."""
    out = {KAGGLE: kaggle} if len(kaggle) else {}
    for name, frame in extra.groupby(extra["split"].fillna("extra"), sort=True):
        out[f"{name} (extra set)" if name in taken or name in out else name] = frame
    return out


def set_summary(name: str, frame: pd.DataFrame) -> dict:
    """What the report says of a set before its table: images scored and left out, classes, subjects."""
    scored = frame[frame["emotion_id"] < CLASSES]
    subject = scored["subject"] if "subject" in scored else pd.Series(dtype=object)
    sequence = scored["sequence"] if "sequence" in scored else pd.Series(dtype=object)
    left = frame.loc[frame["emotion_id"] >= CLASSES, "emotion_id"].map(EMOTIONS).value_counts().to_dict()
    return {"dataset": name, "images": len(scored), "left_out": {str(k): int(v) for k, v in left.items()},
            "classes": [EMOTIONS[e] for e in sorted(scored["emotion_id"].unique())],
            "subjects": int(subject.nunique()), "images_with_subject": int(subject.notna().sum()),
            "sequences": int(scored.loc[sequence.notna(), ["subject", "sequence"]].drop_duplicates().shape[0]),
            "resampled": "subjects" if subject.notna().any() else "images"}


def score_rows(name: str, frame: pd.DataFrame, answers: np.ndarray, reader: str, run_id: str | None,
               n_boot: int, seed: int) -> list[dict]:
    """benchmark_scores rows of one reader on one set (frame: its seven-class images, answers in their order)."""
    labels = frame["emotion_id"].to_numpy(int)
    cluster = clusters(frame)
    base = {"dataset": name, "reference": REFERENCE, "reader": reader, "model_run_id": run_id}
    rows = [{**base, "variant": "per_image", "metric": metric, "value": v, "ci_low": lo, "ci_high": hi,
             "n": len(frame)} for metric, (v, lo, hi) in image_scores(labels, answers, cluster, n_boot, seed).items()]
    correct = answers == labels
    has_subject = frame["subject"].notna().to_numpy() if "subject" in frame else np.zeros(len(frame), bool)
    has_sequence = frame["sequence"].notna().to_numpy() if "sequence" in frame else np.zeros(len(frame), bool)
    for variant, keep, unit in (
            ("per_subject", has_subject, frame["subject"] if has_subject.any() else None),
            ("per_sequence", has_sequence, (frame["subject"].fillna("") + "/" + frame["sequence"].fillna(""))
             if has_sequence.any() else None)):
        if unit is None:
            continue
        value, low, high, units = unit_mean(correct[keep], _codes(unit[keep]), cluster[keep], n_boot, seed)
        rows.append({**base, "variant": variant, "metric": "accuracy", "value": value, "ci_low": low,
                     "ci_high": high, "n": units})
    return rows


def tables(kaggle: pd.DataFrame, extra: pd.DataFrame, predictions: pd.DataFrame, run_of: Mapping[str, str],
           taken: set[str], n_boot: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, list[dict]]:
    """(benchmark_scores rows of every reader on every other set, a summary per set).

    kaggle, extra: images (id, emotion_id, split, subject, sequence; extra's split is its set's name);
    predictions: (model_run_id, image_id, emotion_id) of the readers; run_of: {reader: model run id}; taken: the
    dataset names the benchmark uses already. A reader without an answer for every image of a set is not scored
    on it (named in the set's summary)."""
    rows, summaries = [], []
    answers = {run: group.set_index("image_id")["emotion_id"] for run, group in predictions.groupby("model_run_id")}
    for name, frame in datasets(kaggle, extra, taken).items():
        summary = set_summary(name, frame)
        scored = frame[frame["emotion_id"] < CLASSES].reset_index(drop=True)
        summary["not_scored"] = []
        for reader, run in run_of.items():
            given = answers.get(run)
            if given is None or not scored["id"].isin(given.index).all():
                summary["not_scored"].append(reader)
                continue
            if len(scored):
                rows += score_rows(name, scored, given.loc[scored["id"]].to_numpy(int), reader, run, n_boot, seed)
        summaries.append(summary)
    columns = ["dataset", "reference", "variant", "reader", "model_run_id", "metric", "value", "ci_low", "ci_high",
               "n"]
    return pd.DataFrame(rows, columns=columns), summaries
