"""Vanilla RNN (tanh or relu): the recurrence of one layer and direction, forward and backward.

    forward   h_t = act(xp_t + W_hh h_{t-1} + (b_ih + b_hh))          xp_t = W_ih x_t, from the caller
    backward  dh_t = dy_t + carry;  da_t = dh_t * act'(h_t);  carry = W_hh^T da_t

``da`` is the gradient of the pre-activation for the input and recurrent sides alike; the
weight gradients are then whole-sequence products made by the caller. W_hh^T (forward) and W_hh
(backward) come packed for ``matmul.recurrent``.
"""
import numpy as np
from numba import njit

from rnnbench.backends.base import forward_bias
from rnnbench.backends.cpu.activations import activate, activate_grad
from rnnbench.backends.cpu.matmul import pack, recurrent, use_parallel


@njit(cache=True, error_model="numpy")
def rnn_forward(xp, w_hh_t, bias, h0, reverse, relu, h, parallel):
    n, B, H = xp.shape
    hp = np.empty((B, H), h0.dtype)
    h_prev = h0
    for s in range(n):
        t = n - 1 - s if reverse else s
        recurrent(h_prev, w_hh_t, hp, parallel)
        for b in range(B):
            for j in range(H):
                h[t, b, j] = activate(xp[t, b, j] + hp[b, j] + bias[j], relu)
        h_prev = h[t]


@njit(cache=True, error_model="numpy")
def rnn_backward(w_hh, h, dy, dh_n, reverse, relu, da, hidden, parallel):
    n, B, H = h.shape
    one = h.dtype.type(1)
    dh = dh_n.copy()
    kept = hidden.shape[0]  # n, or 1: a scratch step the caller does not keep (no branch in the loop)
    for s in range(n):
        t = s if reverse else n - 1 - s
        hid_t = hidden[t % kept]
        for b in range(B):
            for j in range(H):
                d = dy[t, b, j] + dh[b, j]
                hid_t[b, j] += d
                da[t, b, j] = d * activate_grad(h[t, b, j], relu, one)
        recurrent(da[t], w_hh, dh, parallel)
    return dh


def forward(cell, xp, w, h0, c0, reverse, store):
    n, B, H = xp.shape
    h = np.empty((n, B, H), h0.dtype)
    rnn_forward(xp, pack(w.w_hh, transpose=True), forward_bias(cell.name, w), h0, reverse,
                cell.nonlinearity == "relu", h, use_parallel(B, H, H))
    return {"h": h}, h[0 if reverse else -1], None


def backward(cell, w, tape, dy, dh_n, dc_n, reverse, hidden, cell_grad):
    da = np.empty_like(dy)
    _, B, H = dy.shape
    dh0 = rnn_backward(pack(w.w_hh, transpose=False), tape.h, dy, dh_n, reverse, cell.nonlinearity == "relu", da,
                       hidden, use_parallel(B, H, H))
    return da, da, dh0, None
