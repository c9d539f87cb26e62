"""Device functions the cell kernels share, and the launch shape of a step (a thread per (b, j))."""
import math

from numba import cuda

THREADS = 128


def blocks(B: int, H: int) -> int:
    return (B * H + THREADS - 1) // THREADS


@cuda.jit(device=True, inline=True)
def sigmoid(a, one):
    return one / (one + math.exp(-a))


@cuda.jit(device=True, inline=True)
def carry(w_hh, da, b, j):
    """(W_hh^T da)[b, j]: what the gate gradients of one step send back to h_{t-1}[b, j]."""
    s = da[b, 0] - da[b, 0]
    for g in range(w_hh.shape[0]):
        s += da[b, g] * w_hh[g, j]
    return s


@cuda.jit
def carry_kernel(w_hh, da, direct, out):
    """out = W_hh^T da (+ direct, GRU's dh z): the derivative leaving the first step."""
    n = cuda.grid(1)
    B, H = out.shape
    if n < B * H:
        b, j = n // H, n % H
        out[b, j] = carry(w_hh, da, b, j) + direct[b, j]
