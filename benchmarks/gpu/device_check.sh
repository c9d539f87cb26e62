#!/usr/bin/env bash
# One call on a lent GPU (the `device` tool), from the repository root: the benchmark against cuDNN,
# the cuda tests on the real GPU (no simulator), then `rnnbench run` end to end on the cuda backend
# beside the cudnn baseline (CUDA-event clocks, device memory, the path column; checked here only
# under the simulator, and cudnn with torch's CPU modules standing in). Everything lands in
# $OUT as it goes; each part has its own time limit (BENCH_S, TESTS_S, RUN_S).
#   device run: bash benchmarks/gpu/device_check.sh   (timeout_s about 510)
set -uo pipefail
OUT=${OUT:-/tmp/rnnbench-gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1  # the image has numba-cuda, torch, click, rich, pandas: no install needed
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
  python3 -c "import numba, torch, numpy; print('numba', numba.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__, 'cudnn', torch.backends.cudnn.version())"
  python3 -m pip show numba-cuda 2>/dev/null | head -2; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
timeout ${BENCH_S:-220} python3 benchmarks/gpu/vs_cudnn.py "$OUT/vs_cudnn.csv" ${BENCH_BUDGET:-180} 2>&1 | tee "$OUT/bench.log"
echo "bench exit $?"
timeout ${TESTS_S:-200} python3 -m pytest -q -x -p no:cacheprovider tests/cuda_backend > "$OUT/tests.log" 2>&1
echo "tests exit $?" | tee -a "$OUT/tests.log"; tail -5 "$OUT/tests.log"
timeout ${RUN_S:-60} python3 -c "from rnnbench.cli import main; main()" run --backends cuda,cudnn \
  --cells lstm,gru,rnn_tanh --seq-lens 25 --batch 4 --hidden-size 512 --input-size hidden --repeats 5 \
  --memory-backends cuda --quiet -o "$OUT/run" > "$OUT/run.log" 2>&1
echo "run exit $?" | tee -a "$OUT/run.log"; tail -3 "$OUT/run.log"
