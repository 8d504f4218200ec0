#!/bin/bash
# One GPU window for the default model v2: the language model on the bundled codec's tokens of the
# 12 h corpus (recipes/gpu/lm75.toml) and, side by side, the bundled codec's decoder fine-tuned with the
# adversarial losses (encoder and quantizer frozen, so the tokens and the LM stay valid), each for
# $MIN minutes; what they make is folded into $OUT (at most 8 files of 15 MiB). A rerun resumes both.
# Prepare (CPU): sh recipes/gpu/pack.sh; python3 recipes/gpu/pack_v2.py --tokens data/tokens12 --hours 1.5
# device run: bash recipes/gpu/default_v2.sh    carry: .whl .gpu    timeout_s: 540
# Rehearse on a CPU: SMOKE=1 DEVICE=cpu OUT=runs/v2-smoke-out bash recipes/gpu/default_v2.sh
set -u
START=$(date +%s); DEV_OUT=${OUT:?the device tool sets OUT}; MIN=${MIN:-6.5}; DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-0}; WORK=${WORK:-runs/v2}; DATA=${DATA:-data/gpu}; PY=${PY:-python3}
if ! $PY -c "import encodec, soundfile, pretty_midi, mir_eval" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
[ "$DEVICE" = cpu ] || nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p "$WORK" "$DATA/tokens"
[ -f "$DATA/tokens/index.json" ] || $PY -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')" \
    .gpu/tokens.tar.xz "$DATA/tokens" || exit 1
KEEP=0; [ "$SMOKE" = 1 ] && KEEP=6
$PY recipes/gpu/unpack_corpus.py "$DATA" --tar .gpu/audio.tar --keep "$KEEP" || exit 1
echo "data ready after $(( $(date +%s) - START )) s"
if [ "$SMOKE" = 1 ]; then
    LM_ARGS=(--train.batch_size=2 --data.val_crops=2 --model.dim=32 --model.num_layers=1 --model.num_heads=2
             --model.context=100 --data.crop_seconds=2 --train.threads=1 --train.warmup_steps=40 --train.eval_every=20)
    DEC_ARGS=(--train.batch_size=2 --data.val_crops=2 --data.val_seconds=1.0 --losses.disc_filters=4
              --losses.mpd_filters=4 --train.threads=1)
else
    LM_ARGS=() DEC_ARGS=()
fi
resume() { [ -f "$1/train_state.safetensors" ] && echo --resume; }
$PY -m audiogen train lm recipes/gpu/lm75.toml -o "$WORK/lm" $(resume "$WORK/lm") --device "$DEVICE" --quiet \
    --data.dataset="$DATA/tokens" --train.max_minutes="$MIN" --train.fit_steps_to_budget=true \
    "${LM_ARGS[@]}" > "$WORK/lm.log" 2>&1 &
$PY -m audiogen train codec recipes/default/decoder.toml -o "$WORK/decoder" $(resume "$WORK/decoder") \
    --device "$DEVICE" --quiet --data.root="$DATA/audio" --finetune.init_from=audiogen/default_model/codec \
    --losses.discriminator=msstft+mpd --train.batch_size=32 --train.threads=4 --train.eval_every=100000 \
    --train.checkpoint_every=500 --train.max_minutes="$MIN" --train.fit_steps_to_budget=true \
    "${DEC_ARGS[@]}" > "$WORK/decoder.log" 2>&1 &
wait
echo "trained after $(( $(date +%s) - START )) s"
tail -n 4 "$WORK/lm.log" "$WORK/decoder.log"
R=$WORK/out
# What comes back is at most about 60 MiB in all (on 2026-11-27 a fifth 15 MiB part did not come back): the LM's best
# model (fp32, 29 MB; its last one only in the train state, which stays there) and the decoder (17 MB).
for d in lm lm/best decoder; do
    mkdir -p "$R/$d"
    cp "$WORK/$d"/{config.json,final_metrics.json,eval_log.csv,train_log.csv,recipe.json,best.json} "$R/$d/" 2>/dev/null
done
cp "$WORK/lm/best/model.safetensors" "$R/lm/best/" && cp "$WORK/decoder/model.safetensors" "$R/decoder/"
cp "$WORK"/*.log "$R/"
OUT=$R sh recipes/gpu/collect.sh "$DEV_OUT/parts"
cat "$WORK/lm/final_metrics.json" "$WORK/lm/best/best.json" "$WORK/decoder/final_metrics.json"
