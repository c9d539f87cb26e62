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

from rnnbench.analysis.runners import BASELINES, Config, Runner
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
    output, 2H, but the top layer's, which the caller drops); beside it the largest working set
    of a pass: the forward's projection (``FORWARD_FLOATS``) and W_hh as its product reads it
    (``RECURRENT_COPIES``), or a backward's gate gradients (``BACKWARD_FLOATS``) with, in turn,
    that copy, the weight gradients' buffers or the input gradient, beside the arrays of the
    whole window (the input gradient's accumulator, the gradient from the layer above, ...).
    Then the parameter gradients (streaming also sums them) and per batch row, whatever the
    length, the states: entering and leaving, their gradients and a backward's copies.
    ``checkpoint`` keeps outputs for every step, the states leaving each of the T/c segments,
    and one segment's tape and buffers; ``streaming`` holds one chunk of it all. Left out: the
    cpu backend's per-thread partial sums of float32 weight gradients through BLAS (gate
    gradients over 8 MiB) and its joined [W_ih | W_hh]^T (``threads.fuses``) in place of W_hh^T.
    The cuda backend's device memory has a model of its own (``device_model_bytes``).
    """
    check_strategy(strategy, None, chunk if strategy == "streaming" else 1)
    if backend == "cuda":
        return device_model_bytes(config, strategy, chunk)
    spec, be = get_cell(config.cell), get_backend(backend)
    T, B, H, I = config.seq_len, config.batch, config.hidden_size, config.input_size
    D, L = (2 if config.bidirectional else 1), config.num_layers
    item = np.dtype(config.dtype).itemsize
    widths = [I] + [D * H] * (L - 1)  # input width of each layer
    tape = spec.tape_floats_per_unit * H
    out = D * H if D == 2 else 0
    fwd_extra = be.FORWARD_FLOATS[spec.name] * H

    def window_floats(layer: int) -> int:
        """Whole-window arrays while ``layer`` is differentiated, beside the input gradient's
        accumulator (I): the input gradient of each direction until they are summed, the gradient
        arriving from the layer above (the top layer's is the caller's) and, for two directions,
        the contiguous half of it that each direction reads."""
        above = D * H if layer < L - 1 else 0
        return D * widths[layer] + above + (H if D == 2 else 0)

    da = be.BACKWARD_FLOATS[spec.name] * H  # the backend's gate gradients

    def packs(rows: int) -> bool:
        """Whether a window of ``rows`` rows has its gate gradients at most ``PACKED_WINDOW_BYTES``,
        where the backend packs the other operand of their products (the cpu backend's tiles)."""
        return rows * spec.gates * H * item <= be.PACKED_WINDOW_BYTES

    def weight_floats(rows: int) -> int:
        """Floats per row that the weight gradients hold beside the gate gradients: a copy of
        h_{t-1} (``SHIFTED_STATES``) and, where ``packs``, the packed copy of the layer input or of
        h_{t-1} (matmul.gemm_tn_add)."""
        shifted = H if be.SHIFTED_STATES else 0
        return max(max(widths), shifted + H) if packs(rows) else shifted

    grads = sum(D * spec.gates * H * (w + H + 2) for w in widths) * (2 if strategy == "streaming" else 1)
    copies = be.RECURRENT_COPIES * spec.gates * H * H  # W_hh as a pass's product reads it (cpu: packed)

    def input_copy(rows: int) -> int:
        """W_ih packed for the input gradient's product, where ``packs``."""
        return spec.gates * H * max(widths) if packs(rows) else 0

    def backward(rows: int, width: int, beside: int) -> int:
        """The largest working set of a backward pass over ``rows`` rows of a layer of input
        ``width``, ``beside`` floats a row alive throughout: its recurrence, its weight gradients,
        its input gradient."""
        return beside * rows + max(da * rows + copies, (da + weight_floats(rows)) * rows,
                                   (da + width) * rows + input_copy(rows))

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
        # a layer's second direction runs beside the first's input gradient
        passes = [backward(rows, widths[l], window_floats(l) - widths[l] + I) for l in range(L)]
        work = max(out * rows, fwd_extra * rows + copies, *passes)
        return int((kept * rows + ends * B + grads + work) * item)
    c = checkpoint_every(chunk or "sqrt", T)
    states = k * H * math.ceil(T / c)  # copies of the states leaving each segment
    kept = L * D * (H * T + states) + (L - 1) * out * T
    # one layer and direction recomputed at a time (its segment's tape), beside the window's arrays
    rows, window = c * B, (max(map(window_floats, range(L))) + I) * T * B
    segment = max((tape + fwd_extra) * rows + copies, max(backward(rows, w, tape) for w in widths))
    return int(((kept + ends) * B + grads + max(out * T * B, window + segment)) * item)


def device_model_bytes(config: Config, strategy: str = "full", chunk=None) -> int:
    """Analytic peak of the cuda backend's device memory in one training step (its ledger's peak).

    The peak falls in the backward of some layer's last direction, beside what outlives the passes.
    Full BPTT keeps every layer and direction's tape on the device (``tape_floats_per_unit`` x H
    per row) with the weights as its forward used them (W_ih, W_hh, W_hh^T, the forward's bias),
    the stack's input copied once per direction, and for two directions each lower layer's joined
    output. Checkpointing keeps only each upper layer's input (the host's outputs copied back);
    a segment of c steps is recomputed at a time, with its weights, tape and input copy, and a
    layer's input gradient is gathered on the host piece by piece. Beside these, the backward of a
    layer holds the gradient from the layer above (on the device unless gathered on the host),
    its direction's share (two directions: a copy, and the first direction's input gradient), the
    layer's parameter gradients (copied out after each direction), the gate gradients
    (``BACKWARD_FLOATS``), then the larger of the bias sums' partial rows (at most 64) and the
    new input gradient, and a few (B, H) states. Streaming is full BPTT over one chunk.
    """
    from rnnbench.backends.cuda import CudaBackend  # the class: no GPU needed to model one
    from rnnbench.backends.cuda.matmul import SUM_CHUNKS

    spec = get_cell(config.cell)
    T, B, H, I = config.seq_len, config.batch, config.hidden_size, config.input_size
    D, L, G = (2 if config.bidirectional else 1), config.num_layers, spec.gates
    if strategy == "streaming":
        T, strategy = min(chunk, T), "full"
    R = T * B
    every = T if strategy == "full" else checkpoint_every(chunk or "sqrt", T)
    rows = min(every, T) * B  # of a segment
    on_device = every >= T  # a layer's input gradient: gathered on the host when there are pieces
    widths = [I] + [D * H] * (L - 1)
    tape = spec.tape_floats_per_unit * H
    bias = (G + 1) * H if config.cell == "gru" else G * H  # forward_bias: GRU keeps b_hn apart

    def weights(w: int) -> int:
        return G * H * (w + 2 * H) + bias

    def segment(l: int) -> int:
        """A layer's tape, weights and (first layer) input copy: one direction's."""
        return weights(widths[l]) + tape * rows + (I * rows if l == 0 else 0)

    # hidden / cell placeholders, h0 (c0) in, the carried gradients, dh0; the vanilla RNN's tape
    # placeholder; a non-LSTM's (1, 1) dc
    states = (8 if spec.nonlinearity else 7) * B * H + (0 if spec.has_cell_state else 1)

    def work(l: int) -> int:
        """Layer l's backward, in its last direction, at the weight gradients or the input's."""
        top, w = l == L - 1, widths[l]
        # the input gradient of the layer above (the top layer's is the caller's, on the host)
        above = 0 if top or not (on_device or D == 2) else D * H * R
        # two directions: this one's part of it, and the first direction's input gradient; one:
        # a copy of the host's piece
        share = H * R + (w * R if on_device else 0) if D == 2 else (H * rows if top or not on_device else 0)
        own = 0 if strategy == "full" else segment(l)  # a checkpoint's recomputed segment
        grads = G * H * (w + H + 2)  # the layer's parameter gradients
        gates = CudaBackend.BACKWARD_FLOATS[spec.name] * H * rows
        return above + share + own + grads + gates + max(min(SUM_CHUNKS, rows) * G * H, w * rows) + states

    if strategy == "full":
        kept = D * sum(segment(l) for l in range(L)) + (L - 1) * (D * H * R if D == 2 else 0)
    else:
        kept = (L - 1) * D * H * R
    return int((kept + max(map(work, range(L)))) * np.dtype(config.dtype).itemsize)


def check_memory_backend(backend: str) -> None:
    """Refuse the baselines, whose memory cannot be measured here."""
    if backend in BASELINES:
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
