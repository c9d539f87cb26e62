"""track_ benchmarks: what a timer cannot see. A step in one of these histories is a change in
compile cost, throughput, gradient behaviour or numerical agreement."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from rnnbench.analysis.gradients import decay_experiment
from rnnbench.analysis.runners import Config
from rnnbench.analysis.speed import measure_speed
from rnnbench.analysis.truncation import truncation_experiment
from rnnbench.layers import RecurrentLayer

from .common import CELLS, COMPILED_CELLS, THREADS, pin_threads

COMPILE_SCRIPT = """
import json, time
import rnnbench as rb
start = time.perf_counter()
rb.warmup(cells=({cell!r},), dtypes=("float32",))
print(json.dumps(time.perf_counter() - start))
"""


class TrackCompile:
    params = [COMPILED_CELLS]
    param_names = ["cell"]
    unit = "seconds"
    timeout = 300

    def track_compile_seconds(self, cell):
        """First-call cost of a cell's kernels in a fresh process with an empty Numba cache."""
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            out = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT.format(cell=cell)], env=env,
                                 check=True, capture_output=True, text=True).stdout
        return json.loads(out)


class TrackThroughput:
    params = [CELLS]
    param_names = ["cell"]
    unit = "GFLOP/s"
    timeout = 300

    def track_gflops_fwd_bwd(self, cell):
        """Forward+backward GFLOP/s of the cpu backend at the seeds' stock size."""
        rows = measure_speed(Config(cell, 100, 30, 4, 256), backends=("cpu",), repeats=5,
                             threads=THREADS, gemm=False)
        return next(r["value"] for r in rows if r["metric"] == "gflops" and r["phase"] == "fwd+bwd")


class TrackGradients:
    params = [CELLS]
    param_names = ["cell"]
    unit = "ratio"

    def setup(self, cell):
        pin_threads()

    def track_decay_rate(self, cell):
        """Fitted per-step factor of ||dL/dh_k|| (LSTM: the cell path) at scale 1, orthogonal."""
        rows = decay_experiment(cell, 100, 32, 1.0, seeds=(0, 1), batch=4)
        metric = "cell_decay_rate" if cell == "lstm" else "decay_rate"
        return next(r["value"] for r in rows if r["metric"] == metric)

    def track_truncated_cosine_k10(self, cell):
        """Cosine of the k=10 truncated gradient (all parameters) with full BPTT, T=100."""
        rows = truncation_experiment(Config(cell, 100, 4, 16, 32, dtype="float64"), [10], cost=False)
        return next(r["value"] for r in rows if r["metric"] == "grad_cosine" and r["param"] == "all")


class TrackNumerics:
    params = [CELLS, ["float32", "float64"]]
    param_names = ["cell", "dtype"]
    unit = "max abs error"

    def track_max_error_vs_reference(self, cell, dtype):
        """Largest difference of the output and every gradient, cpu against the NumPy oracle."""
        pin_threads()
        rng = np.random.default_rng(0)
        x = rng.standard_normal((50, 4, 16)).astype(dtype)
        go = rng.standard_normal((50, 4, 2 * 32)).astype(dtype)
        results = []
        for backend in ("cpu", "reference"):
            m = RecurrentLayer(cell, 16, 32, num_layers=2, bidirectional=True, backend=backend,
                               dtype=dtype, seed=0)
            out, _ = m(x)
            results.append(dict(m.backward(go), out=out))
        return float(max(np.abs(results[0][k] - results[1][k]).max() for k in results[1]))
