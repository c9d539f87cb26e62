"""Whole-sequence products on the GPU: out (+)= a @ b^T in 16 x 16 tiles staged through shared memory.

Each block computes one 16 x 16 tile of ``out``; per step along k it loads a 16 x 16 tile of ``a``
and of ``b`` into shared memory (one element per thread), syncs, and accumulates 16 products per
thread from shared memory. Operands may be transposed views (any strides): the weight gradients
pass ``gx.T`` and ``x.T`` directly.
"""
import math

import numpy as np
from numba import cuda, float32, float64

TILE = 16


def _make(dtype):
    @cuda.jit
    def gemm_nt(a, b, out, accumulate):
        sa = cuda.shared.array((TILE, TILE), dtype)
        sb = cuda.shared.array((TILE, TILE), dtype)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        i = cuda.blockIdx.y * TILE + ty  # row of out (and of a)
        j = cuda.blockIdx.x * TILE + tx  # column of out (row of b)
        jb = cuda.blockIdx.x * TILE + ty  # the row of b this thread stages
        M, K, N = a.shape[0], a.shape[1], b.shape[0]
        acc = dtype(0)
        for k0 in range(0, K, TILE):
            sa[ty, tx] = a[i, k0 + tx] if i < M and k0 + tx < K else dtype(0)
            sb[ty, tx] = b[jb, k0 + tx] if jb < N and k0 + tx < K else dtype(0)
            cuda.syncthreads()
            for k in range(TILE):
                acc += sa[ty, k] * sb[tx, k]
            cuda.syncthreads()
        if i < M and j < N:
            out[i, j] = out[i, j] + acc if accumulate else acc

    return gemm_nt


_KERNELS = {}


def gemm_nt(a, b, out, accumulate=False):
    """out (+)= a @ b^T for device arrays a (M, K), b (N, K), out (M, N) of one float dtype."""
    dtype = np.dtype(out.dtype)
    if dtype not in _KERNELS:
        _KERNELS[dtype] = _make(float32 if dtype == np.float32 else float64)
    M, N = out.shape
    grid = (math.ceil(N / TILE), math.ceil(M / TILE))
    _KERNELS[dtype][grid, (TILE, TILE)](a, b, out, accumulate)


@cuda.jit
def column_sums(a, out):
    """out[j] += sum_i a[i, j] (bias gradients): a thread per column."""
    j = cuda.grid(1)
    if j < a.shape[1]:
        s = out[j] - out[j]
        for i in range(a.shape[0]):
            s += a[i, j]
        out[j] += s
