"""One launch per pass: the persistent kernel (Diamos et al., "Persistent RNNs", 2016).

Each block owns J hidden units and keeps their rows of W_hh (forward: the G J rows g H + j, each
H long; backward: the J rows j of W_hh^T, each G H long) in shared memory for the whole sequence;
between steps the grid synchronises (``cuda.cg.this_grid().sync()``: numba launches such a kernel
cooperatively), so the state a step writes is read by every block in the next. Nothing is launched
per step, and W_hh is read from device memory once instead of once per step: the ground of small
batches, where a step's work is tiny and launches and weight reads dominate.

Within a step, pair (b, r) (batch row, cached row) is a dot product of length K split over S
lanes (coalesced reads of v, conflict-free reads of the cache); the S partial sums meet in shared
memory. Then a thread per (b, j) runs the cell's ``forward`` / ``backward`` on the G sums of
unit j. Limits: the cache of a block must fit in 48 KB of shared memory (numba-cuda exposes no
more), and the grid in one cooperative launch (every block resident at once); ``plan`` says
whether a size fits, and the backend falls back to the steps (``tiles.py``) where it does not.
"""
import math

from numba import config, cuda

from rnnbench.backends.cuda.device import (backward_order, forward_order, make_backward_at, make_forward_at,
                                          previous_states)

THREADS = 32 if config.ENABLE_CUDASIM else 256  # the simulator runs each thread as a Python thread
SHARED_BYTES = 48 * 1024


def plan(rows_per_unit: int, K: int, units: int, batch: int, itemsize: int, sms: int):
    """(J, S, shared bytes): units per block, lanes per dot product, or None when the cache does
    not fit one block's shared memory even at one unit."""
    if config.ENABLE_CUDASIM:  # the simulator runs one block per cooperative grid
        J = units
    else:
        J = max(1, math.ceil(units / sms))  # one block per SM, if the rows fit
        while J > 1 and _shared(rows_per_unit * J, K, batch, itemsize) > SHARED_BYTES:
            J -= 1  # the most units that fit: the fewest blocks
        if _shared(rows_per_unit * J, K, batch, itemsize) > SHARED_BYTES:
            return None
    pairs = batch * rows_per_unit * J
    S = 1
    while S < 32 and 2 * S * pairs <= THREADS:
        S *= 2
    return J, S, _shared(rows_per_unit * J, K, batch, itemsize)


def _shared(rows: int, K: int, batch: int, itemsize: int) -> int:
    return (rows * K + max(THREADS, batch * rows)) * itemsize


@cuda.jit(device=True, inline=True)
def products(cache, R, K, v, partial, S, zero):
    """partial[(b R + r) S] = sum_k cache[r K + k] v[b, k] for every batch row b, cached row r."""
    tid = cuda.threadIdx.x
    lane = tid % S
    B = v.shape[0]
    for p in range(tid // S, B * R, THREADS // S):
        b, r = p // R, p % R
        s = zero
        for k in range(lane, K, S):
            s += cache[r * K + k] * v[b, k]
        partial[p * S + lane] = s
    cuda.syncthreads()
    if S > 1:
        for p in range(tid, B * R, THREADS):
            s = partial[p * S]
            for lane in range(1, S):
                s += partial[p * S + lane]
            partial[p * S] = s  # only this thread reads [p S, p S + S)
        cuda.syncthreads()


@cuda.jit(device=True, inline=True)
def load(w, cache, group, J, units, K, zero):
    """cache[r K + k] = w[(r // J) group + j0 + r % J, k]: block's rows, zero past the last unit."""
    j0 = cuda.blockIdx.x * J
    for e in range(cuda.threadIdx.x, cache.shape[0], THREADS):
        r, k = e // K, e % K
        j = j0 + r % J
        cache[e] = w[(r // J) * group + j, k] if j < units else zero
    cuda.syncthreads()


def make_forward(cell_forward, G, dtype):
    """kernel(xp, w_hh, bias, h0, c0, h, c, tape, J, S, reverse, one): the whole forward pass."""
    forward_at = make_forward_at(cell_forward)

    @cuda.jit
    def forward(xp, w, bias, h0, c0, h, c, tape, J, S, reverse, one):
        shared = cuda.shared.array(0, dtype)
        n, B, H = h.shape
        R = G * J
        cache, partial = shared[: R * H], shared[R * H :]
        zero = one - one
        load(w, cache, H, J, H, H, zero)
        rec = cuda.local.array(G, dtype)
        j0 = cuda.blockIdx.x * J
        grid = cuda.cg.this_grid()
        for s in range(n):
            t, prev = forward_order(s, n, reverse)
            h_prev, c_prev = previous_states(s, prev, h, h0, c, c0)
            products(cache, R, H, h_prev, partial, S, zero)
            for q in range(cuda.threadIdx.x, B * J, THREADS):
                b, jj = q // J, q % J
                if j0 + jj < H:
                    for g in range(G):
                        rec[g] = partial[(b * R + g * J + jj) * S]
                    forward_at(rec, b, j0 + jj, (t, xp, bias, h_prev, c_prev, h, c, tape, one))
            grid.sync()  # h_t everywhere before any block reads it; partial free again

    return forward


def make_backward(cell_backward, dtype):
    """kernel(w_hh^T, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0, J, S, reverse, one):
    the whole backward pass, ending with dh0 = W_hh^T da_first (+ direct)."""
    backward_at = make_backward_at(cell_backward)

    @cuda.jit
    def backward(wt, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0, J, S, reverse, one):
        shared = cuda.shared.array(0, dtype)
        n, B, H = dy.shape
        K = wt.shape[1]
        cache, partial = shared[: J * K], shared[J * K :]
        zero = one - one
        load(wt, cache, 0, J, H, K, zero)
        rec = cuda.local.array(1, dtype)
        j0 = cuda.blockIdx.x * J
        grid = cuda.cg.this_grid()
        for s in range(n + 1):
            t, prev, done = backward_order(s, n, reverse)
            if s > 0:
                products(cache, J, K, dah[done], partial, S, zero)
            for q in range(cuda.threadIdx.x, B * J, THREADS):
                b, jj = q // J, q % J
                if j0 + jj < H:
                    rec[0] = partial[(b * J + jj) * S] if s > 0 else zero
                    backward_at(rec, b, j0 + jj, (s, t, prev, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid,
                                                  cel, dh0, one))
            grid.sync()

    return backward
