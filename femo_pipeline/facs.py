"""Parse the iMotions FACS page into action-unit tables. Pure module (BeautifulSoup; no Dagster).

Tables are found by their header words, not by position on the page, and each example gif is read from its
own row (lazy-loading attributes included). A page whose structure changed raises FacsParseError naming what
was not found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import urljoin

import pandas as pd
from bs4 import BeautifulSoup

from femo_pipeline.vocab import EMOTIONS, emotion_id
from femo_pipeline.webclient import url_problem

FACS_URL = "https://imotions.com/blog/learning/research-fundamentals/facial-action-coding-system/"
AU_HEADERS = ("action unit", "description", "facial muscle")
EMOTION_HEADERS = ("emotion", "action units")
MAX_ACTION_UNIT = 999  # FACS numbers its units below 100; a larger number is not an action unit


class FacsParseError(ValueError):
    """The page does not have the tables (or rows) the parser needs."""


@dataclass
class FacsTables:
    units: pd.DataFrame  # action_unit, description, facial_muscle, example, action_unit_raw_label
    links: pd.DataFrame  # emotion, action_units, emotion_label_raw, note
    skipped: list[str] = field(default_factory=list)  # rows left out, with the reason


def fixture_html() -> str:
    """The FACS page fixture shipped with femo (used by the demo profile and tests)."""
    return resources.files("femo_pipeline").joinpath("fixtures", "facs_page.html").read_text()


def _unit_number(digits: str) -> int | None:
    """The action unit a run of digits names, or None outside 1-MAX_ACTION_UNIT (however many digits it has)."""
    digits = digits.lstrip("0")
    return int(digits) if digits and len(digits) <= len(str(MAX_ACTION_UNIT)) and int(digits) <= MAX_ACTION_UNIT else None


def _text(cell) -> str:
    return " ".join(cell.get_text(" ", strip=True).split())


def _rows(table) -> list[list]:
    """The table's own rows and cells: a table nested in a cell keeps its rows to itself."""
    return [tr.find_all(["td", "th"], recursive=False) for tr in table.find_all("tr")
            if tr.find_parent("table") is table]


def _find_table(soup: BeautifulSoup, needed: tuple[str, ...], name: str):
    seen = []
    for table in soup.find_all("table"):
        rows = _rows(table)
        if not rows:
            continue
        header = [_text(c).lower() for c in rows[0]]
        seen.append(header)
        columns = {}
        for word in needed:
            matches = [i for i, h in enumerate(header) if h == word or h.startswith(word)]
            if not matches:
                break
            columns[word] = matches[0]
        else:
            columns.update({h: i for i, h in enumerate(header) if h not in columns})
            return columns, header, rows[1:]
    shown = [[h[:40] for h in header[:8]] for header in seen[:5]]
    raise FacsParseError(f"no {name} table with columns {list(needed)} on the page; table headers seen "
                         f"({len(seen)} tables, the first 5): {shown}")


def _example_url(cell, base_url: str) -> str | None:
    img = cell.find("img")
    if img is not None:
        for attr in ("data-src", "data-lazy-src", "data-original", "src"):
            value = img.get(attr)
            if isinstance(value, str) and value and not value.startswith("data:"):
                return _web_url(value, base_url)
    link = cell.find("a", href=True)
    return _web_url(link["href"], base_url) if link and isinstance(link["href"], str) else None


def _web_url(value: str | None, base_url: str) -> str | None:
    """The example's absolute http(s) URL; None for any other scheme (javascript:, data:, file:) or a broken one."""
    if not value:
        return None
    try:
        url = urljoin(base_url, value.strip())
    except ValueError:
        return None
    return url if url_problem(url) is None else None


def parse_facs_page(html: str, base_url: str = FACS_URL) -> FacsTables:
    soup = BeautifulSoup(html, "html.parser")
    skipped: list[str] = []

    columns, header, rows = _find_table(soup, AU_HEADERS, "action-unit")
    example_col = next((i for i, h in enumerate(header) if h.startswith("example")), None)
    needed = max(columns[word] for word in AU_HEADERS)
    units = []
    for cells in rows:
        if len(cells) <= needed:
            continue
        raw = _text(cells[columns["action unit"]])
        number = re.match(r"\s*(?:AU\s*)?([0-9]+)", raw, flags=re.I)
        if not number:
            skipped.append(f"action-unit row {raw[:80]!r}: no action-unit number")
            continue
        unit = _unit_number(number.group(1))
        if unit is None:
            skipped.append(f"action-unit row {raw[:80]!r}: not an action unit 1-{MAX_ACTION_UNIT}")
            continue
        units.append({
            "action_unit": unit,
            "description": _text(cells[columns["description"]]),
            "facial_muscle": _text(cells[columns["facial muscle"]]) or None,
            "example": _example_url(cells[example_col], base_url) if example_col is not None and example_col < len(cells) else None,
            "action_unit_raw_label": raw,
        })
    if not units:
        raise FacsParseError("the action-unit table has no rows with an action-unit number")
    units_frame = pd.DataFrame(units).drop_duplicates("action_unit", keep="first").sort_values("action_unit")

    columns, _, rows = _find_table(soup, EMOTION_HEADERS, "emotion")
    needed = max(columns[word] for word in EMOTION_HEADERS)
    links = []
    for cells in rows:
        if len(cells) <= needed:
            continue
        label = _text(cells[columns["emotion"]])
        emo = next((emotion_id(part) for part in re.split(r"[/,]", label) if emotion_id(part) is not None), None)
        if emo is None:
            skipped.append(f"emotion row {label[:80]!r}: not one of {list(EMOTIONS.values())}")
            continue
        text = _text(cells[columns["action units"]])
        note = "; ".join(re.findall(r"\(([^)]*)\)", text)) or None
        for au in re.findall(r"[0-9]+", re.sub(r"\([^)]*\)", "", text)):
            unit = _unit_number(au)
            if unit is None:
                skipped.append(f"emotion row {label[:80]!r}: {au[:20]!r} is not an action unit 1-{MAX_ACTION_UNIT}")
                continue
            links.append({"emotion": emo, "action_units": unit, "emotion_label_raw": label, "note": note})
    if not links:
        raise FacsParseError("the emotion table has no rows naming a known emotion and its action units")
    links_frame = pd.DataFrame(links).drop_duplicates(["emotion", "action_units"])
    missing = sorted(set(links_frame["action_units"]) - set(units_frame["action_unit"]))
    if missing:
        raise FacsParseError(f"the emotion table names action units {missing} that the action-unit table lacks")
    return FacsTables(units_frame.reset_index(drop=True), links_frame.reset_index(drop=True), skipped)
