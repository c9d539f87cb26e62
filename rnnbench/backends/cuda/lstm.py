"""LSTM on the GPU, one layer and direction: a kernel per step, forward and backward side by side.

    forward   a = xp_t + W_hh h_{t-1} + (b_ih + b_hh);  i, f, o = sig(a_i, a_f, a_o);  g = tanh(a_g)
              c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)
    backward  dh = dy_t + W_hh^T da_{t+1};  dc = carry_c + dh o (1 - tanh^2 c_t)
              da_i = dc g i(1-i);  da_f = dc c_{t-1} f(1-f);  da_g = dc i (1-g^2);  da_o = dh tanh(c_t) o(1-o)
              carry_c = dc f

A thread owns one (b, j): the forward thread makes its four gates' recurrent sums itself (the
product fused with the gate math); the backward thread makes its share of W_hh^T da_{t+1} from
the previous launch's gate gradients.
"""
import math

from numba import cuda

from rnnbench.backends.cuda.device import carry, sigmoid

GATES = ("input", "forget", "cell", "output")


@cuda.jit
def lstm_forward_step(xp_t, w_hh, bias, h_prev, c_prev, h_t, c_t, i_t, f_t, g_t, o_t, one):
    n = cuda.grid(1)
    B, H = h_t.shape
    if n < B * H:
        b, j = n // H, n % H
        a_i, a_f = xp_t[b, j] + bias[j], xp_t[b, H + j] + bias[H + j]
        a_g, a_o = xp_t[b, 2 * H + j] + bias[2 * H + j], xp_t[b, 3 * H + j] + bias[3 * H + j]
        for k in range(H):
            hk = h_prev[b, k]
            a_i += hk * w_hh[j, k]
            a_f += hk * w_hh[H + j, k]
            a_g += hk * w_hh[2 * H + j, k]
            a_o += hk * w_hh[3 * H + j, k]
        i, f, g, o = sigmoid(a_i, one), sigmoid(a_f, one), math.tanh(a_g), sigmoid(a_o, one)
        c = f * c_prev[b, j] + i * g
        c_t[b, j] = c
        h_t[b, j] = o * math.tanh(c)
        i_t[b, j], f_t[b, j], g_t[b, j], o_t[b, j] = i, f, g, o


@cuda.jit
def lstm_backward_step(w_hh, da_next, first, dh_n, dy_t, dc, i_t, f_t, g_t, o_t, c_t, c_prev,
                       da_t, hid_t, cell_t, one):
    n = cuda.grid(1)
    B, H = dy_t.shape
    if n < B * H:
        b, j = n // H, n % H
        i, f, g, o = i_t[b, j], f_t[b, j], g_t[b, j], o_t[b, j]
        d_h = dy_t[b, j] + (dh_n[b, j] if first else carry(w_hh, da_next, b, j))
        tc = math.tanh(c_t[b, j])
        d_c = dc[b, j] + d_h * o * (one - tc * tc)
        hid_t[b, j] += d_h
        cell_t[b, j] += d_c
        da_t[b, j] = d_c * g * i * (one - i)
        da_t[b, H + j] = d_c * c_prev[b, j] * f * (one - f)
        da_t[b, 2 * H + j] = d_c * i * (one - g * g)
        da_t[b, 3 * H + j] = d_h * tc * o * (one - o)
        dc[b, j] = d_c * f
