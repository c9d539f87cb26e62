"""GRU on the GPU: what a step does to one (b, j) once its recurrent sums are made.

    forward   hr, hz, hn = W_hh h_{t-1} + b_hh;  r = sig(xp_r + hr);  z = sig(xp_z + hz)
              n = tanh(xp_n + r hn);  h_t = (1 - z) n + z h_{t-1}
    backward  dh = dy_t + W_hh^T dah_{t+1} + dh_{t+1} z_{t+1};  da_n = dh (1-z)(1-n^2)
              da_z = dh (h_{t-1} - n) z(1-z);  da_r = da_n hn r(1-r)
              input side [da_r, da_z, da_n];  recurrent side [da_r, da_z, da_n r]

``bias`` is [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]; ``direct`` carries dh z from a step to the one
before it (it starts as dL/dh_n). See ``lstm.py`` for ``rec`` and the tape.
"""
import math

from numba import cuda

from rnnbench.backends.cuda.device import sigmoid

GATES = 3
PLANES = ("reset", "update", "new", "hn")


@cuda.jit(device=True, inline=True)
def forward(rec, b, j, H, xp, bias, h_prev, c_prev, h_t, c_t, tape, one):
    r = sigmoid(xp[b, j] + bias[j] + rec[0], one)
    z = sigmoid(xp[b, H + j] + bias[H + j] + rec[1], one)
    hn = rec[2] + bias[3 * H + j]
    n = math.tanh(xp[b, 2 * H + j] + bias[2 * H + j] + r * hn)
    h_t[b, j] = (one - z) * n + z * h_prev[b, j]
    tape[0, b, j], tape[1, b, j], tape[2, b, j], tape[3, b, j] = r, z, n, hn


@cuda.jit(device=True, inline=True)
def backward(rec, b, j, H, dy, direct, dc, tape, h_t, h_prev, c_t, c_prev, dax, dah, hid, cel, one):
    r, z, n, hn = tape[0, b, j], tape[1, b, j], tape[2, b, j], tape[3, b, j]
    d_h = dy[b, j] + rec[0] + direct[b, j]
    hid[b, j] += d_h
    d_n = d_h * (one - z) * (one - n * n)
    d_z = d_h * (h_prev[b, j] - n) * z * (one - z)
    d_r = d_n * hn * r * (one - r)
    dax[b, j] = dah[b, j] = d_r
    dax[b, H + j] = dah[b, H + j] = d_z
    dax[b, 2 * H + j] = d_n
    dah[b, 2 * H + j] = d_n * r
    direct[b, j] = d_h * z
