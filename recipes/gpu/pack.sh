#!/bin/sh
# Prepare, on the CPU machine, everything recipes/gpu/run.sh needs on a GPU machine that has torch but
# no network: wheels for what it lacks (.whl/) and the corpus as Opus + MIDI (.gpu/corpus.tar), 64 MiB
# at most together (the device tool's carry limit). Both folders are git-ignored.
#   sh recipes/gpu/pack.sh            (after `audiogen corpus -o data/corpus --hours 4 --seed 0`)
set -eu
cd "$(dirname "$0")/../.."
CORPUS=${CORPUS:-data/corpus/audio}
OPUS_KBPS=${OPUS_KBPS:-20}   # 4 h of corpus at 20 kbps VBR: about 45 MB; the band up to 12 kHz stays
PY=${PY:-.venv/bin/python}

mkdir -p .whl .gpu/corpus/audio
if [ ! -f .whl/.done ]; then
    $PY -m pip wheel -q --no-deps -w .whl encodec
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl librosa==0.11.0 soundfile cffi pycparser pretty_midi \
        importlib_resources mido soxr audioread pooch platformdirs decorator mir_eval
    touch .whl/.done
fi
# At 16-20 kbps Opus keeps the band up to 12 kHz of these files (measured on 20 of them: 98-99 % of
# the energy share above 8 kHz; at 14 kbps it falls to 70 %); ffmpeg handles the pre-skip, so the decoded
# file has the original's exact length. Two encoders at a time.
ls "$CORPUS"/*.wav | xargs -P 2 -I{} sh -c '
    name=$(basename "{}" .wav); out=.gpu/corpus/audio/$name.ogg
    [ -f "$out" ] || { ffmpeg -loglevel error -nostdin -y -i "{}" -c:a libopus -b:a '"$OPUS_KBPS"'k "$out.tmp.ogg" \
        && mv "$out.tmp.ogg" "$out"; }'
for wav in "$CORPUS"/*.wav; do
    [ -f "${wav%.wav}.mid" ] && cp "${wav%.wav}.mid" .gpu/corpus/audio/
done
tar -C .gpu -cf .gpu/corpus.tar corpus
rm -rf .gpu/corpus
du -ch .whl .gpu/corpus.tar | tail -1
