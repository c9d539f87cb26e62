"""GRU on the GPU, one layer and direction: a kernel per step, forward and backward side by side.

    forward   hr, hz, hn = W_hh h_{t-1} + b_hh;  r = sig(xp_r + hr);  z = sig(xp_z + hz)
              n = tanh(xp_n + r hn);  h_t = (1 - z) n + z h_{t-1}
    backward  dh = dy_t + W_hh^T dah_{t+1} + dh_{t+1} z_{t+1};  da_n = dh (1-z)(1-n^2)
              da_z = dh (h_{t-1} - n) z(1-z);  da_r = da_n hn r(1-r)
              input side [da_r, da_z, da_n];  recurrent side [da_r, da_z, da_n r]

``bias`` is [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]. ``direct`` carries dh z from one launch to the next.
"""
import math

from numba import cuda

from rnnbench.backends.cuda.device import carry, sigmoid

GATES = ("reset", "update", "new", "hn")


@cuda.jit
def gru_forward_step(xp_t, w_hh, bias, h_prev, h_t, r_t, z_t, n_t, hn_t, one):
    n = cuda.grid(1)
    B, H = h_t.shape
    if n < B * H:
        b, j = n // H, n % H
        a_r, a_z, hn = xp_t[b, j] + bias[j], xp_t[b, H + j] + bias[H + j], bias[3 * H + j]
        for k in range(H):
            hk = h_prev[b, k]
            a_r += hk * w_hh[j, k]
            a_z += hk * w_hh[H + j, k]
            hn += hk * w_hh[2 * H + j, k]
        r, z = sigmoid(a_r, one), sigmoid(a_z, one)
        cand = math.tanh(xp_t[b, 2 * H + j] + bias[2 * H + j] + r * hn)
        h_t[b, j] = (one - z) * cand + z * h_prev[b, j]
        r_t[b, j], z_t[b, j], n_t[b, j], hn_t[b, j] = r, z, cand, hn


@cuda.jit
def gru_backward_step(w_hh, dah_next, first, dh_n, direct, dy_t, r_t, z_t, n_t, hn_t, h_prev,
                      dax_t, dah_t, hid_t, one):
    n = cuda.grid(1)
    B, H = dy_t.shape
    if n < B * H:
        b, j = n // H, n % H
        r, z, cand, hn = r_t[b, j], z_t[b, j], n_t[b, j], hn_t[b, j]
        d_h = dy_t[b, j] + (dh_n[b, j] if first else carry(w_hh, dah_next, b, j) + direct[b, j])
        hid_t[b, j] += d_h
        d_n = d_h * (one - z) * (one - cand * cand)
        d_z = d_h * (h_prev[b, j] - cand) * z * (one - z)
        d_r = d_n * hn * r * (one - r)
        dax_t[b, j] = dah_t[b, j] = d_r
        dax_t[b, H + j] = dah_t[b, H + j] = d_z
        dax_t[b, 2 * H + j] = d_n
        dah_t[b, 2 * H + j] = d_n * r
        direct[b, j] = d_h * z  # read above by this same thread: no other thread touches [b, j]
