"""LSTM: the recurrence of one layer and direction, forward and backward (torch's gate order i, f, g, o).

    forward   a = xp_t + W_hh h_{t-1} + b_hh;  i, f, o = sig(a_i, a_f, a_o);  g = tanh(a_g)
              c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
    backward  dh = dy_t + carry_h;  dc = carry_c + dh o (1 - tanh^2 c_t)
              da_i = dc g i(1-i);  da_f = dc c_{t-1} f(1-f);  da_g = dc i (1-g^2);  da_o = dh tanh(c_t) o(1-o)
              carry_h = W_hh^T da;  carry_c = dc f

The tape keeps the activated gates and c_t; without ``store`` both are one-step rolling buffers.
"""
import numpy as np
from numba import njit

from rnnbench.backends.cpu.activations import sigmoid


@njit(cache=True)
def lstm_forward(xp, w_hh_t, b_hh, h0, c0, reverse, h, c, gates):
    n, B, G = xp.shape
    H = G // 4
    one = h0.dtype.type(1)
    hp = np.empty((B, G), h0.dtype)
    h_prev, c_prev = h0, c0
    for s in range(n):
        t = n - 1 - s if reverse else s
        np.dot(h_prev, w_hh_t, hp)
        gt, ct = gates[t % gates.shape[0]], c[t % c.shape[0]]
        for b in range(B):
            for j in range(H):
                i = sigmoid(xp[t, b, j] + hp[b, j] + b_hh[j], one)
                f = sigmoid(xp[t, b, H + j] + hp[b, H + j] + b_hh[H + j], one)
                g = np.tanh(xp[t, b, 2 * H + j] + hp[b, 2 * H + j] + b_hh[2 * H + j])
                o = sigmoid(xp[t, b, 3 * H + j] + hp[b, 3 * H + j] + b_hh[3 * H + j], one)
                c_new = f * c_prev[b, j] + i * g
                ct[b, j] = c_new
                h[t, b, j] = o * np.tanh(c_new)
                gt[b, j], gt[b, H + j], gt[b, 2 * H + j], gt[b, 3 * H + j] = i, f, g, o
        h_prev, c_prev = h[t], ct


@njit(cache=True)
def lstm_backward(w_hh, gates, c, c0, dy, dh_n, dc_n, reverse, da, hidden, cell):
    n, B, G = gates.shape
    H = G // 4
    one = c0.dtype.type(1)
    dh, dc = dh_n.copy(), dc_n.copy()
    keep = hidden.shape[0] > 0
    for s in range(n):
        t = s if reverse else n - 1 - s
        prev = t + 1 if reverse else t - 1
        c_prev = c[prev] if 0 <= prev < n else c0
        for b in range(B):
            for j in range(H):
                i, f = gates[t, b, j], gates[t, b, H + j]
                g, o = gates[t, b, 2 * H + j], gates[t, b, 3 * H + j]
                d_h = dy[t, b, j] + dh[b, j]
                tc = np.tanh(c[t, b, j])
                d_c = dc[b, j] + d_h * o * (one - tc * tc)
                if keep:
                    hidden[t, b, j] += d_h
                    cell[t, b, j] += d_c
                da[t, b, j] = d_c * g * i * (one - i)
                da[t, b, H + j] = d_c * c_prev[b, j] * f * (one - f)
                da[t, b, 2 * H + j] = d_c * i * (one - g * g)
                da[t, b, 3 * H + j] = d_h * tc * o * (one - o)
                dc[b, j] = d_c * f
        np.dot(da[t], w_hh, dh)
    return dh, dc


def forward(cell, xp, w, h0, c0, reverse, store):
    n, B, G = xp.shape
    kept = n if store else 1
    h = np.empty((n, B, G // 4), h0.dtype)
    c = np.empty((kept, B, G // 4), h0.dtype)
    gates = np.empty((kept, B, G), h0.dtype)
    lstm_forward(xp, w.w_hh.T, w.b_hh, h0, c0, reverse, h, c, gates)
    steps = {"h": h, "c": c, "gates": gates} if store else {"h": h}
    return steps, h[0 if reverse else -1], c[0 if reverse or not store else -1]


def backward(cell, w, tape, dy, dh_n, dc_n, reverse, hidden, cell_grad):
    da = np.empty(tape.steps["gates"].shape, dy.dtype)
    dh0, dc0 = lstm_backward(w.w_hh, tape.steps["gates"], tape.steps["c"], tape.c0, dy,
                             dh_n, dc_n, reverse, da, hidden, cell_grad)
    return da, da, dh0, dc0
