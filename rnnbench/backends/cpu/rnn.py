"""Vanilla RNN (tanh or relu): the recurrence of one layer and direction, forward and backward.

    forward   h_t = act(xp_t + W_hh h_{t-1} + (b_ih + b_hh))          xp_t = W_ih x_t, from the caller
    backward  dh_t = dy_t + carry;  da_t = dh_t * act'(h_t);  carry = W_hh^T da_t

``da`` is the gradient of the pre-activation for the input and recurrent sides alike; the
weight gradients are then whole-sequence products made by the caller. W_hh^T (forward) and W_hh
(backward) come packed for ``matmul.recurrent``. Each part of the batch runs on a thread of its
own (``threads.batch_split``): rows lo .. hi-1.
"""
import numpy as np
from numba import prange

from rnnbench.backends.base import forward_bias
from rnnbench.backends.cpu.activations import activate, activate_grad
from rnnbench.backends.cpu.matmul import pack, recurrent
from rnnbench.backends.cpu.threads import compiled, part_rows, parts, run_parts


def _rnn_forward(xp, w_hh_t, bias, h0, reverse, relu, h, chunk, parallel):
    n, B, H = xp.shape
    hp = np.empty((B, H), h0.dtype)
    for part in prange(parts(B, chunk)):
        lo, hi = part_rows(part, chunk, B)
        h_prev = h0
        for s in range(n):
            t = n - 1 - s if reverse else s
            recurrent(h_prev, w_hh_t, hp, lo, hi, parallel)
            for b in range(lo, hi):
                for j in range(H):
                    h[t, b, j] = activate(xp[t, b, j] + hp[b, j] + bias[j], relu)
            h_prev = h[t]


def _rnn_backward(w_hh, h, dy, dh_n, reverse, relu, da, hidden, chunk, parallel):
    n, B, H = h.shape
    one = h.dtype.type(1)
    dh = dh_n.copy()
    kept = hidden.shape[0]  # n, or 1: a scratch step the caller does not keep (no branch in the loop)
    for part in prange(parts(B, chunk)):
        lo, hi = part_rows(part, chunk, B)
        for s in range(n):
            t = s if reverse else n - 1 - s
            hid_t = hidden[t % kept]
            for b in range(lo, hi):
                for j in range(H):
                    d = dy[t, b, j] + dh[b, j]
                    hid_t[b, j] += d
                    da[t, b, j] = d * activate_grad(h[t, b, j], relu, one)
            recurrent(da[t], w_hh, dh, lo, hi, parallel)
    return dh


# (one thread, every thread): batch_split's parts, each running the whole sequence of its rows
rnn_forward = compiled(_rnn_forward, error_model="numpy")
rnn_backward = compiled(_rnn_backward, error_model="numpy")


def forward(cell, xp, w, h0, c0, reverse, store):
    n, B, H = xp.shape
    h = np.empty((n, B, H), h0.dtype)
    run_parts(rnn_forward, B, H, H, xp.itemsize, xp, pack(w.w_hh, transpose=True), forward_bias(cell.name, w), h0,
              reverse, cell.nonlinearity == "relu", h)
    return {"h": h}, h[0 if reverse else -1], None


def backward(cell, w, tape, dy, dh_n, dc_n, reverse, hidden, cell_grad):
    da = np.empty_like(dy)
    _, B, H = dy.shape
    dh0 = run_parts(rnn_backward, B, H, H, dy.itemsize, pack(w.w_hh, transpose=False), tape.h, dy, dh_n, reverse,
                    cell.nonlinearity == "relu", da, hidden)
    return da, da, dh0, None
