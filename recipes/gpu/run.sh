#!/bin/bash
# One GPU window, as one prepared run: codec ablation cells in parallel -> pick the codec by a rule
# fixed in advance -> tokens -> language model || decoder fine-tune (in parallel) -> fp16 export.
# Every stage has a wall-clock budget (train.max_minutes + fit_steps_to_budget), so the run fits the
# window; every stage leaves its results under $OUT as soon as it ends, so a failure later still
# brings back what came before. A rerun skips finished stages and resumes unfinished ones.
#
# Prepare on the CPU machine:  sh recipes/gpu/pack.sh      (wheels in .whl/, corpus in .gpu/corpus.tar)
# Run on the GPU machine:      bash recipes/gpu/run.sh     (carry .whl and .gpu; results in $OUT)
# Rehearse on a CPU:           SMOKE=1 DEVICE=cpu OUT=runs/gpu-smoke bash recipes/gpu/run.sh
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/gpu-out}
DEVICE=${DEVICE:-cuda}
CODEC_MIN=${CODEC_MIN:-1.0}    # per codec cell ($PARALLEL at a time: 3 rounds for 6 cells)
LM_MIN=${LM_MIN:-2.5}          # the LM and the decoder fine-tune run side by side
SMOKE=${SMOKE:-0}              # 1: a few files and seconds, to rehearse the script anywhere
PARALLEL=${PARALLEL:-2}        # cells at a time: six side by side on one H100 summed to fewer steps than one alone
PY=${PY:-python3}
WORK=${WORK:-runs/gpu}
DATA=${DATA:-data/gpu}
mkdir -p "$OUT" "$WORK" "$DATA"
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/run.log"; }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True

# ---- 0. what the GPU machine lacks (see ../shared/gpu/README.md): wheels carried in .whl/
if ! $PY -c "import encodec, soundfile, pretty_midi, mir_eval" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { log "wheel install failed"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD
fi
AG="$PY -m audiogen"
$AG info 2>&1 | tee -a "$OUT/run.log"

# ---- 1. data: the Opus corpus back to WAV under the same names (so the same files are held out)
KEEP=0; [ "$SMOKE" = 1 ] && KEEP=12
$PY recipes/gpu/unpack_corpus.py "$DATA" --keep "$KEEP" || { log "corpus unpack failed"; exit 1; }
log "data: $(ls "$DATA"/audio/*.wav | wc -l) WAV files"

if [ "$SMOKE" = 1 ]; then
    SMOKE_ARGS=(--train.batch_size=2 --data.val_crops=2 --data.val_seconds=1.0 --model.n_filters=4 --model.istft_dim=32
                --model.istft_layers=1 --losses.disc_filters=4 --train.threads=1 --train.warmup_steps=40)
    LM_SMOKE=(--train.batch_size=2 --data.val_crops=2 --model.dim=32 --model.num_layers=1 --model.num_heads=2
              --train.threads=1 --data.crop_seconds=4 --train.warmup_steps=40)
else
    SMOKE_ARGS=() LM_SMOKE=()
fi
resume() { [ -f "$1/train_state.safetensors" ] && echo --resume; }
done_run() { [ -f "$1/final_metrics.json" ] && $PY -c "import json,sys; m=json.load(open(sys.argv[1])); sys.exit(0 if m['step']>=m['schedule_steps'] or m.get('stopped_by_time_budget') else 1)" "$1/final_metrics.json"; }

# ---- 2. codec cells at equal wall time, side by side: decoder x frame rate x adversarial
# Each rate keeps the iSTFT's hop at 320 samples (n_fft 1280): 3, 2 or 1 STFT frames per latent frame.
R25="--model.ratios=[8,6,5,4] --model.num_codebooks=12 --model.max_codebooks=24 --model.istft_subframes=3"
R37="--model.ratios=[8,5,4,4] --model.num_codebooks=8 --model.max_codebooks=16 --model.istft_subframes=2"
R75="--model.ratios=[8,5,4,2] --model.num_codebooks=4 --model.max_codebooks=8 --model.istft_subframes=1"
NOADV="--losses.adversarial=0 --losses.feature=0"
declare -A CELLS=(
    [istft25]="$R25" [istft37]="$R37" [istft75]="$R75" [conv75]="$R75 --model.decoder=conv"
    [istft25-noadv]="$R25 $NOADV" [conv75-noadv]="$R75 --model.decoder=conv $NOADV"
)
log "codec cells: ${!CELLS[*]} ($CODEC_MIN min each, $PARALLEL at a time)"
for name in "${!CELLS[@]}"; do
    dir=$WORK/codec-$name
    done_run "$dir" && continue
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n; done
    # shellcheck disable=SC2086
    $AG train codec recipes/gpu/codec.toml -o "$dir" $(resume "$dir") --device "$DEVICE" --quiet \
        --data.root="$DATA/audio" --train.max_minutes="$CODEC_MIN" --train.fit_steps_to_budget=true \
        ${CELLS[$name]} "${SMOKE_ARGS[@]}" > "$WORK/codec-$name.log" 2>&1 &
done
wait
for name in "${!CELLS[@]}"; do
    tail -n 3 "$WORK/codec-$name.log" | sed "s/^/  $name: /" | tee -a "$OUT/run.log"
done

# The rule, fixed before any result: among the adversarial cells, the lowest frame rate whose held-out
# mel distance is within 15 % of the best 75 Hz cell's; at that rate, the decoder with the lower mel.
CHOICE=$($PY - "$WORK" <<'PY'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
def metrics(name):
    f = work / f"codec-{name}" / "final_metrics.json"
    return json.loads(f.read_text()) if f.exists() else None
cells = {n: metrics(n) for n in ["istft25", "istft37", "istft75", "conv75"]}
cells = {n: m for n, m in cells.items() if m and m.get("val_mel") == m.get("val_mel")}
ref = min((m["val_mel"] for n, m in cells.items() if n.endswith("75")), default=None)
for rate in ("25", "37", "75"):
    here = {n: m for n, m in cells.items() if n.endswith(rate)}
    if here and (ref is None or min(m["val_mel"] for m in here.values()) <= 1.15 * ref or rate == "75"):
        print(min(here, key=lambda n: here[n]["val_mel"]))
        break
PY
)
[ -n "$CHOICE" ] || { log "no codec cell finished"; exit 1; }
log "chosen codec: $CHOICE"
CODEC=$WORK/codec-$CHOICE
mkdir -p "$OUT/cells"
for d in "$WORK"/codec-*/; do
    n=$(basename "$d"); mkdir -p "$OUT/cells/$n"
    cp "$d"/{final_metrics.json,eval_log.csv,train_log.csv,recipe.json} "$OUT/cells/$n/" 2>/dev/null
done

# ---- 3. tokens with the chosen codec
$AG tokenize "$DATA/audio" --codec "$CODEC" -o "$DATA/tokens" --device "$DEVICE" --quiet 2>&1 | tail -2 | tee -a "$OUT/run.log"

# ---- 4. the language model || the chosen codec's decoder, fine-tuned with the tokens frozen
if ! done_run "$WORK/lm"; then
    $AG train lm recipes/gpu/lm.toml -o "$WORK/lm" $(resume "$WORK/lm") --device "$DEVICE" --quiet \
        --data.dataset="$DATA/tokens" --train.max_minutes="$LM_MIN" --train.fit_steps_to_budget=true \
        "${LM_SMOKE[@]}" > "$WORK/lm.log" 2>&1 &
fi
if ! done_run "$WORK/decoder"; then
    # shellcheck disable=SC2086
    $AG train codec recipes/gpu/codec.toml -o "$WORK/decoder" $(resume "$WORK/decoder") --device "$DEVICE" --quiet \
        --data.root="$DATA/audio" --train.max_minutes="$LM_MIN" --train.fit_steps_to_budget=true \
        --finetune.init_from="$CODEC" --finetune.decoder_only=true --train.lr=2e-4 --train.seed=1 \
        ${CELLS[$CHOICE]} "${SMOKE_ARGS[@]}" > "$WORK/decoder.log" 2>&1 &
fi
wait
tail -n 3 "$WORK/lm.log" "$WORK/decoder.log" | tee -a "$OUT/run.log"
for d in lm decoder; do
    mkdir -p "$OUT/$d" && cp "$WORK/$d"/{final_metrics.json,eval_log.csv,train_log.csv,recipe.json} "$OUT/$d/" 2>/dev/null
done

# ---- 5. export: the LM with the fine-tuned decoder where it measured better than the joint one
BEST=$($PY - "$CODEC" "$WORK/decoder" <<'PY'
import json, sys
from pathlib import Path
joint, dec = (Path(p) for p in sys.argv[1:])
def mel(d):
    try:
        return json.loads((d / "final_metrics.json").read_text())["val_mel"]
    except (OSError, KeyError, ValueError):
        return float("inf")
print(dec if (dec / "model.safetensors").exists() and mel(dec) < mel(joint) else joint)
PY
)
log "codec exported: $BEST"
$AG export "$WORK/lm" -o "$OUT/model" --codec "$BEST" --dtype fp16 2>&1 | tee -a "$OUT/run.log"
log "done"
