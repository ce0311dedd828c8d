"""Clean the "Emotions in everyday life" survey CSV (Trampe et al., PLOS ONE 2015) as the study did.

Pure module (no Dagster): numeric coercion, then rows with a missing or out-of-range value are dropped, and
every drop is counted and kept with its reason (never a silent drop).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import pandas as pd

GOOD_EMOTIONS = ("Pride", "Love", "Hope", "Gratitude", "Joy", "Satisfaction", "Awe", "Amusement", "Alertness")
BAD_EMOTIONS = ("Anxiety", "Disdain", "Ofense", "Guilt", "Disgust", "Fear", "Embarassment", "Sadness", "Anger")
EMOTION_COLUMNS = GOOD_EMOTIONS + BAD_EMOTIONS
# Column names as published, spelling included ("Ofense", "Embarassment").
COLUMNS = ("id", "Hours", "Day") + EMOTION_COLUMNS


class SurveyFormatError(ValueError):
    """The CSV cannot be read as the survey."""


@dataclass
class CleanSurvey:
    responses: pd.DataFrame  # COLUMNS, integer typed
    rejected: pd.DataFrame  # row_number (1-based data row), id (as text), reason
    stats: dict = field(default_factory=dict)


def read_survey_csv(source: str | os.PathLike | io.IOBase) -> pd.DataFrame:
    """Read the CSV with every cell as text (coercion happens in clean_survey)."""
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise SurveyFormatError(f"survey CSV not found: {source}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SurveyFormatError(f"survey CSV is malformed: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise SurveyFormatError(f"survey CSV lacks columns {missing}; it has {list(frame.columns)}")
    return frame


def clean_survey(raw: pd.DataFrame) -> CleanSurvey:
    """Coerce to numbers and drop unusable rows, recording why each was dropped."""
    text = raw[list(COLUMNS)].apply(lambda col: col.str.strip())
    blank = text.eq("")
    numbers = text.apply(pd.to_numeric, errors="coerce")
    non_numeric = numbers.isna() & ~blank
    whole = numbers.notna() & (numbers.round() == numbers)

    reasons = pd.Series("", index=raw.index)

    def flag(mask: pd.Series, reason: str) -> None:
        hit = mask & reasons.eq("")
        reasons[hit] = reason

    flag(blank.any(axis=1), "blank cell")
    flag(non_numeric.any(axis=1), "non-numeric cell")
    flag((numbers.notna() & ~whole).any(axis=1), "non-integer value")
    flag(~numbers["Hours"].between(0, 23), "Hours outside 0-23")
    flag(~numbers["Day"].between(1, 7), "Day outside 1-7")
    flag(~numbers[list(EMOTION_COLUMNS)].isin([0, 1]).all(axis=1), "emotion value not 0/1")
    keep = reasons.eq("")
    ids = numbers.loc[keep, "id"]
    duplicate_id = ids.duplicated(keep="first")
    flag(pd.Series(duplicate_id, index=ids.index).reindex(raw.index, fill_value=False), "duplicate id")
    keep = reasons.eq("")

    responses = numbers.loc[keep].astype("int64").reset_index(drop=True)
    rejected = pd.DataFrame(
        {
            "row_number": (raw.index[~keep] + 1).astype("int64"),
            "id": raw.loc[~keep, "id"].astype(str).values,
            "reason": reasons[~keep].values,
        }
    )
    stats = {
        "rows_read": int(len(raw)),
        "rows_kept": int(keep.sum()),
        "rows_dropped": int((~keep).sum()),
        "dropped_by_reason": {k: int(v) for k, v in rejected["reason"].value_counts().sort_index().items()},
        "cells_blank": int(blank.to_numpy().sum()),
        "cells_non_numeric": int(non_numeric.to_numpy().sum()),
    }
    return CleanSurvey(responses=responses, rejected=rejected, stats=stats)
