#!/usr/bin/env bash
# femo on a Dagster instance whose run, event log and schedule storage is PostgreSQL instead of SQLite,
# on one machine (Debian 12, its postgresql 15 package). What was measured: docs/scaling.md, Execution.
#
#   docs/scale/postgres_instance.sh setup   # cluster up, role + database, dagster-postgres, DAGSTER_HOME
#   docs/scale/postgres_instance.sh run     # femo_all (demo profile, today's UTC partition), timed
#   docs/scale/postgres_instance.sh check   # row counts in PostgreSQL + a fresh instance reading the run back
#   docs/scale/postgres_instance.sh ui      # `dagster dev` on that instance for 60 s, /server_info fetched
#   docs/scale/postgres_instance.sh stop    # stop the cluster (nothing is dropped or uninstalled)
#   docs/scale/postgres_instance.sh all     # setup, run, check, ui, stop
#
# Every step can be repeated: existing clusters, roles, databases and packages are kept. Run as root (it uses
# `su postgres` for the admin statements), from anywhere. The password is a throwaway for a server that listens
# on 127.0.0.1 only; set DAGSTER_PG_PASSWORD to choose another. Nothing here touches data/dagster_home.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
PG_VERSION="${PG_VERSION:-15}"
PG_CLUSTER="${PG_CLUSTER:-main}"
export DAGSTER_PG_USERNAME="${DAGSTER_PG_USERNAME:-dagster}"
export DAGSTER_PG_PASSWORD="${DAGSTER_PG_PASSWORD:-dagster}"   # throwaway local password
export DAGSTER_PG_DB="${DAGSTER_PG_DB:-dagster}"
export DAGSTER_PG_HOST="${DAGSTER_PG_HOST:-127.0.0.1}"
export DAGSTER_PG_PORT="${DAGSTER_PG_PORT:-5432}"
export DAGSTER_HOME="${DAGSTER_HOME:-/tmp/femo_pg/home}"
export FEMO_DATA_DIR="${FEMO_DATA_DIR:-/tmp/femo_pg/data}"
export FEMO_PROFILE="${FEMO_PROFILE:-demo}"
DAGSTER_POSTGRES_VERSION="${DAGSTER_POSTGRES_VERSION:-0.29.27}"   # the library release paired with dagster 1.13.27

as_postgres() { su postgres -c "$1"; }
psql_admin() { as_postgres "psql -v ON_ERROR_STOP=1 -p $DAGSTER_PG_PORT -tAc \"$1\""; }
psql_dagster() {
  PGPASSWORD="$DAGSTER_PG_PASSWORD" psql -v ON_ERROR_STOP=1 -h "$DAGSTER_PG_HOST" -p "$DAGSTER_PG_PORT" \
    -U "$DAGSTER_PG_USERNAME" -d "$DAGSTER_PG_DB" "$@"
}

setup() {
  # 1. A running cluster. Debian's package creates 15/main on install; create it if it is missing.
  if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -x "$PG_VERSION/$PG_CLUSTER" >/dev/null; then
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$DAGSTER_PG_PORT"
  fi
  if ! pg_lsclusters -h | awk -v c="$PG_VERSION/$PG_CLUSTER" '$1"/"$2==c {print $4}' | grep -x online >/dev/null; then
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
  fi

  # 2. Role and database (password login over 127.0.0.1: Debian's pg_hba.conf allows scram-sha-256 there).
  if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname='$DAGSTER_PG_USERNAME'")" != "1" ]; then
    psql_admin "CREATE ROLE $DAGSTER_PG_USERNAME LOGIN PASSWORD '$DAGSTER_PG_PASSWORD'"
  else
    psql_admin "ALTER ROLE $DAGSTER_PG_USERNAME LOGIN PASSWORD '$DAGSTER_PG_PASSWORD'"
  fi
  if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname='$DAGSTER_PG_DB'")" != "1" ]; then
    psql_admin "CREATE DATABASE $DAGSTER_PG_DB OWNER $DAGSTER_PG_USERNAME"
  fi
  psql_dagster -tAc "SELECT 'connected as ' || current_user || ' to ' || current_database()"

  # 3. dagster-postgres (pulls psycopg2-binary), pinned so pip does not move dagster itself.
  local installed
  installed="$("$PY" -m pip show dagster-postgres 2>/dev/null | sed -n 's/^Version: //p')"
  if [ "$installed" != "$DAGSTER_POSTGRES_VERSION" ]; then
    "$PY" -m pip install "dagster-postgres==$DAGSTER_POSTGRES_VERSION"
  fi
  "$PY" -m pip show dagster dagster-postgres | grep -E '^(Name|Version):'

  # 4. DAGSTER_HOME: the example dagster.yaml (committed settings + `storage: postgres:`).
  mkdir -p "$DAGSTER_HOME" "$FEMO_DATA_DIR"
  cp "$REPO/docs/scale/dagster.postgres.yaml" "$DAGSTER_HOME/dagster.yaml"
  # Opening the instance creates (or migrates) Dagster's tables in the database.
  "$PY" -c "import dagster as dg; i = dg.DagsterInstance.get(); print('instance:', type(i._run_storage).__name__, type(i._event_storage).__name__, type(i._schedule_storage).__name__)"
}

run() {
  # Same call as `python -m femo_pipeline demo` (femo_pipeline/cli.py, run_all), on this DAGSTER_HOME (the CLI
  # itself now keeps a DAGSTER_HOME's own dagster.yaml too; this script predates that and times the job alone).
  cd "$REPO"
  /usr/bin/time -f "femo_all wall %e s, max RSS %M KB" "$PY" - <<'EOF'
import datetime as dt
import time

import dagster as dg

from femo_pipeline.definitions import defs

job = defs.resolve_job_def("femo_all")
partition = dt.datetime.now(dt.timezone.utc).date().isoformat()
start = time.monotonic()
with dg.DagsterInstance.get() as instance:
    result = job.execute_in_process(instance=instance, partition_key=partition, raise_on_error=False)
elapsed = time.monotonic() - start
failed = [e.step_key for e in result.all_events if e.is_step_failure]
done = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
print(f"run {result.run_id}: success={result.success}, partition {partition}, {elapsed:.1f} s in execute_in_process")
print(f"{len(done)} asset materializations, {len(failed)} failed steps {failed or ''}, "
      f"{sum(c.passed for c in checks)}/{len(checks)} checks passed")
EOF
}

check() {
  # What the database holds (tables are Dagster's own; names as of dagster 1.13).
  psql_dagster -c "SELECT (SELECT count(*) FROM runs) AS runs,
                          (SELECT count(*) FROM event_logs) AS event_logs,
                          (SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION') AS materializations,
                          (SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION') AS check_evaluations,
                          (SELECT count(*) FROM asset_keys) AS asset_keys"
  psql_dagster -c "SELECT run_id, status, create_timestamp FROM runs ORDER BY create_timestamp DESC LIMIT 3"
  # A new process, a new instance: the run is read back from PostgreSQL.
  "$PY" - <<'EOF'
import dagster as dg

with dg.DagsterInstance.get() as instance:
    event = instance.get_latest_materialization_event(dg.AssetKey("images"))
    runs = instance.get_runs(limit=1)
    print("latest run:", runs[0].run_id, runs[0].status.value, "| images materialized by run", event.run_id if event else None)
EOF
}

ui() {
  # `dagster dev` (web server + daemon) on this instance for up to 60 s; /server_info answers once it is up.
  cd "$REPO"
  local log="${DAGSTER_HOME}/dagster_dev.log" port="${UI_PORT:-3999}"
  timeout 60 "$PY" -m dagster dev -w "$REPO/workspace.yaml" -p "$port" >"$log" 2>&1 &
  local pid=$! t=0
  until curl -sf "http://127.0.0.1:$port/server_info" 2>/dev/null; do
    sleep 1; t=$((t + 1))
    if [ "$t" -ge 55 ] || ! kill -0 "$pid" 2>/dev/null; then echo "no answer after ${t} s; see $log"; break; fi
  done
  echo; echo "(${t} s to first answer)"
  kill -INT "$pid" 2>/dev/null || true   # Ctrl-C: dagster dev stops its web server and daemon
  wait "$pid" 2>/dev/null || true
}

stop() { pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop || true; pg_lsclusters; }

case "${1:-setup}" in
  setup) setup ;;
  run) run ;;
  check) check ;;
  ui) ui ;;
  stop) stop ;;
  all) setup; run; check; ui; stop ;;
  *) echo "usage: $0 [setup|run|check|ui|stop|all]" >&2; exit 2 ;;
esac
