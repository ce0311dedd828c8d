"""Command line: `femo <command>` (the console script; also `python -m femo_pipeline <command>`).

- demo:  answer the question on generated demo data (synthetic): every asset but training, then the answer.
- run:   the same with the configured profile (.env / FEMO_* variables; demo when none is set), using the shipped
         models; `--train` trains femo's CNN first. Inputs are checked before any work.
- train: `run --train`: prints an estimate of the training time on this machine first.
- check: only check the inputs of `run` (paths, FER+ votes, FACS source); `--train`: also print the estimate of
         `femo train` on this machine.
- ui:    start the Dagster web UI on the same instance, so the runs above are visible in it.
- serve: the read-only HTTP API and gallery over the serving snapshot (http://127.0.0.1:8000, docs at /docs).
- sql:   run SQL on the warehouse, read-only: one or several statements, from the command line or a file (-f),
         as a table, CSV or JSON (e.g. the study's queries in femo_pipeline/sql/study).
- report: print the benchmark report's path (--open: open its HTML in a browser).
- factors: list the cells of the data-factor grid (measured or not), or train some: `femo factors CELL ...`
         or `femo factors next N` (the job data_factor_grid, one partition per cell).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import socket
import sys
from pathlib import Path

from femo_pipeline import sql_cli
from femo_pipeline.numerals import whole_number
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

    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def me() -> str:
    """How to call femo again, as this process was called: `femo` (on PATH), the console script's path, or
    `<python> -m femo_pipeline`; printed commands then work as written."""
    script = Path(sys.argv[0])
    if script.name == "femo":
        found = shutil.which("femo")
        if found and Path(found).resolve() == script.resolve():
            return "femo"
        return shlex.quote(_short(script))
    return f"{shlex.quote(_short(Path(sys.executable)))} -m femo_pipeline"


def _short(path: Path) -> str:
    """The path relative to the current folder when it is below it, else absolute (no resolving of links: a
    virtual environment's python is a link)."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _port(text: str) -> int:
    """A TCP port from the command line (argparse turns the ValueError into a usage message)."""
    number = whole_number(text.strip())
    if number is None or not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port: a whole number from 1 to 65535")
    return number


def _row_limit(text: str) -> int:
    number = whole_number(text.strip())
    if number is None:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a row count: a whole number, 0 for all")
    return number


def port_in_use(host: str, port: int) -> str | None:
    """Why (host, port) cannot be listened on, or None when it can."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def refuse_busy_port(command: str, host: str, port: int) -> bool:
    reason = port_in_use(host, port)
    if reason:
        print(f"femo {command}: cannot listen on {host}:{port}: {reason}. Is another femo {command} (or dagster "
              f"dev) running? Stop it, or pick another port: {me()} {command} --port {port + 1}", file=sys.stderr)
    return bool(reason)


def run_ui(port: int, host: str) -> int:
    prepare_environment(None)
    if refuse_busy_port("ui", host, port):
        return 2
    import dagster as dg

    from femo_pipeline import instance_health

    with dg.DagsterInstance.get() as instance:
        prepare_pools(instance)
        instance_health.free_stale_claims(instance)
    os.chdir(PROJECT_ROOT)
    args = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-p", str(port), "-h", host]
    print(f"femo: Dagster UI on http://{host}:{port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})", flush=True)
    os.execv(sys.executable, args)
    return 0  # not reached


def run_serve(port: int, host: str, workers: int) -> int:
    prepare_environment(None)
    if refuse_busy_port("serve", host, port):
        return 2
    import uvicorn

    from femo_pipeline.resources import storage_from_env

    os.environ.setdefault("FEMO_SERVING_DB", str(storage_from_env().serving_path))
    print(f"femo: API on http://{host}:{port} (docs: /docs), reading {os.environ['FEMO_SERVING_DB']}", flush=True)
    uvicorn.run("femo_pipeline.api:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning")
    return 0


def run_report(open_it: bool) -> int:
    prepare_environment(None)
    from femo_pipeline.resources import storage_from_env

    folder = storage_from_env().root.resolve() / "reports"
    md, html = folder / "benchmark.md", folder / "benchmark.html"
    if not md.exists():
        print(f"femo report: no report yet at {md}: run `{me()} demo` (or materialize "
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


TRAINING_OPTIONS = {  # flag -> (type, help): emotion_model's config for this run
    "epochs": (int, "training epochs (default 26)"),
    "minutes": (float, "a time budget in minutes instead of an epoch count (the shipped models: 42)"),
    "width": (int, "filters of the first block (default 32)"),
    "max_train_images": (int, "train on at most this many images (0: all)"),
    "label_source": (str, "fer2013 (its labels, default) or ferplus (the crowd's vote distributions)"),
}


def add_training_options(command: argparse.ArgumentParser) -> None:
    for name, (kind, text) in TRAINING_OPTIONS.items():
        command.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="femo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("demo", "answer the question on the generated demo data (synthetic; no training)"),
                       ("run", "answer the question with the configured profile, using the shipped models (no "
                               "training)"),
                       ("train", "train femo's CNN on FER-2013 Training, then answer (prints an estimate first)")):
        command = sub.add_parser(name, help=text, description=text)
        if name != "train":
            command.add_argument("--train", action="store_true", help="train femo's CNN first (as `femo train`)")
        add_training_options(command)
    check = sub.add_parser("check", help="check the inputs of `femo run` (paths, FER+ votes, FACS source) and stop; "
                                         "--train: also estimate `femo train` on this machine (a short trial)")
    check.add_argument("--train", action="store_true", help="also check training's inputs and print its estimate")
    add_training_options(check)
    ui = sub.add_parser("ui", help="start the Dagster web UI")
    ui.add_argument("--port", type=_port, default=3000)
    ui.add_argument("--host", default="127.0.0.1")
    serve = sub.add_parser("serve", help="start the read-only HTTP API and the gallery (http://HOST:PORT/)")
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--workers", type=int, default=1)
    sql = sub.add_parser("sql", help="run SQL on the warehouse (read-only)",
                         description="Run SQL on the warehouse, read-only. Several statements separated by ';' "
                                     "each show their result. Writes are refused with a message (exit code 3).")
    sql.add_argument("statement", nargs="?", help="SQL text (or use -f)")
    sql.add_argument("-f", "--file", help="read the SQL from this file ('-': standard input)")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument("--limit", type=_row_limit, default=None,
                     help=f"rows shown per result; 0 for all (default: {sql_cli.TABLE_LIMIT} for a table, all for csv/json)")
    factors = sub.add_parser("factors", help="list or train cells of the data-factor grid",
                             description="No cell: list the grid's cells (most informative first). Cells (e.g. "
                                         "fer2013-s010-n00-kept-seed0) or 'next N': train them in turn.")
    factors.add_argument("cells", nargs="*")
    report = sub.add_parser("report", help="print the benchmark report's path")
    report.add_argument("--open", action="store_true", help="also open it in a web browser")
    args = parser.parse_args(argv)
    from femo_pipeline import cli_runs  # it imports this module
    if args.command in ("demo", "run", "train", "check"):
        options = {key: value for key, value in vars(args).items() if key in TRAINING_OPTIONS and value is not None}
        train = args.command == "train" or args.train
        if options and not train:
            parser.error(f"{args.command}: --{next(iter(options)).replace('_', '-')} needs --train")
        return cli_runs.run_all("demo" if args.command == "demo" else None, train=train, train_options=options,
                                check_only=args.command == "check")
    if args.command == "serve":
        return run_serve(args.port, args.host, args.workers)
    if args.command == "sql":
        if (args.statement is None) == (args.file is None):
            parser.error("sql: give either a statement or -f FILE")
        prepare_environment(None)
        return sql_cli.run_sql(args.statement, args.file, args.format, args.limit)
    if args.command == "report":
        return run_report(args.open)
    if args.command == "factors":
        from femo_pipeline.factors_cli import run_factors

        return run_factors(args.cells, prepare_environment)
    return run_ui(args.port, args.host)


if __name__ == "__main__":
    raise SystemExit(main())
