"""Vanilla RNN (tanh or relu) on the GPU, one layer and direction: a kernel per step, forward and
backward side by side.

    forward   h_t = act(xp_t + W_hh h_{t-1} + (b_ih + b_hh))
    backward  dh_t = dy_t + W_hh^T da_{t+1};  da_t = dh_t act'(h_t)
"""
import math

from numba import cuda

from rnnbench.backends.cuda.device import carry

GATES = ()


@cuda.jit
def rnn_forward_step(xp_t, w_hh, bias, h_prev, h_t, relu, one):
    n = cuda.grid(1)
    B, H = h_t.shape
    if n < B * H:
        b, j = n // H, n % H
        a = xp_t[b, j] + bias[j]
        for k in range(H):
            a += h_prev[b, k] * w_hh[j, k]
        h_t[b, j] = (a if a > 0 else a - a) if relu else math.tanh(a)


@cuda.jit
def rnn_backward_step(w_hh, da_next, first, dh_n, dy_t, h_t, da_t, hid_t, relu, one):
    n = cuda.grid(1)
    B, H = dy_t.shape
    if n < B * H:
        b, j = n // H, n % H
        d = dy_t[b, j] + (dh_n[b, j] if first else carry(w_hh, da_next, b, j))
        hid_t[b, j] += d
        y = h_t[b, j]
        da_t[b, j] = d * ((one if y > 0 else y - y) if relu else one - y * y)
