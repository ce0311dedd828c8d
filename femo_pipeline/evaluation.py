"""Classification metrics with bootstrap confidence intervals. Pure module (numpy, scikit-learn; no Dagster).

Labels are integer class ids; every function takes the list of classes to report on, so a class that never
occurs still gets its row (recall NaN where it has no true examples).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn import metrics


def _arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError("y_true and y_pred differ in length")
    return y_true, y_pred


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[int]) -> np.ndarray:
    """Rows: true class, columns: predicted class, in the order of `classes`; other predictions are ignored."""
    y_true, y_pred = _arrays(y_true, y_pred)
    if not np.isin(y_true, classes).any():  # sklearn refuses a matrix without any listed true class
        return np.zeros((len(classes), len(classes)), dtype=np.int64)
    with warnings.catch_warnings():  # "a single label was found": labels= already fixes the shape
        warnings.simplefilter("ignore", UserWarning)
        return metrics.confusion_matrix(y_true, y_pred, labels=list(classes)).astype(np.int64)


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    y_true, y_pred = _arrays(y_true, y_pred)
    return float(metrics.accuracy_score(y_true, y_pred)) if len(y_true) else float("nan")


def per_class_recall(y_true, y_pred, classes: Sequence[int]) -> dict[int, float]:
    """Recall of each class (NaN where it has no true example); a prediction outside `classes` is a miss."""
    y_true, y_pred = _arrays(y_true, y_pred)
    if not len(y_true):
        return {c: float("nan") for c in classes}
    recall = metrics.recall_score(y_true, y_pred, labels=list(classes), average=None, zero_division=np.nan)
    return {c: float(r) for c, r in zip(classes, recall)}


def macro_f1(y_true, y_pred, classes: Sequence[int]) -> float:
    """Mean over `classes` of F1 (a class with no true and no predicted example is left out of the mean)."""
    y_true, y_pred = _arrays(y_true, y_pred)
    if not len(y_true):
        return float("nan")
    with warnings.catch_warnings():  # all classes undefined -> NaN, which is the answer we want
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(metrics.f1_score(y_true, y_pred, labels=list(classes), average="macro", zero_division=np.nan))


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
