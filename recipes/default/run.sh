#!/bin/sh
# The bundled default model, end to end: corpus -> codec -> tokens -> MIDI-conditioned LM ->
# (optional decoder fine-tuning) -> fp16 export into audiogen/default_model/.
# Every step is resumable: re-run this script after an interruption and it carries on.
# CPU: works as is (hours; see README.md here). One GPU: add --device cuda to the train lines.
# Several GPUs/machines: replace `audiogen train` by `torchrun --nproc_per_node N -m audiogen train`.
set -eu
cd "$(dirname "$0")/../.."
AG=${AG:-.venv/bin/audiogen}
CODEC_STEPS=${CODEC_STEPS:-3800}   # joint codec training stops here (schedule of 12000); then tokens are frozen

$AG corpus -o data/corpus --hours 4 --seed 0
resume() { [ -f "$1/train_state.safetensors" ] && echo --resume || true; }
$AG train codec recipes/default/codec.toml -o runs/codec $(resume runs/codec) --train.stop_after="$CODEC_STEPS"
mkdir -p runs/codec-joint && cp runs/codec/config.json runs/codec/model.safetensors runs/codec-joint/
$AG tokenize data/corpus/audio --codec runs/codec-joint -o data/tokens
$AG train lm recipes/default/lm.toml -o runs/lm $(resume runs/lm)
# Optional (DECODER_STEPS=6000): a better decoder for the same tokens. The bundled model skipped it
# (no CPU time left in its session), so by default the export uses the jointly trained codec.
DECODER_STEPS=${DECODER_STEPS:-0}
if [ "$DECODER_STEPS" -gt 0 ]; then
    $AG train codec recipes/default/decoder.toml -o runs/decoder $(resume runs/decoder) \
        --finetune.init_from=runs/codec-joint --train.stop_after="$DECODER_STEPS"
    $AG export runs/lm --codec runs/decoder -o audiogen/default_model --dtype fp16
else
    $AG export runs/lm -o audiogen/default_model --dtype fp16
fi
$AG eval --corpus data/corpus --json runs/eval.json
