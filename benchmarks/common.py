"""What every benchmark shares: pinned threads, sizes, and models with their data made once."""
import os

import numpy as np

import rnnbench as rb
from rnnbench.backends import available
from rnnbench.layers import RecurrentLayer

# Histories compare like with like only at a fixed thread count (numba, BLAS); override with
# RNNBENCH_ASV_THREADS for a machine of your own.
THREADS = int(os.environ.get("RNNBENCH_ASV_THREADS", "1"))

# CI's smoke run (.ci/run) proves that every benchmark runs, not what it measures: with
# RNNBENCH_ASV_SMOKE=1 the sizes shrink to the smallest and the cold compile to one cell (asv's
# quick run took 333 s of CI's 20 minutes without it).
SMOKE = os.environ.get("RNNBENCH_ASV_SMOKE") == "1"

CELLS = ["rnn_tanh", "lstm", "gru"]
COMPILED_CELLS = CELLS[:1] if SMOKE else CELLS  # TrackCompile: each a cold compile in a fresh cache
BACKENDS = ["cpu", "reference", "cuda"]
# (T, B, I, H): small; the seeds' stock example; DeepBench's LSTM 512/16/25 (input = hidden)
SIZES = {"small": (50, 8, 32, 32), "seeds": (100, 30, 4, 256), "deepbench": (25, 16, 512, 512)}
if SMOKE:
    SIZES = {"small": SIZES["small"]}


def pin_threads():
    rb.set_num_threads(THREADS)


def model_and_data(cell, backend, size, dtype="float32", seed=0):
    """A model (kernels compiled by one untimed call) and its input and output gradient.

    A backend this machine lacks (cuda without a GPU) raises NotImplementedError, which asv
    reports as a skipped benchmark.
    """
    if backend not in available():
        raise NotImplementedError(f"backend {backend!r} is not available here")
    pin_threads()
    T, B, I, H = SIZES[size]
    try:
        m = RecurrentLayer(cell, I, H, backend=backend, dtype=dtype, seed=seed)
    except RuntimeError as e:  # cuda without a GPU
        raise NotImplementedError(str(e)) from None
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    go = rng.standard_normal((T, B, H)).astype(dtype)
    m(x)
    m.backward(go)
    return m, x, go
