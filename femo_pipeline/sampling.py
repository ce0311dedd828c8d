"""Curation overrides and the seeded balanced sample. Pure module (pandas; no Dagster).

Curation lists live in data/curation/ and are committed, so every run applies the same decisions:
- relabel.csv: content_hash,new_label,note   (the image's emotion becomes new_label)
- exclude.csv: content_hash,reason,note      (the image is left out of the sample, with the reason)
They key on the file's sha256, so a decision follows the image wherever it is stored.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from femo_pipeline.files import InputFileError, read_input_file
from femo_pipeline.vocab import EMOTIONS, emotion_id

RELABEL_COLUMNS = ("content_hash", "new_label", "note")
EXCLUDE_COLUMNS = ("content_hash", "reason", "note")


class CurationError(ValueError):
    """A curation list cannot be used as it is."""


@dataclass
class Curation:
    relabel: dict[str, int] = field(default_factory=dict)  # content_hash -> emotion id
    exclude: dict[str, str] = field(default_factory=dict)  # content_hash -> reason


MAX_LIST_BYTES = 64 * 1024 * 1024


def _read(path: str | os.PathLike, columns: tuple[str, ...]) -> pd.DataFrame:
    """A curation list as text cells, each row checked: read as a regular UTF-8 file (a FIFO or a folder at the
    path is an error, never a hang); lines whose first non-blank character is '#' are comments (a '#' inside a
    cell is text); a row with more cells than the header, a column named twice, a hash that is not a sha256 or
    listed twice is a CurationError naming the line. An empty file is an empty list; an absent one is an error
    (a typo in the path must not switch curation off)."""
    try:
        data = read_input_file(path, MAX_LIST_BYTES)
    except InputFileError as exc:
        raise CurationError(f"curation list {exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CurationError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    kept = [(n, line) for n, line in enumerate(text.splitlines(), 1) if not line.lstrip().startswith("#")]
    try:
        rows = list(csv.reader(io.StringIO("\n".join(line for _, line in kept)), strict=True))
    except csv.Error as exc:
        raise CurationError(f"{path} is not a readable CSV: {exc}") from None
    numbers = [n for n, _ in kept]
    rows = [(numbers[i] if i < len(numbers) else numbers[-1], r) for i, r in enumerate(rows)]
    rows = [(n, r) for n, r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return pd.DataFrame(columns=list(columns))
    (_, header), body = rows[0], rows[1:]
    header = [c.strip() for c in header]
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise CurationError(f"{path} names columns {twice} more than once")
    missing = [c for c in columns[:2] if c not in header]
    if missing:
        raise CurationError(f"{path} lacks columns {missing}; expected {list(columns)}")
    long = [n for n, r in body if len(r) > len(header)]
    if long:
        raise CurationError(f"{path}: lines {long[:5]} have more cells than the header's {len(header)} "
                            "(a comma inside a reason or note needs quotes)")
    frame = pd.DataFrame([r + [""] * (len(header) - len(r)) for _, r in body], columns=header, dtype=str)
    frame.index = [n for n, _ in body]
    frame["content_hash"] = frame["content_hash"].str.strip().str.lower()
    bad = frame.index[~frame["content_hash"].str.fullmatch(r"[0-9a-f]{64}")].tolist()
    if bad:
        raise CurationError(f"{path}: lines {bad[:5]} have no sha256 content_hash")
    dupes = frame["content_hash"][frame["content_hash"].duplicated()]
    if len(dupes):
        raise CurationError(f"{path}: hashes listed twice {sorted(set(dupes))[:3]}")
    return frame.reset_index(drop=True)


def load_curation(relabel_csv: str | os.PathLike, exclude_csv: str | os.PathLike) -> Curation:
    relabel = _read(relabel_csv, RELABEL_COLUMNS)
    unknown = sorted({label for label in relabel["new_label"] if emotion_id(label) is None})
    if unknown:
        raise CurationError(f"{relabel_csv}: unknown labels {unknown}; use one of {list(EMOTIONS.values())}")
    exclude = _read(exclude_csv, EXCLUDE_COLUMNS)
    if (exclude["reason"].str.strip() == "").any():
        raise CurationError(f"{exclude_csv}: every excluded image needs a reason")
    return Curation(
        relabel={h: emotion_id(label) for h, label in zip(relabel["content_hash"], relabel["new_label"])},
        exclude=dict(zip(exclude["content_hash"], exclude["reason"].str.strip())),
    )


def apply_curation(images: pd.DataFrame, curation: Curation) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(kept images with emotion_id updated and original_emotion_id/relabelled added, excluded rows with reason,
    stats incl. list entries that matched no image)."""
    frame = images.copy()
    frame["original_emotion_id"] = frame["emotion_id"]
    new = frame["content_hash"].map(curation.relabel)
    frame["relabelled"] = new.notna() & (new != frame["emotion_id"])
    frame["emotion_id"] = new.fillna(frame["emotion_id"]).astype(int)
    reasons = frame["content_hash"].map(curation.exclude)
    excluded = frame[reasons.notna()].assign(reason=reasons[reasons.notna()])
    kept = frame[reasons.isna()]
    hashes = set(frame["content_hash"])
    stats = {
        "relabelled_images": int(frame["relabelled"].sum()),
        "excluded_images": len(excluded),
        "relabel_entries_unmatched": sorted(set(curation.relabel) - hashes),
        "exclude_entries_unmatched": sorted(set(curation.exclude) - hashes),
    }
    return kept, excluded, stats


def drop_duplicates(images: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One image per content hash (the lowest id); bytes that carry different labels are left out altogether,
    since their label cannot be trusted. Returns (kept, dropped with a reason)."""
    labels = images.groupby("content_hash")["emotion_id"].nunique()
    conflicting = images["content_hash"].map(labels) > 1
    ordered = images.sort_values("image_id")
    copy = ordered.duplicated("content_hash", keep="first").reindex(images.index)
    reason = pd.Series(None, index=images.index, dtype=object)
    reason[copy] = "byte-identical copy of another image"
    reason[conflicting] = "same bytes carry different labels"
    dropped = images[reason.notna()].assign(reason=reason[reason.notna()])
    return images[reason.isna()], dropped


def balanced_sample(images: pd.DataFrame, per_class: int, seed: int, group_by=("source_id", "emotion_id")) -> pd.DataFrame:
    """Up to `per_class` images per group, chosen with a seeded generator; the same input rows in any order
    give the same sample."""
    if per_class < 1:
        raise ValueError(f"per_class must be positive, not {per_class}")
    ordered = images.sort_values("image_id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    picks = []
    for _, group in ordered.groupby(list(group_by), sort=True):
        take = min(per_class, len(group))
        picks.append(group.iloc[np.sort(rng.choice(len(group), size=take, replace=False))])
    if not picks:
        return ordered.iloc[0:0]
    return pd.concat(picks).sort_values(list(group_by) + ["image_id"]).reset_index(drop=True)
