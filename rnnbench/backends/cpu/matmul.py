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
- ``step_product``: a step's pre-activations, either that product added onto the projection of
  every step made beforehand, or, where the batch reuses small weights (``threads.fuses``), the
  projection joined to it: [x_t, h_{t-1}] [W_ih | W_hh]^T, one product, no projection array.
- ``gemm(a, b, out)``: out = a @ b for whole-sequence products: dx through the tiles (as the
  weight gradients below); the input projection x W_ih^T (where a cell does not join it to the
  step's product) through the tiles for wide float32 inputs, else BLAS, rows split over the
  threads, a call each.
- ``gemm_tn_add(a, b, out)``: out += a^T @ b for the weight gradients (a sum over every step):
  the same tiles, reading a^T through a transposed view and adding into out, in work items of a
  panel x 64 rows and slices of 256 k. Through BLAS (the steps split over the threads, partial sums
  added) it ran at 110 GFLOP/s at LSTM 1024 / 16 / 25 against the tiles' 188 (float32); BLAS stays
  for inputs narrower than a panel and float32 gradients of more than 8 MiB (float64's run through
  the tiles in slices).
"""
import numba
import numpy as np
from numba import njit, prange

from rnnbench.backends.cpu.microkernel import MAX_ROWS as MR
from rnnbench.backends.cpu.microkernel import PER_PANEL, VECTOR_BYTES, panel_width, tile
from rnnbench.backends.cpu.planes import put_columns
from rnnbench.backends.cpu.threads import compiled, fuses, use_parallel
from rnnbench.backends.cpu.transpose import block

TILE_MR, TILE4, TILE2, TILE1 = tile(MR), tile(4), tile(2), tile(1)
TRANSPOSE = block()


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


def pack(w: np.ndarray, transpose: bool, beside: np.ndarray | None = None) -> np.ndarray:
    """b = w^T (``transpose``) or w, (K, N), as ``recurrent`` reads it: (P, K, NR), panel p holding
    b's columns p*NR .. p*NR+NR-1, the last one zero-padded. The forward packs W_hh^T, the
    backward W_hh. ``beside`` (with ``transpose``): b = [w | beside]^T, w's rows joined by
    beside's, e.g. [W_ih | W_hh]^T for a step's product over [x_t, h_{t-1}]."""
    N = w.shape[0] if transpose else w.shape[1]
    K = (w.shape[1] + (0 if beside is None else beside.shape[1])) if transpose else w.shape[0]
    nr = panel_width(w.dtype.itemsize)
    out = np.empty((-(-N // nr), K, nr), w.dtype)
    out[-1] = 0  # the padding (np.zeros would fault every page in again)
    if not transpose:
        PACK_COLUMNS[use_parallel(*w.shape)](w, out)
        return out
    k = 0
    for part in (w,) if beside is None else (w, beside):
        PACK_ROWS[use_parallel(*part.shape)](np.ascontiguousarray(part), out, k)  # the transpose loads rows
        k += part.shape[1]
    return out


def _pack_rows(w, out, k0):
    """out[p, k0 + k, c] = w[p NR + c, k]: L x L blocks transposed in registers (``transpose.py``; 3-4x
    the scalar loop it replaced at LSTM 512 and 1024 in float32), the edges element by element."""
    P, nr, K = out.shape[0], out.shape[2], w.shape[1]
    L = nr // PER_PANEL
    inner = K - K % L
    for p in prange(P):
        width = min(nr, w.shape[0] - p * nr)
        blocks = width - width % L
        for k in range(0, inner, L):
            for c in range(0, blocks, L):
                TRANSPOSE(w, out, p * nr + c, k, k0 + k, p, c)
        for c in range(width):
            row = w[p * nr + c]
            for k in range(inner if c < blocks else 0, K):
                out[p, k0 + k, c] = row[k]


def _pack_columns(b, out):
    """out[p, k, c] = b[k, p NR + c]."""
    P, K, nr = out.shape
    for p in prange(P):
        width = min(nr, b.shape[1] - p * nr)
        for k in range(K):
            out[p, k, :width] = b[k, p * nr : p * nr + width]


PACK_ROWS, PACK_COLUMNS = compiled(_pack_rows), compiled(_pack_columns)


@njit(inline="always")
def recurrent(a, w, out, lo, hi, parallel, add=False):
    """out[lo:hi] (+)= a[lo:hi] @ b for a (M, K) and out (M, N) C-contiguous, w = pack(b), hi - lo a
    multiple of 4 or hi = M (``threads.batch_split``)."""
    if parallel:
        _parallel(a, w, out, add, lo, hi)
    else:
        _serial(a, w, out, add, lo, hi)


@njit(inline="always")
def step_rows(x, h0):
    """xh (B, I + H), the rows of ``step_product``: [x_t, h_{t-1}], entered with h0 from column I."""
    I = x.shape[2]
    xh = np.empty((h0.shape[0], I + h0.shape[1]), h0.dtype)
    put_columns(xh, I, h0, 0, h0.shape[0])
    return xh


@njit(inline="always")
def step_product(x, pre, w_t, xh, t, lo, hi, parallel):
    """A step's pre-activations a_t (rows lo .. hi-1) from ``step_operands``: [x_t, h_{t-1}]
    [W_ih | W_hh]^T into pre's one step, or, x without columns, pre[t] += h_{t-1} W_hh^T onto the
    projection. xh (``step_rows``) holds h_{t-1} from column I on; x_t is put before it here."""
    put_columns(xh, 0, x[t], lo, hi)
    a_t = pre[t % pre.shape[0]]
    recurrent(xh, w_t, a_t, lo, hi, parallel, x.shape[2] == 0)
    return a_t


def step_operands(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray) -> tuple:
    """(inputs, pre, w_t) for ``step_product``: x, a one-step scratch and [W_ih | W_hh]^T packed
    where ``threads.fuses``; else x without columns, the projection of every step and W_hh^T packed."""
    n, B, I = x.shape
    G, H = w_hh.shape
    if fuses(B, G, I + H, x.itemsize):
        return x, np.empty((1, B, G), x.dtype), pack(w_ih, transpose=True, beside=w_hh)
    return x[:, :, :0], project(x, w_ih), pack(w_hh, transpose=True)


def project(x: np.ndarray, w_ih: np.ndarray) -> np.ndarray:
    """x W_ih^T for every step at once, (n, B, G) from x (n, B, I): the input projection."""
    n, B, I = x.shape
    xp = np.empty((n * B, w_ih.shape[0]), x.dtype)
    gemm(x.reshape(n * B, I), w_ih.T, xp)
    return xp.reshape(n, B, -1)


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


# Where a float32 product by a transposed view (x W_ih^T) runs through the tiles: from K = 512 (at
# the LSTM 512 and 1024 projections, (400, K) by (K, 4K), 198-199 GFLOP/s with the transpose
# packing against BLAS's 175-182; at K = 64 and 256, and in float64, BLAS was as fast or faster),
# or for a short a, of one sequence, from K = 128: one process, alternating (BLAS / tiles),
# (150, 256) by (256, 1024) 0.56 / 0.48 ms, (200, 128) by (128, 512) 0.175 / 0.164, (256, 256) by
# (256, 1024) 0.82 / 0.79, (300, ...) even; at K = 32, (672, 32) by (32, 128), BLAS 0.041 / 0.052.
TRANSPOSED_MIN_K = 512
SHORT_ROWS, SHORT_MIN_K = 320, 128


def _transposed_tiles(a, b) -> bool:
    K = a.shape[1]
    return b.itemsize == 4 and (K >= TRANSPOSED_MIN_K or (len(a) <= SHORT_ROWS and K >= SHORT_MIN_K))


def gemm(a, b, out):
    """out = a @ b (a and out C-contiguous). Through the tiles where they fit and b is C-contiguous
    (its packing a copy of rows) or a float32 transposed view where ``_transposed_tiles``; else a's
    rows split over the threads, a BLAS call each."""
    rows = b.flags.c_contiguous
    transposed = not rows and b.T.flags.c_contiguous and _transposed_tiles(a, b)
    if (rows or transposed) and _tiles_fit(a, b):
        packed = pack(b, transpose=False) if rows else pack(b.T, transpose=True)
        _tiles(a.shape[0], b.shape[1], a.shape[1])(a, packed, out, False, 0, a.shape[0])
    else:
        n = _parts(a.shape[0], a.shape[0] * a.shape[1] * b.shape[1])
        GEMM[n > 1](a, b, out, n)


def gemm_tn_add(a, b, out):
    """out += a^T @ b (a: (K, M), b: (K, N), C-contiguous). With b at least a panel wide and a
    small enough to stay in cache (TILES_BYTES), through the tiles on a^T (a view) and b packed;
    a larger float64 a through the tiles too, in slices of its rows of TILES_BYTES each (at LSTM
    1024 and RNN 1760, 66 and 91 GFLOP/s against BLAS's 50 and 75); else through BLAS, the shared
    first dimension split over the threads and the partial sums added (BLAS blocks for the caches:
    at GRU 1024 / 32 / 187 in float32, a of 70 MiB, 197 GFLOP/s against 187 for the sliced tiles)."""
    if b.shape[1] >= panel_width(b.dtype.itemsize) and (a.nbytes <= TILES_BYTES or a.itemsize == 8):
        rows = max(1, TILES_BYTES // (a.shape[1] * a.itemsize))
        for k in range(0, a.shape[0], rows):
            a_k, b_k = a[k : k + rows], b[k : k + rows]
            _tiles(a.shape[1], b.shape[1], len(a_k))(a_k.T, pack(b_k, transpose=False), out, True, 0, a.shape[1])
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
