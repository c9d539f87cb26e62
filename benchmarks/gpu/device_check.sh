#!/usr/bin/env bash
# One call on a lent GPU (the `device` tool), from the repository root: the cuda tests on the real
# GPU (no simulator), then rnnbench-cuda against cuDNN. Everything lands in $OUT as it goes.
#   device run: bash benchmarks/gpu/device_check.sh   (timeout_s about 480)
set -uo pipefail
OUT=${OUT:-/tmp/rnnbench-gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD  # the image has numba-cuda, torch, click, rich, pandas: no install needed
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import numba, torch; print('numba', numba.__version__, 'torch', torch.__version__)"; } > "$OUT/env.txt" 2>&1
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/cuda_backend > "$OUT/tests.log" 2>&1
echo "tests exit $?" >> "$OUT/tests.log"
timeout 260 python3 benchmarks/gpu/vs_cudnn.py "$OUT/vs_cudnn.csv" 230 > "$OUT/bench.log" 2>&1
echo "bench exit $?" >> "$OUT/bench.log"
