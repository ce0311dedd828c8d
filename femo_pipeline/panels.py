"""Panels of people: how many annotators is a model worth?

One person is not "humans". For each image, its votes are split at random into a panel of k and the rest; the
panel answers with the plurality of its k votes, and the panel and every model are scored against the very same
reference: the plurality of the rest (reference "ferplus"), or the image's FER-2013 label (reference "fer2013",
where the rest is not needed). Many random splits per image, the same splits for every reader.

Ties, as everywhere in femo (fair.py): a reference tied between t classes gives an answer among them credit 1/t;
a panel whose own plurality is tied between m classes answers each of them with chance 1/m (its expected
credit). An image whose votes cannot fill a panel of k and leave at least one vote for the reference is left out
for every reader at that k (the number of images is in every row).

The result is a fair.Scored per (k, reference, variant) with the reader "panel" beside the models, weight one
per image (each image counts once, whatever its number of votes), so fair.compare and fair.compare_balanced
give paired bootstraps over images. Pure module (numpy, pandas; no Dagster).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from femo_pipeline import fair

PANEL = "panel"
SIZES = (1, 2, 3, 4, 5)


def _vote_lists(m: np.ndarray) -> np.ndarray:
    """(n, V) class of each vote, padded with -1 (V = the largest number of votes of an image)."""
    n, k = m.shape
    width = int(m.sum(axis=1).max()) if n else 0
    out = np.full((n, max(width, 1)), -1, dtype=np.int64)
    for i, row in enumerate(m):
        labels = np.repeat(np.arange(k), row)
        out[i, : len(labels)] = labels
    return out


def _ties(counts: np.ndarray) -> np.ndarray:
    """Plurality as a tie mask divided by its size (rows sum to 1; 0 where there is no vote)."""
    top = counts.max(axis=-1, keepdims=True)
    winners = (counts == top) & (top > 0)
    return winners / np.maximum(winners.sum(axis=-1, keepdims=True), 1)


def panel_scored(votes, k: int, predictions: Mapping[str, Sequence[int]] | None = None,
                 labels: Sequence[int] | None = None, *, reference: str = "ferplus",
                 variant: str = "seven_classes", repeats: int = 20, seed: int = 0) -> fair.Scored:
    """A panel of k annotators and each model scored on the same references (see the module's docstring).

    votes: (n, 10) FER+ counts (or a DataFrame with fair.VOTE_COLUMNS); predictions: {name: (n,) study ids};
    labels: FER-2013 labels (needed for reference "fer2013"). Returns a fair.Scored with readers "panel" and the
    models: weight 1 per image that can hold the panel (0 otherwise), mass and credit per reference class,
    averaged over `repeats` random splits."""
    if k < 1:
        raise ValueError("a panel has at least one person")
    if reference not in fair.REFERENCES or variant not in fair.VARIANTS:
        raise ValueError(f"reference in {fair.REFERENCES}, variant in {fair.VARIANTS}")
    m = fair.answer_order(votes)
    if variant == "seven_classes":
        m = m[:, :7]
    n, n_classes = m.shape
    lab = None
    if reference == "fer2013":
        if labels is None:
            raise ValueError("reference 'fer2013' needs the FER-2013 labels")
        lab = np.asarray(labels, dtype=np.int64)
        if lab.shape != (n,) or ((lab < 0) | (lab > 6)).any():
            raise ValueError("labels must be n study ids in 0..6")
    total = m.sum(axis=1)
    need = k + 1 if reference == "ferplus" else k
    usable = total >= need
    rng = np.random.default_rng(seed)
    lists = _vote_lists(m)
    keys = rng.random((n, repeats, lists.shape[1]))
    keys[np.broadcast_to((lists < 0)[:, None, :], keys.shape)] = np.inf  # padding sorts last
    order = np.argsort(keys, axis=-1)
    shuffled = np.take_along_axis(np.broadcast_to(lists[:, None, :], keys.shape), order, axis=-1)
    eye = np.eye(n_classes + 1)[:, :n_classes]  # row -1 (padding) -> all zeros
    panel_counts = eye[shuffled[..., :k]].sum(axis=2)                 # (n, R, K)
    if reference == "ferplus":
        ref = _ties(m[:, None, :] - panel_counts)                        # plurality of the rest, (n, R, K)
    else:
        ref = np.broadcast_to(np.eye(n_classes)[lab][:, None, :], panel_counts.shape)
    ref = ref * usable[:, None, None]
    mass = ref.mean(axis=1)                                              # (n, K): reference mass per class
    credit = {PANEL: (ref * _ties(panel_counts)).mean(axis=1)}
    for name, p in fair.checked_predictions(predictions, n, credit):
        credit[name] = mass * np.eye(n_classes)[p]
    return fair.Scored(reference, variant, usable.astype(np.float64), mass, credit)


def panel_table(votes, labels: Sequence[int] | None, predictions: Mapping[str, Sequence[int]], *,
                sizes: Sequence[int] = SIZES, references: Sequence[str] = ("ferplus",),
                variant: str = "seven_classes", repeats: int = 20, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every model against panels of each size, on accuracy and class-balanced recall: one row per (reference,
    variant, k, reader, metric) with the reader's and the panel's value and interval, the paired difference in
    points with its interval, the verdict and the images scored. The splits are drawn once per k and shared by
    every reader; the bootstrap resamples are shared too (one seed)."""
    rows = []
    for reference in references:
        for k in sizes:
            s = panel_scored(votes, k, predictions, labels, reference=reference, variant=variant, repeats=repeats,
                             seed=seed + k)
            for reader in predictions:
                for row in (fair.compare(s, reader, PANEL, n_boot, seed), fair.compare_balanced(s, reader, PANEL,
                                                                                               n_boot=n_boot,
                                                                                               seed=seed)):
                    rows.append({"reader": reader, "k": k, "reference": reference, "variant": variant,
                                 "metric": row.get("metric", "accuracy"), "images": row["images"],
                                 "value": row["accuracy_reader"], "ci_low": row["accuracy_reader_low"],
                                 "ci_high": row["accuracy_reader_high"], "panel_value": row["accuracy_against"],
                                 "panel_ci_low": row["accuracy_against_low"],
                                 "panel_ci_high": row["accuracy_against_high"],
                                 "difference_pp": row["difference_pp"], "ci_low_pp": row["ci_low_pp"],
                                 "ci_high_pp": row["ci_high_pp"], "verdict": row["verdict"]})
    return pd.DataFrame(rows)


def worth(table: pd.DataFrame, reader: str, metric: str = "accuracy", reference: str = "ferplus") -> dict:
    """How many people a reader is worth on one metric: `people`, where its value crosses the panel curve
    (linear between panel sizes; below 1 or above the largest size it says so with `beyond`), and the largest
    panel it beats with a paired interval above 0 (`beats`, 0 for none) and the smallest it loses to with an
    interval below 0 (`loses_to`, None for none)."""
    rows = table[(table["reader"] == reader) & (table["metric"] == metric) & (table["reference"] == reference)]
    rows = rows.sort_values("k")
    if rows.empty:
        raise ValueError(f"no panel rows for {reader!r} ({metric}, {reference})")
    ks, model, panel = rows["k"].to_numpy(), rows["value"].to_numpy(), rows["panel_value"].to_numpy()
    gap = model - panel
    beats = int(ks[rows["verdict"].to_numpy() == "better"].max()) if (rows["verdict"] == "better").any() else 0
    worse = rows[rows["verdict"] == "worse"]
    loses_to = int(worse["k"].min()) if len(worse) else None
    if gap[0] <= 0:
        people, beyond = float(ks[0]), "below"
    elif gap[-1] >= 0:
        people, beyond = float(ks[-1]), "above"
    else:
        j = int(np.flatnonzero(gap < 0)[0])  # first panel that reads better than the model
        k0, k1, g0, g1 = ks[j - 1], ks[j], gap[j - 1], gap[j]
        people, beyond = float(k0 + (k1 - k0) * g0 / (g0 - g1)), ""
    return {"reader": reader, "metric": metric, "reference": reference, "people": round(people, 1),
            "beyond": beyond, "beats": beats, "loses_to": loses_to}
