"""track_ benchmarks: one step's recurrent product (``matmul.recurrent``) against numpy's BLAS on
the same shape, in GFLOP/s, measured side by side (medians of repeats after a warm-up, compile
excluded).

Each repeat runs the product ``STEPS`` times in a row, as a forward does: rnnbench's inside one
@njit loop, numpy's as ``np.matmul(a, b, out=...)`` calls from Python (a call costs about a
microsecond, a few percent of the smallest shapes here). The two are timed in alternating blocks,
not call by call: OpenBLAS's threads keep spinning after a call and Numba's after theirs, and
interleaved each ran at a tenth of its rate on the smallest shapes (two cores).
"""
import numpy as np
from numba import njit

from rnnbench.analysis import timing  # not its names: asv would take time_interleaved for a benchmark
from rnnbench.backends.cpu import matmul, threads

from .common import pin_threads

STEPS = 20
# (M, K, N): batch x (hidden, gates x hidden), forward then backward, of the sizes
SHAPES = {"lstm128-b16-fwd": (16, 128, 512), "lstm128-b16-bwd": (16, 512, 128),
          "lstm256-b30-fwd": (30, 256, 1024), "lstm256-b30-bwd": (30, 1024, 256),
          "lstm256-b1-fwd": (1, 256, 1024), "lstm512-b16-fwd": (16, 512, 2048),
          "lstm1024-b16-fwd": (16, 1024, 4096), "lstm1024-b16-bwd": (16, 4096, 1024),
          "gru1024-b32-fwd": (32, 1024, 3072), "rnn1760-b16-fwd": (16, 1760, 1760)}


@njit
def _steps(a, packed, out, parallel, n):
    for _ in range(n):
        matmul.recurrent(a, packed, out, 0, a.shape[0], parallel)


def _numpy_steps(a, b, out, n):
    for _ in range(n):
        np.matmul(a, b, out=out)


def _rates(shape, dtype) -> dict:
    """GFLOP/s of rnnbench's tile and of numpy on one shape."""
    M, K, N = SHAPES[shape]
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
    packed, parallel = matmul.pack(b, transpose=False), threads.use_parallel(M, N, K)
    ours, theirs = np.empty((M, N), dtype), np.empty((M, N), dtype)
    _steps(a, packed, ours, parallel, 1)
    np.testing.assert_allclose(ours, a @ b, rtol=1e-4, atol=1e-4 * np.abs(a @ b).max())
    items = {"rnnbench": timing.Timed(lambda: _steps(a, packed, ours, parallel, STEPS)),
             "numpy": timing.Timed(lambda: _numpy_steps(a, b, theirs, STEPS))}
    samples = {k: [] for k in items}
    for _ in range(3):
        for k, item in items.items():
            samples[k] += timing.time_interleaved({k: item}, repeats=5)[k].samples
    flops = 2 * M * K * N * STEPS
    return {k: flops / np.median(v) / 1e9 for k, v in samples.items()}


class TrackRecurrentProduct:
    params = [list(SHAPES), ["float32", "float64"]]
    param_names = ["shape", "dtype"]
    unit = "GFLOP/s"
    timeout = 600

    def setup_cache(self):
        """Every shape once, for all three tracks."""
        pin_threads()
        return {(shape, dtype): _rates(shape, dtype) for shape in SHAPES for dtype in ("float32", "float64")}

    def track_rnnbench(self, rates, shape, dtype):
        return rates[(shape, dtype)]["rnnbench"]

    def track_numpy(self, rates, shape, dtype):
        return rates[(shape, dtype)]["numpy"]

    def track_ratio(self, rates, shape, dtype):
        return rates[(shape, dtype)]["rnnbench"] / rates[(shape, dtype)]["numpy"]

    track_ratio.unit = "x (rnnbench / numpy)"
