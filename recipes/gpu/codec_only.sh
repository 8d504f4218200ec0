#!/bin/bash
# A short GPU window for the codec alone: one codec of recipes/gpu/codec.toml (extra overrides in
# $ARGS) trained for $CODEC_MIN minutes, its weights (fp32) folded into $OUT for further training
# on a CPU (`--finetune.init_from`). Carry .whl and .gpu.   device run: bash recipes/gpu/codec_only.sh
set -u
START=$(date +%s); DEV_OUT=${OUT:?the device tool sets OUT}; CODEC_MIN=${CODEC_MIN:-3.5}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
python3 recipes/gpu/unpack_corpus.py data/gpu || exit 1
echo "data ready after $(( $(date +%s) - START )) s"
# shellcheck disable=SC2086
python3 -m audiogen train codec recipes/gpu/codec.toml -o runs/codec --device cuda --quiet \
    --train.max_minutes="$CODEC_MIN" --train.fit_steps_to_budget=true --train.threads=8 ${ARGS:-} 2>&1 | tail -n 5
echo "trained after $(( $(date +%s) - START )) s"
mkdir -p runs/out && cp runs/codec/{config.json,model.safetensors,final_metrics.json,eval_log.csv,train_log.csv,recipe.json} runs/out/
OUT=runs/out sh recipes/gpu/collect.sh "$DEV_OUT/parts"
cat runs/codec/final_metrics.json
