"""Backpropagation through time in every form: full, truncated (k1, k2), checkpointed; clipping.

Truncation, precisely. ``truncation=(k1, k2)`` with 1 <= k1 <= k2 (``k`` means ``(k, k)``,
``None`` full BPTT). Blocks end at steps e = k1-1, 2*k1-1, ... and T-1; the block ending at e
holds the losses of steps (previous end, e]. Those losses flow back through time to step
s = max(0, e - k2 + 1) and no further: the gradient is that of a forward restarted at s from
the (detached) state entering s. The returned gradients are the sum over blocks, which is what
accumulating every TBPTT(k1, k2) update gives. In a stack of layers the cut holds in every
layer: a block's losses reach no layer's state before s.

A bidirectional layer's reverse direction is truncated in its own, reversed time order (its
blocks are those of the reversed sequence). Loss steps are then grouped by the pair of blocks
(forward, reverse) they fall in; a group's losses flow back through the forward recurrences no
earlier than its forward block's start s and through the reverse recurrences no later than its
reverse block's start (in reversed time) e', i.e. the group is backpropagated on the window
[s, e'] with the states entering the window detached.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rnnbench.backends.base import Tape


@dataclass(frozen=True)
class Group:
    """Loss steps [lo, hi] backpropagated together within the window [a, b] (sequence time)."""

    lo: int
    hi: int
    a: int
    b: int


def parse_truncation(truncation) -> tuple[int, int] | None:
    """None, k or (k1, k2) -> None or (k1, k2), with a clear error for anything else."""
    if truncation is None:
        return None
    pair = (truncation, truncation) if _is_int(truncation) else truncation
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(map(_is_int, pair))):
        raise ValueError(f"truncation must be None, an int k or a pair (k1, k2); got {truncation!r}")
    k1, k2 = int(pair[0]), int(pair[1])
    if not 1 <= k1 <= k2:
        raise ValueError(f"truncation needs 1 <= k1 <= k2; got k1={k1}, k2={k2}")
    return k1, k2


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def blocks(T: int, k1: int, k2: int) -> list[tuple[int, int, int]]:
    """TBPTT(k1, k2) blocks of a sequence of T steps: (first loss step, last loss step, window start)."""
    ends = list(range(k1 - 1, T, k1))
    if not ends or ends[-1] != T - 1:
        ends.append(T - 1)
    starts = [0] + [e + 1 for e in ends[:-1]]
    return [(lo, e, max(0, e - k2 + 1)) for lo, e in zip(starts, ends)]


def groups(T: int, truncation, bidirectional: bool) -> list[Group]:
    """The loss groups and their windows (see the module docstring)."""
    parsed = parse_truncation(truncation)
    if parsed is None:
        return [Group(0, T - 1, 0, T - 1)]
    forward = blocks(T, *parsed)
    if not bidirectional:
        return [Group(lo, hi, s, hi) for lo, hi, s in forward]
    result = []
    for lo_r, hi_r, s_r in blocks(T, *parsed):  # reversed time: step t is T-1-t
        lo_t, hi_t, end = T - 1 - hi_r, T - 1 - lo_r, T - 1 - s_r
        for lo, hi, s in forward:
            if max(lo, lo_t) <= min(hi, hi_t):
                result.append(Group(max(lo, lo_t), min(hi, hi_t), s, end))
    return result


def checkpoint_every(checkpoint, T: int) -> int | None:
    """The checkpoint interval c for ``checkpoint`` (None, a positive int, or "sqrt")."""
    if checkpoint is None:
        return None
    if checkpoint == "sqrt":
        return max(1, round(math.sqrt(T)))
    if _is_int(checkpoint) and checkpoint >= 1:
        return int(checkpoint)
    raise ValueError(f"checkpoint must be None, a positive int or 'sqrt'; got {checkpoint!r}")


class CheckpointedTape:
    """A direction's forward that keeps only its outputs and the state every ``every`` steps.

    Segments are cut in the direction's own time order. A backward asks for pieces that never
    cross a segment border and gets each piece's tape by recomputing its segment from the kept
    state: memory ~ T/c states + one segment of activations, at the cost of one more forward.
    """

    def __init__(self, backend, cell, w, x, h0, c0, reverse: bool, every: int):
        self._args = (backend, cell, w)
        self.x, self.reverse, self.every = x, reverse, every
        T = x.shape[0]
        self.segments = [(s, min(s + every, T) - 1) for s in range(0, T, every)]
        if reverse:
            self.segments = [(T - 1 - b, T - 1 - a) for a, b in self.segments]
        self.h = np.empty((T,) + h0.shape, h0.dtype)
        self.entering = []  # state entering each segment, in segment order
        h, c = h0, c0
        for a, b in self.segments:
            self.entering.append((h, c))
            tape = backend.forward(cell, w, x[a : b + 1], h, c, reverse, store=False)
            self.h[a : b + 1] = tape.h
            # copies: a view would keep the segment's whole output alive
            h, c = tape.h_n.copy(), None if tape.c_n is None else tape.c_n.copy()
        self.h_n, self.c_n = h, c

    def _segment_of(self, t: int) -> int:
        return (self.x.shape[0] - 1 - t if self.reverse else t) // self.every

    def pieces(self, a: int, b: int) -> list[tuple[int, int]]:
        """[a, b] cut at segment borders, in the order a backward visits them."""
        cuts = [(max(lo, a), min(hi, b)) for lo, hi in self.segments if max(lo, a) <= min(hi, b)]
        return sorted(cuts, reverse=not self.reverse)

    def window(self, a: int, b: int) -> Tape:
        backend, cell, w = self._args
        k = self._segment_of(a)
        lo, hi = self.segments[k]
        h, c = self.entering[k]
        tape = backend.forward(cell, w, self.x[lo : hi + 1], h, c, self.reverse, store=True)
        return tape.window(a - lo, b - lo)

    @property
    def nbytes(self) -> int:
        """Bytes kept between forward and backward: outputs and the states entering segments."""
        kept = sum(h.nbytes + (0 if c is None else c.nbytes) for h, c in self.entering[1:])
        return self.h.nbytes + kept


def run_forward(backend, cell, w, x, h0, c0, reverse: bool, every: int | None, store: bool):
    """One direction's forward: a full tape, a checkpointed one, or (``store=False``) outputs only."""
    if store and every is not None:
        return CheckpointedTape(backend, cell, w, x, h0, c0, reverse, every)
    return backend.forward(cell, w, x, h0, c0, reverse, store)


# --- clipping ----------------------------------------------------------------------------------

NOT_PARAMETERS = frozenset({"input", "h0", "c0", "hidden", "cell"})


def _parameter_grads(grads: dict) -> list[np.ndarray]:
    return [v for k, v in grads.items() if k not in NOT_PARAMETERS]


def clip_grad_norm(grads: dict, max_norm: float, error_if_nonfinite: bool = False) -> float:
    """Scale the parameter gradients in place so that their global L2 norm is at most max_norm.

    As ``torch.nn.utils.clip_grad_norm_``: the norm is over every key but input, h0, c0,
    hidden and cell; the factor max_norm / (norm + 1e-6) is applied when below 1. Returns the
    norm before clipping.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive; got {max_norm!r}")
    params = _parameter_grads(grads)
    if not params:
        return 0.0
    norm = float(np.linalg.norm([np.linalg.norm(g.ravel()) for g in params]))
    if error_if_nonfinite and not math.isfinite(norm):
        raise ValueError(f"the total gradient norm is {norm}: the gradients hold NaN or inf")
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        for g in params:
            g *= g.dtype.type(coef)
    return norm


def clip_grad_value(grads: dict, clip_value: float) -> None:
    """Clamp every parameter gradient in place to [-clip_value, clip_value] (torch's clip_grad_value_)."""
    if not clip_value > 0:
        raise ValueError(f"clip_value must be positive; got {clip_value!r}")
    for g in _parameter_grads(grads):
        np.clip(g, -clip_value, clip_value, out=g)
