"""Whole-sequence products on the GPU: out (+)= A B, register-tiled through shared memory.

A block of 16 x 16 threads makes a (16 rm) x (16 rn) tile of ``out``; each thread holds rm x rn
sums in registers, its rows ty + 16 i and columns tx + 16 q (strided, so a warp's shared-memory
reads are broadcasts or distinct banks). Per step of 16 along k, the block stages a 16-deep slice
of A and of B in shared memory, each read along its contiguous axis (coalesced), whichever that is:
``a`` is (M, K), or (K, M) with ``a_km``; ``b`` is (K, N), or (N, K) with ``b_nk``. So the input
projection (x W_ih^T), dx (da W_ih) and the weight gradients (da^T x, da^T h) need no transposes.
"""
import math

import numpy as np
from numba import config, cuda, float32, float64

BK = 16  # depth of a staged slice
# Block sizes: the simulator runs each thread of a block as a Python thread and polls them all in
# turn, so there they are small (tests/cuda_backend under it: 161 s with blocks of 128 and 256, 117 s
# with these).
T = 4 if config.ENABLE_CUDASIM else 16  # threads per block side
SUM_THREADS = 32 if config.ENABLE_CUDASIM else 128  # column_sums: threads of a block along j
SUM_CHUNKS = 64  # column_sums: rows of partial sums, at most
TILE, TILE_ROWS = (8, 2) if config.ENABLE_CUDASIM else (32, 8)  # transpose: a TILE x TILE tile, TILE x TILE_ROWS threads
TILE_PADDED = TILE + 1  # its shared array's rows (padded against bank conflicts): a constant, as CUDA needs
RM, RN = 8, 4  # sums per thread along M and N (register tile; 8 x 4 measured fastest of 2x2, 4x4, 8x4, 4x8)


@cuda.jit(device=True, inline=True)
def stage(src, rows_are_k, s, r0, group, rows, k0, K, width, tid, threads, zero):
    """s[kk, rr] = A's element (row of tile rr, depth k0 + kk), zero outside; threads walk the
    source's contiguous axis. Tile row rr is source row (rr // group) * rows + r0 + rr % group,
    valid while r0 + rr % group < rows: ``group = width`` stages rows r0.. of a plain matrix; a
    smaller group stages the same units of each gate (rows g H + j) side by side."""
    for e in range(tid, BK * width, threads):
        if rows_are_k:  # src is (K, rows): contiguous along rows
            rr, kk = e % width, e // width
        else:  # src is (rows, K): contiguous along k
            kk, rr = e % BK, e // BK
        u = r0 + rr % group
        r = (rr // group) * rows + u
        inside = u < rows and k0 + kk < K
        if rows_are_k:
            s[kk, rr] = src[k0 + kk, r] if inside else zero
        else:
            s[kk, rr] = src[r, k0 + kk] if inside else zero


def _make(dtype, a_km: bool, b_nk: bool, rm: int, rn: int):
    bm, bn = T * rm, T * rn
    a_shape, b_shape = (BK, bm + 1), (BK, bn + 1)  # +1: staging stores along k hit distinct banks

    @cuda.jit
    def gemm(a, b, out, accumulate):
        sa = cuda.shared.array(a_shape, dtype)
        sb = cuda.shared.array(b_shape, dtype)
        acc = cuda.local.array((rm, rn), dtype)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * T + tx
        m0, n0 = cuda.blockIdx.y * bm, cuda.blockIdx.x * bn
        M, N = out.shape
        K = a.shape[0] if a_km else a.shape[1]
        zero = dtype(0)
        for i in range(rm):
            for q in range(rn):
                acc[i, q] = zero
        for k0 in range(0, K, BK):
            stage(a, a_km, sa, m0, bm, M, k0, K, bm, tid, T * T, zero)
            stage(b, not b_nk, sb, n0, bn, N, k0, K, bn, tid, T * T, zero)
            cuda.syncthreads()
            for kk in range(BK):
                for i in range(rm):
                    av = sa[kk, ty + T * i]
                    for q in range(rn):
                        acc[i, q] += av * sb[kk, tx + T * q]
            cuda.syncthreads()
        for i in range(rm):
            m = m0 + ty + T * i
            for q in range(rn):
                n = n0 + tx + T * q
                if m < M and n < N:
                    out[m, n] = out[m, n] + acc[i, q] if accumulate else acc[i, q]

    return gemm


_KERNELS = {}


def gemm(a, b, out, accumulate=False, a_km=False, b_nk=False, tile=(RM, RN)):
    """out (+)= A B for device arrays of one float dtype; A is ``a`` (M, K) or, with ``a_km``,
    ``a`` (K, M); B is ``b`` (K, N) or, with ``b_nk``, ``b`` (N, K)."""
    dtype = np.dtype(out.dtype)
    key = (dtype, a_km, b_nk, tile)
    if key not in _KERNELS:
        _KERNELS[key] = _make(float32 if dtype == np.float32 else float64, a_km, b_nk, *tile)
    M, N = out.shape
    grid = (math.ceil(N / (T * tile[1])), math.ceil(M / (T * tile[0])))
    _KERNELS[key][grid, (T, T)](a, b, out, accumulate)


@cuda.jit
def _chunk_sums(a, out, accumulate):
    """out[c, j] (+)= sum of a[i, j] over rows i = c, c + C, ... (C = out's rows): threads along j
    (coalesced), one row of blocks per chunk c."""
    j, c = cuda.grid(2)
    C = out.shape[0]
    if j < a.shape[1]:
        s = a[0, 0] - a[0, 0]
        for i in range(c, a.shape[0], C):
            s += a[i, j]
        out[c, j] = out[c, j] + s if accumulate else s


def column_sums(a, out, chunks=SUM_CHUNKS):
    """out += a.sum(axis=0) (bias gradients), in two deterministic passes: chunk sums, then theirs."""
    from rnnbench.backends.cuda.memory import empty

    N = a.shape[1]
    part = empty((min(chunks, a.shape[0]), N), out.dtype)
    _chunk_sums[(math.ceil(N / SUM_THREADS), part.shape[0]), (SUM_THREADS, 1)](a, part, False)
    _chunk_sums[(math.ceil(N / SUM_THREADS), 1), (SUM_THREADS, 1)](part, out.reshape(1, N), True)


@cuda.jit
def transpose(a, out):
    """out = a^T, through a TILE x (TILE + 1) shared tile so reads and writes are both coalesced."""
    tile = cuda.shared.array((TILE, TILE_PADDED), float64)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    r0, c0 = cuda.blockIdx.y * TILE, cuda.blockIdx.x * TILE
    for dy in range(ty, TILE, TILE_ROWS):
        if r0 + dy < a.shape[0] and c0 + tx < a.shape[1]:
            tile[dy, tx] = a[r0 + dy, c0 + tx]
    cuda.syncthreads()
    for dy in range(ty, TILE, TILE_ROWS):
        if c0 + dy < a.shape[1] and r0 + tx < a.shape[0]:
            out[c0 + dy, r0 + tx] = tile[tx, dy]


def transposed(a, out):
    transpose[(math.ceil(a.shape[1] / TILE), math.ceil(a.shape[0] / TILE)), (TILE, TILE_ROWS)](a, out)
    return out
