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
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(v) for v in row] for row in rows])
    elif fmt == "json":
        out.write(json.dumps([dict(zip(columns, (_cell(v, True) for v in row))) for row in rows], indent=1,
                             ensure_ascii=False, default=str) + "\n")
    else:
        from tabulate import tabulate

        shown = [[_escaped(v) if isinstance(v, str) else v for v in map(_cell, row)] for row in rows]
        out.write(tabulate(shown, headers=[_escaped(c) for c in columns], tablefmt="simple",
                           missingval="NULL", disable_numparse=True) + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{', more not shown (--limit 0 for all)' if more else ''})\n")


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


def _refusal(statements) -> tuple[str, str] | None:
    """(message, the statement) for the first statement that is not a query, or None."""
    for one in statements:
        kind = one.type.name
        if kind not in _QUERY_TYPES:
            return (WRITE_REFUSED if kind in _WRITE_TYPES else OTHER_REFUSED), " ".join(one.query.split())[:100]
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
        try:
            statement = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            print(f"femo sql: cannot read {file}: {exc.strerror}", file=sys.stderr)
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
    readable = [path.parent, storage.serving_path.parent, storage.root / "staging"]
    with _connect_read_only(path, storage.serving_path, readable) as con:
        try:
            statements = con.extract_statements(statement)
        except duckdb.Error as exc:
            print(f"femo sql: {exc}", file=sys.stderr)
            return 1
        refused = _refusal(statements)
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
