#!/bin/sh
# The default recipe's whole pipeline at toy size: about 10 minutes on 2 CPU cores.
# corpus (0.3 h) -> codec -> tokens -> MIDI-conditioned LM -> eval -> a render of samples/sketch.mid
set -eu
cd "$(dirname "$0")/../.."
AG=${AG:-.venv/bin/audiogen}
resume() { [ -f "$1/train_state.safetensors" ] && echo --resume || true; }
$AG corpus -o data/tiny/corpus --hours 0.3 --seed 1 --max-piece-seconds 40
$AG train codec recipes/tiny/codec.toml -o runs/tiny-codec $(resume runs/tiny-codec)
$AG tokenize data/tiny/corpus/audio --codec runs/tiny-codec -o data/tiny/tokens
$AG train lm recipes/tiny/lm.toml -o runs/tiny-lm $(resume runs/tiny-lm)
$AG eval --corpus data/tiny/corpus --model runs/tiny-lm --files 3 --seconds 6 --loops 2 --val-fraction 0.1 \
    --json runs/tiny-eval.json
$AG render samples/sketch.mid -o runs/tiny-render.wav --model runs/tiny-lm --plot
