"""GRU: the recurrence of one layer and direction, forward and backward (torch's gate order r, z, n).

    forward   xp = W_ih x_t + b_ih;  hr, hz, hn = W_hh h_{t-1} + b_hh;  r = sig(xp_r + hr);  z = sig(xp_z + hz)
              n = tanh(xp_n + r hn);  h_t = (1 - z) n + z h_{t-1}      (the caller gives W_ih x_t; the biases come here)
    backward  dh = dy_t + carry;  da_n = dh (1-z)(1-n^2);  da_z = dh (h_{t-1} - n) z(1-z)
              da_r = da_n hn r(1-r)
              input side [da_r, da_z, da_n];  recurrent side [da_r, da_z, da_n r]
              carry = W_hh^T (recurrent side) + dh z

W_hh^T (forward) and W_hh (backward) come packed for ``matmul.recurrent``. The tape keeps r, z, n
and hn per step, one array each (``planes.py``; hn is needed for da_r). Each part of the batch
runs on a thread of its own (``threads.batch_split``): rows lo .. hi-1.
"""
import numpy as np
from numba import prange

from rnnbench.backends.base import forward_bias
from rnnbench.backends.cpu.activations import KERNEL_OPTIONS, sigmoid, tanh
from rnnbench.backends.cpu.matmul import pack, project, recurrent
from rnnbench.backends.cpu.planes import put_columns
from rnnbench.backends.cpu.threads import compiled, part_rows, parts, run_parts

GATES = ("reset", "update", "new", "hn")  # the tape's keys: CellSpec.gate_names, and hn


def _gru_forward(xp, w_hh_t, bias, h0, reverse, h, gr, gz, gn, ghn, chunk, parallel):
    n, B, G = xp.shape
    H = G // 3
    one = h0.dtype.type(1)
    hp = np.empty((B, G), h0.dtype)
    h_run = h0.copy()  # h_{t-1}, apart from the tape h (planes.py)
    for part in prange(parts(B, chunk)):
        lo, hi = part_rows(part, chunk, B)
        hp_p, h_p = hp[lo:hi], h_run[lo:hi]  # the part's rows (threads.py: rows from 0)
        for s in range(n):
            t = n - 1 - s if reverse else s
            recurrent(h_run, w_hh_t, hp, lo, hi, parallel)
            k = t % gr.shape[0]
            r_t, z_t, n_t, hn_t = gr[k, lo:hi], gz[k, lo:hi], gn[k, lo:hi], ghn[k, lo:hi]
            x_t, h_t = xp[t, lo:hi], h[t, lo:hi]
            for b in range(hi - lo):
                for j in range(H):
                    r = sigmoid(x_t[b, j] + hp_p[b, j] + bias[j])
                    z = sigmoid(x_t[b, H + j] + hp_p[b, H + j] + bias[H + j])
                    hn = hp_p[b, 2 * H + j] + bias[3 * H + j]
                    cand = tanh(x_t[b, 2 * H + j] + bias[2 * H + j] + r * hn)
                    h_new = (one - z) * cand + z * h_p[b, j]
                    h_p[b, j] = h_new
                    h_t[b, j] = h_new
                    r_t[b, j], z_t[b, j], n_t[b, j], hn_t[b, j] = r, z, cand, hn


def _gru_backward(w_hh, gr, gz, gn, ghn, h, h0, dy, dh_n, reverse, dax, dah, hidden, chunk, parallel):
    n, B, H = gr.shape
    one = h0.dtype.type(1)
    dh = dh_n.copy()
    # four allocations, not four views of one (planes.py)
    d_r, d_z, d_n, d_nr = np.empty_like(h0), np.empty_like(h0), np.empty_like(h0), np.empty_like(h0)
    direct = np.empty_like(h0)
    kept = hidden.shape[0]  # n, or 1: a scratch step the caller does not keep (no branch in the loop)
    for part in prange(parts(B, chunk)):
        lo, hi = part_rows(part, chunk, B)
        # the part's rows
        dh_p, d_r_p, d_z_p, d_n_p, d_nr_p = dh[lo:hi], d_r[lo:hi], d_z[lo:hi], d_n[lo:hi], d_nr[lo:hi]
        direct_p = direct[lo:hi]
        for s in range(n):
            t = s if reverse else n - 1 - s
            prev = t + 1 if reverse else t - 1
            h_prev = (h[prev] if 0 <= prev < n else h0)[lo:hi]
            r_t, z_t, n_t, hn_t = gr[t, lo:hi], gz[t, lo:hi], gn[t, lo:hi], ghn[t, lo:hi]
            dy_t, hid_t = dy[t, lo:hi], hidden[t % kept, lo:hi]
            for b in range(hi - lo):
                for j in range(H):
                    r, z, cand, hn = r_t[b, j], z_t[b, j], n_t[b, j], hn_t[b, j]
                    d_h = dy_t[b, j] + dh_p[b, j]
                    hid_t[b, j] += d_h
                    dn = d_h * (one - z) * (one - cand * cand)
                    d_n_p[b, j] = dn
                    d_nr_p[b, j] = dn * r
                    d_z_p[b, j] = d_h * (h_prev[b, j] - cand) * z * (one - z)
                    d_r_p[b, j] = dn * hn * r * (one - r)
                    direct_p[b, j] = d_h * z
            for k, (x_side, h_side) in enumerate(((d_r, d_r), (d_z, d_z), (d_n, d_nr))):
                put_columns(dax[t], k * H, x_side, lo, hi)
                put_columns(dah[t], k * H, h_side, lo, hi)
            recurrent(dah[t], w_hh, dh, lo, hi, parallel)
            for b in range(hi - lo):
                for j in range(H):
                    dh_p[b, j] += direct_p[b, j]
    return dh


# (one thread, every thread): batch_split's parts, each running the whole sequence of its rows
gru_forward = compiled(_gru_forward, **KERNEL_OPTIONS)
gru_backward = compiled(_gru_backward, **KERNEL_OPTIONS)


def forward(cell, x, w, h0, c0, reverse, store):
    xp = project(x, w.w_ih)
    n, B, G = xp.shape
    h = np.empty((n, B, G // 3), h0.dtype)
    gates = {k: np.empty((n if store else 1, B, G // 3), h0.dtype) for k in GATES}
    run_parts(gru_forward, B, G, G // 3, xp.itemsize, xp, pack(w.w_hh, transpose=True), forward_bias(cell.name, w),
              h0, reverse, h, *gates.values())
    steps = {"h": h, **gates} if store else {"h": h}
    return steps, h[0 if reverse else -1], None


def backward(cell, w, tape, dy, dh_n, dc_n, reverse, hidden, cell_grad):
    n, B, H = dy.shape
    dax = np.empty((n, B, 3 * H), dy.dtype)
    dah = np.empty_like(dax)
    dh0 = run_parts(gru_backward, B, H, 3 * H, dy.itemsize, pack(w.w_hh, transpose=False),
                    *(tape.steps[k] for k in GATES), tape.h, tape.h0, dy, dh_n, reverse, dax, dah, hidden)
    return dax, dah, dh0, None
