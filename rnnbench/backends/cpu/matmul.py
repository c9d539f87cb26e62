"""The cpu backend's matrix products, on Numba's thread pool.

Two thread pools on two cores fight: OpenBLAS's workers keep spinning after a call while Numba's
run, and a step's product took 2-3x as long measured beside a multi-threaded BLAS call as alone.
So the BLAS Numba calls (scipy's) runs single-threaded (``runtime``), and every product here splits
its work over Numba's threads itself:

- ``recurrent(a, w, out, lo, hi, parallel)``: out = a @ b on rows lo .. hi-1, the recurrent
  product of one step (of one part of the batch: ``threads.batch_split``), with b
  packed once per pass into panels of NR columns (``pack``) and each (MR x NR) tile of out made
  by ``microkernel.tile`` (sums in vector registers, no horizontal sums). Small steps (B x G x H)
  are cheaper through BLAS than any tile loop could be made, but a call into BLAS costs more than
  the whole product at the smallest sizes, and BLAS runs small-M products far from peak: measured
  on the shapes of the benchmark sizes, this loop ran at 1.2-2.4x the dot-product tiles it
  replaced and 1.3-3x OpenBLAS (docs/performance.md). The panels are split over the threads.
- ``gemm(a, b, out)``: out = a @ b for whole-sequence products: dx through the tiles (as the
  weight gradients below); the input projection, whose packing would be a transpose of W_ih
  costing what the tiles gain, through BLAS, rows split over the threads, a call each.
- ``gemm_tn_add(a, b, out)``: out += a^T @ b for the weight gradients (a sum over every step):
  the same tiles, reading a^T through a transposed view and adding into out, in work items of a
  panel x 64 rows and slices of 256 k. Through BLAS (the steps split over the threads, partial sums
  added) it ran at 110 GFLOP/s at LSTM 1024 / 16 / 25 against the tiles' 188 (float32); BLAS stays
  for inputs narrower than a panel and gradients of more than 8 MiB.
"""
import numba
import numpy as np
from numba import njit, prange

from rnnbench.backends.cpu.microkernel import MAX_ROWS as MR
from rnnbench.backends.cpu.microkernel import PER_PANEL, VECTOR_BYTES, panel_width, tile
from rnnbench.backends.cpu.threads import compiled, use_parallel

TILE_MR, TILE4, TILE2, TILE1 = tile(MR), tile(4), tile(2), tile(1)


ROW_BLOCK = 64  # rows of out a work item holds: the recurrent product's batch is one block
K_BLOCK = 256  # k a tile runs through at once: a panel's slice of w (32 KiB) stays in L1


def _product(a, w, out, add, lo, hi):
    """Rows lo .. hi-1 of out (+)= a @ b, for hi - lo a multiple of 4 or hi a's last row: the row
    tiles (MR, 4, 2, 1) cover a multiple of 4 exactly, and a tile's rows past hi but in a would be
    stored."""
    if w.shape[2] * w.itemsize != PER_PANEL * VECTOR_BYTES:  # a cache compiled for another vector width
        raise ValueError("packed panels of another width than the compiled tiles: clear Numba's cache")
    K = a.shape[1]
    blocks = (hi - lo + ROW_BLOCK - 1) // ROW_BLOCK
    for item in prange(w.shape[0] * blocks):
        p, start = item // blocks, lo + item % blocks * ROW_BLOCK
        end = min(start + ROW_BLOCK, hi)
        for k in range(0, K, K_BLOCK):
            _rows(a[:, k : k + K_BLOCK], w[:, k : k + K_BLOCK], out, start, end, p, add or k > 0)


@njit(inline="always")
def _rows(a, w, out, i, end, p, add):
    """Rows i .. end-1 of panel p in tiles of MR rows, then one of 4, 2 or 1 (or MR) for the rest:
    a last tile's rows past a's last are not stored, but rows past end within a are."""
    while i + MR <= end:
        TILE_MR(a, w, out, i, p, add)
        i += MR
    rest = end - i
    if rest > 4:
        TILE_MR(a, w, out, i, p, add)
    elif rest > 2:
        TILE4(a, w, out, i, p, add)
    elif rest == 2:
        TILE2(a, w, out, i, p, add)
    elif rest == 1:
        TILE1(a, w, out, i, p, add)


_serial, _parallel = compiled(_product)


def pack(w: np.ndarray, transpose: bool) -> np.ndarray:
    """b = w^T (``transpose``) or w, (K, N), as ``recurrent`` reads it: (P, K, NR), panel p holding
    b's columns p*NR .. p*NR+NR-1, the last one zero-padded. The forward packs W_hh^T, the
    backward W_hh."""
    N = w.shape[0] if transpose else w.shape[1]
    nr = panel_width(w.dtype.itemsize)
    out = np.empty((-(-N // nr), w.shape[1] if transpose else w.shape[0], nr), w.dtype)
    out[-1] = 0  # the padding (np.zeros would fault every page in again)
    (PACK_ROWS if transpose else PACK_COLUMNS)[use_parallel(*w.shape)](w, out)
    return out


def _pack_rows(w, out):
    """out[p, k, c] = w[p NR + c, k], in blocks of 16 k so that w is read along its rows (a strided
    copy of W_hh^T, numpy's, took 9.7 ms at LSTM 1024: a fifth of its forward)."""
    P, K, nr = out.shape
    for p in prange(P):
        for k0 in range(0, K, 16):
            for c in range(min(nr, w.shape[0] - p * nr)):
                row = w[p * nr + c]
                for k in range(k0, min(k0 + 16, K)):
                    out[p, k, c] = row[k]


def _pack_columns(b, out):
    """out[p, k, c] = b[k, p NR + c]."""
    P, K, nr = out.shape
    for p in prange(P):
        width = min(nr, b.shape[1] - p * nr)
        for k in range(K):
            out[p, k, :width] = b[k, p * nr : p * nr + width]


PACK_ROWS, PACK_COLUMNS = compiled(_pack_rows), compiled(_pack_columns)


@njit(inline="always")
def recurrent(a, w, out, lo, hi, parallel):
    """out[lo:hi] = a[lo:hi] @ b for a (M, K) and out (M, N) C-contiguous, w = pack(b), hi - lo a
    multiple of 4 or hi = M (``threads.batch_split``)."""
    if parallel:
        _parallel(a, w, out, False, lo, hi)
    else:
        _serial(a, w, out, False, lo, hi)


def _gemm(a, b, out, n):
    M = a.shape[0]
    for c in prange(n):
        lo, hi = c * M // n, (c + 1) * M // n
        np.dot(a[lo:hi], b, out[lo:hi])


def _parts(rows: int, macs: int) -> int:
    """The parts a BLAS product is split into along ``rows``: one a thread, or one for small work."""
    return max(1, min(numba.get_num_threads(), rows)) if use_parallel(macs, 1) else 1


def _tiles(M: int, N: int, K: int):
    """The tile loop for an (M, K) x (K, N) product: on every thread, or one for small work."""
    return _parallel if use_parallel(M, N, K) else _serial


TILES_BYTES = 8 << 20  # largest a for the tiles in a whole-sequence product: each panel reads all of a


def _tiles_fit(a, b) -> bool:
    return b.shape[1] >= panel_width(b.dtype.itemsize) and a.nbytes <= TILES_BYTES


def gemm(a, b, out):
    """out = a @ b (a and out C-contiguous). Through the tiles where they fit and b is C-contiguous
    (its packing a copy of rows); else a's rows split over the threads, a BLAS call each."""
    if b.flags.c_contiguous and _tiles_fit(a, b):
        _tiles(a.shape[0], b.shape[1], a.shape[1])(a, pack(b, transpose=False), out, False, 0, a.shape[0])
    else:
        n = _parts(a.shape[0], a.shape[0] * a.shape[1] * b.shape[1])
        GEMM[n > 1](a, b, out, n)


def gemm_tn_add(a, b, out):
    """out += a^T @ b (a: (K, M), b: (K, N), C-contiguous). With b at least a panel wide and a
    small enough to stay in cache (TILES_BYTES), through the tiles on a^T (a view) and b packed;
    else through BLAS, the shared first dimension split over the threads and the partial sums
    added (BLAS blocks for the caches; at GRU 1024 / 32 / 187, a of 73 MB, it ran at 1.6x the tiles)."""
    if _tiles_fit(a, b):
        _tiles(a.shape[1], b.shape[1], a.shape[0])(a.T, pack(b, transpose=False), out, True, 0, a.shape[1])
    else:
        n = _parts(a.shape[0], a.shape[0] * a.shape[1] * b.shape[1])
        GEMM_TN_ADD[n > 1](a, b, out, n)


def _gemm_tn_add(a, b, out, n):
    M = a.shape[0]
    parts = np.empty((n,) + out.shape, out.dtype)
    for c in prange(n):
        lo, hi = c * M // n, (c + 1) * M // n
        np.dot(a[lo:hi].T, b[lo:hi], parts[c])
    for c in range(n):
        out += parts[c]


GEMM, GEMM_TN_ADD = compiled(_gemm), compiled(_gemm_tn_add)
