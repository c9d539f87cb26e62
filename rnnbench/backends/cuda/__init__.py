"""The numba.cuda backend: the cpu backend's structure on a GPU.

A forward is the input projection of every step (one tiled GEMM, ``matmul.py``) and then a kernel
per step, the recurrent product fused with the gate math (``rnn.py``, ``lstm.py``, ``gru.py``); a
backward runs a kernel per step in reverse (each making its share of W_hh^T da from the step
before) and then every weight gradient and dx as tiled GEMMs over all steps. Within a pass the data
stay on the device, with no host round trip in the time loop.

First increment (issue 7): a layer's inputs go to the device and its tape comes back at the layer
boundary, so the layers above (stacking, directions, dropout, truncation, checkpointing) run
unchanged. A tape that stays on the device from the first layer to the last, a persistent kernel,
CUDA-event timing and device memory accounting are still to come.

Without a GPU, ``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported) runs these kernels in
numba's CUDA simulator: slowly, for tests at tiny sizes.
"""
from __future__ import annotations

import numpy as np

from rnnbench.backends.base import BackwardResult, LayerWeights, Tape, forward_bias
from rnnbench.backends.cuda import gru, lstm, rnn
from rnnbench.backends.cuda.device import blocks, carry_kernel, THREADS
from rnnbench.backends.cuda.matmul import column_sums, gemm_nt

MODULES = {"rnn_tanh": rnn, "rnn_relu": rnn, "lstm": lstm, "gru": gru}


def gpu_or_simulator() -> None:
    """Raise with what to do when numba.cuda has neither a GPU nor the simulator."""
    from numba import cuda

    if not cuda.is_available():
        raise RuntimeError("backend 'cuda' needs a GPU, and numba.cuda sees none; to run its kernels in "
                           "numba's CUDA simulator, set NUMBA_ENABLE_CUDASIM=1 before Python starts")


def _dev(a):
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(a))


def _zeros(shape, dtype):
    return _dev(np.zeros(shape, dtype))


class CudaBackend:
    name = "cuda"
    FORWARD_FLOATS = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}  # on the device
    BACKWARD_FLOATS = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 6}

    def __init__(self):
        gpu_or_simulator()

    def forward(self, cell, w, x, h0, c0, reverse, store) -> Tape:
        n, B, I = x.shape
        H = h0.shape[1]
        G, dtype, one = cell.gates * H, h0.dtype, h0.dtype.type(1)
        kept = n if store else 1
        xp = _zeros((n * B, G), dtype)
        gemm_nt(_dev(x.reshape(n * B, I)), _dev(w.w_ih), xp)
        xp = xp.reshape(n, B, G)
        w_hh, bias, d_h0 = _dev(w.w_hh), _dev(forward_bias(cell.name, w)), _dev(h0)
        h = _zeros((n, B, H), dtype)
        planes = {k: _zeros((kept, B, H), dtype) for k in MODULES[cell.name].GATES}
        c = _zeros((kept, B, H), dtype) if cell.name == "lstm" else None
        d_c0 = _dev(c0) if c is not None else None
        grid = blocks(B, H)
        for s in range(n):
            t = n - 1 - s if reverse else s
            prev = t + 1 if reverse else t - 1
            h_prev = d_h0 if s == 0 else h[prev]
            gates = [p[t % kept] for p in planes.values()]
            if cell.name == "lstm":
                c_prev = d_c0 if s == 0 else c[prev % kept]
                lstm.lstm_forward_step[grid, THREADS](xp[t], w_hh, bias, h_prev, c_prev, h[t], c[t % kept], *gates, one)
            elif cell.name == "gru":
                gru.gru_forward_step[grid, THREADS](xp[t], w_hh, bias, h_prev, h[t], *gates, one)
            else:
                rnn.rnn_forward_step[grid, THREADS](xp[t], w_hh, bias, h_prev, h[t], cell.nonlinearity == "relu", one)
        steps = {"h": h.copy_to_host()}
        if store:
            steps.update({k: p.copy_to_host() for k, p in planes.items()})
            if c is not None:
                steps["c"] = c.copy_to_host()
        end = 0 if reverse else -1
        c_n = None if c is None else (steps["c"][end] if store else c.copy_to_host()[0])
        return Tape(x, reverse, h0, c0, steps["h"][end], c_n, steps)

    def backward(self, cell, w, tape, dy, dh_n, dc_n, reverse, grads: LayerWeights,
                 hidden=None, cell_grad=None) -> BackwardResult:
        n, B, H = dy.shape
        G, dtype, one = cell.gates * H, dy.dtype, dy.dtype.type(1)
        kept = n if hidden is not None else 1  # not kept: the kernels add into a one-step scratch
        d_hidden = _dev(hidden) if hidden is not None else _zeros((1, B, H), dtype)
        d_cell = _dev(cell_grad) if cell_grad is not None else _zeros((1, B, H), dtype)
        w_hh, d_dy, d_dhn = _dev(w.w_hh), _dev(dy), _dev(dh_n)
        h, h0 = _dev(tape.h), _dev(tape.h0)
        planes = [_dev(tape.steps[k]) for k in MODULES[cell.name].GATES]
        dax = _zeros((n, B, G), dtype)
        dah = _zeros((n, B, G), dtype) if cell.name == "gru" else dax
        direct = _zeros((B, H), dtype)  # GRU's dh z between launches; zero for the others
        if cell.name == "lstm":
            c, c0, dc = _dev(tape.steps["c"]), _dev(tape.c0), _dev(dc_n)
        grid = blocks(B, H)
        last = None
        for s in range(n):
            t = s if reverse else n - 1 - s
            prev = t + 1 if reverse else t - 1
            first = s == 0
            nxt = dah[t if first else last]
            hid_t, gates = d_hidden[t % kept], [p[t] for p in planes]
            if cell.name == "lstm":
                c_prev = c[prev] if 0 <= prev < n else c0
                lstm.lstm_backward_step[grid, THREADS](w_hh, nxt, first, d_dhn, d_dy[t], dc, *gates, c[t], c_prev,
                                                       dax[t], hid_t, d_cell[t % kept], one)
            elif cell.name == "gru":
                h_prev = h[prev] if 0 <= prev < n else h0
                gru.gru_backward_step[grid, THREADS](w_hh, nxt, first, d_dhn, direct, d_dy[t], *gates, h_prev,
                                                     dax[t], dah[t], hid_t, one)
            else:
                rnn.rnn_backward_step[grid, THREADS](w_hh, nxt, first, d_dhn, d_dy[t], h[t], dax[t], hid_t,
                                                     cell.nonlinearity == "relu", one)
            last = t
        dh0 = _zeros((B, H), dtype)
        carry_kernel[grid, THREADS](w_hh, dah[last], direct, dh0)
        if hidden is not None:
            hidden[...] = d_hidden.copy_to_host()
        if cell_grad is not None:
            cell_grad[...] = d_cell.copy_to_host()
        self._weight_gradients(w, tape, dax.reshape(n * B, G), dah.reshape(n * B, G), h, h0, grads, reverse, B)
        dx = _zeros((n * B, w.w_ih.shape[1]), dtype)
        gemm_nt(dax.reshape(n * B, G), _dev(w.w_ih.T), dx)
        return BackwardResult(dx.copy_to_host().reshape(tape.x.shape), dh0.copy_to_host(),
                              dc.copy_to_host() if cell.name == "lstm" else None)

    @staticmethod
    def _weight_gradients(w, tape, gx, gh, h, h0, grads, reverse, B):
        """dW_ih = gx^T x, dW_hh = sum_t gh_t^T h_{t-1}, the bias sums: products over all steps."""
        n = tape.x.shape[0]
        x = _dev(tape.x.reshape(n * B, -1))
        parts = {k: _zeros(getattr(grads, k).shape, getattr(grads, k).dtype) for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
        gemm_nt(gx.T, x.T, parts["w_ih"])
        flat_h = h.reshape(n * B, -1)
        first, inner = (slice((n - 1) * B, n * B), slice(0, (n - 1) * B)) if reverse else (slice(0, B), slice(B, n * B))
        gemm_nt(gh[first].T, h0.T, parts["w_hh"], True)
        if n > 1:
            shifted = flat_h[B:] if reverse else flat_h[: (n - 1) * B]
            gemm_nt(gh[inner].T, shifted.T, parts["w_hh"], True)
        for key, g in (("b_ih", gx), ("b_hh", gh)):
            column_sums[blocks(1, g.shape[1]), THREADS](g, parts[key])
        for key, part in parts.items():
            getattr(grads, key)[...] += part.copy_to_host()
