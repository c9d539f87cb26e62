"""The cpu backend's matrix products, every one on Numba's thread pool.

Two thread pools on two cores fight: OpenBLAS's workers keep spinning after a call while Numba's
run, and a step's product took 2-3x as long measured beside a multi-threaded BLAS call as alone.
So the BLAS Numba calls (scipy's) runs single-threaded (``runtime``), and every product here splits
its work over Numba's threads itself:

- ``recurrent(a, b, out, parallel)``: out = a @ b^T, the recurrent product of one step, written
  here: a 2 x 4 tile of out per inner loop, its eight sums held in vector registers along k (the
  ``reassoc`` flag lets LLVM split each sum over SIMD lanes; the order differs from BLAS's by
  rounding only). Small steps (B x G x H) are cheaper through BLAS than any tile loop could be
  made, but a call into BLAS costs more than the whole product at the smallest sizes, and
  measured at (B, H, G) = (30, 256, 1024) this loop ran at 170 GFLOP/s on two threads against
  OpenBLAS's 50-100 on the same shapes. Tiles past the edge are clamped onto the last row or
  column and computed twice: no remainder loops.
- ``gemm(a, b, out)``: out = a @ b for whole-sequence products (the input projection, dx), rows
  split over the threads, each part a single-threaded BLAS call.
- ``gemm_tn_add(a, b, out)``: out += a^T @ b for the weight gradients (a sum over every step), the
  steps split over the threads, each part summed into its own buffer, then added.
"""
import types

import numba
import numpy as np
from numba import njit, prange

REASSOC = {"reassoc", "contract"}


@njit(inline="always", fastmath=REASSOC, error_model="numpy")
def _tile(a, b, out, i0, i1, j0, j1, j2, j3):
    """out[i, j] = a[i] . b[j] for rows i0, i1 and columns j0..j3."""
    zero = a.dtype.type(0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
    for k in range(a.shape[1]):
        x0, x1 = a[i0, k], a[i1, k]
        y0, y1, y2, y3 = b[j0, k], b[j1, k], b[j2, k], b[j3, k]
        s00 += x0 * y0
        s01 += x0 * y1
        s02 += x0 * y2
        s03 += x0 * y3
        s10 += x1 * y0
        s11 += x1 * y1
        s12 += x1 * y2
        s13 += x1 * y3
    out[i0, j0], out[i0, j1], out[i0, j2], out[i0, j3] = s00, s01, s02, s03
    out[i1, j0], out[i1, j1], out[i1, j2], out[i1, j3] = s10, s11, s12, s13


def _matmul_nt(a, b, out):
    M, N = a.shape[0], b.shape[0]
    last = N - 1
    for jb in prange((N + 3) // 4):
        j = max(min(4 * jb, N - 4), 0)
        for i in range(0, M, 2):
            _tile(a, b, out, i, min(i + 1, M - 1), j, min(j + 1, last), min(j + 2, last), min(j + 3, last))


def _renamed(f, name):
    """A copy of ``f`` under another name: Numba's cache files are named after the function."""
    g = types.FunctionType(f.__code__, f.__globals__, name)
    g.__qualname__ = name
    return g


# One source, two compilations: prange runs as a plain range in the serial one.
_serial = njit(cache=True, fastmath=REASSOC, error_model="numpy")(_matmul_nt)
_parallel = njit(cache=True, parallel=True, fastmath=REASSOC, error_model="numpy")(
    _renamed(_matmul_nt, "_matmul_nt_parallel"))

PARALLEL_MIN = 1 << 16  # multiply-adds per step below which one thread wins (a parallel launch costs µs)


def use_parallel(M: int, N: int, K: int) -> bool:
    """Whether a step's (M, K) x (K, N) product runs on every thread."""
    return numba.get_num_threads() > 1 and M * N * K >= PARALLEL_MIN


def transposed(w: np.ndarray) -> np.ndarray:
    """w^T laid out row by row: ``recurrent`` reads both operands along their rows."""
    return np.ascontiguousarray(w.T)


@njit(inline="always")
def recurrent(a, b, out, parallel):
    """out = a @ b^T (a: (M, K), b: (N, K), both C-contiguous)."""
    if parallel:
        _parallel(a, b, out)
    else:
        _serial(a, b, out)


@njit(cache=True, parallel=True)
def _gemm(a, b, out, n):
    M = a.shape[0]
    for c in prange(n):
        lo, hi = c * M // n, (c + 1) * M // n
        np.dot(a[lo:hi], b, out[lo:hi])


def gemm(a, b, out):
    """out = a @ b, a's rows split over the threads (a and out C-contiguous)."""
    _gemm(a, b, out, max(1, min(numba.get_num_threads(), a.shape[0])))


def gemm_tn_add(a, b, out):
    """out += a^T @ b: the shared first dimension split over the threads, partial sums added."""
    _gemm_tn_add(a, b, out, max(1, min(numba.get_num_threads(), a.shape[0])))


@njit(cache=True, parallel=True)
def _gemm_tn_add(a, b, out, n):
    M = a.shape[0]
    parts = np.empty((n,) + out.shape, out.dtype)
    for c in prange(n):
        lo, hi = c * M // n, (c + 1) * M // n
        np.dot(a[lo:hi].T, b[lo:hi], parts[c])
    for c in range(n):
        out += parts[c]
