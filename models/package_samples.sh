#!/usr/bin/env bash
# Package the digits sample models the way an operator would: profile -> evaluate -> package.
# Writes models/packages/digits-<variant>-<format>/ (model, manifest.json, profile.json and,
# for int8, evaluation.json against the fp32 model on the held-out split).
# Run from the repository root after `make venv`:  bash models/package_samples.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EA=${EA:-.venv/bin/edge-agent}
DATA=models/digits/test_set.npz   # held out from training: what drift is measured against
OUT=models/packages
rm -rf "$OUT"
mkdir -p "$OUT"
for format in tflite onnx; do
  for variant in fp32 int8; do
    model=models/digits/digits_${variant}.${format}
    work=$(mktemp -d)
    "$EA" convert profile "$model" --data "$DATA" -o "$work/profile.json" > /dev/null
    eval_args=()
    if [ "$variant" = int8 ]; then
      "$EA" convert evaluate "$model" --reference "models/digits/digits_fp32.${format}" \
        --data "$DATA" --output "$work/evaluation.json" > /dev/null
      eval_args=(--eval "$work/evaluation.json")
    fi
    "$EA" convert package "$model" --name digits --version 1.0.0 \
      --profile "$work/profile.json" "${eval_args[@]}" --labels models/digits/labels.txt \
      -o "$OUT/digits-${variant}-${format}"
    rm -rf "$work"
  done
done
du -sh "$OUT"/*
