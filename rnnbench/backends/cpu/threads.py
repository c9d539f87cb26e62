"""How the cpu backend splits its work over Numba's threads.

A parallel launch costs about a microsecond on an idle machine and a scheduler quantum (3 ms
measured) when another process holds a core, so small work stays on one thread (``use_parallel``).

The rows of a batch are independent sequences: a recurrence splits into parts of the batch, each
running every step of its rows on a thread of its own, without a launch or a barrier per step, and
each step's gate math stays with the rows its product just made (``batch_split``, ``run_parts``).
One sequence, a batch too small to give each thread 4 rows, or a W_hh too large for the threads
to read whole every step from a shared cache, splits each step's product over its panels of
columns instead, the gate math on one thread.

A kernel's gate loops run over views of its part's rows from row 0 (``a[lo:hi]``), not over rows
lo .. hi-1 of the whole arrays: with those bounds LLVM kept the vectorised loop's alias checks (a
dozen arrays, pairwise) inside the loop over rows, about 100 cycles a row, and the LSTM's forward
kernel at (T, B, I, H) = (100, 8, 1, 32) took 1.58x as long, (100, 32, 1, 32) 1.37x; from H = 128
on, even (float32, one process, alternating, bit-identical outputs).
"""
import types

import numba
from numba import njit

from rnnbench.backends.cpu.microkernel import MAX_ROWS


PARALLEL_MIN = 1 << 16  # multiply-adds (or elements moved) below which one thread wins


def use_parallel(M: int, N: int, K: int = 1) -> bool:
    """Whether an (M, K) x (K, N) product (or M x N elements' copy) runs on every thread."""
    return M * N * K >= PARALLEL_MIN and numba.get_num_threads() > 1  # the lookup costs a microsecond


# Largest matrix (packed W_hh) that parts of the batch read whole every step: measured with two
# threads and a 32 MiB L3, split by rows rather than panels, LSTM 1024 in float64 (32 MiB) ran
# 1.1-1.2x slower, GRU 1024 and RNN 1760 in float32 (12 MiB) up to 1.1x faster, LSTM 1024 in float32
# (16 MiB) even; below, 1.1-1.3x faster (LSTM 256, B = 16 and 30).
SHARED_BYTES = 16 << 20
PART_ROWS = 4  # rows of a part: a multiple of this (fewer, and a part's tiles would read all of W_hh for a row or two)


def batch_split(B: int, N: int, K: int, itemsize: int) -> tuple:
    """(chunk, parallel) for a recurrence of batch B whose step multiplies by a (K, N) matrix:
    parts of ``chunk`` rows, each on a thread of its own where chunk < B; else one part, and
    ``parallel`` says whether its products split over the threads (by panels: each thread reads
    only its own). chunk is a multiple of 4, which the row tiles (8 or 6, and 4 and 2) cover
    exactly, so that no tile reaches into the next part."""
    if not use_parallel(B, N, K):
        return B, False
    chunk = PART_ROWS * -(-B // (numba.get_num_threads() * PART_ROWS))
    if chunk < B and N * K * itemsize <= SHARED_BYTES:
        return chunk, False
    return B, True


# Largest [W_ih | W_hh]^T that a step's product reads whole, the input projection joined to it
# (``fuses``). Measured against the projection as one GEMM before the recurrence (LSTM, float32, two
# threads, one process alternating): 1.05-1.22x as fast from 0.1 to 7.5 MiB at batches of 8 to 64,
# 0.96x at 8 MiB with B = 16 (each part rereads it from L3 every step); at batches of 1 and 4
# 0.78-1.06x (the input's weights reread every step for one to four rows).
FUSED_BYTES = 6 << 20


def fuses(B: int, N: int, K: int, itemsize: int) -> bool:
    """Whether a recurrence of batch B should multiply [x_t, h_{t-1}] (K columns) by a (K, N)
    matrix each step rather than add a projection of every x_t made beforehand: where a full row
    tile of the batch uses each weight read, and the matrix is small enough to read every step."""
    return B >= MAX_ROWS and N * K * itemsize <= FUSED_BYTES


def launch_threads() -> None:
    """Start Numba's threading layer now, before any kernel loads from Numba's cache. A serial kernel
    calling a parallel one (a recurrence calling matmul's tile loop) is cached without the hook that
    starts the layer where the parallel callee itself came from the cache as the kernel compiled
    (numba#8578, numba#9950): loaded first in a fresh process, its calls into the layer jumped to
    address 0 (seen as a segfault after one process had called the tile loop directly, another had
    then compiled the kernel)."""
    numba.get_num_threads()  # launches the layer


def run_parts(kernel: tuple, B: int, N: int, K: int, itemsize: int, *args):
    """Call a recurrence, ``compiled``'s (serial, parallel) pair, on ``batch_split``'s parts: its
    last two arguments (chunk, parallel) follow ``args``, and the parallel compilation runs where
    the batch has more than one part."""
    chunk, parallel = batch_split(B, N, K, itemsize)
    return kernel[chunk < B](*args, chunk, parallel)


@njit(inline="always")
def parts(B, chunk):
    """The parts of a batch of B rows in parts of ``chunk`` (the last may be shorter)."""
    return -(-B // chunk)


@njit(inline="always")
def part_rows(part, chunk, B):
    """(lo, hi): the rows lo .. hi-1 of a part."""
    return part * chunk, min(B, part * chunk + chunk)


def _renamed(f, name):
    """A copy of ``f`` under another name: Numba's cache files are named after the function."""
    g = types.FunctionType(f.__code__, f.__globals__, name)
    g.__qualname__ = name
    return g


def compiled(f, **options) -> tuple:
    """(serial, parallel): one source, two compilations; prange runs as a plain range in the
    serial one."""
    return (njit(cache=True, **options)(f),
            njit(cache=True, parallel=True, **options)(_renamed(f, f.__name__ + "_parallel")))
