#!/usr/bin/env bash
# GPU check and throughput table for a machine with an NVIDIA GPU, in one run of under 5 minutes.
#
#   bash bench/device.sh            # from the repository root, on the GPU machine
#
# Builds what it needs (a virtualenv in .venv-device with the CUDA build of torch and idx),
# makes a random-weight ViT-B-32 checkpoint (no download), generates photo-like JPEGs, then:
#   1. checks GPU vectors against CPU vectors on 256 images (mean and min cosine; target >= 0.999);
#   2. measures the model alone and `idx add` end to end on the GPU for several batch sizes and
#      decode worker counts (threads), and decoding alone with threads and with processes;
#   3. prints one table. Ratios are measured in the same run (end-to-end / model-only).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-device
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q torch torchvision
    "$VENV/bin/python" -m pip install -q -e .
fi
export IDX_BENCH_OUT=${IDX_BENCH_OUT:-/tmp/idx-bench-device}
exec "$VENV/bin/python" bench/device.py "$@"
