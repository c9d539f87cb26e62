"""LSTM: the recurrence of one layer and direction, forward and backward (torch's gate order i, f, g, o).

    forward   a = W_ih x_t + W_hh h_{t-1} + (b_ih + b_hh);  i, f, o = sig(a_i, a_f, a_o);  g = tanh(a_g)
              c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
    backward  dh = dy_t + carry_h;  dc = carry_c + dh o (1 - tanh^2 c_t)
              da_i = dc g i(1-i);  da_f = dc c_{t-1} f(1-f);  da_g = dc i (1-g^2);  da_o = dh tanh(c_t) o(1-o)
              carry_h = W_hh^T da;  carry_c = dc f

A forward step's product is ``matmul.step_product``'s (the input side projected beforehand or
joined to the step); the backward's multiplies by W_hh packed for ``matmul.recurrent``. The tape
keeps the activated gates, one array each (``planes.py``), and c_t; without ``store`` they are
one-step rolling buffers. Each part of the batch runs on a thread of its own
(``threads.batch_split``): rows lo .. hi-1.
"""
import numpy as np
from numba import prange

from rnnbench.backends.base import forward_bias
from rnnbench.backends.cpu.activations import KERNEL_OPTIONS, sigmoid, tanh
from rnnbench.backends.cpu.matmul import pack, recurrent, step_operands, step_product, step_rows
from rnnbench.backends.cpu.threads import compiled, part_rows, parts, run_parts

GATES = ("input", "forget", "cell", "output")  # the tape's keys: CellSpec.gate_names


def _lstm_forward(x, pre, w_t, bias, h0, c0, reverse, h, c, gi, gf, gg, go, chunk, parallel):
    n, B, I = x.shape
    H = h0.shape[1]
    xh = step_rows(x, h0)
    c_run = c0.copy()
    for part in prange(parts(B, chunk)):
        lo, hi = part_rows(part, chunk, B)
        c_p, xh_p = c_run[lo:hi], xh[lo:hi]  # the part's rows (threads.py: rows from 0)
        for s in range(n):
            t = n - 1 - s if reverse else s
            a_t = step_product(x, pre, w_t, xh, t, lo, hi, parallel)[lo:hi]
            k = t % gi.shape[0]
            i_t, f_t, g_t, o_t = gi[k, lo:hi], gf[k, lo:hi], gg[k, lo:hi], go[k, lo:hi]
            c_t, h_t = c[t % c.shape[0], lo:hi], h[t, lo:hi]
            for b in range(hi - lo):
                for j in range(H):
                    i = sigmoid(a_t[b, j] + bias[j])
                    f = sigmoid(a_t[b, H + j] + bias[H + j])
                    g = tanh(a_t[b, 2 * H + j] + bias[2 * H + j])
                    o = sigmoid(a_t[b, 3 * H + j] + bias[3 * H + j])
                    c_new = f * c_p[b, j] + i * g
                    c_p[b, j] = c_new
                    c_t[b, j] = c_new
                    h_new = o * tanh(c_new)
                    h_t[b, j] = h_new
                    xh_p[b, I + j] = h_new
                    i_t[b, j], f_t[b, j], g_t[b, j], o_t[b, j] = i, f, g, o


def _lstm_backward(w_hh, gi, gf, gg, go, c, c0, dy, dh_n, dc_n, reverse, da, hidden, cell, chunk, parallel):
    n, B, H = gi.shape
    one = c0.dtype.type(1)
    dh, dc = dh_n.copy(), dc_n.copy()
    d_c, d_ho = np.empty_like(c0), np.empty_like(c0)  # dc at this step; dh tanh(c_t)
    kept = hidden.shape[0]  # n, or 1: a scratch step the caller does not keep (no branch in the loop)
    for part in prange(parts(B, chunk)):
        lo, hi = part_rows(part, chunk, B)
        dh_p, dc_p, d_c_p, d_ho_p = dh[lo:hi], dc[lo:hi], d_c[lo:hi], d_ho[lo:hi]  # the part's rows
        for s in range(n):
            t = s if reverse else n - 1 - s
            prev = t + 1 if reverse else t - 1
            c_prev = (c[prev] if 0 <= prev < n else c0)[lo:hi]
            i_t, f_t, g_t, o_t = gi[t, lo:hi], gf[t, lo:hi], gg[t, lo:hi], go[t, lo:hi]
            c_t, dy_t, da_t = c[t, lo:hi], dy[t, lo:hi], da[t, lo:hi]
            hid_t, cell_t = hidden[t % kept, lo:hi], cell[t % kept, lo:hi]
            for b in range(hi - lo):
                for j in range(H):
                    d_h = dy_t[b, j] + dh_p[b, j]
                    tc = tanh(c_t[b, j])
                    o = o_t[b, j]
                    dcv = dc_p[b, j] + d_h * o * (one - tc * tc)
                    hid_t[b, j] += d_h
                    cell_t[b, j] += dcv
                    d_c_p[b, j] = dcv
                    d_ho_p[b, j] = d_h * tc
                    dc_p[b, j] = dcv * f_t[b, j]
            # one loop per gate block of da_t: a loop storing into one array at one offset vectorises
            for b in range(hi - lo):
                for j in range(H):
                    i = i_t[b, j]
                    da_t[b, j] = d_c_p[b, j] * g_t[b, j] * i * (one - i)
            for b in range(hi - lo):
                for j in range(H):
                    f = f_t[b, j]
                    da_t[b, H + j] = d_c_p[b, j] * c_prev[b, j] * f * (one - f)
            for b in range(hi - lo):
                for j in range(H):
                    g = g_t[b, j]
                    da_t[b, 2 * H + j] = d_c_p[b, j] * i_t[b, j] * (one - g * g)
            for b in range(hi - lo):
                for j in range(H):
                    o = o_t[b, j]
                    da_t[b, 3 * H + j] = d_ho_p[b, j] * o * (one - o)
            recurrent(da[t], w_hh, dh, lo, hi, parallel)
    return dh, dc


# (one thread, every thread): batch_split's parts, each running the whole sequence of its rows
lstm_forward = compiled(_lstm_forward, **KERNEL_OPTIONS)
lstm_backward = compiled(_lstm_backward, **KERNEL_OPTIONS)


def forward(cell, x, w, h0, c0, reverse, store):
    n, B, _ = x.shape
    H = h0.shape[1]
    kept = n if store else 1
    h = np.empty((n, B, H), h0.dtype)
    c = np.empty((kept, B, H), h0.dtype)
    gates = {k: np.empty((kept, B, H), h0.dtype) for k in GATES}
    inputs, pre, w_t = step_operands(x, w.w_ih, w.w_hh)
    run_parts(lstm_forward, B, 4 * H, w_t.shape[1], x.itemsize, inputs, pre, w_t, forward_bias(cell.name, w), h0, c0,
              reverse, h, c, *gates.values())
    steps = {"h": h, "c": c, **gates} if store else {"h": h}
    return steps, h[0 if reverse else -1], c[0 if reverse or not store else -1]


def backward(cell, w, tape, dy, dh_n, dc_n, reverse, hidden, cell_grad):
    n, B, H = dy.shape
    da = np.empty((n, B, 4 * H), dy.dtype)
    dh0, dc0 = run_parts(lstm_backward, B, H, 4 * H, dy.itemsize, pack(w.w_hh, transpose=False),
                         *(tape.steps[k] for k in GATES), tape.steps["c"], tape.c0, dy, dh_n, dc_n, reverse, da,
                         hidden, cell_grad)
    return da, da, dh0, dc0
