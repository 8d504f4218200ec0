#!/bin/bash
# The command for the device tool (one call): wheels, a CUDA rehearsal of run.sh on 12 files with
# 3-second budgets (a crash there costs a minute, not the window), then the real run under a timeout
# that leaves time to fold the results into $OUT (at most 8 files of 15 MiB).
#   device run: bash recipes/gpu/device.sh      carry: .whl .gpu     timeout_s: 600
set -u
START=$(date +%s); LIMIT=${LIMIT:-575}; DEV_OUT=${OUT:?the device tool sets OUT}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if ! SMOKE=1 OUT=runs/smoke-out WORK=runs/smoke DATA=data/smoke CODEC_MIN=0.05 LM_MIN=0.05 \
        bash recipes/gpu/run.sh > "$DEV_OUT/smoke.log" 2>&1; then
    tail -n 40 runs/smoke/*.log; exit 1
fi
echo "rehearsal passed after $(( $(date +%s) - START )) s"
LEFT=$(( LIMIT - ($(date +%s) - START) - 20 ))
OUT=runs/gpu-out timeout "$LEFT" bash recipes/gpu/run.sh > "$DEV_OUT/run.log" 2>&1
echo "run.sh exit $? after $(( $(date +%s) - START )) s"
cp runs/gpu/*.log runs/gpu-out/ 2>/dev/null
OUT=runs/gpu-out sh recipes/gpu/collect.sh "$DEV_OUT/parts"
tail -n 30 "$DEV_OUT/run.log"
