#!/usr/bin/env bash
# GPU check and throughput table for a machine with an NVIDIA GPU, in one run of under 5 minutes.
#
#   bash bench/device.sh                         # from the repository root, on the GPU machine
#   IDX_WHEELS=DIR bash bench/device.sh          # offline: missing packages from wheels in DIR
#   IDX_DEVICE_TESTS=0 bash bench/device.sh      # the table only, without the GPU tests
#
# Builds what it needs, then runs the GPU tests (tests/test_devices.py) and bench/device.py:
#   - a Python that already has a CUDA build of torch (python3, or $PYTHON) keeps it: idx is
#     installed into it (pip install -e .), or with IDX_WHEELS set (no network), the wheels in
#     that folder go to .venv-device/site, which PYTHONPATH names beside src/;
#   - otherwise a virtualenv .venv-device gets torch and idx from the package index.
# bench/device.py makes a random-weight ViT-B-32 checkpoint (no download) and photo-like JPEGs,
# checks GPU vectors against CPU vectors (256 images, target cosine >= 0.999), measures the model
# alone and `idx add` end to end for several batch sizes and decode threads, decoding alone with
# threads, processes and the GPU's JPEG decoder, and prints one table.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
HERE=.venv-device
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    mkdir -p "$HERE/site"
    if [ -n "${IDX_WHEELS:-}" ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$HERE/site" "$IDX_WHEELS"/*.whl
        export PYTHONPATH="$PWD/src:$PWD/$HERE/site${PYTHONPATH:+:$PYTHONPATH}"
    else
        "$PY" -m pip install -q -e .  # into this Python: its CUDA torch satisfies idx's torch
    fi
else
    if [ ! -x "$HERE/bin/python" ]; then
        "$PY" -m venv "$HERE"
        "$HERE/bin/python" -m pip install -q --upgrade pip
        "$HERE/bin/python" -m pip install -q torch torchvision
        "$HERE/bin/python" -m pip install -q -e .
    fi
    PY=$HERE/bin/python
fi
export IDX_BENCH_OUT=${IDX_BENCH_OUT:-/tmp/idx-bench-device}
tests=0
[ "${IDX_DEVICE_TESTS:-1}" = 0 ] || "$PY" -m pytest -q -p no:cacheprovider tests/test_devices.py tests/test_decode_processes.py || tests=$?
"$PY" bench/device.py "$@"
exit "$tests"  # the table is printed either way; a failed GPU test still fails the script
