"""Why the gate loops store into one array per gate.

LLVM vectorises a loop over hidden units only when it can check at run time that its stores do
not overlap its loads. Stores into one array at several offsets (``gates[b, j]``,
``gates[b, H + j]``, ...: a distance H it cannot bound) or into the array it reads a step away
from (``c[t]`` while reading ``c[t - 1]``) keep the loop scalar: measured at (B, H) = (30, 256),
an LSTM gate loop took 30 ns per unit that way and 3.6 ns with one array per stored quantity.
LLVM also gives up past a handful of run-time pointer checks, so the biases come as one array.
So each gate lives in its own (n, B, H) array, the running state in its own (B, H) buffer, and a
gradient that later products need as one (B, G) row is written one gate block at a time: GRU
computes per-gate planes and puts each into its block (``put_columns``); LSTM keeps dc and dh tanh(c)
in planes and then fills each block in a loop of its own.
"""
from numba import njit


@njit(inline="always")
def put_columns(row, col, plane, lo, hi):
    """row[lo:hi, col:col+W] = plane[lo:hi], for plane (B, W) and row (B, > col+W)."""
    W = plane.shape[1]
    for b in range(lo, hi):
        for j in range(W):
            row[b, col + j] = plane[b, j]
