"""How well do people agree with FER-2013's labels? Measured on the FER+ crowd votes. Pure module (no Dagster).

FER+ (Barsoum et al. 2016) had 10 annotators label every FER-2013 image with one of eight emotions, 'unknown' or
'not a face' (NF). ../shared/datasets/ferplus/ferplus_votes_by_file.csv gives those votes per FER-2013 file.
Treating each vote as one human's reading of the image:
- single-annotator accuracy against the FER-2013 label: share of all votes that name the FER-2013 label
  ('unknown' and NF votes count as misses);
- single annotator against the other nine (leave-one-out): for each vote, does it name the plurality of the
  remaining votes? A tie among k labels that includes the vote scores 1/k;
- the FER+ plurality label (the emotion with most votes; ties and images whose plurality is unknown/NF get none).
Bootstrap intervals resample images.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd

from femo_pipeline import evaluation
from femo_pipeline.files import InputFileError, read_input_file
from femo_pipeline.vocab import FER2013_CLASSES, VOTE_COLUMNS, emotion_id

EMOTION_VOTES = VOTE_COLUMNS[:8]
FER7 = tuple(emotion_id(c) for c in FER2013_CLASSES)  # study ids of FER-2013's seven classes


class VotesFormatError(ValueError):
    """The votes file is not the FER+ per-file table."""


MAX_VOTES_PER_CELL = 999  # FER+ has ten annotators per image; a count beyond this is not a vote count


def read_votes(path: str | os.PathLike) -> pd.DataFrame:
    """The per-file votes table, every cell checked: each column named once, every vote cell a whole number
    0-999 (a blank, negative, fractional or non-numeric vote is refused, never cast to a wrong number), every image
    with at least one vote, every FER-2013 label one we know. VotesFormatError names the first bad rows."""
    try:
        data = read_input_file(path)
    except InputFileError as exc:
        raise VotesFormatError(f"votes file {exc}") from None
    try:
        header = pd.read_csv(io.BytesIO(data), header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
        votes = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, IndexError) as exc:
        raise VotesFormatError(f"votes file is malformed: {exc}") from exc
    dupes = sorted({str(c) for c in header[header.duplicated()]})
    if dupes:
        raise VotesFormatError(f"votes file names columns {dupes} more than once")
    missing = [c for c in ("usage", "path", "fer2013_label", *VOTE_COLUMNS) if c not in votes.columns]
    if missing:
        raise VotesFormatError(f"votes file lacks columns {missing}")
    cells = votes[list(VOTE_COLUMNS)]
    bad = ~cells.apply(lambda col: col.str.fullmatch(r"[0-9]{1,3}")).all(axis=1)
    if bad.any():
        rows = [int(i) + 2 for i in votes.index[bad][:3]]  # file lines: the header is line 1
        raise VotesFormatError(f"{int(bad.sum())} rows have a vote count that is not a whole number 0-"
                               f"{MAX_VOTES_PER_CELL}, e.g. on lines {rows}")
    votes[list(VOTE_COLUMNS)] = cells.astype(np.int64)
    empty = votes[list(VOTE_COLUMNS)].sum(axis=1) == 0
    if empty.any():
        rows = [int(i) + 2 for i in votes.index[empty][:3]]
        raise VotesFormatError(f"{int(empty.sum())} rows have no votes at all, e.g. on lines {rows}")
    votes["label_id"] = votes["fer2013_label"].map(emotion_id)
    if votes["label_id"].isna().any():
        bad_labels = sorted(set(votes.loc[votes["label_id"].isna(), "fer2013_label"]))[:5]
        raise VotesFormatError(f"unknown FER-2013 labels {bad_labels}")
    return votes


def _matrix(votes: pd.DataFrame) -> np.ndarray:
    return votes[list(VOTE_COLUMNS)].to_numpy(dtype=np.int64)


_VOTE_IDS = np.array([emotion_id(c) if c in EMOTION_VOTES else -1 for c in VOTE_COLUMNS])


def plurality(votes: pd.DataFrame) -> np.ndarray:
    """FER+ plurality label per image as a study emotion id; -1 for ties and for unknown/NF pluralities."""
    m = _matrix(votes)
    top = m.max(axis=1, keepdims=True)
    winners = (m == top) & (top > 0)
    single = winners.sum(axis=1) == 1
    label = _VOTE_IDS[m.argmax(axis=1)]
    return np.where(single, label, -1)


def per_image_scores(votes: pd.DataFrame) -> pd.DataFrame:
    """Per image: votes, votes naming the FER-2013 label, and the leave-one-out agreement (summed over votes)."""
    m = _matrix(votes)
    total = m.sum(axis=1)
    label_col = np.array([VOTE_COLUMNS.index(next(c for c in EMOTION_VOTES if emotion_id(c) == lab))
                          for lab in votes["label_id"].astype(int)])
    agree_label = m[np.arange(len(m)), label_col]
    loo = np.zeros(len(m), dtype=float)
    for j in range(m.shape[1]):  # one vote for column j taken out; does it match the others' plurality?
        has = m[:, j] > 0
        others = m.copy()
        others[:, j] -= 1
        top = others.max(axis=1)
        winners = (others == top[:, None]) & (top[:, None] > 0)
        k = winners.sum(axis=1)
        hit = np.where(winners[:, j] & (k > 0), 1.0 / np.maximum(k, 1), 0.0)
        loo += np.where(has, m[:, j] * hit, 0.0)
    return pd.DataFrame({"votes": total, "votes_for_fer2013_label": agree_label, "loo_agreement": loo})


def summarise(votes: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict:
    """Human baseline figures on the given images (e.g. the FER-2013 test files)."""
    scores = per_image_scores(votes)
    v = scores["votes"].to_numpy()
    a = scores["votes_for_fer2013_label"].to_numpy()
    loo = scores["loo_agreement"].to_numpy()
    single = lambda idx: a[idx].sum() / v[idx].sum()  # noqa: E731
    leave_one_out = lambda idx: loo[idx].sum() / v[idx].sum()  # noqa: E731
    everyone = np.arange(len(votes))
    plural = plurality(votes)
    has_plural = plural >= 0
    labels = votes["label_id"].to_numpy(dtype=int)
    plural_vs_label = evaluation.accuracy(labels[has_plural], plural[has_plural])
    per_class = {}
    for cls in FER7:
        mask = labels == cls
        per_class[cls] = float(a[mask].sum() / v[mask].sum()) if mask.any() else float("nan")
    return {
        "images": int(len(votes)),
        "votes": int(v.sum()),
        "single_annotator_vs_fer2013_label": float(single(everyone)),
        "single_annotator_vs_fer2013_label_ci95": evaluation.bootstrap_ci(single, len(votes), n_boot, seed),
        "single_annotator_vs_other_nine": float(leave_one_out(everyone)),
        "single_annotator_vs_other_nine_ci95": evaluation.bootstrap_ci(leave_one_out, len(votes), n_boot, seed + 1),
        "ferplus_plurality_vs_fer2013_label": plural_vs_label,
        "images_with_a_ferplus_plurality": int(has_plural.sum()),
        "single_annotator_recall_per_fer2013_class": per_class,
    }


# ---------------------------------------------------------------- votes per warehouse image

_FERPLUS_COLUMN_OF_STUDY_ID = [VOTE_COLUMNS.index(c) for c in
                               ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")]


def votes_for_images(images: pd.DataFrame, fer2013new, mapping: pd.DataFrame | None = None) -> pd.DataFrame:
    """FER+ votes of warehouse images (columns id, rel_path, content_hash) joined by content hash through the
    shipped FER+ map (ferplus_map): image_id, the ten vote columns (FER+ order) and fer2013new_rows."""
    from femo_pipeline import ferplus_map

    files = pd.DataFrame({"path": images["rel_path"].to_numpy(), "sha256": images["content_hash"].to_numpy()})
    matched = ferplus_map.votes_by_file(files, fer2013new, mapping)
    ids = dict(zip(images["rel_path"], images["id"]))
    matched.insert(0, "image_id", matched["path"].map(ids).astype("int64"))
    out = matched.rename(columns={"fer2013_rows": "fer2013new_rows"})
    return out[["image_id", *VOTE_COLUMNS, "fer2013new_rows"]].drop_duplicates("image_id").reset_index(drop=True)


def synthetic_votes(image_ids, labels, seed: int = 13, annotators: int = 10) -> pd.DataFrame:
    """Demo only: ten drawn votes per SYNTHETIC image, most for its label, some for other emotions, a few
    contempt/unknown/NF, so the benchmark's tables fill offline. Deterministic for a seed; never real votes."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=int)
    m = np.zeros((len(labels), len(VOTE_COLUMNS)), dtype=np.int64)
    agree = rng.uniform(0.45, 0.95, len(labels))  # some faces are ambiguous, most are not
    for i, label in enumerate(labels):
        for _ in range(annotators):
            u = rng.random()
            if u < agree[i]:
                col = _FERPLUS_COLUMN_OF_STUDY_ID[label]
            elif u < 0.97:
                col = _FERPLUS_COLUMN_OF_STUDY_ID[rng.integers(0, 7)]
            else:
                col = rng.integers(7, 10)
            m[i, col] += 1
    frame = pd.DataFrame(m, columns=list(VOTE_COLUMNS))
    frame.insert(0, "image_id", np.asarray(image_ids, dtype=np.int64))
    frame["fer2013new_rows"] = None
    return frame


def seven_class_votes(votes: pd.DataFrame) -> np.ndarray:
    """N x 7 vote counts in the study's order (anger ... neutral), e.g. soft training targets."""
    return votes[[VOTE_COLUMNS[c] for c in _FERPLUS_COLUMN_OF_STUDY_ID]].to_numpy(dtype=np.float32)
