#!/bin/sh
# On the GPU machine, after run.sh: fold $OUT into at most 8 files of at most 15 MiB each under $1
# (the device tool brings back a few files of at most 16 MiB). Unfold here with:
#   cat PARTS/results.tar.part-* | tar -x -C runs/gpu-results
set -eu
OUT=${OUT:-runs/gpu-out}
mkdir -p "$1"
tar -C "$OUT" -cf - . | split -b 15m -a 1 - "$1/results.tar.part-"
ls -la "$1"
