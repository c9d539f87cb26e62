"""Threads and compilation: the settings a measurement must record and keep apart from its timings."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in rnnbench's kernels: Numba's pool and every BLAS the process loaded,
    but for the BLAS Numba calls itself (scipy's), which runs single-threaded inside Numba's
    threads (``backends/cpu/matmul.py`` says why)."""
    import numba

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of threads must be a positive int; got {n!r}")
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
    controller = _blas_controller()
    controller.limit(limits=int(n), user_api="blas")
    numba_blas(controller).limit(limits=1)


_MALLOC_KEPT = {"applied": None}


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for the next allocation instead of returning it.

    Every forward allocates its tape (tens of MiB at the seeds' sizes) and frees the previous one;
    by default glibc unmaps blocks above its mmap threshold on free, and the next allocation pays a
    page fault per 4 KiB page: measured on this project's 2-core VM, 5,500 faults and 25 of the 40
    ms of an LSTM forward at (T, B, I, H) = (100, 30, 4, 256). With allocations up to 32 MiB served
    from the heap and up to 1 GiB of freed heap kept, the same forward took 15.5 ms with no fault.
    Process-wide (torch, measured in the same process, gets it too); a no-op off glibc. Returns
    whether it applied.
    """
    if _MALLOC_KEPT["applied"] is None:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            _MALLOC_KEPT["applied"] = False
        else:
            M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
            _MALLOC_KEPT["applied"] = bool(mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, 1 << 30))
    return _MALLOC_KEPT["applied"]


def _blas_controller():
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba's np.dot calls: load it to limit it)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def numba_blas(controller=None):
    """threadpoolctl's handle on the BLAS behind Numba's np.dot: the one scipy ships. Where numpy
    and scipy share one BLAS library (some conda installs) it is that library, numpy's too."""
    import scipy

    controller = controller or _blas_controller()
    root = str(Path(scipy.__file__).parent)
    own = [lib for lib in controller.lib_controllers
           if lib.user_api == "blas" and lib.filepath.startswith((root, root + ".libs"))]
    return controller.select(filepath=[lib.filepath for lib in own]) if own else controller.select(user_api="blas")


def single_threaded_numba_blas() -> None:
    numba_blas().limit(limits=1)


def get_num_threads() -> int:
    import numba

    return numba.get_num_threads()


def warmup(backend: str = "cpu", cells=("rnn_tanh", "rnn_relu", "lstm", "gru"),
           dtypes=("float32", "float64")) -> dict[tuple[str, str], float]:
    """Compile (or load from Numba's cache) every kernel a forward and backward needs.

    Returns the seconds each (cell, dtype) took: the first-call overhead that timings of the
    kernels themselves must exclude.
    """
    from rnnbench.backends import get_backend
    from rnnbench.layers import RecurrentLayer

    shapes = get_backend(backend).WARMUP_SHAPES
    seconds = {}
    for cell in cells:
        for dtype in dtypes:
            start = time.perf_counter()
            for batch, hidden in shapes:
                m = RecurrentLayer(cell, 2, hidden, bidirectional=True, backend=backend, dtype=dtype, seed=0)
                out, _ = m(np.zeros((2, batch, 2), dtype))
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
            single_threaded_numba_blas()
            yield
    finally:
        numba.set_num_threads(before)
