"""One spec per recurrent cell: gate count, torch's parameter names, FLOP and memory models.

Everything above the backends (layers, BPTT, analysis) asks a ``CellSpec`` what a cell is;
nothing there branches on the cell's name.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CellSpec:
    """What a recurrent cell is, independent of any backend.

    ``gates`` is G in torch's (G*H, in) weight shapes; ``has_cell_state`` says whether the
    recurrent state is a pair (h, c); ``tape_floats_per_unit`` is how many floats per hidden
    unit and step a backward pass keeps (outputs included): the analytic memory model.
    """

    name: str
    gates: int
    has_cell_state: bool
    nonlinearity: str | None
    tape_floats_per_unit: int
    gate_names: tuple[str, ...] = ()

    def flops_forward(self, batch: int, input_size: int, hidden_size: int) -> int:
        """Matrix FLOPs of one forward step of one layer and direction (DESIGN.md's model)."""
        return 2 * batch * (input_size + hidden_size) * self.gates * hidden_size

    def flops_backward(self, batch: int, input_size: int, hidden_size: int) -> int:
        """Backward counts twice the forward: gradients of the inputs and of the weights."""
        return 2 * self.flops_forward(batch, input_size, hidden_size)

    def tape_bytes(self, seq_len: int, batch: int, hidden_size: int, dtype) -> int:
        """Bytes a full-BPTT forward keeps for one layer and direction (outputs included)."""
        itemsize = np.dtype(dtype).itemsize
        return self.tape_floats_per_unit * seq_len * batch * hidden_size * itemsize


# Tape contents per step and unit: RNN keeps h (its derivative is a function of h);
# LSTM keeps the activated gates i, f, g, o, the cell c and h; GRU keeps r, z, n, the
# hidden part of the candidate (W_hn h + b_hn) and h.
RNN_TANH = CellSpec("rnn_tanh", 1, False, "tanh", 1)
RNN_RELU = CellSpec("rnn_relu", 1, False, "relu", 1)
LSTM = CellSpec("lstm", 4, True, None, 6, ("input", "forget", "cell", "output"))
GRU = CellSpec("gru", 3, False, None, 5, ("reset", "update", "new"))

CELLS = {spec.name: spec for spec in (RNN_TANH, RNN_RELU, LSTM, GRU)}


def get_cell(name: str) -> CellSpec:
    """Look a cell up by name; an unknown name is an error that lists the known ones."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; known cells: {', '.join(CELLS)}") from None


def param_names(layer: int, reverse: bool, bias: bool) -> list[str]:
    """torch's names for one layer and direction, in torch's order."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    names = [f"weight_ih{suffix}", f"weight_hh{suffix}"]
    if bias:
        names += [f"bias_ih{suffix}", f"bias_hh{suffix}"]
    return names
