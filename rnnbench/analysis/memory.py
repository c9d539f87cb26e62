"""Memory: the peak of a training step, measured, beside an analytic model of the same buffers.

Measured with ``tracemalloc``, which sees NumPy's allocations and (Numba 0.68) those made inside
@njit code through Numba's runtime; a test keeps that true. The model counts the buffers the
implementation holds at its peak, per step and batch row, from T, B, I, H, the cell's gate and
tape sizes, layers, directions, dtype and the backend's own working buffers. On the cuda backend
the peak is of device memory, from the backend's ledger of its allocations.
"""
from __future__ import annotations

import gc
import math
import tracemalloc

import numpy as np

from rnnbench.analysis.runners import Config, Runner
from rnnbench.analysis.speed import base_row
from rnnbench.analysis.strategies import check_strategy, training_step
from rnnbench.backends import get_backend
from rnnbench.bptt import checkpoint_every
from rnnbench.cells import get_cell


def peak_bytes(fn):
    """(fn's result, the peak bytes allocated while it ran above what was allocated before)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        gc.collect()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()


def device_peak_bytes(fn):
    """(result, peak device bytes above the start) of fn() on the cuda backend: its own ledger of
    the arrays it allocates, freed when no view of them is left (tracemalloc does not see a GPU)."""
    from rnnbench.backends.cuda.memory import LEDGER

    gc.collect()
    LEDGER.reset_peak()
    base = LEDGER.live
    result = fn()
    return result, LEDGER.peak - base


def model_bytes(config: Config, strategy: str = "full", chunk=None, backend: str = "cpu") -> int:
    """Analytic peak bytes of one training step (forward + backward without ``hidden``).

    Per step and batch row, in floats: every layer and direction keeps its tape
    (``CellSpec.tape_floats_per_unit`` x H; bidirectional layers also their concatenated
    output, 2H, but the top layer's, which the caller drops); on top of that the larger of the forward's projection (``FORWARD_FLOATS``) and
    the backward's working set (``bwd_extra`` below); parameter-sized buffers (the gradients,
    streaming's running sum of them, and the largest weight a backend copies: ``packed``); and per
    batch row, whatever the length, the states: entering and leaving (h0, h_n, and c0, c_n for
    LSTM) and their gradients.
    ``checkpoint`` keeps outputs for every step, the states entering each of the T/c segments,
    and one segment's tape and buffers; ``streaming`` holds one chunk of it all.
    """
    check_strategy(strategy, None, chunk if strategy == "streaming" else 1)
    spec, be = get_cell(config.cell), get_backend(backend)
    T, B, H, I = config.seq_len, config.batch, config.hidden_size, config.input_size
    D, L = (2 if config.bidirectional else 1), config.num_layers
    item = np.dtype(config.dtype).itemsize
    widths = [I] + [D * H] * (L - 1)  # input width of each layer
    tape = spec.tape_floats_per_unit * H
    out = D * H if D == 2 else 0
    fwd_extra = be.FORWARD_FLOATS[spec.name] * H

    def window_floats(layer: int) -> int:
        """Whole-window arrays while ``layer`` is differentiated: the input gradient of each
        direction until they are summed, the gradient arriving from the layer above (the top
        layer's is the caller's) and, for two directions, the contiguous half of it that each
        direction reads."""
        above = D * H if layer < L - 1 else 0
        return D * widths[layer] + above + (H if D == 2 else 0)

    carried = max(window_floats(layer) for layer in range(L))
    # the backend's gate gradients, and the input's gradient, summed from the backward's start
    bwd_extra = be.BACKWARD_FLOATS[spec.name] * H + I

    def weight_floats(rows: int) -> int:
        """Floats per row that the weight gradients hold beside the gate gradients: a copy of
        h_{t-1} (``SHIFTED_STATES``) and, where the window's gate gradients are at most
        ``PACKED_WINDOW_BYTES``, the packed copy of the layer input or of h_{t-1} (the cpu
        backend's, matmul.gemm_tn_add). They live before the input gradients are made, so they
        count against the window's ``carried`` floats, not beside them."""
        shifted = H if be.SHIFTED_STATES else 0
        return max(max(widths), shifted + H) if rows * spec.gates * H * item <= be.PACKED_WINDOW_BYTES else shifted

    grads = sum(D * spec.gates * H * (w + H + 2) for w in widths) * (2 if strategy == "streaming" else 1)
    # the largest weight the backend copies at a time (W_hh packed for a pass, W_ih for the input
    # gradient): not alive while the weight gradients' products run
    packed = be.RECURRENT_COPIES * spec.gates * H * max(widths + [H])
    # states, (B, H) each: entering every layer and direction, their gradients and the gradients
    # arriving with h_n (c_n); in the backward of one, the carried gradient, its copy in the kernel,
    # the scratch of the hidden and cell gradients not kept, and a zero state
    k = 2 if spec.has_cell_state else 1
    ends = 3 * k * L * D * H + (2 * k + 3) * H

    if strategy in ("full", "streaming"):
        rows = (T if strategy == "full" else min(chunk, T)) * B
        # the top layer's concatenated output lives only until the caller drops it; lower ones
        # are the next layer's input and stay in its tape
        kept = L * D * tape + (L - 1) * out
        with_packed = max(fwd_extra, out, bwd_extra + carried) * rows + packed
        beside_weights = (bwd_extra + weight_floats(rows)) * rows
        return int((kept * rows + ends * B + grads + max(with_packed, beside_weights)) * item)
    c = checkpoint_every(chunk or "sqrt", T)
    states = k * H * math.ceil(T / c)  # copies of the states leaving each segment
    kept = L * D * (H * T + states) + (L - 1) * out * T
    # one layer and direction recomputed at a time, beside the window's arrays: its segment's tape
    # and the piece's input gradient or weight buffers
    rows = c * B
    with_packed = (tape + max(fwd_extra, bwd_extra - I + max(widths))) * rows + packed
    beside_weights = (tape + bwd_extra - I + weight_floats(rows)) * rows
    window = (carried + I) * T * B
    return int(((kept + ends) * B + grads + max(out * T * B, window + max(with_packed, beside_weights))) * item)


def check_memory_backend(backend: str) -> None:
    """Refuse the one backend whose memory cannot be measured here."""
    if backend == "torch":
        raise ValueError("memory is measured with tracemalloc, which does not see torch's allocator; "
                         "measure cpu, reference or cuda")


def measure_memory(config: Config, backend: str = "cpu", strategy: str = "full", chunk=None,
                   truncation=None, seed: int = 0) -> list[dict]:
    """``peak_bytes`` (measured) and ``model_bytes`` rows for one training step."""
    check_memory_backend(backend)
    runner = Runner(config, backend, seed)
    step = training_step(runner, strategy, truncation, chunk)
    step()  # compile (or load) the kernels outside the measurement
    runner.model._record = None
    _, peak = device_peak_bytes(step) if backend == "cuda" else peak_bytes(step)
    shown = chunk if strategy == "streaming" else truncation
    row = base_row(config, backend, experiment="memory", truncation=shown, strategy=strategy,
                   phase="fwd+bwd", chunk=chunk, k=chunk if strategy == "streaming" else None)
    modelled = model_bytes(config, strategy, chunk, backend)
    return [dict(row, metric="peak_bytes", value=float(peak), unit="B"),
            dict(row, metric="model_bytes", value=float(modelled), unit="B")]


def memory_sweep(config: Config, seq_lens, strategies=("full", "checkpoint", "streaming"), chunk: int = 32,
                 backend: str = "cpu") -> list[dict]:
    """Peak memory against sequence length for each strategy (streaming in chunks of ``chunk``)."""
    from dataclasses import replace

    rows = []
    for T in seq_lens:
        for strategy in strategies:
            rows += measure_memory(replace(config, seq_len=T), backend, strategy,
                                   chunk=chunk if strategy == "streaming" else None)
    return rows
