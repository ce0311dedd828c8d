"""Command line: `python -m femo_pipeline demo|run|ui` (also installed as `femo`).

- demo: materialize every asset on the generated demo data, then print where the outputs are.
- run:  the same with the configured profile (.env / FEMO_* variables; demo when none is set).
- ui:   start the Dagster web UI on the same instance, so the runs above are visible in it.
- serve: the read-only HTTP API over the serving snapshot (http://127.0.0.1:8000, docs at /docs).
- sql:  run one SQL statement against the warehouse, read-only (e.g. the study's queries in femo_pipeline/sql/study).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from femo_pipeline.resources import DEFAULT_DATA_DIR, PROJECT_ROOT

DAGSTER_YAML = """\
# Written by femo_pipeline.cli. One DuckDB user at a time across runs (assets declare pool="duckdb").
concurrency:
  pools:
    default_limit: 1
    granularity: op
telemetry:
  enabled: false
"""


def prepare_environment(profile: str | None) -> Path:
    """Load .env, pick the profile, and point DAGSTER_HOME at a persistent instance under the data folder."""
    from dotenv import load_dotenv

    load_dotenv(PROJECT_ROOT / ".env", override=False)
    if profile:
        os.environ["FEMO_PROFILE"] = profile
    data_dir = Path(os.environ.get("FEMO_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
    home = Path(os.environ.get("DAGSTER_HOME") or data_dir / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


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
        "  HTTP API:            .venv/bin/python -m femo_pipeline serve   (then open http://127.0.0.1:8000)\n"
        f"  query it:            .venv/bin/python -m femo_pipeline sql \"SELECT * FROM all_images LIMIT 5\""
    )
    return 0 if result.success else 1


def run_ui(port: int, host: str) -> int:
    prepare_environment(None)
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


def run_sql(statement: str) -> int:
    prepare_environment(None)
    import duckdb

    from femo_pipeline.resources import storage_from_env

    path = storage_from_env().warehouse_path
    if not path.exists():
        print(f"femo: no warehouse at {path}: run `python -m femo_pipeline demo` first", file=sys.stderr)
        return 2
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            con.sql(statement).show(max_rows=50)
        except duckdb.Error as exc:
            print(f"femo: {exc}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="femo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="materialize every asset on the generated demo data")
    sub.add_parser("run", help="materialize every asset with the configured profile")
    ui = sub.add_parser("ui", help="start the Dagster web UI")
    ui.add_argument("--port", type=int, default=3000)
    ui.add_argument("--host", default="127.0.0.1")
    serve = sub.add_parser("serve", help="start the read-only HTTP API")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--workers", type=int, default=1)
    sql = sub.add_parser("sql", help="run one SQL statement on the warehouse (read-only)")
    sql.add_argument("statement")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_all("demo")
    if args.command == "run":
        return run_all(None)
    if args.command == "serve":
        return run_serve(args.port, args.host, args.workers)
    if args.command == "sql":
        return run_sql(args.statement)
    return run_ui(args.port, args.host)


if __name__ == "__main__":
    raise SystemExit(main())
