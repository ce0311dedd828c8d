"""Classification metrics with bootstrap confidence intervals. Pure module (numpy; no Dagster).

Labels are integer class ids; every function takes the list of classes to report on, so a class that never
occurs still gets its row (recall NaN where it has no true examples).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[int]) -> np.ndarray:
    """Rows: true class, columns: predicted class, in the order of `classes`; other predictions are ignored."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        if t in index and p in index:
            matrix[index[t], index[p]] += 1
    return matrix


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def per_class_recall(y_true, y_pred, classes: Sequence[int]) -> dict[int, float]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = {}
    for c in classes:
        mask = y_true == c
        out[c] = float((y_pred[mask] == c).mean()) if mask.any() else float("nan")
    return out


def macro_f1(y_true, y_pred, classes: Sequence[int]) -> float:
    """Mean over `classes` of F1 (a class with no true and no predicted example is left out of the mean)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    scores = []
    for c in classes:
        tp = int(((y_true == c) & (y_pred == c)).sum())
        fp = int(((y_true != c) & (y_pred == c)).sum())
        fn = int(((y_true == c) & (y_pred != c)).sum())
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n_items: int, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of statistic(indices) over n_boot resamples of item indices (with replacement)."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(n_boot)])
    tail = (1 - level) / 2 * 100
    return float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))


def score(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[int], n_boot: int = 1000,
          seed: int = 0) -> dict:
    """Accuracy with a bootstrap 95 % interval, macro-F1, per-class recall and the confusion matrix."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    correct = (y_true == y_pred).astype(float)
    ci = bootstrap_ci(lambda idx: correct[idx].mean(), len(correct), n_boot, seed) if len(correct) else (np.nan, np.nan)
    return {
        "images": int(len(y_true)),
        "accuracy": accuracy(y_true, y_pred),
        "accuracy_ci95": [float(ci[0]), float(ci[1])],
        "macro_f1": macro_f1(y_true, y_pred, classes),
        "per_class_recall": {int(k): v for k, v in per_class_recall(y_true, y_pred, classes).items()},
        "confusion_matrix": confusion_matrix(y_true, y_pred, classes).tolist(),
    }


def verdict(model_ci: Sequence[float], human_ci: Sequence[float]) -> str:
    """'better' / 'worse' when the 95 % intervals do not overlap, else 'on par'."""
    if model_ci[0] > human_ci[1]:
        return "better"
    if model_ci[1] < human_ci[0]:
        return "worse"
    return "on par"
