"""A kernel launch per step: each step's recurrent product fused with the cell's gate math.

The product of a step is a small GEMM, sums[b, g, j] = sum_k v[b, k] W[g U + j, k] (forward:
v = h_{t-1}, W = W_hh, U = H units of G gates; backward: v = da_{t+1}, W = W_hh^T, one "gate" of
H units). A block of 16 x 16 threads owns rows b of a 16 rm tile and units j of a 16 rj tile, with
all G gates of each unit, so a thread ends holding every gate sum of its (b, j): the cell's
``forward`` / ``backward`` (``lstm.py``, ...) then runs on them before anything leaves registers.
Slices of v and of the gate rows of W are staged in shared memory, read along k (coalesced).
"""
import math

from numba import cuda

from rnnbench.backends.cuda.device import (backward_order, forward_order, make_backward_at, make_forward_at,
                                          previous_states)
from rnnbench.backends.cuda.matmul import BK, T, stage


def tile_for(batch: int) -> tuple[int, int]:
    """(rm, rj): rows of 16 b per thread grow with the batch so a small batch wastes few threads."""
    return (1 if batch <= 16 else 2 if batch <= 32 else 4), 1


def _products(G, rm, rj):
    bm, bj = T * rm, T * rj

    @cuda.jit(device=True, inline=True)
    def products(v, w, units, sv, sw, acc, zero):
        """acc[i, q, g] = sum_k v[b_i, k] w[g units + j_q, k] for this thread's b_i, j_q."""
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * T + tx
        m0, j0 = cuda.blockIdx.y * bm, cuda.blockIdx.x * bj
        K = v.shape[1]
        for i in range(rm):
            for q in range(rj):
                for g in range(G):
                    acc[i, q, g] = zero
        for k0 in range(0, K, BK):
            stage(v, False, sv, m0, bm, v.shape[0], k0, K, bm, tid, T * T, zero)
            stage(w, False, sw, j0, bj, units, k0, K, G * bj, tid, T * T, zero)
            cuda.syncthreads()
            for kk in range(BK):
                for i in range(rm):
                    a = sv[kk, ty + T * i]
                    for q in range(rj):
                        for g in range(G):
                            acc[i, q, g] += a * sw[kk, g * bj + tx + T * q]
            cuda.syncthreads()

    return products, bm, bj


def make_forward(cell_forward, G, dtype, rm, rj):
    """kernel(xp, w_hh, bias, h0, c0, h, c, tape, s, reverse, one): step s of the forward pass
    (the persistent kernel's arguments, and the step)."""
    products, bm, bj = _products(G, rm, rj)
    forward_at = make_forward_at(cell_forward)
    v_shape, w_shape = (BK, bm + 1), (BK, G * bj + 1)

    @cuda.jit
    def forward_step(xp, w, bias, h0, c0, h, c, tape, s, reverse, one):
        sv = cuda.shared.array(v_shape, dtype)
        sw = cuda.shared.array(w_shape, dtype)
        acc = cuda.local.array((rm, rj, G), dtype)
        rec = cuda.local.array(G, dtype)
        n, B, H = h.shape
        t, prev = forward_order(s, n, reverse)
        h_prev, c_prev = previous_states(s, prev, h, h0, c, c0)
        products(h_prev, w, H, sv, sw, acc, one - one)
        for i in range(rm):
            b = cuda.blockIdx.y * bm + cuda.threadIdx.y + T * i
            for q in range(rj):
                j = cuda.blockIdx.x * bj + cuda.threadIdx.x + T * q
                if b < B and j < H:
                    for g in range(G):
                        rec[g] = acc[i, q, g]
                    forward_at(rec, b, j, t, xp, bias, h_prev, c_prev, h, c, tape, one)

    return forward_step


def make_backward(cell_backward, dtype, rm, rj):
    """kernel(w_hh^T, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0, s, reverse, one):
    step s of the backward pass, s = n the last product, dh0 = W_hh^T da_first (+ direct)."""
    products, bm, bj = _products(1, rm, rj)
    backward_at = make_backward_at(cell_backward)
    v_shape, w_shape = (BK, bm + 1), (BK, bj + 1)

    @cuda.jit
    def backward_step(wt, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0, s, reverse, one):
        sv = cuda.shared.array(v_shape, dtype)
        sw = cuda.shared.array(w_shape, dtype)
        acc = cuda.local.array((rm, rj, 1), dtype)
        rec = cuda.local.array(1, dtype)
        n, B, H = dy.shape
        t, prev, done = backward_order(s, n, reverse)
        if s == 0:
            for i in range(rm):
                for q in range(rj):
                    acc[i, q, 0] = one - one
        else:
            products(dah[done], wt, H, sv, sw, acc, one - one)
        for i in range(rm):
            b = cuda.blockIdx.y * bm + cuda.threadIdx.y + T * i
            for q in range(rj):
                j = cuda.blockIdx.x * bj + cuda.threadIdx.x + T * q
                if b < B and j < H:
                    rec[0] = acc[i, q, 0]
                    backward_at(rec, b, j, s, t, prev, dy, direct, dc, tape, h, h0, c, c0, dax,
                                dah, hid, cel, dh0, one)

    return backward_step


def grid(batch: int, hidden: int, tile) -> tuple[tuple[int, int], tuple[int, int]]:
    rm, rj = tile
    return (math.ceil(hidden / (T * rj)), math.ceil(batch / (T * rm))), (T, T)
