"""The recurrence as tiles of each step's product, fused with the cell's gate math: a launch per
step (path "steps") or one launch per pass that streams W_hh from device memory (path "streamed").

The product of a step is a small GEMM, sums[b, g, j] = sum_k v[b, k] W[g U + j, k] (forward:
v = h_{t-1}, W = W_hh, U = H units of G gates; backward: v = da_{t+1}, W = W_hh^T, one "gate" of
H units). A tile (tj, tb) is units j of a 16 rj range and rows b of a 16 rm range, with all G gates
of each unit: a block of 16 x 16 threads makes it, so a thread ends holding every gate sum of its
(b, j) and the cell's ``forward`` / ``backward`` (``lstm.py``, ...) runs on them before anything
leaves registers. Slices of v and of the gate rows of W are staged in shared memory, read along k
(coalesced).

Split K: a step's tiles alone are few (GRU 1024 at batch 32: 64 for an H200's 132 SMs, each 1024
deep; the backward's k is G H deep), so k can be split into ``splits`` ranges of whole slices, each
made by its own block. A split leaves its sums in a scratch array, ``partial`` (per tile, split,
sum and thread, from the array's start, so a tile's part starts a 128-byte line of its own), and
the tile's sums are added from it in split order: the same result at every run.

- Steps: block (x, y, z) makes tile (x, y) over split z. With k split, each block leaves its sums
  and takes a ticket (an atomic count per tile, after the sums in the same scratch, taken after a
  fence); the block that takes the last ticket adds the splits' sums and runs the cell's math.
  Still one launch a step, and each launch costs tens of microseconds on the host (numba prepares
  every argument of every launch).
- Streamed: one cooperative launch for the whole sequence. At each step the grid's blocks share
  out the work items (tile, split), reading W_hh from device memory (mostly L2: 12 MB for GRU 1024
  in float32), and the grid synchronises (``cuda.cg.this_grid().sync()``) before the splits' sums
  are added and the cell's math runs, and again before the next step reads the states. Unsplit, a
  block runs the cell's math on its tile at once: one sync a step. The grid is a block per work
  item, at most as many as can be resident at once. Unlike the persistent kernel (W_hh cached in
  shared memory) it fits every size.

The simulator swaps ``cuda`` for its fake in a kernel's module for the whole launch but in another
module's device function only during each call, and its threads run at once: device functions
that use ``cuda.*`` live here, beside the kernels that call them.
"""
import math

from numba import cuda, int32

from rnnbench.backends.cuda.device import (backward_order, forward_order, make_backward_at, make_forward_at,
                                          previous_states)
from rnnbench.backends.cuda.matmul import BK, T, stage

BLOCKS_PER_SM = 2  # what an automatic split aims at
MIN_SPLIT_K = 128  # the least depth of an automatic split


def tile_for(batch: int) -> tuple[int, int]:
    """(rm, rj): rows of 16 b per thread grow with the batch so a small batch wastes few threads."""
    return (1 if batch <= 16 else 2 if batch <= 32 else 4), 1


def make(G, rm, rj):
    """The device functions of tiles of rm x rj x G sums per thread."""
    bm, bj = T * rm, T * rj
    n = rm * rj * G  # sums per thread

    @cuda.jit(device=True, inline=True)
    def products(v, w, units, K, sv, sw, acc, zero, tj, tb, z, splits):
        """acc[i, q, g] = sum_k v[b_i, k] w[g units + j_q, k] for this thread's b_i, j_q of tile
        (tj, tb), over k < K in split z of ``splits`` (K = 0: zeros, the backward's first step)."""
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * T + tx
        depth = -(-K // (BK * splits)) * BK
        k_end = (z + 1) * depth
        k_end = K if k_end > K else k_end  # (builtin min does not compile for the GPU here)
        for i in range(rm):
            for q in range(rj):
                for g in range(G):
                    acc[i, q, g] = zero
        for k0 in range(z * depth, k_end, BK):
            stage(v, False, sv, tb * bm, bm, v.shape[0], k0, K, bm, tid, T * T, zero)
            stage(w, False, sw, tj * bj, bj, units, k0, K, G * bj, tid, T * T, zero)
            cuda.syncthreads()
            for kk in range(BK):
                for i in range(rm):
                    a = sv[kk, ty + T * i]
                    for q in range(rj):
                        for g in range(G):
                            acc[i, q, g] += a * sw[kk, g * bj + tx + T * q]
            cuda.syncthreads()

    @cuda.jit(device=True, inline=True)
    def keep(acc, partial, tile, z, splits):
        """Leave split z's sums of ``tile`` in ``partial``."""
        tid = cuda.threadIdx.y * T + cuda.threadIdx.x
        base = tile * splits * n * T * T
        for i in range(rm):
            for q in range(rj):
                for g in range(G):
                    partial[base + (z * n + (i * rj + q) * G + g) * T * T + tid] = acc[i, q, g]

    @cuda.jit(device=True, inline=True)
    def total(acc, partial, tile, splits):
        """acc = the sums of every split of ``tile``, added in split order."""
        tid = cuda.threadIdx.y * T + cuda.threadIdx.x
        base = tile * splits * n * T * T
        for i in range(rm):
            for q in range(rj):
                for g in range(G):
                    e = (i * rj + q) * G + g
                    s = partial[base + e * T * T + tid]
                    for z in range(1, splits):
                        s += partial[base + (z * n + e) * T * T + tid]
                    acc[i, q, g] = s

    return products, keep, total, bm, bj


def make_finish(step_at, G, rm, rj):
    bm, bj = T * rm, T * rj

    @cuda.jit(device=True, inline=True)
    def finish(acc, rec, tj, tb, B, H, step):
        """The cell's step (``step_at``: device.py's forward_at or backward_at, with the step's
        arrays ``step``) for each (b, j) of this thread in tile (tj, tb), on its G sums in acc."""
        for i in range(rm):
            b = tb * bm + cuda.threadIdx.y + T * i
            for q in range(rj):
                j = tj * bj + cuda.threadIdx.x + T * q
                if b < B and j < H:
                    for g in range(G):
                        rec[g] = acc[i, q, g]
                    step_at(rec, b, j, step)

    return finish


def _gather(keep, total):
    @cuda.jit(device=True, inline=True)
    def gather(acc, scratch, last, one):
        """True in the block that finished its tile last (acc then the sums over every split),
        False in the others; True at once when k is not split. ``scratch``: the splits' sums, then
        a ticket per tile (one array: the host's cost of a launch grows with its arrays)."""
        splits, z = cuda.gridDim.z, cuda.blockIdx.z
        if splits == 1:
            return True
        tile = cuda.blockIdx.y * cuda.gridDim.x + cuda.blockIdx.x
        ticket = scratch.shape[0] - cuda.gridDim.x * cuda.gridDim.y + tile
        keep(acc, scratch, tile, z, splits)
        cuda.threadfence()  # the sums reach every SM before the ticket is taken
        cuda.syncthreads()
        if cuda.threadIdx.x == 0 and cuda.threadIdx.y == 0:
            last[0] = cuda.atomic.add(scratch, ticket, one) == splits - 1  # whole numbers: exact in floats
            cuda.threadfence()  # and this block reads them after it
        cuda.syncthreads()
        if not last[0]:
            return False
        total(acc, scratch, tile, splits)
        if cuda.threadIdx.x == 0 and cuda.threadIdx.y == 0:
            scratch[ticket] = one - one  # ready for the next step's launch
        return True

    return gather


def make_step_forward(cell_forward, G, dtype, rm, rj):
    """kernel(xp, w_hh, bias, h0, c0, h, c, tape, scratch, s, reverse, one): step s of the forward
    pass."""
    products, keep, total, bm, bj = make(G, rm, rj)
    gather = _gather(keep, total)
    finish = make_finish(make_forward_at(cell_forward), G, rm, rj)
    v_shape, w_shape = (BK, bm + 1), (BK, G * bj + 1)

    @cuda.jit
    def forward_step(xp, w, bias, h0, c0, h, c, tape, scratch, s, reverse, one):
        sv = cuda.shared.array(v_shape, dtype)
        sw = cuda.shared.array(w_shape, dtype)
        last = cuda.shared.array(1, int32)
        acc = cuda.local.array((rm, rj, G), dtype)
        rec = cuda.local.array(G, dtype)
        n, B, H = h.shape
        t, prev = forward_order(s, n, reverse)
        h_prev, c_prev = previous_states(s, prev, h, h0, c, c0)
        tj, tb = cuda.blockIdx.x, cuda.blockIdx.y
        products(h_prev, w, H, H, sv, sw, acc, one - one, tj, tb, cuda.blockIdx.z, cuda.gridDim.z)
        if gather(acc, scratch, last, one):
            finish(acc, rec, tj, tb, B, H, (t, xp, bias, h_prev, c_prev, h, c, tape, one))

    return forward_step


def make_step_backward(cell_backward, dtype, rm, rj):
    """kernel(w_hh^T, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0, scratch, s,
    reverse, one): step s of the backward pass, s = n the last product, dh0 = W_hh^T da_first
    (+ direct)."""
    products, keep, total, bm, bj = make(1, rm, rj)
    gather = _gather(keep, total)
    finish = make_finish(make_backward_at(cell_backward), 1, rm, rj)
    v_shape, w_shape = (BK, bm + 1), (BK, bj + 1)

    @cuda.jit
    def backward_step(wt, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0, scratch, s, reverse, one):
        sv = cuda.shared.array(v_shape, dtype)
        sw = cuda.shared.array(w_shape, dtype)
        last = cuda.shared.array(1, int32)
        acc = cuda.local.array((rm, rj, 1), dtype)
        rec = cuda.local.array(1, dtype)
        n, B, H = dy.shape
        t, prev, done = backward_order(s, n, reverse)
        tj, tb = cuda.blockIdx.x, cuda.blockIdx.y
        K = wt.shape[1] if s > 0 else 0  # the first step has no product (every split adds zeros)
        products(dah[done % n], wt, H, K, sv, sw, acc, one - one, tj, tb, cuda.blockIdx.z, cuda.gridDim.z)
        if gather(acc, scratch, last, one):
            finish(acc, rec, tj, tb, B, H, (s, t, prev, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0,
                                            one))

    return backward_step


def _sweep(products, keep, total, finish, bm):
    @cuda.jit(device=True, inline=True)
    def sweep(v, w, units, K, sv, sw, acc, rec, zero, partial, tiles_j, splits, B, H, step):
        """One step of a streamed pass: the grid's blocks share out its work items (tile, split),
        then (split) every tile's sums are added after a grid sync, and the cell's step runs on
        them (``finish`` with ``step``); a grid sync at the end, before the next step."""
        grid = cuda.cg.this_grid()
        count = tiles_j * (-(-B // bm))
        for item in range(cuda.blockIdx.x, count * splits, cuda.gridDim.x):
            tile, z = item // splits, item % splits
            products(v, w, units, K, sv, sw, acc, zero, tile % tiles_j, tile // tiles_j, z, splits)
            if splits == 1:
                finish(acc, rec, tile % tiles_j, tile // tiles_j, B, H, step)
            else:
                keep(acc, partial, tile, z, splits)
        if splits > 1:
            grid.sync()  # every split's sums in partial
            for tile in range(cuda.blockIdx.x, count, cuda.gridDim.x):
                total(acc, partial, tile, splits)
                finish(acc, rec, tile % tiles_j, tile // tiles_j, B, H, step)
        grid.sync()  # the step's states everywhere before any block reads them; partial free again

    return sweep


def make_streamed_forward(cell_forward, G, dtype, rm, rj):
    """kernel(xp, w_hh, bias, h0, c0, h, c, tape, partial, tiles_j, splits, reverse, one): the
    whole forward pass."""
    products, keep, total, bm, bj = make(G, rm, rj)
    sweep = _sweep(products, keep, total, make_finish(make_forward_at(cell_forward), G, rm, rj), bm)
    v_shape, w_shape = (BK, bm + 1), (BK, G * bj + 1)

    @cuda.jit
    def forward(xp, w, bias, h0, c0, h, c, tape, partial, tiles_j, splits, reverse, one):
        sv = cuda.shared.array(v_shape, dtype)
        sw = cuda.shared.array(w_shape, dtype)
        acc = cuda.local.array((rm, rj, G), dtype)
        rec = cuda.local.array(G, dtype)
        n, B, H = h.shape
        for s in range(n):
            t, prev = forward_order(s, n, reverse)
            h_prev, c_prev = previous_states(s, prev, h, h0, c, c0)
            sweep(h_prev, w, H, H, sv, sw, acc, rec, one - one, partial, tiles_j, splits, B, H,
                  (t, xp, bias, h_prev, c_prev, h, c, tape, one))

    return forward


def make_streamed_backward(cell_backward, dtype, rm, rj):
    """kernel(w_hh^T, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0, partial, tiles_j,
    splits, reverse, one): the whole backward pass, ending with dh0 = W_hh^T da_first (+ direct)."""
    products, keep, total, bm, bj = make(1, rm, rj)
    sweep = _sweep(products, keep, total, make_finish(make_backward_at(cell_backward), 1, rm, rj), bm)
    v_shape, w_shape = (BK, bm + 1), (BK, bj + 1)

    @cuda.jit
    def backward(wt, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0, partial, tiles_j, splits,
                 reverse, one):
        sv = cuda.shared.array(v_shape, dtype)
        sw = cuda.shared.array(w_shape, dtype)
        acc = cuda.local.array((rm, rj, 1), dtype)
        rec = cuda.local.array(1, dtype)
        n, B, H = dy.shape
        for s in range(n + 1):
            t, prev, done = backward_order(s, n, reverse)
            # the first step has no product: K = 0, nothing to split
            sweep(dah[done % n], wt, H, wt.shape[1] if s > 0 else 0, sv, sw, acc, rec, one - one, partial, tiles_j,
                  splits if s > 0 else 1, B, H, (s, t, prev, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel,
                                                  dh0, one))

    return backward


def plan(batch: int, hidden: int, K: int, gates: int, tile, sms: int, splits=None):
    """(tiles along j, tiles along b, splits, floats of the splits' sums: 1 when unsplit) of a step
    whose product is K deep and makes ``gates`` sums per (b, j); ``splits`` None: as many as bring
    the blocks to about BLOCKS_PER_SM per SM, none shallower than MIN_SPLIT_K."""
    rm, rj = tile
    tiles_j, tiles_b = math.ceil(hidden / (T * rj)), math.ceil(batch / (T * rm))
    tiles = tiles_j * tiles_b
    if checked_splits(splits) is None:
        splits = max(1, min(-(-BLOCKS_PER_SM * sms // tiles), K // MIN_SPLIT_K))
    return tiles_j, tiles_b, splits, tiles * splits * rm * rj * gates * T * T if splits > 1 else 1


def checked_splits(splits):
    """``splits`` as given, if it is None (automatic) or a whole number from 1; else a ValueError."""
    if splits is not None and not (isinstance(splits, int) and not isinstance(splits, bool) and splits >= 1):
        raise ValueError(f"splits must be a whole number from 1, or None (automatic), not {splits!r}")
    return splits
