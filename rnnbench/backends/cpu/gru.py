"""GRU: the recurrence of one layer and direction, forward and backward (torch's gate order r, z, n).

    forward   hr, hz, hn = W_hh h_{t-1} + b_hh;  r = sig(xp_r + hr);  z = sig(xp_z + hz)
              n = tanh(xp_n + r hn);  h_t = (1 - z) n + z h_{t-1}
    backward  dh = dy_t + carry;  da_n = dh (1-z)(1-n^2);  da_z = dh (h_{t-1} - n) z(1-z)
              da_r = da_n hn r(1-r)
              input side [da_r, da_z, da_n];  recurrent side [da_r, da_z, da_n r]
              carry = W_hh^T (recurrent side) + dh z

The tape keeps r, z, n and hn per step (hn is needed for da_r).
"""
import numpy as np
from numba import njit

from rnnbench.backends.cpu.activations import sigmoid


@njit(cache=True)
def gru_forward(xp, w_hh_t, b_hh, h0, reverse, h, gates):
    n, B, G = xp.shape
    H = G // 3
    one = h0.dtype.type(1)
    hp = np.empty((B, G), h0.dtype)
    h_prev = h0
    for s in range(n):
        t = n - 1 - s if reverse else s
        np.dot(h_prev, w_hh_t, hp)
        gt = gates[t % gates.shape[0]]
        for b in range(B):
            for j in range(H):
                r = sigmoid(xp[t, b, j] + hp[b, j] + b_hh[j], one)
                z = sigmoid(xp[t, b, H + j] + hp[b, H + j] + b_hh[H + j], one)
                hn = hp[b, 2 * H + j] + b_hh[2 * H + j]
                cand = np.tanh(xp[t, b, 2 * H + j] + r * hn)
                h[t, b, j] = (one - z) * cand + z * h_prev[b, j]
                gt[b, j], gt[b, H + j], gt[b, 2 * H + j], gt[b, 3 * H + j] = r, z, cand, hn
        h_prev = h[t]


@njit(cache=True)
def gru_backward(w_hh, gates, h, h0, dy, dh_n, reverse, dax, dah, hidden):
    n, B, G4 = gates.shape
    H = G4 // 4
    one = h0.dtype.type(1)
    dh = dh_n.copy()
    direct = np.empty_like(dh)
    keep = hidden.shape[0] > 0
    for s in range(n):
        t = s if reverse else n - 1 - s
        prev = t + 1 if reverse else t - 1
        h_prev = h[prev] if 0 <= prev < n else h0
        for b in range(B):
            for j in range(H):
                r, z = gates[t, b, j], gates[t, b, H + j]
                cand, hn = gates[t, b, 2 * H + j], gates[t, b, 3 * H + j]
                d_h = dy[t, b, j] + dh[b, j]
                if keep:
                    hidden[t, b, j] += d_h
                d_n = d_h * (one - z) * (one - cand * cand)
                d_z = d_h * (h_prev[b, j] - cand) * z * (one - z)
                d_r = d_n * hn * r * (one - r)
                dax[t, b, j] = dah[t, b, j] = d_r
                dax[t, b, H + j] = dah[t, b, H + j] = d_z
                dax[t, b, 2 * H + j] = d_n
                dah[t, b, 2 * H + j] = d_n * r
                direct[b, j] = d_h * z
        np.dot(dah[t], w_hh, dh)
        dh += direct
    return dh


def forward(cell, xp, w, h0, c0, reverse, store):
    n, B, G = xp.shape
    h = np.empty((n, B, G // 3), h0.dtype)
    gates = np.empty((n if store else 1, B, 4 * (G // 3)), h0.dtype)
    gru_forward(xp, w.w_hh.T, w.b_hh, h0, reverse, h, gates)
    steps = {"h": h, "gates": gates} if store else {"h": h}
    return steps, h[0 if reverse else -1], None


def backward(cell, w, tape, dy, dh_n, dc_n, reverse, hidden, cell_grad):
    n, B, H = dy.shape
    dax = np.empty((n, B, 3 * H), dy.dtype)
    dah = np.empty_like(dax)
    dh0 = gru_backward(w.w_hh, tape.steps["gates"], tape.h, tape.h0, dy, dh_n, reverse,
                       dax, dah, hidden)
    return dax, dah, dh0, None
