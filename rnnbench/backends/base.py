"""What a backend is: one recurrent layer in one direction, forward and backward.

Stacking, directions, dropout, truncation and checkpointing are written once above the
backends (``rnnbench.layers`` and ``rnnbench.bptt``); a backend only runs the recurrence of a
single layer and direction over a range of steps, given the state entering that range.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rnnbench.cells import CellSpec


@dataclass
class LayerWeights:
    """The four arrays of one layer and direction, torch's shapes (biases are zeros when unused)."""

    w_ih: np.ndarray  # (G*H, I)
    w_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray  # (G*H,)
    b_hh: np.ndarray  # (G*H,)

    @classmethod
    def zeros_like(cls, w: "LayerWeights") -> "LayerWeights":
        return cls(*(np.zeros_like(a) for a in (w.w_ih, w.w_hh, w.b_ih, w.b_hh)))


def forward_bias(cell_name: str, w: "LayerWeights") -> np.ndarray:
    """The one bias array a forward kernel adds: b_ih + b_hh, but for GRU
    [b_ir + b_hr, b_iz + b_hz, b_in, b_hn] (b_hn sits inside r * (W_hn h + b_hn))."""
    if cell_name != "gru":
        return w.b_ih + w.b_hh
    H = len(w.b_hh) // 3
    return np.concatenate([w.b_ih[: 2 * H] + w.b_hh[: 2 * H], w.b_ih[2 * H :], w.b_hh[2 * H :]])


def previous_rows(n: int, B: int, reverse: bool) -> tuple[slice, slice, slice]:
    """How dW_hh = sum_t dgh_t^T h_{t-1} pairs rows of the flattened (n B, .) arrays: (the rows
    of dgh whose h_{t-1} is h0, the other rows of dgh, the rows of h that are their h_{t-1})."""
    if reverse:
        return slice((n - 1) * B, n * B), slice(0, (n - 1) * B), slice(B, n * B)
    return slice(0, B), slice(B, n * B), slice(0, (n - 1) * B)


@dataclass
class Tape:
    """What a forward pass over steps [0, n) of one direction leaves for its backward.

    Arrays in ``steps`` are indexed by time (axis 0, in the sequence's own order, whatever the
    direction); ``steps["h"]`` (the outputs) is always there, ``steps["c"]`` for LSTM. The other
    entries are the backend's own (activated gates, ...). ``h0``/``c0`` enter the first step in
    the direction's order (step 0 forward, step n-1 in reverse). A tape made with
    ``store=False`` keeps only ``h``; ``h_n``/``c_n`` are the states leaving the last step.
    ``held`` is what a backend keeps for its backward that is not indexed by time (the cuda
    backend: the weights as the forward used them, on the device); a window shares it.
    """

    x: np.ndarray
    reverse: bool
    h0: np.ndarray
    c0: np.ndarray | None
    h_n: np.ndarray
    c_n: np.ndarray | None
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    held: dict | None = None

    @property
    def h(self) -> np.ndarray:
        return self.steps["h"]

    def pieces(self, a: int, b: int) -> list[tuple[int, int]]:
        """How a backward over steps [a, b] is split (one piece: everything is stored)."""
        return [(a, b)]

    def window(self, a: int, b: int) -> "Tape":
        """The tape of steps [a, b] alone, entered from the stored state next to it."""
        n, reverse = self.x.shape[0], self.reverse
        if (a, b) == (0, n - 1):
            return self
        prev = (b + 1 if b + 1 < n else None) if reverse else (a - 1 if a > 0 else None)
        h0 = self.h0 if prev is None else self.steps["h"][prev]
        c0 = None
        if self.c0 is not None:
            c0 = self.c0 if prev is None else self.steps["c"][prev]
        steps = {k: v[a : b + 1] for k, v in self.steps.items()}
        h_n = steps["h"][0 if reverse else -1]
        c_n = steps["c"][0 if reverse else -1] if "c" in steps else None
        return Tape(self.x[a : b + 1], reverse, h0, c0, h_n, c_n, steps, self.held)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored activations (the input x is the caller's and not counted)."""
        return sum(v.nbytes for v in self.steps.values())


@dataclass
class BackwardResult:
    """What one backward over a tape returns (parameter gradients, ``hidden`` and ``cell`` are
    accumulated in place into the caller's arrays)."""

    dx: np.ndarray  # (n, B, I), in the backend's arrays (``arrays.host`` makes it numpy)
    dh0: np.ndarray  # (B, H) derivative carried past the first step
    dc0: np.ndarray | None


class HostArrays:
    """What the layers do to arrays between one layer or direction and the next, on the host.

    A backend whose tapes hold its outputs elsewhere (the cuda backend: on the device) gives its
    own, so a stack passes them from layer to layer without a round trip; ``host`` is the only
    way out to numpy."""

    @staticmethod
    def join(parts):
        """The layer's output: its directions' outputs (T, B, H) side by side along the last axis."""
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    @staticmethod
    def direction(a, d: int, H: int):
        """Direction d's part of a (T, B, D*H) gradient, contiguous."""
        return np.ascontiguousarray(a[..., d * H : (d + 1) * H])

    @staticmethod
    def add(a, b):
        """a + b, into a (a is the caller's own)."""
        a += b
        return a

    @staticmethod
    def masked(a, mask):
        return a * mask

    @staticmethod
    def host(a) -> np.ndarray:
        return a


class Backend(Protocol):
    """One layer, one direction. ``reverse`` runs the recurrence from the last step to the first."""

    name: str
    arrays: HostArrays  # what the layers do to outputs and gradients between layers
    # the memory model's constants (analysis.memory.model_bytes; the cuda backend's model needs only
    # BACKWARD_FLOATS)
    FORWARD_FLOATS: dict[str, int]  # per cell: floats per step and unit a forward holds beside the tape
    BACKWARD_FLOATS: dict[str, int]  # ... and a backward
    RECURRENT_COPIES: int  # copies of W_hh a pass holds (the cpu backend's packed panels)
    PACKED_WINDOW_BYTES: int  # gate gradients up to this size: a backward packs its input or h_{t-1} window
    SHIFTED_STATES: bool  # a backward copies h_{t-1} of every step beside the gate gradients (dW_hh in one product)
    WARMUP_SHAPES: tuple  # (batch, hidden) of the calls that compile every kernel (runtime.warmup)

    def forward(self, cell: CellSpec, w: LayerWeights, x: np.ndarray, h0: np.ndarray,
                c0: np.ndarray | None, reverse: bool, store: bool) -> Tape: ...

    def backward(self, cell: CellSpec, w: LayerWeights, tape: Tape, dy: np.ndarray,
                 dh_n: np.ndarray, dc_n: np.ndarray | None, reverse: bool,
                 grads: LayerWeights, hidden: np.ndarray | None = None,
                 cell_grad: np.ndarray | None = None) -> BackwardResult:
        """Backpropagate ``dy`` (dL/dh_t from outside the recurrence) and the derivative
        ``dh_n``/``dc_n`` arriving at the last state through the tape; add the parameter
        gradients into ``grads`` and, when given, the total dL/dh_t (dL/dc_t) of every step
        into ``hidden`` (``cell_grad``), both (n, B, H)."""
        ...
