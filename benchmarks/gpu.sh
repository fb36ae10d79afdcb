#!/usr/bin/env bash
# ResNet-50 at 224x224 on every GPU of this machine (MirroredStrategy), ours against
# keras.applications' ResNet50, with mixed precision and XLA: first on synthetic data,
# then on the real Trainer input (transformed TFRecords of a short pipeline run at 224 px).
# Installs nothing beyond the lock (`make venv`); a few minutes on a recent GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory venv
export TF_USE_LEGACY_KERAS=1 PYTHONWARNINGS=ignore::FutureWarning
SETTINGS=(--image-size-px 224 --batch-size-per-replica 128 --steps 20 --rounds 3
          --mixed-precision on --jit-compile on)

.venv/bin/python -m benchmarks.model_speed "${SETTINGS[@]}" --data synthetic

export OUTPUT_DIR=outputs/bench-gpu PIPELINE_NAME=bench-gpu IMAGE_SIZE_PX=224 \
       TRAIN_EPOCHS=1 WARMUP_STEPS=5 MIN_ACCURACY=0
make --no-print-directory pipeline > outputs/bench-gpu.log
.venv/bin/python -m benchmarks.model_speed "${SETTINGS[@]}" --data transformed
