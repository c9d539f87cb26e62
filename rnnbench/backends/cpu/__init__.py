"""The Numba CPU backend: whole-sequence matrix products around an @njit recurrence per cell.

A forward is one input projection for all steps (``x W_ih^T``, a single GEMM) and then
the cell's recurrence, which multiplies by W_hh and applies the gate math step by step.
A backward runs the cell's recurrence in reverse to get the gate gradients of every step, and
then makes every weight gradient and the input gradient as one GEMM over all steps. Every
product runs on Numba's threads (``matmul.py``).
"""
from __future__ import annotations

import numpy as np

from rnnbench.backends.base import BackwardResult, HostArrays, LayerWeights, Tape, previous_rows
from rnnbench.backends.cpu import finite, gru, kernel_cache, lstm, matmul, rnn
from rnnbench.backends.cpu.threads import launch_threads
from rnnbench.backends.cpu.matmul import gemm, gemm_tn_add
from rnnbench.backends.cpu.microkernel import MAX_ROWS
from rnnbench.runtime import keep_freed_memory, single_threaded_numba_blas

KERNELS = {"rnn_tanh": rnn, "rnn_relu": rnn, "lstm": lstm, "gru": gru}


def dispatchers() -> list:
    """Every @njit kernel of the backend: their ``stats`` count compilations and cache loads."""
    cells = [kernel for mod, prefix in ((rnn, "rnn"), (lstm, "lstm"), (gru, "gru"))
             for pass_ in ("forward", "backward") for kernel in getattr(mod, f"{prefix}_{pass_}")]
    return cells + [matmul._serial, matmul._parallel, *matmul.PACK_ROWS, *matmul.PACK_COLUMNS, *matmul.GEMM,
                    *matmul.GEMM_TN_ADD, *finite.ALL_FINITE]


kernel_cache.drop_stale(dispatchers())
launch_threads()


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])


def _previous_states(h: np.ndarray, h0: np.ndarray, reverse: bool) -> np.ndarray:
    """h_{t-1} beside each step's row of the flattened (n B, H) h: h shifted one step, h0 entering.
    dW_hh is then one product; as two (h0's rows apart) it read and wrote all of dW_hh once more:
    LSTM 1024 / 16 / 25 float32 22.0 against 18.0 ms, 512 4.55 against 4.36, even from H = 256 down."""
    first, inner, prev = previous_rows(len(h) // len(h0), len(h0), reverse)
    out = np.empty_like(h)
    out[first] = h0
    out[inner] = h[prev]
    return out


class CpuBackend:
    name = "cpu"
    arrays = HostArrays()

    def __init__(self):
        single_threaded_numba_blas()  # matmul.py: one thread pool, Numba's
        keep_freed_memory()  # no page fault per 4 KiB of every new tape
    # Floats per step and hidden unit that a pass holds beside the tape (the memory model):
    # forward, the input projection of every gate; backward, the gate gradients (GRU keeps the
    # input and recurrent sides apart).
    FORWARD_FLOATS = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
    BACKWARD_FLOATS = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 6}
    RECURRENT_COPIES = 1  # W_hh (or W_hh^T) packed for the step's product (matmul.pack)
    PACKED_WINDOW_BYTES = matmul.TILES_BYTES  # gate gradients up to this size: the window is packed
    SHIFTED_STATES = True  # _previous_states
    # one part of the batch; and parts on every thread (threads.batch_split), given two or more
    WARMUP_SHAPES = ((1, 2), (2 * MAX_ROWS + 1, 64))

    def forward(self, cell, w, x, h0, c0, reverse, store) -> Tape:
        steps, h_n, c_n = KERNELS[cell.name].forward(cell, x, w, h0, c0, reverse, store)
        return Tape(x, reverse, h0, c0, h_n, c_n, steps)

    def backward(self, cell, w, tape, dy, dh_n, dc_n, reverse, grads: LayerWeights,
                 hidden=None, cell_grad=None):
        if hidden is None:  # the kernels add into a one-step scratch what is not kept
            hidden, cell_grad = np.zeros((2, 1) + dy.shape[1:], dy.dtype)
        dgx, dgh, dh0, dc0 = KERNELS[cell.name].backward(
            cell, w, tape, dy, dh_n, dc_n, reverse, hidden, cell_grad)
        gx, gh, h = _flat(dgx), _flat(dgh), _flat(tape.h)
        gemm_tn_add(gx, _flat(tape.x), grads.w_ih)
        db = gx.sum(axis=0)
        grads.b_ih += db
        grads.b_hh += db if gh is gx else gh.sum(axis=0)
        gemm_tn_add(gh, _previous_states(h, tape.h0, reverse), grads.w_hh)  # dW_hh = sum_t dgh_t^T h_{t-1}
        dx = np.empty((len(gx), w.w_ih.shape[1]), gx.dtype)
        gemm(gx, w.w_ih, dx)
        dx = dx.reshape(tape.x.shape)
        return BackwardResult(dx, dh0, dc0)
