"""The warehouse's schema: its SQL files, version and fingerprint, creating or rebuilding it, the table and
column descriptions, the study's queries and stable image ids. Pure module (no Dagster)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Iterator
from importlib import resources

import duckdb

from femo_pipeline.sources import SOURCES

# Bump when schema.sql changes in a way CREATE ... IF NOT EXISTS cannot apply: the warehouse is then rebuilt.
SCHEMA_VERSION = "5"

_TABLES_CHILD_FIRST = (
    "data_factors", "panel_scores", "verdicts_per_class", "verdicts", "benchmark_scores", "predictions", "human_votes", "model_runs",
    "face_crops", "balanced_sample", "image_pixels", "quarantined_files", "images", "facs_emotions_units", "facs_single_units",
    "survey_responses", "survey_rejected_rows", "emotions", "data_sources", "warehouse_info",
)
_VIEWS = ("disagreements", *(s.view for s in SOURCES.values()), "all_images", "emotions_ids")


def sql_text(name: str) -> str:
    """Text of a file under femo_pipeline/sql (e.g. 'schema.sql', 'study/images_per_emotion.sql')."""
    return resources.files("femo_pipeline").joinpath("sql", name).read_text()


def study_queries() -> dict[str, str]:
    folder = resources.files("femo_pipeline").joinpath("sql", "study")
    return {p.name.removesuffix(".sql"): p.read_text() for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".sql")}


def image_id(source_key: str, rel_path: str) -> int:
    """A stable id from the source and the file's path inside it: 63 bits of their SHA-256, every non-negative
    BIGINT (URLs and clients that expect digits keep working). Two of a million files share one with a chance of
    about 5e-8; if two ever do, the catalogue keeps the first and quarantines the other."""
    digest = hashlib.sha256(f"{source_key}/{rel_path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _current_version(con: duckdb.DuckDBPyConnection) -> str | None:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'warehouse_info' AND schema_name = 'main'"
    ).fetchone()[0]
    if not exists:
        return None
    row = con.execute("SELECT value FROM warehouse_info WHERE key = 'schema_version'").fetchone()
    return row[0] if row else None


def schema_fingerprint() -> str:
    """Identity of the schema this code creates: SCHEMA_VERSION and the text of schema.sql and comments.sql."""
    views = ",".join(sorted(f"{s.view}={s.id}" for s in SOURCES.values()))  # apply_schema makes these from Python
    text = "\n".join((SCHEMA_VERSION, sql_text("schema.sql"), sql_text("comments.sql"), views))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables and views; rebuild from scratch when the stored schema version is older.

    A warehouse that already has this code's schema (same fingerprint, every table and view present) is left
    alone: applying the schema and its descriptions costs about 0.2 s, and every writer calls this."""
    version = _current_version(con)
    if version == SCHEMA_VERSION and _schema_is_current(con):
        return
    # one transaction for the hundreds of statements (one commit, not one each), the drops of an older schema
    # included: a rebuild that fails part-way leaves the old warehouse as it was
    with transaction(con):
        if version is not None and version != SCHEMA_VERSION:
            for view in _VIEWS:
                con.execute(f"DROP VIEW IF EXISTS {view}")
            for table in _TABLES_CHILD_FIRST:
                con.execute(f"DROP TABLE IF EXISTS {table}")
        apply_schema(con)
        set_info(con, {"schema_version": SCHEMA_VERSION, "schema_fingerprint": schema_fingerprint()})


def _schema_is_current(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT value FROM warehouse_info WHERE key = 'schema_fingerprint'").fetchone()
    if not row or row[0] != schema_fingerprint():
        return False
    present = {name for (name,) in con.execute(
        f"{_MAIN_TABLES} UNION ALL SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND "
        "database_name = current_database() AND NOT internal AND NOT temporary").fetchall()}
    return present >= set(_TABLES_CHILD_FIRST) | set(_VIEWS)


# the warehouse's own tables (not temporary ones, nor those of an attached database)
_MAIN_TABLES = ("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND "
                "database_name = current_database() AND NOT temporary")


def apply_schema(con: duckdb.DuckDBPyConnection, only: tuple[str, ...] | None = None) -> None:
    """schema.sql (idempotent), then the table, view and column descriptions of comments.sql (a view or table
    created again loses its comments, and so do the columns of a view whose table is created again, so they are
    applied after every schema run; inside a transaction this takes about 0.1 s, outside 0.2 s). With `only`
    (tables just dropped, now created again) the descriptions of those tables and of the views are applied, not
    of every table: the others kept theirs."""
    con.execute(sql_text("schema.sql"))
    con.execute(";\n".join(f"CREATE OR REPLACE VIEW {s.view} AS SELECT * FROM all_images WHERE source_id = {s.id}"
                           for s in SOURCES.values()))
    con.execute(sql_text("comments.sql") if only is None else _comments_for({*only, *_VIEWS}))
    described = con.execute("SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'all_images' "
                            "AND schema_name = 'main'").fetchall()
    statements = []
    for source in SOURCES.values():  # the per-source views: the columns of all_images, the same descriptions
        name = source.name.replace("'", "''")  # COMMENT takes no bound parameter
        statements.append(f"COMMENT ON VIEW {source.view} IS 'The study''s per-source view: all_images restricted "
                          f"to source {source.id}, {name}.'")
        for column, comment in described:
            text = (comment or "").replace("'", "''")
            statements.append(f"COMMENT ON COLUMN {source.view}.{column} IS '{text}'")
    con.execute(";\n".join(statements))


_COMMENT_TARGET = re.compile(r"^COMMENT ON (?:TABLE|VIEW|COLUMN) (\w+)")


def _comments_for(objects: set[str]) -> str:
    """The statements of comments.sql (one per line) that describe these tables or views or their columns."""
    lines = [line for line in sql_text("comments.sql").splitlines()
             if (m := _COMMENT_TARGET.match(line)) and m.group(1) in objects]
    return "\n".join(lines)


@functools.cache
def column_docs() -> dict[str, dict]:
    """Per table and view of the schema: its description and columns (name, type, nullable, key, description),
    read from an in-memory DuckDB built from schema.sql and comments.sql."""
    con = duckdb.connect()
    try:
        apply_schema(con)
        keys = {(t, c) for t, cols in con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() WHERE constraint_type = "
            "'PRIMARY KEY'").fetchall() for c in cols}
        docs = {name: {"description": comment or "", "columns": []} for name, comment in con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main' UNION ALL "
            "SELECT view_name, comment FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal").fetchall()}
        for table, column, dtype, nullable, comment in con.execute(
                "SELECT table_name, column_name, data_type, is_nullable, comment FROM duckdb_columns() "
                "WHERE schema_name = 'main' AND NOT internal ORDER BY table_name, column_index").fetchall():
            docs[table]["columns"].append({"name": column, "type": dtype, "nullable": bool(nullable),
                                           "primary_key": (table, column) in keys, "description": comment or ""})
        return docs
    finally:
        con.close()


def set_info(con: duckdb.DuckDBPyConnection, values: dict[str, str]) -> None:
    for key, value in values.items():
        con.execute("INSERT OR REPLACE INTO warehouse_info VALUES (?, ?)", [key, str(value)])


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
