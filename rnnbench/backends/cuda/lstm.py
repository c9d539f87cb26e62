"""LSTM on the GPU: what a step does to one (b, j) once its recurrent sums are made.

    forward   a = xp_t + W_hh h_{t-1} + (b_ih + b_hh);  i, f, o = sig(a_i, a_f, a_o);  g = tanh(a_g)
              c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
    backward  dh = dy_t + W_hh^T da_{t+1};  dc = carry_c + dh o (1 - tanh^2 c_t)
              da_i = dc g i(1-i);  da_f = dc c_{t-1} f(1-f);  da_g = dc i (1-g^2);  da_o = dh tanh(c_t) o(1-o)
              carry_c = dc f

``rec`` holds the G recurrent sums of (b, j) (forward: W_hh h_{t-1}; backward: rec[0] = W_hh^T da_{t+1});
the tape of a step is (planes, B, H), the planes below. The kernels that make the sums and call these
are in ``tiles.py`` (a launch per step, or one streaming W_hh) and ``persistent.py`` (one launch
per pass, W_hh in shared memory).
"""
import math

from numba import cuda

from rnnbench.backends.cuda.device import sigmoid

GATES = 4
PLANES = ("input", "forget", "cell", "output")


@cuda.jit(device=True, inline=True)
def forward(rec, b, j, H, xp, bias, h_prev, c_prev, h_t, c_t, tape, one):
    i = sigmoid(xp[b, j] + bias[j] + rec[0], one)
    f = sigmoid(xp[b, H + j] + bias[H + j] + rec[1], one)
    g = math.tanh(xp[b, 2 * H + j] + bias[2 * H + j] + rec[2])
    o = sigmoid(xp[b, 3 * H + j] + bias[3 * H + j] + rec[3], one)
    c = f * c_prev[b, j] + i * g
    c_t[b, j] = c
    h_t[b, j] = o * math.tanh(c)
    tape[0, b, j], tape[1, b, j], tape[2, b, j], tape[3, b, j] = i, f, g, o


@cuda.jit(device=True, inline=True)
def backward(rec, b, j, H, dy, direct, dc, tape, h_t, h_prev, c_t, c_prev, dax, dah, hid, cel, one):
    i, f, g, o = tape[0, b, j], tape[1, b, j], tape[2, b, j], tape[3, b, j]
    d_h = dy[b, j] + rec[0] + direct[b, j]
    direct[b, j] = d_h - d_h  # dL/dh_n enters here once; LSTM carries nothing else past W_hh
    tc = math.tanh(c_t[b, j])  # dah is dax: both sides of every gate get the same gradient
    d_c = dc[b, j] + d_h * o * (one - tc * tc)
    hid[b, j] += d_h
    cel[b, j] += d_c
    dax[b, j] = d_c * g * i * (one - i)
    dax[b, H + j] = d_c * c_prev[b, j] * f * (one - f)
    dax[b, 2 * H + j] = d_c * i * (one - g * g)
    dax[b, 3 * H + j] = d_h * tc * o * (one - o)
    dc[b, j] = d_c * f
