"""FACS: the parser on the fixture and on broken pages, and the assets against a local server."""

from __future__ import annotations

import csv
import random
import re

import dagster as dg
import duckdb
import pandas as pd
import pytest
from bs4 import BeautifulSoup

from femo_pipeline import facs
from femo_pipeline_tests.conftest import SHARED, materialize
from femo_pipeline_tests.fake_web import Answer, FakeWeb

REFERENCE = SHARED / "reference" / "seed-project"


def test_fixture_parses_into_30_units_and_7_emotions():
    tables = facs.parse_facs_page(facs.fixture_html())
    assert len(tables.units) == 30 and tables.skipped == []
    assert tables.links["emotion"].nunique() == 7 and len(tables.links) == 25
    nine = tables.units.set_index("action_unit").loc[9]
    assert nine["action_unit_raw_label"] == "9 (also shows slight AU4 and AU10)" and nine["description"] == "Nose Wrinkler"
    contempt = tables.links[tables.links["emotion"] == 7]
    assert sorted(contempt["action_units"]) == [12, 14] and set(contempt["note"]) == {"on one side of the face"}
    assert tables.units["example"].str.startswith("https://imotions.com/femo-fixture/gifs/AU").all()


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference facts not present")
def test_fixture_tables_match_the_study_reference():
    tables = facs.parse_facs_page(facs.fixture_html())
    with open(REFERENCE / "facs_emotions_units.csv") as fh:
        expected = sorted((int(r["emotion"]), int(r["action_units"])) for r in csv.DictReader(fh))
    assert sorted(zip(tables.links["emotion"], tables.links["action_units"])) == expected
    with open(REFERENCE / "facs_single_units_partial.csv") as fh:
        reference = list(csv.DictReader(fh))
    units = tables.units.set_index("action_unit")
    assert sorted(units.index) == sorted(int(r["action_unit"]) for r in reference)
    for row in reference:
        got = units.loc[int(row["action_unit"])]
        assert got["description"] == row["description"]
        assert got["action_unit_raw_label"] == row["action_unit_raw_label"]
        if "facial_muscle" not in row["truncated_cells"]:
            assert got["facial_muscle"] == row["facial_muscle"]
        else:
            assert got["facial_muscle"].startswith(row["facial_muscle"].removesuffix("..."))


def test_examples_come_from_their_own_row_whatever_the_order():
    soup = BeautifulSoup(facs.fixture_html(), "html.parser")
    body = soup.find_all("table")[1].find("tbody")
    rows = body.find_all("tr")
    random.Random(3).shuffle(rows)
    for row in rows:
        body.append(row.extract())
    tables = facs.parse_facs_page(str(soup))
    for au, url in zip(tables.units["action_unit"], tables.units["example"]):
        assert re.search(rf"AU{au:02d}\.gif$", url), (au, url)


def _broken(edit) -> str:
    soup = BeautifulSoup(facs.fixture_html(), "html.parser")
    edit(soup)
    return str(soup)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda s: s.find_all("table")[1].decompose(), "no action-unit table"),
        (lambda s: s.find("th", string="Facial Muscle").replace_with(s.new_tag("th")), "no action-unit table"),
        (lambda s: s.find_all("table")[2].decompose(), "no emotion table"),
        (lambda s: [tr.decompose() for tr in s.find_all("table")[1].find("tbody").find_all("tr")], "no rows"),
        (lambda s: [tr.decompose() for tr in s.find_all("table")[1].find("tbody").find_all("tr")
                    if tr.td and tr.td.get_text().startswith("26")], r"action units \[26\]"),
    ],
)
def test_changed_page_structure_is_a_clear_error(edit, message):
    with pytest.raises(facs.FacsParseError, match=message):
        facs.parse_facs_page(_broken(edit))


def test_garbage_is_a_clear_error():
    with pytest.raises(facs.FacsParseError, match="no action-unit table"):
        facs.parse_facs_page("<html><body><p>Just a moment...</p></body></html>")


def test_tables_nested_in_a_layout_table_parse_as_on_their_own():
    soup = BeautifulSoup(facs.fixture_html(), "html.parser")
    outer = soup.new_tag("table")
    row, cell = soup.new_tag("tr"), soup.new_tag("td")
    outer.append(row)
    row.append(cell)
    tables = soup.find_all("table")
    tables[1].insert_before(outer)
    for table in tables[1:3]:
        cell.append(table.extract())
    nested = facs.parse_facs_page(str(soup))
    plain = facs.parse_facs_page(facs.fixture_html())
    assert nested.units.equals(plain.units) and nested.links.equals(plain.links)


def _unit_row(soup, unit: int):
    return next(tr for tr in soup.find_all("table")[1].find_all("tr")
                if tr.td and re.match(rf"\s*(AU\s*)?{unit}\b", tr.td.get_text()))


@pytest.mark.parametrize("number", ["9" * 5000, "3000000000", "1000", "\u0661\u0662"])
def test_action_unit_numbers_out_of_range_are_skipped_with_the_reason(number):
    plain = facs.parse_facs_page(facs.fixture_html())
    free = min(set(plain.units["action_unit"]) - set(plain.links["action_units"]))  # a unit no emotion needs
    soup = BeautifulSoup(facs.fixture_html(), "html.parser")
    _unit_row(soup, free).td.string = f"AU{number}"
    tables = facs.parse_facs_page(str(soup))
    assert set(tables.units["action_unit"]) == set(plain.units["action_unit"]) - {free}
    assert any(reason.startswith("action-unit row") for reason in tables.skipped), tables.skipped


def test_an_emotion_row_naming_a_huge_unit_keeps_its_other_units():
    soup = BeautifulSoup(facs.fixture_html(), "html.parser")
    happiness = next(tr for tr in soup.find_all("table")[2].find_all("tr") if tr.td and "Happ" in tr.td.get_text())
    units = happiness.find_all("td")[1]
    units.string = units.get_text() + " + " + "9" * 5000
    tables = facs.parse_facs_page(str(soup))
    assert sorted(tables.links.loc[tables.links["emotion"] == 3, "action_units"]) == [6, 12]
    assert any("is not an action unit" in reason for reason in tables.skipped)


@pytest.mark.parametrize("href", ["javascript:alert(1)", "data:image/gif;base64,AAAA", "file:///etc/passwd",
                                  "http://host:99999/x.gif"])
def test_example_links_are_kept_only_as_web_addresses(href):
    soup = BeautifulSoup(facs.fixture_html(), "html.parser")
    example = _unit_row(soup, 26).find_all("td")[-1]
    example.clear()
    link = soup.new_tag("a", href=href)
    link.string = "example"
    example.append(link)
    units = facs.parse_facs_page(str(soup)).units.set_index("action_unit")
    assert pd.isna(units.loc[26, "example"])
    assert units.drop(index=26)["example"].str.startswith("https://").all()


def _tables(data_dir):
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        return (con.execute("SELECT * FROM facs_single_units ORDER BY action_unit").fetchall(),
                con.execute("SELECT * FROM facs_emotions_units ORDER BY ALL").fetchall())


SELECTION = ["facs_page", "emotions", "facs_action_units", "facs_emotion_action_units"]


def test_assets_fetch_parse_and_keep_last_good_tables(tmp_path):
    with FakeWeb() as web:
        web.routes["/blog/facs/"] = [Answer(200, facs.fixture_html().encode(), {"Content-Type": "text/html"})]
        url = web.url + "/blog/facs/"
        first = materialize(tmp_path, selection=SELECTION, facs_url=url, profile="real")
        assert first.success
        units, links = _tables(tmp_path)
        assert len(units) == 30 and len(links) == 25
        assert units[0][3] == web.url + "/femo-fixture/gifs/AU01.gif"  # resolved against the page's own URL
        assert list((tmp_path / "raw" / "facs").glob("facs-20*.html"))

        again = materialize(tmp_path, selection=SELECTION, facs_url=url, profile="real")
        assert again.success and _tables(tmp_path) == (units, links)  # idempotent

        web.routes["/blog/facs/"] = [Answer(200, b"<html><body>We moved things around</body></html>")]
        broken = materialize(tmp_path, selection=SELECTION, facs_url=url, profile="real")
        assert broken.success  # a page that changed never blocks what depends on the FACS tables ...
        page = broken.asset_materializations_for_node("facs_page")[0].metadata
        assert page["stale"].value is True and "no action-unit table" in page["stale_reason"].value
        assert "last good snapshot" in page["origin"].value
        [check] = [e.event_specific_data for e in broken.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN  # ... but says so
        assert _tables(tmp_path) == (units, links)  # the last good tables stay
        assert list((tmp_path / "raw" / "facs" / "rejected").glob("facs-*.html"))

        latest = tmp_path / "raw" / "facs" / "facs-latest.html"
        assert latest.read_text() == facs.fixture_html()  # a page that does not parse never becomes the snapshot

        web.routes["/blog/facs/"] = [Answer(503, b"down")]
        down = materialize(tmp_path, selection=SELECTION, facs_url=url, profile="real")
        assert down.success  # the outage falls back on the last good page, not on the broken one
        assert _tables(tmp_path) == (units, links)
        page = down.asset_materializations_for_node("facs_page")[0].metadata
        assert page["stale"].value is True and "HTTP 503" in page["stale_reason"].value

        web.routes["/blog/facs/"] = [Answer(200, facs.fixture_html().encode(), {"Content-Type": "text/html"})]
        back = materialize(tmp_path, selection=SELECTION, facs_url=url, profile="real")
        assert back.asset_materializations_for_node("facs_page")[0].metadata["stale"].value is False
        assert all(e.event_specific_data.passed for e in back.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")

    # no earlier snapshot and no page: femo's bundled copy stands in, marked stale, and says how to work offline
    fresh = materialize(tmp_path / "fresh", selection=SELECTION, facs_url=url, profile="real")
    assert fresh.success and len(_tables(tmp_path / "fresh")[0]) == 30
    page = fresh.asset_materializations_for_node("facs_page")[0].metadata
    assert page["stale"].value is True and "bundled copy" in page["origin"].value
    assert "FEMO_FACS_URL=fixture" in page["stale_reason"].value
    fixture = materialize(tmp_path / "fixture", selection=SELECTION, facs_url="fixture", profile="real")
    assert fixture.success and len(_tables(tmp_path / "fixture")[0]) == 30
    assert fixture.asset_materializations_for_node("facs_page")[0].metadata["stale"].value is False


def test_credentials_in_the_page_url_are_used_but_never_stored_or_shown(tmp_path):
    with FakeWeb() as web:
        web.routes["/blog/facs/"] = [Answer(200, facs.fixture_html().encode(), {"Content-Type": "text/html"}),
                                     Answer(503, b"down")]
        url = web.url.replace("http://", "http://reader:PASSWORD99@") + "/blog/facs/?token=TOKEN12345&v=2"
        results = [materialize(tmp_path, selection=SELECTION, facs_url=url, profile="real") for _ in range(2)]
        assert web.hits("/blog/facs/")[0].query["token"] == "TOKEN12345"  # sent where it is meant for
    stale = results[1].asset_materializations_for_node("facs_page")[0].metadata["stale_reason"].value
    assert "HTTP 503" in stale
    shown = [str(e) for r in results for e in r.all_events] + [stale]
    stored = [p.read_bytes().decode(errors="replace") for p in (tmp_path / "raw" / "facs").rglob("*.json")]
    units, _ = _tables(tmp_path)
    for text in [*shown, *stored, str(units)]:
        assert "PASSWORD99" not in text and "TOKEN12345" not in text


def test_demo_profile_uses_the_fixture_without_network(tmp_path):
    result = materialize(tmp_path, selection=SELECTION)  # facs_url points at a closed port
    assert result.success
    assert result.asset_materializations_for_node("facs_page")[0].metadata["fixture"].value is True
    units, links = _tables(tmp_path)
    assert len(units) == 30 and len(links) == 25


def _without(edit) -> str:
    soup = BeautifulSoup(facs.fixture_html(), "html.parser")
    edit(soup)
    return str(soup)


def _drop_row(table_index: int, first_cell: str):
    def edit(soup):
        for tr in soup.find_all("table")[table_index].find_all("tr"):
            if tr.td and tr.td.get_text(" ", strip=True).startswith(first_cell):
                tr.decompose()
    return edit


def test_warehouse_tables_equal_the_last_good_parse(tmp_path):
    """Units and links that vanish from the page vanish from the warehouse; changed rows are updated."""
    def edit(soup):
        _drop_row(1, "10")(soup)  # an action unit no emotion uses
        _drop_row(2, "Contempt")(soup)  # an emotion row: its links (12, 14) go, the units stay on the page
        soup.find("td", string="Nose Wrinkler").string = "Nose Wrinkler (edited)"

    smaller = _without(edit)
    expected = facs.parse_facs_page(smaller, base_url="http://x/")
    assert 10 not in set(expected.units["action_unit"]) and 7 not in set(expected.links["emotion"])
    with FakeWeb() as web:
        url = web.url + "/blog/facs/"
        web.routes["/blog/facs/"] = [Answer(200, facs.fixture_html().encode(), {"Content-Type": "text/html"})]
        assert materialize(tmp_path, selection=SELECTION, facs_url=url, profile="real").success
        web.routes["/blog/facs/"] = [Answer(200, smaller.encode(), {"Content-Type": "text/html"})]
        assert materialize(tmp_path, selection=SELECTION, facs_url=url, profile="real").success
    units, links = _tables(tmp_path)
    assert [u[0] for u in units] == sorted(expected.units["action_unit"])
    assert dict((u[0], u[1]) for u in units)[9] == "Nose Wrinkler (edited)"
    assert sorted((e, a) for e, a, _ in links) == sorted(zip(expected.links["emotion"], expected.links["action_units"]))
