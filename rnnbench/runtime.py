"""Threads and compilation: the settings a measurement must record and keep apart from its timings."""
from __future__ import annotations

import contextlib
import time

import numpy as np


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in rnnbench's kernels: Numba's pool and every BLAS the process loaded."""
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba's np.dot calls: load it to limit it)
    from threadpoolctl import threadpool_limits

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of threads must be a positive int; got {n!r}")
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
    threadpool_limits(limits=int(n))


def get_num_threads() -> int:
    import numba

    return numba.get_num_threads()


def warmup(backend: str = "cpu", cells=("rnn_tanh", "rnn_relu", "lstm", "gru"),
           dtypes=("float32", "float64")) -> dict[tuple[str, str], float]:
    """Compile (or load from Numba's cache) every kernel a forward and backward needs.

    Returns the seconds each (cell, dtype) took: the first-call overhead that timings of the
    kernels themselves must exclude.
    """
    from rnnbench.layers import RecurrentLayer

    seconds = {}
    for cell in cells:
        for dtype in dtypes:
            m = RecurrentLayer(cell, 2, 2, bidirectional=True, backend=backend, dtype=dtype, seed=0)
            x = np.zeros((2, 1, 2), dtype)
            start = time.perf_counter()
            out, _ = m(x)
            m.backward(np.ones_like(out))
            seconds[(cell, dtype)] = time.perf_counter() - start
    return seconds


@contextlib.contextmanager
def pinned_threads(n: int):
    """Run a block with ``n`` kernel threads, then restore: multi-threaded BLAS may sum in another
    order, so experiments that must give the same bits anywhere run under a fixed count."""
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        numba.set_num_threads(before)
