"""FACS assets: a dated snapshot of the iMotions page, then its two tables parsed into the warehouse."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from femo_pipeline import facs, imaging, warehouse
from femo_pipeline.defs._meta import md_table, warehouse_tables
from femo_pipeline.defs.warehouse.warehouse import WRITER, emotions
from femo_pipeline.files import write_text_atomic
from femo_pipeline.io_managers import STAGED
from femo_pipeline.resources import FacsPageResource, FemoStorage
from femo_pipeline.webclient import WebError, strip_secrets

GROUP = "ingest"  # the page itself; its two tables are warehouse tables, drawn in that group
TABLES_GROUP = "warehouse"
CURRENT = "facs_page_current"  # the check that says whether this run's page is fresh or a stale fallback


def _uses_fixture(facs_source: FacsPageResource, storage: FemoStorage) -> bool:
    return facs_source.page_url() == "fixture" or (storage.is_demo and not facs_source.force_fetch)


def _base_url(facs_source: FacsPageResource, storage: FemoStorage) -> str:
    # the fixture stands for the live article: its relative links resolve against the article's URL
    return facs.FACS_URL if _uses_fixture(facs_source, storage) else strip_secrets(facs_source.page_url(), ())


def _keep(html: str, origin: str, storage: FemoStorage, dated: bool) -> Path:
    """Make this page the latest snapshot (with a note of where it came from), and a dated copy when fetched."""
    today = dt.date.today().isoformat()
    if dated:
        write_text_atomic(html, storage.path("raw", "facs", f"facs-{today}.html"))
    note = {"origin": origin, "date": today, "sha256": imaging.content_hash(html.encode())}
    write_text_atomic(json.dumps(note), storage.path("raw", "facs", "facs-latest.json"))
    return write_text_atomic(html, storage.path("raw", "facs", "facs-latest.html"))


def _stale(context: dg.AssetExecutionContext, storage: FemoStorage, reason: str) -> dg.MaterializeResult:
    """The page of this run could not be used: the last good snapshot stands in, else femo's bundled copy of the
    article (written as the latest snapshot). Marked stale, with the reason, in the metadata and a WARN check, so
    the warehouse, the snapshot and the report still build."""
    latest = storage.path("raw", "facs", "facs-latest.html")
    if latest.exists():
        note_path = latest.with_suffix(".json")
        note = json.loads(note_path.read_text()) if note_path.exists() else {}
        origin = f"last good snapshot ({note.get('origin', 'fetched earlier')}, {note.get('date', 'date unknown')})"
    else:
        _keep(facs.fixture_html(), "femo's bundled copy of the article", storage, dated=False)
        origin = "femo's bundled copy of the article (no earlier snapshot)"
    reason += f"; using the {origin}. Offline, FEMO_FACS_URL=fixture skips the fetch"
    context.log.warning(f"FACS page stale: {reason}")
    return dg.MaterializeResult(
        metadata={"stale": True, "stale_reason": reason, "origin": origin,
                  "latest": dg.MetadataValue.path(str(latest))},
        check_results=[dg.AssetCheckResult(check_name=CURRENT, passed=False, severity=dg.AssetCheckSeverity.WARN,
                                           description=reason)])


@dg.asset(group_name=GROUP, kinds={"html"}, check_specs=[dg.AssetCheckSpec(
    CURRENT, asset="facs_page", description="This run's page was fetched and parsed (WARN when an earlier snapshot "
                                            "or femo's bundled copy stands in for it).")])
def facs_page(context: dg.AssetExecutionContext, facs_source: FacsPageResource, storage: FemoStorage) -> dg.MaterializeResult:
    """The iMotions FACS article as a dated HTML snapshot (fixture under demo); a page that cannot be fetched or
    parsed falls back to the last good snapshot, else femo's bundled copy, marked stale."""
    fixture = _uses_fixture(facs_source, storage)
    if fixture:
        html, origin = facs.fixture_html(), "femo fixture"
    else:
        url = facs_source.page_url()
        origin = strip_secrets(url, ())  # as stored and shown: no user, password or key-like query parameter
        try:
            html = facs_source.client().fetch_text(url)
        except WebError as exc:
            return _stale(context, storage, f"not fetched from {origin}: {exc}")
    try:  # parse before keeping: a 200 that is not the article (a captcha, a redesign) must not replace the last good page
        tables = facs.parse_facs_page(html, base_url=_base_url(facs_source, storage))
    except (facs.FacsParseError, ValueError, IndexError, KeyError, RecursionError) as exc:
        # FacsParseError names what the page lacks; anything else a hostile page makes the parser raise is a
        # page that did not parse too, never a crashed run
        rejected = write_text_atomic(html, storage.path("raw", "facs", "rejected", f"facs-{dt.date.today()}.html"))
        return _stale(context, storage, f"the page from {origin} did not parse ({exc}; kept as {rejected})")
    latest = _keep(html, origin, storage, dated=True)
    dated = latest.with_name(f"facs-{dt.date.today()}.html")
    context.log.info(f"FACS page from {origin}: {len(html)} characters -> {dated}")
    return dg.MaterializeResult(metadata={
        "origin": origin, "characters": len(html), "sha256": imaging.content_hash(html.encode()),
        "snapshot": dg.MetadataValue.path(str(dated)), "latest": dg.MetadataValue.path(str(latest)),
        "fixture": fixture, "parsed_units": len(tables.units), "parsed_links": len(tables.links),
        "stale": False,
    }, check_results=[dg.AssetCheckResult(check_name=CURRENT, passed=True,
                                          description="the bundled fixture (demo profile or FEMO_FACS_URL=fixture)"
                                          if fixture else f"fetched from {origin} and parsed")])


@dg.asset(kinds={"duckdb"}, deps=[facs_page, emotions], io_manager_key=STAGED,
          metadata=warehouse_tables("facs_single_units"), **{**WRITER, "group_name": TABLES_GROUP})
def facs_action_units(context: dg.AssetExecutionContext, facs_source: FacsPageResource, duckdb: DuckDBResource,
                      storage: FemoStorage) -> dg.Output:
    """The page's action-unit table (number, description, muscle, example gif) in facs_single_units; the parse's
    links and units are staged for facs_emotion_action_units."""
    html = storage.path("raw", "facs", "facs-latest.html").read_text()
    try:
        tables = facs.parse_facs_page(html, base_url=_base_url(facs_source, storage))
    except facs.FacsParseError as exc:
        raise dg.Failure(description=f"FACS page not parsed, warehouse tables left as they were: {exc}") from exc
    with duckdb.get_connection() as con:
        warehouse.ensure_schema(con)
        count = warehouse.replace_facs_units(con, tables.units)
    for reason in tables.skipped:
        context.log.warning(f"FACS row skipped: {reason}")
    staged = {"links": pa.Table.from_pandas(tables.links, preserve_index=False),
              "units": pa.table({"action_unit": [int(u) for u in tables.units["action_unit"]]})}
    return dg.Output(staged, metadata={
        "units_in_warehouse": count, "parsed_units": len(tables.units), "skipped_rows": tables.skipped,
        "preview": md_table(tables.units, 40),
    })


@dg.asset(kinds={"duckdb"}, metadata=warehouse_tables("facs_emotions_units"), **{**WRITER, "group_name": TABLES_GROUP})
def facs_emotion_action_units(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                              facs_action_units: dict) -> dg.MaterializeResult:
    """The page's emotion -> action-unit links in facs_emotions_units; units gone from the page are removed."""
    links = facs_action_units["links"].to_pandas()
    # the units of the same parse: units that vanished from the page are deleted once the new links no longer
    # need them, so both tables equal the last good parse (DuckDB refuses to delete a referenced unit earlier)
    units = facs_action_units["units"].read(["action_unit"]).column("action_unit").to_pylist()
    with duckdb.get_connection() as con:
        count = warehouse.replace_facs_links(con, links, units)
        most = con.execute(warehouse.study_queries()["emotion_with_most_action_units"]).df()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": count,
        "emotions": int(links["emotion"].nunique()),
        "links": md_table(links),
        "emotion_with_most_action_units (study query)": md_table(most),
    })
