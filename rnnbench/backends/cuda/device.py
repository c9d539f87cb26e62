"""What the cuda kernels share: the activations and the order of a pass's steps."""
from __future__ import annotations

import math

import numpy as np

if not hasattr(np, "row_stack"):  # numba-cuda 0.30 registers np.row_stack, which numpy 2.5 removed
    np.row_stack = np.vstack
from numba import cuda  # noqa: E402


@cuda.jit(device=True, inline=True)
def sigmoid(a, one):
    return one / (one + math.exp(-a))


@cuda.jit(device=True, inline=True)
def forward_order(s, n, reverse):
    """(t, prev): the time of a forward's step s and of the step before it."""
    t = n - 1 - s if reverse else s
    return t, (t + 1 if reverse else t - 1)


@cuda.jit(device=True, inline=True)
def backward_order(s, n, reverse):
    """(t, prev, done): the time of a backward's step s (the forward's in reverse; s = n is the
    product into h0, t = -1 or n), of the step before it in the forward, and of the step done last."""
    t = s if reverse else n - 1 - s
    return t, (t + 1 if reverse else t - 1), (t - 1 if reverse else t + 1)


@cuda.jit(device=True, inline=True)
def previous_states(s, prev, h, h0, c, c0):
    """(h_{t-1}, c_{t-1}) of a forward's step s: the entering states at the first step."""
    return (h0 if s == 0 else h[prev]), (c0 if s == 0 else c[prev % c.shape[0]])


def make_forward_at(cell_forward):
    @cuda.jit(device=True, inline=True)
    def forward_at(rec, b, j, step):
        """Forward step at time t for (b, j), rec = the G gate sums of W_hh h_{t-1}; ``step``: the
        step's arrays, one tuple (numba-cuda 0.30 cannot inline a call that unpacks one)."""
        t, xp, bias, h_prev, c_prev, h, c, tape, one = step
        cell_forward(rec, b, j, h.shape[2], xp[t], bias, h_prev, c_prev, h[t], c[t % c.shape[0]],
                     tape[t % tape.shape[0]], one)

    return forward_at


def make_backward_at(cell_backward):
    @cuda.jit(device=True, inline=True)
    def backward_at(rec, b, j, step):
        """Backward step s at (b, j), rec[0] = W_hh^T da of the step done before; past the first
        step (s = n) dL/dh0 = rec[0] + direct (GRU's dh z; zero for the others)."""
        s, t, prev, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0, one = step
        n = dy.shape[0]
        if s == n:
            dh0[b, j] = rec[0] + direct[b, j]
        else:
            inside = 0 <= prev < n
            cell_backward(rec, b, j, dy.shape[2], dy[t], direct, dc, tape[t % tape.shape[0]], h[t],
                          h[prev] if inside else h0, c[t % c.shape[0]], c[prev % c.shape[0]] if inside else c0,
                          dax[t], dah[t], hid[t % hid.shape[0]], cel[t % cel.shape[0]], one)

    return backward_at
