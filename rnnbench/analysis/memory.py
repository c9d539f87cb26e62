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
    the backward's working set (``bwd_extra`` below); and parameter-sized buffers (the
    gradients and a product's temporary, one more for streaming's running sum, and the backend's
    own copies of a W_hh).
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
        direction until they are summed, the input-gradient accumulator, the gradient arriving
        from the layer above (the top layer's is the caller's) and, for two directions, the
        contiguous half of it that each direction reads."""
        above = D * H if layer < L - 1 else 0
        return D * widths[layer] + I + above + (H if D == 2 else 0)

    carried = max(window_floats(layer) for layer in range(L))
    bwd_extra = be.BACKWARD_FLOATS[spec.name] * H  # the backend's gate gradients

    def weight_floats(rows: int) -> int:
        """Floats per row that the weight gradients hold beside the gate gradients: a copy of
        h_{t-1} (``SHIFTED_STATES``) and, where the window's gate gradients are at most
        ``PACKED_WINDOW_BYTES``, the packed copy of the layer input or of h_{t-1} (the cpu
        backend's, matmul.gemm_tn_add). They live before the input gradients are made, so they
        count against the window's ``carried`` floats, not beside them."""
        shifted = H if be.SHIFTED_STATES else 0
        return max(max(widths), shifted + H) if rows * spec.gates * H * item <= be.PACKED_WINDOW_BYTES else shifted

    # parameter-sized buffers: the gradients and a product's temporary; streaming also sums them
    params = sum(D * spec.gates * H * (w + H + 2) for w in widths) * (3 if strategy == "streaming" else 2)
    params += be.RECURRENT_COPIES * spec.gates * H * H  # one pass runs at a time

    if strategy in ("full", "streaming"):
        steps = T if strategy == "full" else min(chunk, T)
        # the top layer's concatenated output lives only until the caller drops it; lower ones
        # are the next layer's input and stay in its tape
        kept = L * D * tape + (L - 1) * out
        return int(((kept + max(fwd_extra, out, bwd_extra + max(carried, weight_floats(steps * B)))) * steps * B + params)
                   * item)
    c = checkpoint_every(chunk or "sqrt", T)
    states = (2 if spec.has_cell_state else 1) * H * (math.ceil(T / c) - 1)
    kept = L * D * (H * T + states) + (L - 1) * out * T
    segment = (tape + max(fwd_extra, bwd_extra)) * c  # one layer and direction recomputed at a time
    return int(((kept + max(out * T, segment + carried * T)) * B + params) * item)


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
