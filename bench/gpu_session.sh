#!/usr/bin/env bash
# femo's training benchmarks on one GPU machine, in one call: the GPU recipe (bench/train.py --recipe gpu)
# with three seeds and the data-factor grid (bench/grid.py) at once; everything it measured lands in $OUT.
#
# The machine may have PyTorch but no Keras, and little room for files: prepare in the repository root first
#   python bench/_fer2013.py pack .gpu/fer2013.npz          # FER-2013's JPEG bytes + FER+ votes (46 MB)
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       --platform manylinux_2_17_x86_64 -d .whl keras==3.15.1 namex optree
# then run `bash bench/gpu_session.sh smoke` (a minute: the GPU is seen, one tiny run trains) and
# `bash bench/gpu_session.sh` (about 8 minutes: MIN minutes of training for the first seed), or
# `MIN=4 bash bench/gpu_session.sh grid` (only the grid cells docs/factors has no record of, WORKERS=8 at once,
# none started after MIN minutes; each takes 5-8 minutes with eight sharing one H200; copy the new records from
# results.tgz into docs/factors and run `bench/grid.py --report`).
set -u
mode=${1:-full}
MIN=${MIN:-5.5}
OUT=${OUT:-/tmp/femo-gpu-out}
mkdir -p "$OUT" /tmp/femo-gpu/logs
if [ -z "${FEMO_ALLOW_CPU:-}" ]; then  # FEMO_ALLOW_CPU=1: a dry run of this script on a machine with Keras
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "could not install the carried wheels"; exit 2; }
fi
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=${KERAS_BACKEND:-torch} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -c "
import keras
from femo_pipeline import devices
d = devices.training_device()
print('keras', keras.__version__, keras.backend.backend(), '->', devices.describe(d))
assert d['kind'] == 'GPU' or '${FEMO_ALLOW_CPU:-}', 'Keras does not compute on a GPU here'
" || exit 3
if [ "$mode" = smoke ]; then
    python3 bench/train.py --tiny --pack .gpu/fer2013.npz --recipe gpu 2>&1 | tail -25 || exit 4
    python3 bench/grid.py --tiny --pack .gpu/fer2013.npz --workers 2 2>&1 | tail -5
    exit 0
fi
G=/tmp/femo-gpu
if [ "$mode" = grid ]; then  # only the grid: the cells docs/factors lacks, most informative first, WORKERS at once
    mkdir -p $G/cells $G/logs && cp docs/factors/*.json $G/cells/ 2>/dev/null
    before=$(ls $G/cells/*.json 2>/dev/null | wc -l)
    python3 bench/grid.py --pack .gpu/fer2013.npz --dir $G/cells --workers "${WORKERS:-8}" --minutes "$MIN" \
        ${GRID_CELLS:+--cells $GRID_CELLS} > $G/logs/grid.log 2>&1
    echo "grid finished: $?; $(( $(ls $G/cells/*.json | wc -l) - before )) new cell record(s)"
    grep -E "^cell .*: [0-9]+ images" $G/logs/grid.log | tail -20
    tar czf "$OUT/results.tgz" -C $G logs cells
    exit 0
fi
nvidia-smi dmon -s u -d 10 > $G/logs/dmon.log 2>&1 &
dmon=$!
run_seed() {  # seed, minutes, delay
    sleep "$3"
    mkdir -p "$G/docs$1"
    python3 bench/train.py --recipe gpu --pack .gpu/fer2013.npz --seed "$1" --minutes "$2" --out "$G/seed$1" \
        --export --docs "$G/docs$1" --n-boot 1000 > "$G/logs/seed$1.log" 2>&1
    echo "seed $1 finished: $?"
}
later=$(python3 -c "print(round($MIN - 1.25, 2))")
run_seed 2013 "$MIN" 0 &
p1=$!
run_seed 2014 "$later" "${DELAY:-75}" &
p2=$!
run_seed 2015 "$later" "${DELAY:-75}" &
p3=$!
(sleep "${DELAY:-75}"; python3 bench/grid.py --pack .gpu/fer2013.npz --dir $G/cells --workers "${WORKERS:-5}" \
    --minutes "$later" ${GRID_CELLS:+--cells $GRID_CELLS} > $G/logs/grid.log 2>&1; echo "grid finished: $?") &
p4=$!
wait $p1 $p2 $p3 $p4
kill $dmon 2>/dev/null
tail -3 $G/logs/seed*.log; tail -4 $G/logs/grid.log; ls $G/cells | wc -l
for s in 2013 2014 2015; do cp "$G/seed$s/weights.npz" "$OUT/seed$s.npz" 2>/dev/null; done
tar czf "$OUT/results.tgz" -C $G logs cells docs2013 docs2014 docs2015 \
    $(cd $G && ls seed*/facts.json seed*/history.json 2>/dev/null)
ls -la "$OUT"
