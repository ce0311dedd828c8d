"""Clean the "Emotions in everyday life" survey CSV (Trampe et al., PLOS ONE 2015) as the study did.

Pure module (no Dagster). Every cell is read as text and parsed as an exact integer (never through floats);
rows with a missing, malformed or out-of-range value, bytes that are not UTF-8, a wrong number of fields or a
duplicate id are dropped, and every drop is counted and kept with its reason (never a silent drop).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import threading
from dataclasses import dataclass, field

import pandas as pd

from femo_pipeline.files import InputFileError, read_input_file

GOOD_EMOTIONS = ("Pride", "Love", "Hope", "Gratitude", "Joy", "Satisfaction", "Awe", "Amusement", "Alertness")
BAD_EMOTIONS = ("Anxiety", "Disdain", "Ofense", "Guilt", "Disgust", "Fear", "Embarassment", "Sadness", "Anger")
EMOTION_COLUMNS = GOOD_EMOTIONS + BAD_EMOTIONS
# Column names as published, spelling included ("Ofense", "Embarassment").
COLUMNS = ("id", "Hours", "Day") + EMOTION_COLUMNS
# Column of read_survey_csv's frame with the reason a row could not be read (empty when it could).
READ_PROBLEM = "__femo_read_problem__"

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# An integer as text: ASCII digits, an optional sign, an optional zero fraction ("7.0", as spreadsheets write).
_INTEGER = re.compile(r"([+-]?[0-9]+)(?:\.0*)?")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as decoded with surrogateescape
BLANK, NON_NUMERIC, NON_INTEGER = "blank cell", "non-numeric cell", "non-integer value"


class SurveyFormatError(ValueError):
    """The CSV cannot be read as the survey."""


@dataclass
class CleanSurvey:
    responses: pd.DataFrame  # COLUMNS, integer typed
    rejected: pd.DataFrame  # row_number (1-based data row), id (as text), reason
    stats: dict = field(default_factory=dict)


def _shown(text: str) -> str:
    """Text with bytes that were not UTF-8 written as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _read_text(source: str | os.PathLike | io.IOBase) -> str:
    if hasattr(source, "read"):
        data = source.read()
    else:
        try:
            data = read_input_file(source)
        except InputFileError as exc:
            raise SurveyFormatError(f"survey CSV {exc}") from None
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    return text.removeprefix("\ufeff")


def read_survey_csv(source: str | os.PathLike | io.IOBase) -> pd.DataFrame:
    """Read the CSV with every cell as text (coercion happens in clean_survey).

    The header must name each column once and hold COLUMNS. A row that cannot be read (bytes that are not
    UTF-8, a wrong number of fields) is kept with its reason in the READ_PROBLEM column, its cells shown with
    escapes, so clean_survey rejects that row alone.
    """
    text = _read_text(source)
    with _field_limit(len(text) + 1):  # a cell of any size is read; clean_survey rejects its row
        return _read_rows(text)


_FIELD_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _field_limit(limit: int):
    """The csv module's field size limit (process-wide, 128 KiB by default) raised for one read, then put back."""
    with _FIELD_LIMIT_LOCK:
        before = csv.field_size_limit(max(limit, csv.field_size_limit()))
        try:
            yield
        finally:
            csv.field_size_limit(before)


def _read_rows(text: str) -> pd.DataFrame:
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise SurveyFormatError("survey CSV is malformed: the file is empty")
        header = [c.strip() for c in header]
        bad = [_shown(c) for c in header if _NOT_UTF8.search(c)]
        if bad:
            raise SurveyFormatError(f"survey CSV header has bytes that are not UTF-8 in {bad}")
        seen, dupes = set(), []
        for name in header:
            if name and name in seen and name not in dupes:
                dupes.append(name)
            seen.add(name)
        if dupes:
            raise SurveyFormatError(f"survey CSV has duplicate columns {dupes}: each column must be named once")
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise SurveyFormatError(f"survey CSV lacks columns {missing}; it has {header}")
        rows, problems = [], []
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            n = len(rows) + 1
            problem = ""
            if len(cells) != len(header):
                problem = f"{len(cells)} fields, the header has {len(header)}"
                cells = (cells + [""] * len(header))[: len(header)]
            undecodable = [name for name, cell in zip(header, cells) if _NOT_UTF8.search(cell)]
            if undecodable:
                problem = f"row {n}, column '{undecodable[0]}': bytes that are not UTF-8"
                cells = [_shown(c) for c in cells]
            rows.append(cells)
            problems.append(problem)
    except csv.Error as exc:
        raise SurveyFormatError(f"survey CSV is malformed at line {reader.line_num}: {exc}") from exc
    frame = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header, dtype=object)
    frame[READ_PROBLEM] = pd.Series(problems, index=frame.index, dtype=object)
    return frame


def _parse(cell: str) -> int | str:
    """The cell's exact integer value, or why it has none (BLANK, NON_NUMERIC, NON_INTEGER). An integer of more
    than 20 digits (Python's int() refuses past 4,300) stands as +-10**20, out of every column's range."""
    if not cell:
        return BLANK
    match = _INTEGER.fullmatch(cell)
    if match:
        digits = match.group(1)
        if len(digits.lstrip("+-0")) > 20:
            return -(10**20) if digits.startswith("-") else 10**20
        return int(digits)
    if not cell.isascii():  # float() would read other scripts' digits
        return NON_NUMERIC
    try:
        value = float(cell)
    except ValueError:
        return NON_NUMERIC
    return NON_INTEGER if math.isfinite(value) else NON_NUMERIC


def _cut(text: str, keep: int = 100) -> str:
    """A rejected row's id as stored: its first `keep` characters and its length when longer."""
    return text if len(text) <= keep else f"{text[:keep]}... ({len(text)} characters)"


def clean_survey(raw: pd.DataFrame) -> CleanSurvey:
    """Parse every cell as an exact integer and drop unusable rows, recording why each was dropped."""
    text = raw[list(COLUMNS)].apply(lambda col: col.astype(str).str.strip())
    parsed = text.map(_parse)
    is_int = parsed.map(lambda v: type(v) is int)
    blank = parsed.eq(BLANK)
    non_numeric = parsed.eq(NON_NUMERIC)

    def within(column: str, low: int, high: int) -> pd.Series:
        return parsed[column].map(lambda v: type(v) is int and low <= v <= high)

    reasons = pd.Series("", index=raw.index, dtype=object)

    def flag(mask: pd.Series, reason: str | pd.Series) -> None:
        hit = mask & reasons.eq("")
        reasons[hit] = reason[hit] if isinstance(reason, pd.Series) else reason

    if READ_PROBLEM in raw.columns:
        problems = raw[READ_PROBLEM].fillna("").astype(str)
        flag(problems.ne(""), problems)
    flag(blank.any(axis=1), BLANK)
    flag(non_numeric.any(axis=1), NON_NUMERIC)
    flag(parsed.eq(NON_INTEGER).any(axis=1), NON_INTEGER)
    flag(~within("id", INT64_MIN, INT64_MAX), "id outside the signed 64-bit range")
    flag(~within("Hours", 0, 23), "Hours outside 0-23")
    flag(~within("Day", 1, 7), "Day outside 1-7")
    flag(~parsed[list(EMOTION_COLUMNS)].isin([0, 1]).all(axis=1) | ~is_int[list(EMOTION_COLUMNS)].all(axis=1),
         "emotion value not 0/1")
    keep = reasons.eq("")
    flag(parsed["id"].where(keep).duplicated(keep="first") & keep, "duplicate id")
    keep = reasons.eq("")

    responses = pd.DataFrame({c: parsed.loc[keep, c].astype("int64") for c in COLUMNS}).reset_index(drop=True)
    rejected = pd.DataFrame(
        {
            "row_number": pd.Series(raw.index[~keep] + 1, dtype="int64"),
            "id": pd.Series([_cut(v) for v in raw.loc[~keep, "id"].astype(str)], dtype=object),
            "reason": pd.Series(reasons[~keep].values, dtype=object),
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
