"""Vanilla RNN (tanh or relu): the recurrence of one layer and direction, forward and backward.

    forward   h_t = act(W_ih x_t + W_hh h_{t-1} + (b_ih + b_hh))
    backward  dh_t = dy_t + carry;  da_t = dh_t * act'(h_t);  carry = W_hh^T da_t

``da`` is the gradient of the pre-activation for the input and recurrent sides alike; the
weight gradients are then whole-sequence products made by the caller. A forward step's product
is ``matmul.step_product``'s (the input side projected beforehand or joined to the step); the
backward's multiplies by W_hh packed for ``matmul.recurrent``. Each part of the batch runs on a
thread of its own (``threads.batch_split``): rows lo .. hi-1.
"""
import numpy as np
from numba import prange

from rnnbench.backends.base import forward_bias
from rnnbench.backends.cpu.activations import KERNEL_OPTIONS, activate, activate_grad
from rnnbench.backends.cpu.matmul import pack, recurrent, step_operands, step_product, step_rows
from rnnbench.backends.cpu.threads import compiled, part_rows, parts, run_parts


def _rnn_forward(x, pre, w_t, bias, h0, reverse, relu, h, chunk, parallel):
    n, B, I = x.shape
    H = h0.shape[1]
    xh = step_rows(x, h0)
    for part in prange(parts(B, chunk)):
        lo, hi = part_rows(part, chunk, B)
        xh_p = xh[lo:hi]  # the part's rows (threads.py: rows from 0)
        for s in range(n):
            t = n - 1 - s if reverse else s
            a_t = step_product(x, pre, w_t, xh, t, lo, hi, parallel)[lo:hi]
            h_t = h[t, lo:hi]
            for b in range(hi - lo):
                for j in range(H):
                    h_new = activate(a_t[b, j] + bias[j], relu)
                    h_t[b, j] = h_new
                    xh_p[b, I + j] = h_new


def _rnn_backward(w_hh, h, dy, dh_n, reverse, relu, da, hidden, chunk, parallel):
    n, B, H = h.shape
    one = h.dtype.type(1)
    dh = dh_n.copy()
    kept = hidden.shape[0]  # n, or 1: a scratch step the caller does not keep (no branch in the loop)
    for part in prange(parts(B, chunk)):
        lo, hi = part_rows(part, chunk, B)
        dh_p = dh[lo:hi]  # the part's rows
        for s in range(n):
            t = s if reverse else n - 1 - s
            h_t, dy_t, da_t, hid_t = h[t, lo:hi], dy[t, lo:hi], da[t, lo:hi], hidden[t % kept, lo:hi]
            for b in range(hi - lo):
                for j in range(H):
                    d = dy_t[b, j] + dh_p[b, j]
                    hid_t[b, j] += d
                    da_t[b, j] = d * activate_grad(h_t[b, j], relu, one)
            recurrent(da[t], w_hh, dh, lo, hi, parallel)
    return dh


# (one thread, every thread): batch_split's parts, each running the whole sequence of its rows
rnn_forward = compiled(_rnn_forward, **KERNEL_OPTIONS)
rnn_backward = compiled(_rnn_backward, **KERNEL_OPTIONS)


def forward(cell, x, w, h0, c0, reverse, store):
    n, B, _ = x.shape
    H = h0.shape[1]
    h = np.empty((n, B, H), h0.dtype)
    inputs, pre, w_t = step_operands(x, w.w_ih, w.w_hh)
    run_parts(rnn_forward, B, H, w_t.shape[1], x.itemsize, inputs, pre, w_t, forward_bias(cell.name, w), h0, reverse,
              cell.nonlinearity == "relu", h)
    return {"h": h}, h[0 if reverse else -1], None


def backward(cell, w, tape, dy, dh_n, dc_n, reverse, hidden, cell_grad):
    da = np.empty_like(dy)
    _, B, H = dy.shape
    dh0 = run_parts(rnn_backward, B, H, H, dy.itemsize, pack(w.w_hh, transpose=False), tape.h, dy, dh_n, reverse,
                    cell.nonlinearity == "relu", da, hidden)
    return da, da, dh0, None
