"""Command line: `python -m femo_pipeline demo|run|ui` (also installed as `femo`).

- demo: materialize every asset on the generated demo data, then print where the outputs are.
- run:  the same with the configured profile (.env / FEMO_* variables; demo when none is set).
- ui:   start the Dagster web UI on the same instance, so the runs above are visible in it.
- serve: the read-only HTTP API and gallery over the serving snapshot (http://127.0.0.1:8000, docs at /docs).
- sql:  run SQL on the warehouse, read-only: one or several statements, from the command line or a file (-f),
        as a table, CSV or JSON (e.g. the study's queries in femo_pipeline/sql/study).
- report: print the benchmark report's path (--open: open its HTML in a browser).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import decimal
import json
import os
import sys
import uuid
from pathlib import Path

from femo_pipeline.resources import DEFAULT_DATA_DIR, PROJECT_ROOT

DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"  # the committed instance settings (pools, run limits)
POOLS = ("duckdb",)  # the concurrency pools femo's assets and checks use (a test holds this to the definitions)


def prepare_environment(profile: str | None) -> Path:
    """Load .env, pick the profile, and point DAGSTER_HOME at a persistent instance under the data folder.

    femo's own instance folder (the default, <data>/dagster_home) gets the committed dagster.yaml at every start.
    A DAGSTER_HOME of your own keeps its dagster.yaml (e.g. PostgreSQL storage, docs/scale/); it gets the committed
    file only when it has none, and a warning when its concurrency settings differ from the committed ones."""
    from dotenv import load_dotenv

    load_dotenv(PROJECT_ROOT / ".env", override=False)
    if profile:
        os.environ["FEMO_PROFILE"] = profile
    data_dir = Path(os.environ.get("FEMO_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
    own = (data_dir / "dagster_home").resolve()
    home = Path(os.environ.get("DAGSTER_HOME") or own).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if config.resolve() == DAGSTER_YAML.resolve():
        pass  # the project folder itself
    elif home == own or not config.exists():  # the repository's file is the source: refresh femo's copy
        config.write_text(DAGSTER_YAML.read_text())
    elif concurrency_settings(config) != concurrency_settings(DAGSTER_YAML):
        print(f"femo: warning: {config} has other concurrency settings than the project's dagster.yaml; copy its "
              "`concurrency:` block there, or warehouse steps of overlapping runs may collide", file=sys.stderr)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def concurrency_settings(path: Path):
    import yaml

    try:
        return (yaml.safe_load(path.read_text()) or {}).get("concurrency")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def prepare_pools(instance) -> list[str]:
    """Create the pools femo's steps use (with the instance's default limit) before any run claims a slot.

    Dagster creates a pool lazily on the first claim; two runs whose first pooled steps start together on a fresh
    instance can both create it and both get a slot (seen with SQLite storage: two `data_sources` steps at
    once). Returns the pools created now."""
    storage = instance.event_log_storage
    if instance.get_concurrency_config().pool_config.default_pool_limit is None or not hasattr(
            storage, "initialize_concurrency_limit_to_default"):
        return []
    known = set(storage.get_concurrency_keys())
    return [p for p in POOLS if p not in known and storage.initialize_concurrency_limit_to_default(p)]


def today_partition() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def run_all(profile: str | None) -> int:
    home = prepare_environment(profile)
    import dagster as dg

    from femo_pipeline.definitions import defs, storage

    job = defs.resolve_job_def("femo_all")
    print(f"femo: materializing every asset (profile: {storage.resolved_profile()}) ...", flush=True)
    with dg.DagsterInstance.get() as instance:
        prepare_pools(instance)
        result = job.execute_in_process(
            instance=instance,
            partition_key=today_partition(),  # the web hits are partitioned by day of pull
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    done = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    print(f"femo: {len(done)} asset materializations, {len(failed)} failed steps {failed or ''}")
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    not_passed = [f"{c.check_name} ({c.severity.value})" for c in checks if not c.passed]
    print(f"femo: {len(checks)} asset checks, {len(checks) - len(not_passed)} passed"
          + (f"; not passed: {', '.join(not_passed)}" if not_passed else ""))
    root = storage.root.resolve()
    print(
        "\nWhere to look:\n"
        f"  warehouse (DuckDB):  {storage.warehouse_path.resolve()}\n"
        f"  ERD:                 {root / 'warehouse' / 'erd.png'}  (Mermaid: erd.mmd)\n"
        f"  benchmark report:    {root / 'reports' / 'benchmark.md'}  (also .html, .json)\n"
        f"  plots:               {root / 'plots'}\n"
        f"  staged tables:       {root / 'staging'}\n"
        f"  demo inputs:         {root / 'demo'}  (synthetic)\n"
        f"  Dagster instance:    {home}\n"
        "  Dagster UI:          .venv/bin/python -m femo_pipeline ui   (then open http://127.0.0.1:3000)\n"
        "  Dagster UI answer:   group model, asset benchmark_report, Overview tab (headline, report)\n"
        "  gallery + HTTP API:  .venv/bin/python -m femo_pipeline serve   (then open http://127.0.0.1:8000/ ;\n"
        "                       /disagreements, /report, API docs at /docs)\n"
        f"  query it:            .venv/bin/python -m femo_pipeline sql \"SELECT * FROM all_images LIMIT 5\""
    )
    return 0 if result.success else 1


def run_ui(port: int, host: str) -> int:
    prepare_environment(None)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        prepare_pools(instance)
    os.chdir(PROJECT_ROOT)
    args = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-p", str(port), "-h", host]
    print(f"femo: Dagster UI on http://{host}:{port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})", flush=True)
    os.execv(sys.executable, args)
    return 0  # not reached


def run_serve(port: int, host: str, workers: int) -> int:
    prepare_environment(None)
    import uvicorn

    from femo_pipeline.resources import storage_from_env

    os.environ.setdefault("FEMO_SERVING_DB", str(storage_from_env().serving_path))
    print(f"femo: API on http://{host}:{port} (docs: /docs), reading {os.environ['FEMO_SERVING_DB']}", flush=True)
    uvicorn.run("femo_pipeline.api:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning")
    return 0


WRITE_REFUSED = ("femo sql: the warehouse is opened read-only, so statements that change it (INSERT, UPDATE, "
                 "DELETE, CREATE, DROP, ALTER, ...) are refused. The pipeline owns the warehouse: change data "
                 "through its assets (materialize them), or copy the file and write to the copy.")
TABLE_LIMIT = 50


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

        out.write(tabulate([[_cell(v) for v in row] for row in rows], headers=columns, tablefmt="simple",
                           missingval="NULL", disable_numparse=True) + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{', more not shown (--limit 0 for all)' if more else ''})\n")


def _connect_read_only(path: Path, serving_path: Path):
    """The warehouse read-only; while the pipeline holds its lock, the serving snapshot (said on stderr)."""
    import duckdb

    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower() or not serving_path.exists():
            raise
        print(f"femo sql: the pipeline is writing the warehouse; reading the serving snapshot {serving_path} instead",
              file=sys.stderr)
        return duckdb.connect(str(serving_path), read_only=True)


def run_sql(statement: str | None, file: str | None = None, fmt: str = "table", limit: int | None = None,
            out=None) -> int:
    """Run every statement of `statement` (or of the file) read-only and show each result in turn.

    limit: rows shown per result (None: 50 for a table, all for CSV/JSON; 0: all).
    """
    out = out or sys.stdout
    prepare_environment(None)
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
    with _connect_read_only(path, storage.serving_path) as con:
        try:
            statements = con.extract_statements(statement)
        except duckdb.Error as exc:
            print(f"femo sql: {exc}", file=sys.stderr)
            return 1
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


def run_report(open_it: bool) -> int:
    prepare_environment(None)
    from femo_pipeline.resources import storage_from_env

    folder = storage_from_env().root.resolve() / "reports"
    md, html = folder / "benchmark.md", folder / "benchmark.html"
    if not md.exists():
        print(f"femo report: no report yet at {md}: run `python -m femo_pipeline demo` (or materialize "
              "benchmark_report)", file=sys.stderr)
        return 2
    print(md)
    if html.exists():
        print(html)
    for plot in sorted(folder.glob("*.png")):
        print(plot)
    if open_it:
        import webbrowser

        webbrowser.open((html if html.exists() else md).as_uri())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="femo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="materialize every asset on the generated demo data")
    sub.add_parser("run", help="materialize every asset with the configured profile")
    ui = sub.add_parser("ui", help="start the Dagster web UI")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--host", default="127.0.0.1")
    serve = sub.add_parser("serve", help="start the read-only HTTP API and the gallery (http://HOST:PORT/)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--workers", type=int, default=1)
    sql = sub.add_parser("sql", help="run SQL on the warehouse (read-only)",
                         description="Run SQL on the warehouse, read-only. Several statements separated by ';' "
                                     "each show their result. Writes are refused with a message (exit code 3).")
    sql.add_argument("statement", nargs="?", help="SQL text (or use -f)")
    sql.add_argument("-f", "--file", help="read the SQL from this file ('-': standard input)")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument("--limit", type=int, default=None,
                     help=f"rows shown per result; 0 for all (default: {TABLE_LIMIT} for a table, all for csv/json)")
    report = sub.add_parser("report", help="print the benchmark report's path")
    report.add_argument("--open", action="store_true", help="also open it in a web browser")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_all("demo")
    if args.command == "run":
        return run_all(None)
    if args.command == "serve":
        return run_serve(args.port, args.host, args.workers)
    if args.command == "sql":
        if (args.statement is None) == (args.file is None):
            parser.error("sql: give either a statement or -f FILE")
        if args.limit is not None and args.limit < 0:
            parser.error("sql: --limit must be 0 (all) or more")
        return run_sql(args.statement, args.file, args.format, args.limit)
    if args.command == "report":
        return run_report(args.open)
    return run_ui(args.port, args.host)


if __name__ == "__main__":
    raise SystemExit(main())
