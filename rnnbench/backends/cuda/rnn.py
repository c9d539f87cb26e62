"""Vanilla RNN (tanh or relu) on the GPU: what a step does to one (b, j) once its recurrent sum is made.

    forward   h_t = act(xp_t + W_hh h_{t-1} + (b_ih + b_hh))
    backward  dh_t = dy_t + W_hh^T da_{t+1};  da_t = dh_t act'(h_t)   (act' read off h_t)

See ``lstm.py`` for ``rec``; the RNN keeps no planes beside h.
"""
import math

from numba import cuda

GATES = 1
PLANES = ()


def _make(relu: bool):
    @cuda.jit(device=True, inline=True)
    def forward(rec, b, j, H, xp, bias, h_prev, c_prev, h_t, c_t, tape, one):
        a = xp[b, j] + bias[j] + rec[0]
        h_t[b, j] = (a if a > 0 else a - a) if relu else math.tanh(a)

    @cuda.jit(device=True, inline=True)
    def backward(rec, b, j, H, dy, direct, dc, tape, h_t, h_prev, c_t, c_prev, dax, dah, hid, cel, one):
        d = dy[b, j] + rec[0] + direct[b, j]
        direct[b, j] = d - d  # dL/dh_n enters here once
        hid[b, j] += d
        y = h_t[b, j]
        dax[b, j] = d * ((one if y > 0 else y - y) if relu else one - y * y)

    return forward, backward


tanh_forward, tanh_backward = _make(False)
relu_forward, relu_backward = _make(True)
