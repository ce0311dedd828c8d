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

FACS_URL = "https://imotions.com/blog/learning/research-fundamentals/facial-action-coding-system/"
AU_HEADERS = ("action unit", "description", "facial muscle")
EMOTION_HEADERS = ("emotion", "action units")


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


def _text(cell) -> str:
    return " ".join(cell.get_text(" ", strip=True).split())


def _rows(table) -> list[list]:
    return [tr.find_all(["td", "th"]) for tr in table.find_all("tr")]


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
    raise FacsParseError(f"no {name} table with columns {list(needed)} on the page; table headers seen: {seen}")


def _example_url(cell, base_url: str) -> str | None:
    img = cell.find("img")
    if img is not None:
        for attr in ("data-src", "data-lazy-src", "data-original", "src"):
            value = img.get(attr)
            if value and not value.startswith("data:"):
                return urljoin(base_url, value)
    link = cell.find("a", href=True)
    return urljoin(base_url, link["href"]) if link else None


def parse_facs_page(html: str, base_url: str = FACS_URL) -> FacsTables:
    soup = BeautifulSoup(html, "html.parser")
    skipped: list[str] = []

    columns, header, rows = _find_table(soup, AU_HEADERS, "action-unit")
    example_col = next((i for i, h in enumerate(header) if h.startswith("example")), None)
    units = []
    for cells in rows:
        if len(cells) < len(AU_HEADERS):
            continue
        raw = _text(cells[columns["action unit"]])
        number = re.match(r"\s*(?:AU\s*)?(\d+)", raw, flags=re.I)
        if not number:
            skipped.append(f"action-unit row {raw!r}: no action-unit number")
            continue
        units.append({
            "action_unit": int(number.group(1)),
            "description": _text(cells[columns["description"]]),
            "facial_muscle": _text(cells[columns["facial muscle"]]) or None,
            "example": _example_url(cells[example_col], base_url) if example_col is not None and example_col < len(cells) else None,
            "action_unit_raw_label": raw,
        })
    if not units:
        raise FacsParseError("the action-unit table has no rows with an action-unit number")
    units_frame = pd.DataFrame(units).drop_duplicates("action_unit", keep="first").sort_values("action_unit")

    columns, _, rows = _find_table(soup, EMOTION_HEADERS, "emotion")
    links = []
    for cells in rows:
        if len(cells) < 2:
            continue
        label = _text(cells[columns["emotion"]])
        emo = next((emotion_id(part) for part in re.split(r"[/,]", label) if emotion_id(part) is not None), None)
        if emo is None:
            skipped.append(f"emotion row {label!r}: not one of {list(EMOTIONS.values())}")
            continue
        text = _text(cells[columns["action units"]])
        note = "; ".join(re.findall(r"\(([^)]*)\)", text)) or None
        for au in re.findall(r"\d+", re.sub(r"\([^)]*\)", "", text)):
            links.append({"emotion": emo, "action_units": int(au), "emotion_label_raw": label, "note": note})
    if not links:
        raise FacsParseError("the emotion table has no rows naming a known emotion and its action units")
    links_frame = pd.DataFrame(links).drop_duplicates(["emotion", "action_units"])
    missing = sorted(set(links_frame["action_units"]) - set(units_frame["action_unit"]))
    if missing:
        raise FacsParseError(f"the emotion table names action units {missing} that the action-unit table lacks")
    return FacsTables(units_frame.reset_index(drop=True), links_frame.reset_index(drop=True), skipped)
