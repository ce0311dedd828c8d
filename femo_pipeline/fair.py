"""Humans and models scored against the same references on the same images, compared with paired bootstraps.

Pure module (numpy, pandas; no Dagster, no Keras).

Inputs
------
- ``votes``: FER+ vote counts, one row per image, ten columns in FER+ order
  (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF): an (n, 10) integer array or
  a DataFrame holding those column names.
- ``labels``: FER-2013 labels as study emotion ids (0 Anger, 1 Disgust, 2 Fear, 3 Happiness, 4 Sadness, 5 Surprise,
  6 Neutral), shape (n,).
- ``predictions``: ``{reader name: (n,) array of study ids 0-6}``, one entry per model.

Internally the ten vote columns are put in *answer order*: columns 0-6 are the study ids above, 7 is contempt,
8 unknown, 9 NF, so an answer (a model's prediction or an annotator's vote) is a column index.

References (the same for every reader, human or model)
------------------------------------------------------
``reference="ferplus"`` -- leave one annotator out. Every vote of an image is one human reading. For the vote of
annotator k the reference is the plurality of the image's *other* votes. The human reader is vote k; a model is
scored against the very same reference, so a model meets each image once per vote (averaged over k).
A reader whose answer is one of ``t`` tied plurality classes gets credit ``1/t`` (the same rule for both readers);
otherwise 0. A vote whose other votes are all empty has no reference and is left out for every reader.

``reference="fer2013"`` -- the FER-2013 label. Each vote scores 1 when it names the label; the model's prediction
scores 1 when it equals the label, counted once per vote of the image so that both readers carry the same weights.

Variants
--------
``variant="seven_classes"`` (the headline: the model's own choice set) -- only votes for FER-2013's seven classes
exist: they are the human readers and they form the references. Contempt, unknown and NF votes are dropped.

``variant="all_votes"`` -- every vote is a reader and counts in the references. A contempt/unknown/NF vote cannot
equal a FER-2013 label or a seven-class plurality, so there it is a human miss. When the leave-one-out plurality is
itself contempt/unknown/NF the model (which answers only the seven classes) can never match it: a model miss; the
human vote matches it when it is equal (same rule as always: answer among the plurality classes). With
``non_emotion_answers_match=False`` a contempt/unknown/NF *answer* scores 0 even against an equal plurality (the
strictest reading of "such a vote is a human miss"); the model is unaffected, it never gives such answers.

Weighting (one rule for every reader)
-------------------------------------
Per vote: accuracy = sum of credits / number of scored votes, over the images in the set. Per image, the human's
credit is the sum over its votes and the model's is the sum over the same references; the image's weight is its
number of scored votes. An image without scored votes (e.g. no seven-class vote in "seven_classes") drops out
for every reader. Bootstrap statistics are this ratio of sums on the resampled images.

Per class (recall by reference class)
-------------------------------------
A reference that is a tie of ``t`` classes gives each of them ``1/t`` of the vote's weight ("reference mass").
Recall of class c = credit earned on class-c references / class-c reference mass. Summed over classes, mass is the
weight and class credit the credit, so accuracy is the mass-weighted mean of the per-class recalls.

Paired inference
----------------
Bootstrap over images with one set of resampled indices shared by both readers; the statistic is the difference
(a - b) of the two ratio-of-sums accuracies (the code and its measured speed: femo_pipeline/bootstrap.py,
re-exported here as paired_bootstrap and verdict).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from femo_pipeline.bootstrap import paired_balanced_bootstrap, paired_bootstrap, verdict
from femo_pipeline.vocab import EMOTIONS, VOTE_COLUMNS, VOTES_BY_EMOTION_ID

# answer order: study ids 0..6, then contempt (7), unknown (8), NF (9)
ANSWER_NAMES: tuple[str, ...] = tuple(EMOTIONS[i] for i in range(8)) + ("Unknown", "Not a face")
# FER+ column feeding each answer-order column
_FERPLUS_COLUMN_OF_ANSWER = np.array([VOTE_COLUMNS.index(c) for c in VOTES_BY_EMOTION_ID])
SEVEN = tuple(range(7))
VARIANTS = ("seven_classes", "all_votes")
REFERENCES = ("ferplus", "fer2013")
HUMAN = "human"


def answer_order(votes) -> np.ndarray:
    """(n, 10) int vote counts in answer order from FER+-ordered votes (array or DataFrame with VOTE_COLUMNS)."""
    if isinstance(votes, pd.DataFrame):
        missing = [c for c in VOTE_COLUMNS if c not in votes.columns]
        if missing:
            raise ValueError(f"votes lack columns {missing}")
        m = votes[list(VOTE_COLUMNS)].to_numpy()
    else:
        m = np.asarray(votes)
    if m.ndim != 2 or m.shape[1] != len(VOTE_COLUMNS):
        raise ValueError(f"votes must have shape (n, 10) in FER+ order, got {m.shape}")
    if (m < 0).any():
        raise ValueError("negative vote counts")
    return m[:, _FERPLUS_COLUMN_OF_ANSWER].astype(np.int64)


@dataclass(frozen=True)
class Scored:
    """Per-image credits of every reader against one reference (all arrays have one row per image).

    weight: (n,) scored votes per image; mass: (n, K) reference mass per class; credit: {reader: (n, K)} credit
    earned per reference class. K = 7 for "seven_classes", 10 (answer order) for "all_votes".
    """

    reference: str
    variant: str
    weight: np.ndarray
    mass: np.ndarray
    credit: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def readers(self) -> list[str]:
        return list(self.credit)

    def image_credit(self, reader: str) -> np.ndarray:
        """(n,) summed credit of the reader per image (divide by weight for the per-image score)."""
        return self.credit[reader].sum(axis=1)

    def accuracy(self, reader: str) -> float:
        total = self.weight.sum()
        return float(self.image_credit(reader).sum() / total) if total > 0 else float("nan")

    def recall(self, reader: str, classes: Sequence[int] = SEVEN) -> dict[int, float]:
        mass = self.mass.sum(axis=0)
        got = self.credit[reader].sum(axis=0)
        return {int(c): float(got[c] / mass[c]) if mass[c] > 0 else float("nan") for c in classes}

    def per_image(self) -> pd.DataFrame:
        """One row per image: scored votes and each reader's per-image score (credit / votes; NaN without votes)."""
        out = {"votes": self.weight}
        with np.errstate(invalid="ignore", divide="ignore"):
            for r in self.readers:
                out[r] = np.where(self.weight > 0, self.image_credit(r) / np.where(self.weight > 0, self.weight, 1),
                                  np.nan)
        return pd.DataFrame(out)


def _shares(m: np.ndarray, reference: str, labels: np.ndarray | None) -> np.ndarray:
    """share[i, j, c]: weight of class c in the reference met by a vote for column j of image i (rows sum to 1, or
    0 when that vote has no reference)."""
    n, k = m.shape
    if reference == "ferplus":
        others = m[:, None, :] - np.eye(k, dtype=m.dtype)[None]          # vote j left out
        top = others.max(axis=2, keepdims=True)
        winners = (others == top) & (top > 0)
        t = winners.sum(axis=2, keepdims=True)
        return winners / np.maximum(t, 1)
    if labels is None:
        raise ValueError("reference='fer2013' needs the FER-2013 labels")
    onehot = np.zeros((n, k))
    onehot[np.arange(n), labels] = 1.0
    return np.broadcast_to(onehot[:, None, :], (n, k, k))


def score(votes, predictions: Mapping[str, Sequence[int]] | None = None, labels: Sequence[int] | None = None, *,
          reference: str = "ferplus", variant: str = "seven_classes", human: str | None = HUMAN,
          non_emotion_answers_match: bool = True) -> Scored:
    """Score the FER+ annotators (as reader ``human``) and each model in ``predictions`` on the same references."""
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}")
    m = answer_order(votes)
    n = len(m)
    if variant == "seven_classes":
        m = m[:, :7]
    k = m.shape[1]
    lab = None
    if labels is not None:
        lab = np.asarray(labels, dtype=np.int64)
        if lab.shape != (n,) or ((lab < 0) | (lab > 6)).any():
            raise ValueError("labels must be n study ids in 0..6")
    share = _shares(m, reference, lab)
    mass = np.einsum("ij,ijc->ic", m, share)
    weight = mass.sum(axis=1)
    credit: dict[str, np.ndarray] = {}
    if human is not None:
        diag = np.diagonal(share, axis1=1, axis2=2)                     # share[i, c, c]: vote c meets a c reference
        hc = m * diag
        if not non_emotion_answers_match:
            hc[:, 7:] = 0.0
        credit[human] = hc
    for name, p in checked_predictions(predictions, n, credit):
        onehot = np.zeros((n, k))
        onehot[np.arange(n), p] = 1.0
        credit[name] = mass * onehot
    return Scored(reference, variant, weight, mass, credit)


def checked_predictions(predictions: Mapping[str, Sequence[int]] | None, n: int, taken: Mapping):
    """(name, n study ids as int64) of each model's predictions, refusing a wrong length or an id outside 0..6,
    and a name already among the readers in `taken`."""
    for name, pred in (predictions or {}).items():
        p = np.asarray(pred, dtype=np.int64)
        if p.shape != (n,) or ((p < 0) | (p > 6)).any():
            raise ValueError(f"predictions of {name!r} must be n study ids in 0..6")
        if name in taken:
            raise ValueError(f"reader name {name!r} used twice")
        yield name, p


def compare(scored: Scored, reader: str, against: str = HUMAN, n_boot: int = 2000, seed: int = 0,
            level: float = 0.95) -> dict:
    """Paired comparison of two readers' accuracies on one reference (reader - against), in points.

    Works for model vs human and model vs model. Returns a flat dict: reference, variant, reader, against, images,
    votes, accuracy_reader / accuracy_against (fractions) with their *separate* intervals from the same resamples,
    difference_pp with ci_low_pp, ci_high_pp (percentage points), and verdict.
    """
    r = paired_bootstrap(scored.image_credit(reader), scored.image_credit(against), scored.weight, n_boot, seed,
                         level)
    return _comparison(scored, reader, against, r)


def _comparison(scored: Scored, reader: str, against: str, r: Mapping) -> dict:
    """The flat row of a paired comparison from a bootstrap's result (the keys compare documents)."""
    return {
        "reference": scored.reference, "variant": scored.variant, "reader": reader, "against": against,
        "images": int((scored.weight > 0).sum()), "votes": float(scored.weight.sum()),
        "accuracy_reader": float(r["a"]), "accuracy_reader_low": float(r["a_low"]),
        "accuracy_reader_high": float(r["a_high"]),
        "accuracy_against": float(r["b"]), "accuracy_against_low": float(r["b_low"]),
        "accuracy_against_high": float(r["b_high"]),
        "difference_pp": 100 * float(r["diff"]), "ci_low_pp": 100 * float(r["diff_low"]),
        "ci_high_pp": 100 * float(r["diff_high"]),
        "verdict": verdict(float(r["diff_low"]), float(r["diff_high"])),
    }


def compare_balanced(scored: Scored, reader: str, against: str = HUMAN, classes: Sequence[int] = SEVEN,
                     n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Paired comparison of class-balanced recall (mean over the reference classes of each class's recall; a
    class counts as much as any other however often it is the reference), reader - against, in points. Same
    keys as :func:`compare`, with ``metric`` = "balanced_recall" (compare's are "accuracy")."""
    cols = list(classes)
    r = paired_balanced_bootstrap(scored.credit[reader][:, cols], scored.credit[against][:, cols],
                                  scored.mass[:, cols], n_boot, seed, level)
    return {"metric": "balanced_recall", **_comparison(scored, reader, against, r)}


def compare_per_class(scored: Scored, reader: str, against: str = HUMAN, classes: Sequence[int] = SEVEN,
                      n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per reference class: recall of both readers (separate intervals) and the paired difference in points.

    One row per class in ``classes`` (study ids; 7-9 = contempt/unknown/NF exist only in "all_votes"), with
    emotion, reference_mass (votes whose reference is the class, ties split), recall_reader(_low/_high),
    recall_against(_low/_high), difference_pp, ci_low_pp, ci_high_pp, verdict. All classes share the resamples.
    """
    cols = list(classes)
    if max(cols) >= scored.mass.shape[1]:
        raise ValueError(f"classes {cols} not in variant {scored.variant}")
    r = paired_bootstrap(scored.credit[reader][:, cols], scored.credit[against][:, cols], scored.mass[:, cols],
                         n_boot, seed, level)
    rows = []
    for i, c in enumerate(cols):
        lo, hi = float(r["diff_low"][i]), float(r["diff_high"][i])
        rows.append({
            "reference": scored.reference, "variant": scored.variant, "reader": reader, "against": against,
            "emotion_id": int(c), "emotion": ANSWER_NAMES[c], "reference_mass": float(scored.mass[:, c].sum()),
            "recall_reader": float(r["a"][i]), "recall_reader_low": float(r["a_low"][i]),
            "recall_reader_high": float(r["a_high"][i]),
            "recall_against": float(r["b"][i]), "recall_against_low": float(r["b_low"][i]),
            "recall_against_high": float(r["b_high"][i]),
            "difference_pp": 100 * float(r["diff"][i]), "ci_low_pp": 100 * lo, "ci_high_pp": 100 * hi,
            "verdict": verdict(lo, hi),
        })
    return pd.DataFrame(rows)


def fair_comparison(votes, labels: Sequence[int], predictions: Mapping[str, Sequence[int]], *,
                    against: str = HUMAN, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every reader against ``against`` (default the human annotators), on both references and both variants.

    Returns (verdicts, per_class): one row per (reference, variant, reader) from :func:`compare`, and the
    per-class rows from :func:`compare_per_class`. ``against`` may also be a model name (model vs model); the
    human reader is then scored too and compared like any other. Seeds are shared, so every comparison on one
    reference and variant uses the same resamples.
    """
    verdicts, per_class = [], []
    for reference in REFERENCES:
        for variant in VARIANTS:
            s = score(votes, predictions, labels, reference=reference, variant=variant)
            for reader in s.readers:
                if reader == against:
                    continue
                verdicts.append(compare(s, reader, against, n_boot, seed, level))
                per_class.append(compare_per_class(s, reader, against, SEVEN, n_boot, seed, level))
    return pd.DataFrame(verdicts), (pd.concat(per_class, ignore_index=True) if per_class else pd.DataFrame())
