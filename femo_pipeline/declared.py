"""The declared reader: femo's two heads (FER-2013's labels, the FER+ crowd's votes) mixed and corrected for the
crowd's class prior, with the mix chosen on validation only.

p = w * p_ferplus + (1 - w) * p_fer2013; then logit adjustment, log p - tau * log prior, where prior is the share
of each class as the crowd's plurality in Training. tau = 0 keeps the heads' own prior (FER-2013's mix of faces,
36 % Neutral in the crowd's eyes); tau = 1 answers as if every class were equally likely beforehand, which is what
a set of faces without FER-2013's Neutral share needs. The choice (`choose`) maximises, on the validation split,
the mean of accuracy and class-balanced recall against the crowd (each vote's reference is the plurality of the
image's other votes, seven-class votes, one view): a reader that is right on frequent classes only does not win.
Pure module (numpy, pandas; no Dagster, no Keras).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from femo_pipeline import fair

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)


def crowd_prior(votes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Share of each study class as the crowd's seven-class plurality over a set of images (the FER-2013 label
    where no seven-class vote exists; ties split). votes: (n, 10) FER+ counts."""
    seven = fair.answer_order(votes)[:, :7].astype(float)
    top = seven.max(axis=1, keepdims=True)
    winners = (seven == top) & (top > 0)
    share = winners / np.maximum(winners.sum(axis=1, keepdims=True), 1)
    none = top[:, 0] == 0
    share[none] = np.eye(7)[np.asarray(labels)[none]]
    prior = share.sum(axis=0) + 1e-6
    return prior / prior.sum()


def mix(probs: Mapping[str, np.ndarray], w: float, tau: float, prior: Sequence[float]) -> np.ndarray:
    """The declared reader's scores (N x 7; argmax is its answer): the heads mixed with weight w on the crowd's
    head, then shifted by tau * log(prior). Probabilities come back normalised."""
    p = w * np.asarray(probs["ferplus"], float) + (1.0 - w) * np.asarray(probs["fer2013"], float)
    logits = np.log(np.clip(p, 1e-9, None)) - tau * np.log(np.asarray(prior, float))
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def choose(probs: Mapping[str, np.ndarray], votes: np.ndarray, labels: np.ndarray, prior: Sequence[float],
           weights: Sequence[float] = WEIGHTS, taus: Sequence[float] = TAUS, n_boot: int = 0) -> pd.DataFrame:
    """Every (w, tau) scored on validation images (probs of both heads, their FER+ votes and labels): accuracy and
    class-balanced recall against the crowd and their mean (`criterion`); best first (ties: the simpler mix, i.e.
    smaller tau, then w nearer to 1, the crowd's head)."""
    rows = []
    for w in weights:
        for tau in taus:
            pred = mix(probs, w, tau, prior).argmax(axis=1)
            s = fair.score(votes, {"reader": pred}, labels, reference="ferplus", variant="seven_classes", human=None)
            recall = s.recall("reader")
            balanced = float(np.nanmean([recall[c] for c in range(7)]))
            acc = s.accuracy("reader")
            rows.append({"w": w, "tau": tau, "accuracy": acc, "balanced_recall": balanced,
                         "criterion": (acc + balanced) / 2,
                         "says_neutral": float((pred == 6).mean())})
    table = pd.DataFrame(rows)
    table["_w"] = -table["w"]
    return table.sort_values(["criterion", "tau", "_w"], ascending=[False, True, True]).drop(columns="_w") \
        .reset_index(drop=True)
