"""Vanilla RNN (tanh or relu): the recurrence of one layer and direction, forward and backward.

    forward   h_t = act(xp_t + W_hh h_{t-1} + b_hh)          xp_t = W_ih x_t + b_ih, given
    backward  dh_t = dy_t + carry;  da_t = dh_t * act'(h_t);  carry = W_hh^T da_t

``da`` is the gradient of the pre-activation for the input and recurrent sides alike; the
weight gradients are then whole-sequence products made by the caller.
"""
import numpy as np
from numba import njit

from rnnbench.backends.cpu.activations import activate, activate_grad


@njit(cache=True)
def rnn_forward(xp, w_hh_t, b_hh, h0, reverse, relu, h):
    n, B, H = xp.shape
    hp = np.empty((B, H), h0.dtype)
    h_prev = h0
    for s in range(n):
        t = n - 1 - s if reverse else s
        np.dot(h_prev, w_hh_t, hp)
        for b in range(B):
            for j in range(H):
                h[t, b, j] = activate(xp[t, b, j] + hp[b, j] + b_hh[j], relu)
        h_prev = h[t]


@njit(cache=True)
def rnn_backward(w_hh, h, dy, dh_n, reverse, relu, da, hidden):
    n, B, H = h.shape
    one = h.dtype.type(1)
    dh = dh_n.copy()
    keep = hidden.shape[0] > 0
    for s in range(n):
        t = s if reverse else n - 1 - s
        for b in range(B):
            for j in range(H):
                d = dy[t, b, j] + dh[b, j]
                if keep:
                    hidden[t, b, j] += d
                da[t, b, j] = d * activate_grad(h[t, b, j], relu, one)
        np.dot(da[t], w_hh, dh)
    return dh


def forward(cell, xp, w, h0, c0, reverse, store):
    n, B, _ = xp.shape
    h = np.empty((n, B, h0.shape[1]), h0.dtype)
    rnn_forward(xp, w.w_hh.T, w.b_hh, h0, reverse, cell.nonlinearity == "relu", h)
    return {"h": h}, h[0 if reverse else -1], None


def backward(cell, w, tape, dy, dh_n, dc_n, reverse, hidden, cell_grad):
    da = np.empty_like(dy)
    dh0 = rnn_backward(w.w_hh, tape.h, dy, dh_n, reverse, cell.nonlinearity == "relu", da, hidden)
    return da, da, dh0, None
