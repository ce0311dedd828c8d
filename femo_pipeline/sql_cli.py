"""`femo sql`: statements run on the warehouse opened read-only (the serving snapshot while the pipeline holds
the lock), each result shown as a table, CSV or JSON. Pure module (no Dagster); the caller prepares the
environment (cli.prepare_environment) first.

Read-only in every sense: the connection reads no file but the database and those under the warehouse, serving
and staging folders (`enable_external_access = false` with `allowed_directories`, then `lock_configuration`), and
only queries run (SELECT, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN, CALL): COPY, EXPORT, ATTACH, INSTALL, LOAD, SET and
every write are refused before any statement of the script runs. Table output escapes terminal control
characters, so a file name cannot drive the terminal.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import functools
import json
import re
import sys
import uuid
from pathlib import Path

WRITE_REFUSED = ("femo sql: the warehouse is opened read-only, so statements that change it (INSERT, UPDATE, "
                 "DELETE, CREATE, DROP, ALTER, ...) are refused. The pipeline owns the warehouse: change data "
                 "through its assets (materialize them), or copy the file and write to the copy.")
OTHER_REFUSED = ("femo sql: only queries run (SELECT, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN, CALL); statements that "
                 "reach files, databases, extensions or settings (COPY, EXPORT, ATTACH, INSTALL, LOAD, SET, PRAGMA, "
                 "...) are refused, and nothing of the script ran. Read a staged table with SELECT * FROM "
                 "'data/staging/<table>.parquet'.")
TABLE_LIMIT = 50
MAX_SCRIPT_BYTES = 16 * 1024 * 1024  # a SQL script read with -f
# the statement types that only read (SHOW, DESCRIBE and SUMMARIZE are SELECTs to DuckDB)
_QUERY_TYPES = ("SELECT", "EXPLAIN", "CALL")
_WRITE_TYPES = ("INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "CREATE_FUNC", "ANALYZE", "VACUUM",
                "TRANSACTION", "VARIABLE_SET", "MERGE_INTO", "UPDATE_EXTENSIONS")
# C0 and C1 control characters, DEL, and the bidirectional overrides: shown as escapes in a table
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escaped(text: str) -> str:
    """Text safe to print on a terminal: control characters as \\xNN (\\uNNNN above 0xff)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                        text)


def _cell(value, for_json: bool = False):
    """One value as shown: BLOBs as their size, everything else JSON-able or as text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if for_json:
        if isinstance(value, (dt.date, dt.datetime, dt.time, uuid.UUID)):
            return value.isoformat() if hasattr(value, "isoformat") else str(value)
        if isinstance(value, decimal.Decimal):
            return float(value)
        if isinstance(value, (list, tuple)):
            return [_cell(v, True) for v in value]
        if isinstance(value, dict):
            return {str(k): _cell(v, True) for k, v in value.items()}
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, (dt.timedelta,)):
            return str(value)
    return value


def _show(columns: list[str], rows: list[tuple], more: bool, fmt: str, out) -> None:
    if fmt in ("csv", "json"):
        _stream(columns, [rows], fmt, out)
    else:
        from tabulate import tabulate

        shown = [[_escaped(v) if isinstance(v, str) else v for v in map(_cell, row)] for row in rows]
        out.write(tabulate(shown, headers=[_escaped(c) for c in columns], tablefmt="simple",
                           missingval="NULL", disable_numparse=True) + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{', more not shown (--limit 0 for all)' if more else ''})\n")


def _stream(columns: list[str], batches, fmt: str, out) -> None:
    """Rows as CSV or a JSON array, written batch by batch (`batches`: lists of rows), so only one batch is ever
    in memory."""
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer:
        writer.writerow(columns)
    else:
        out.write("[")
    first = True
    for rows in batches:
        if writer:
            writer.writerows([[_cell(v) for v in row] for row in rows])
            continue
        for row in rows:
            out.write(("\n " if first else ",\n ") + json.dumps(dict(zip(columns, (_cell(v, True) for v in row))),
                                                                 ensure_ascii=False, default=str))
            first = False
    if not writer:
        out.write("\n]\n" if not first else "]\n")


def _connect_read_only(path: Path, serving_path: Path, readable: list[Path]):
    """The warehouse read-only (while the pipeline holds its lock, the serving snapshot, said on stderr), locked
    down: no file but those under the `readable` folders, no extension loaded, settings that cannot change."""
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower() or not serving_path.exists():
            raise
        print(f"femo sql: the pipeline is writing the warehouse; reading the serving snapshot {serving_path} instead",
              file=sys.stderr)
        con = duckdb.connect(str(serving_path), read_only=True)
    folders = ", ".join("'" + (str(p.resolve()).rstrip("/") + "/").replace("'", "''") + "'" for p in readable)
    for setting in (f"allowed_directories = [{folders}]", "autoinstall_known_extensions = false",
                    "autoload_known_extensions = false", "enable_external_access = false",
                    "lock_configuration = true"):
        con.execute(f"SET {setting}")
    return con


# EXPLAIN's head: EXPLAIN ANALYZE runs the statement it explains, so that statement is judged like any other
_EXPLAIN = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?:\([^()]*\)\s*)?",
                      re.I | re.S)


def _refusal(statements, extract) -> tuple[str, str] | None:
    """(message, the statement) for the first statement that is not a query, or None. The statement an EXPLAIN
    names must be a query too (`extract` parses it); an EXPLAIN whose statement cannot be told is refused."""
    for one in statements:
        kind = one.type.name
        shown = " ".join(one.query.split())[:100]
        if kind not in _QUERY_TYPES:
            return (WRITE_REFUSED if kind in _WRITE_TYPES else OTHER_REFUSED), shown
        if kind == "EXPLAIN":
            head = _EXPLAIN.match(one.query)
            try:
                inner = extract(one.query[head.end():]) if head else []
            except Exception:  # noqa: BLE001 - any statement that cannot be parsed on its own is refused
                inner = []
            if len(inner) != 1:
                return OTHER_REFUSED, shown
            if (refused := _refusal(inner, extract)) is not None:
                return refused[0], shown
    return None


def run_sql(statement: str | None, file: str | None = None, fmt: str = "table", limit: int | None = None,
            out=None) -> int:
    """Run every statement of `statement` (or of the file) read-only and show each result in turn.

    limit: rows shown per result (None: 50 for a table, all for CSV/JSON; 0: all).
    """
    out = out or sys.stdout
    import duckdb

    from femo_pipeline.resources import storage_from_env

    if file:
        from femo_pipeline.files import InputFileError, read_input_file

        try:
            data = sys.stdin.buffer.read(MAX_SCRIPT_BYTES + 1) if file == "-" else read_input_file(file, MAX_SCRIPT_BYTES)
            if len(data) > MAX_SCRIPT_BYTES:
                raise InputFileError(f"standard input has more than the limit of {MAX_SCRIPT_BYTES} bytes")
            statement = data.decode("utf-8")
        except InputFileError as exc:
            print(f"femo sql: the SQL file {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"femo sql: cannot read {file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except UnicodeDecodeError as exc:
            print(f"femo sql: {file} is not UTF-8 text (byte {exc.start})", file=sys.stderr)
            return 2
    if not statement or not statement.strip():
        print("femo sql: no SQL given (a statement, or -f FILE)", file=sys.stderr)
        return 2
    if limit is None:
        limit = TABLE_LIMIT if fmt == "table" else 0
    storage = storage_from_env()
    path = storage.warehouse_path
    if not path.exists():
        print(f"femo sql: no warehouse at {path}: run `python -m femo_pipeline demo` first", file=sys.stderr)
        return 2
    if not path.is_file():  # a folder or a FIFO there: DuckDB would fail with a traceback or wait for a writer
        print(f"femo sql: {path} is not a database file: point FEMO_DATA_DIR at femo's data folder", file=sys.stderr)
        return 2
    readable = [path.parent, storage.serving_path.parent, storage.root / "staging"]
    try:
        con = _connect_read_only(path, storage.serving_path, readable)
    except duckdb.Error as exc:
        print(f"femo sql: the warehouse {path} cannot be opened: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
        return 2
    with con:
        try:
            statements = con.extract_statements(statement)
        except duckdb.Error as exc:
            print(f"femo sql: {exc}", file=sys.stderr)
            return 1
        refused = _refusal(statements, con.extract_statements)
        if refused:
            print(f"{refused[0]}\n(refused: {refused[1]})", file=sys.stderr)
            return 3
        for number, one in enumerate(statements, 1):
            if len(statements) > 1 and fmt == "table":
                out.write(("\n" if number > 1 else "") + f"-- statement {number} of {len(statements)}: "
                          f"{' '.join(one.query.split())[:100]}\n")
            elif number > 1:
                out.write("\n")
            try:
                result = con.execute(one)
                if result.description is None:
                    out.write("OK\n")
                    continue
                columns = [d[0] for d in result.description]
                if not limit and fmt != "table":  # every row, written as it comes: memory stays one batch
                    _stream(columns, iter(functools.partial(result.fetchmany, 10_000), []), fmt, out)
                    continue
                rows = result.fetchmany(limit + 1) if limit else result.fetchall()
            except duckdb.InvalidInputException as exc:
                if "read-only" in str(exc):
                    print(f"{WRITE_REFUSED}\n(statement {number}: {' '.join(one.query.split())[:100]})",
                          file=sys.stderr)
                    return 3
                print(f"femo sql: statement {number}: {exc}", file=sys.stderr)
                return 1
            except duckdb.Error as exc:
                print(f"femo sql: statement {number}: {exc}", file=sys.stderr)
                return 1
            more = bool(limit) and len(rows) > limit
            _show(columns, rows[:limit] if limit else rows, more, fmt, out)
    return 0
