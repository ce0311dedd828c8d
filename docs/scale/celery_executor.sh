#!/usr/bin/env bash
# femo on a Celery executor, on one machine (docs/scaling.md, "Tried: a Celery executor").
#   bash docs/scale/celery_executor.sh setup   # Debian's redis-server; a venv beside femo's with dagster-celery
#   bash docs/scale/celery_executor.sh run     # Redis, two Celery workers, job femo_ingest_celery on the demo data
#   bash docs/scale/celery_executor.sh stop    # workers and Redis
# Run from the repository root after the README's install (.venv). dagster-celery is not a femo dependency: it
# goes into $CELERY_VENV, which sees femo's .venv through a .pth file, so femo's own venv is left as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CELERY_VENV="${CELERY_VENV:-/tmp/femo-celery-venv}"
WORK="${FEMO_CELERY_WORK:-/tmp/femo-celery}"
export FEMO_CELERY_BROKER="${FEMO_CELERY_BROKER:-redis://127.0.0.1:6379/0}"
export FEMO_CELERY_BACKEND="${FEMO_CELERY_BACKEND:-redis://127.0.0.1:6379/1}"
export DAGSTER_HOME="$WORK/dagster_home" FEMO_DATA_DIR="$WORK/data" FEMO_PROFILE=demo
export PATH="$CELERY_VENV/bin:$PATH"
PY_SITE="$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

case "${1:-}" in
setup)
    command -v redis-server >/dev/null || apt-get install -y -qq redis-server
    python3 -m venv "$CELERY_VENV"
    site="$("$CELERY_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf '%s\n%s\n' "$PY_SITE" "$ROOT" > "$site/femo_venv.pth"
    "$CELERY_VENV/bin/pip" install -q dagster-celery==0.29.27 'celery[redis]'
    ;;
run)
    mkdir -p "$DAGSTER_HOME" "$WORK/logs"
    cp "$ROOT/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
    printf 'execution:\n  config:\n    broker: %s\n    backend: %s\n' "$FEMO_CELERY_BROKER" "$FEMO_CELERY_BACKEND" \
        > "$WORK/celery.yaml"
    redis-cli -p 6379 ping >/dev/null 2>&1 || redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --logfile "$WORK/logs/redis.log"
    cd "$ROOT"
    for n in 1 2; do  # two workers, one task each at a time (the machine has two cores)
        "$CELERY_VENV/bin/dagster-celery" worker start -n "femo-w$n" -y "$WORK/celery.yaml" -A dagster_celery.app \
            -d -- --concurrency 1 --logfile "$WORK/logs/worker$n.log"
    done
    sleep 5
    time "$CELERY_VENV/bin/python" -m dagster job execute -f docs/scale/celery_defs.py -a defs -j femo_ingest_celery
    ;;
stop)
    pkill -f 'celery -A dagster_celery.app worker .*-n femo-w' || true
    redis-cli -p 6379 shutdown nosave 2>/dev/null || true
    ;;
*)
    sed -n '2,7p' "$0"; exit 2 ;;
esac
