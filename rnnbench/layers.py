"""rb.RNN, rb.LSTM and rb.GRU: torch.nn's interface over any backend, with BPTT as a method.

Everything a backend does not: parameters in torch's names, shapes, order and initialisation;
stacking, directions and dropout between layers; the forward record that backward consumes;
truncated and checkpointed BPTT (``rnnbench.bptt``). A backend runs one layer in one direction.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from rnnbench import bptt
from rnnbench.backends import get_backend
from rnnbench.backends.base import LayerWeights, Tape
from rnnbench.cells import CellSpec, get_cell, param_names
from rnnbench.checks import (check_array, check_dtype_name, check_finite, check_positive_int,
                             to_numpy)


@dataclass
class _Record:
    """What a forward with grad=True leaves for backward."""

    tapes: list  # tapes[layer][direction]
    masks: list  # masks[layer]: the dropout mask on layer's output (None: no dropout)
    T: int
    B: int
    unbatched: bool


class _Gradients:
    """The sums a backward builds, returned in the caller's layout by ``as_dict``."""

    def __init__(self, m: "RecurrentLayer", T: int, B: int, keep_hidden: bool):
        L, D, H, dt = m.num_layers, m.num_directions, m.hidden_size, m.dtype
        self.model = m
        self.params = [[LayerWeights.zeros_like(m._weights(l, d)) for d in range(D)] for l in range(L)]
        self.input = np.zeros((T, B, m.input_size), dt)
        self.h0 = np.zeros((L * D, B, H), dt)
        lstm = m.cell.has_cell_state
        self.c0 = np.zeros_like(self.h0) if lstm else None
        self.hidden = np.zeros((L * D, T, B, H), dt) if keep_hidden else None
        self.cell = np.zeros_like(self.hidden) if lstm and keep_hidden else None

    def as_dict(self, unbatched: bool) -> dict[str, np.ndarray]:
        m = self.model
        g = {"input": self.input, "h0": self.h0, "c0": self.c0}
        for layer, per_direction in enumerate(self.params):
            for d, lw in enumerate(per_direction):
                arrays = (lw.w_ih, lw.w_hh, lw.b_ih, lw.b_hh)
                g.update(zip(m._names(layer, d), arrays))  # no bias names: biases dropped
        g.update(hidden=self.hidden, cell=self.cell)
        if unbatched:
            g.update(input=self.input[:, 0], h0=self.h0[:, 0])
            if self.c0 is not None:
                g["c0"] = self.c0[:, 0]
            for key in ("hidden", "cell"):
                if g[key] is not None:
                    g[key] = g[key][:, :, 0]
        elif m.batch_first:
            g["input"] = self.input.transpose(1, 0, 2)
        return {k: v for k, v in g.items() if v is not None}


class RecurrentLayer:
    """A stack of recurrent layers of one cell, as ``torch.nn.RNN`` / ``LSTM`` / ``GRU``.

    Shapes follow torch: input (T, B, I), (B, T, I) with ``batch_first``, or unbatched (T, I);
    output (T, B, D*H); h_n (D*num_layers, B, H); LSTM states are (h, c) pairs.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, backend: str = "cpu", dtype="float32", seed=None):
        self.cell: CellSpec = get_cell(cell)
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a number in [0, 1]; got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout acts between layers: with num_layers=1 it does nothing", stacklevel=3)
        self.dropout = float(dropout)
        self.dtype = check_dtype_name(dtype)
        self.backend = get_backend(backend)
        self.training = True
        self._rng = np.random.default_rng(seed)
        self._params = self._init_parameters()
        self._record: _Record | None = None

    # --- parameters -------------------------------------------------------------------------

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.hidden_size

    def _names(self, layer: int, direction: int) -> list[str]:
        return param_names(layer, direction == 1, self.bias)

    def _init_parameters(self) -> dict[str, np.ndarray]:
        """torch's initialisation: every parameter uniform in [-1/sqrt(H), 1/sqrt(H)]."""
        k = 1 / np.sqrt(self.hidden_size)
        params = {}
        for name, shape in self._shapes().items():
            params[name] = self._rng.uniform(-k, k, size=shape).astype(self.dtype)
        return params

    def _shapes(self) -> dict[str, tuple]:
        gh, h = self.cell.gates * self.hidden_size, self.hidden_size
        shapes = {}
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                names = self._names(layer, d)
                shapes[names[0]] = (gh, self._layer_input_size(layer))
                shapes[names[1]] = (gh, h)
                if self.bias:
                    shapes[names[2]] = shapes[names[3]] = (gh,)
        return shapes

    def _weights(self, layer: int, direction: int) -> LayerWeights:
        arrays = [self._params[n] for n in self._names(layer, direction)]
        if not self.bias:
            zero = np.zeros(self.cell.gates * self.hidden_size, self.dtype)
            arrays += [zero, zero]
        return LayerWeights(*arrays)

    def named_parameters(self):
        """(torch name, live array) pairs in torch's order: what optimizers update in place."""
        return list(self._params.items())

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter under its torch name."""
        return {name: p.copy() for name, p in self._params.items()}

    def load_state_dict(self, state_dict) -> None:
        """Copy parameters in from NumPy arrays or torch tensors; strict about names and shapes."""
        missing = [n for n in self._params if n not in state_dict]
        extra = [n for n in state_dict if n not in self._params]
        if missing or extra:
            raise KeyError("load_state_dict: " + "; ".join(
                part for part in (f"missing keys {missing}" if missing else "",
                                  f"unexpected keys {extra}" if extra else "") if part))
        values = {}
        for name, p in self._params.items():
            v = to_numpy(name, state_dict[name])
            if v.shape != p.shape:
                raise ValueError(f"load_state_dict: {name} has shape {tuple(v.shape)}; expected {p.shape}")
            check_finite(name, v)
            values[name] = v
        for name, v in values.items():
            self._params[name][...] = v

    def train(self, mode: bool = True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    # --- forward ----------------------------------------------------------------------------

    def __call__(self, x, hx=None, grad: bool = True, checkpoint=None):
        return self.forward(x, hx, grad, checkpoint)

    def forward(self, x, hx=None, grad: bool = True, checkpoint=None):
        """Run the stack; with ``grad`` keep what ``backward`` needs (see DESIGN.md's contract).

        ``checkpoint=c`` keeps the state every c steps (``"sqrt"``: about sqrt(T)) and
        recomputes each segment during backward: the same gradients with less memory.
        """
        x, unbatched = self._check_input(x)
        self._record = None  # let the previous forward's tape go before this one builds its own
        T, B = x.shape[:2]
        h0, c0 = self._check_state(hx, B, unbatched)
        every = bptt.checkpoint_every(checkpoint, T)
        for name, p in self._params.items():
            check_finite(f"parameter {name}", p)
        D, arrays = self.num_directions, self.backend.arrays
        tapes, masks = [], []
        h_n = np.empty((self.num_layers * D, B, self.hidden_size), self.dtype)  # filled as the runs end
        c_n = None if c0 is None else np.empty_like(h_n)
        layer_input = x
        for layer in range(self.num_layers):
            runs = []
            for d in range(D):
                i = layer * D + d
                run = bptt.run_forward(self.backend, self.cell, self._weights(layer, d), layer_input,
                                       h0[i], None if c0 is None else c0[i], d == 1, every, grad)
                runs.append(run)
                h_n[i] = run.h_n
                if c_n is not None:
                    c_n[i] = run.c_n
            out = arrays.join([r.h for r in runs])
            tapes.append(runs)
            if layer < self.num_layers - 1 and self.training and self.dropout > 0:
                keep = self._rng.random(out.shape) >= self.dropout
                mask = (keep / (1 - self.dropout) if self.dropout < 1 else keep * 0).astype(self.dtype)
                masks.append(mask)
                layer_input = arrays.masked(out, mask)
            else:
                masks.append(None)
                layer_input = out
        self._record = _Record(tapes, masks, T, B, unbatched) if grad else None
        return self._present_output(arrays.host(out), unbatched), self._present_state(h_n, c_n, unbatched)

    def _check_input(self, x):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray; got {type(x).__name__}")
        if x.ndim not in (2, 3):
            raise ValueError(f"x must be 3-D {'(B, T, I)' if self.batch_first else '(T, B, I)'} "
                             f"or unbatched 2-D (T, I); got shape {x.shape}")
        check_array("x", x, self.dtype, (None,) * (x.ndim - 1) + (self.input_size,))
        if 0 in x.shape:
            raise ValueError(f"x has an empty dimension: shape {x.shape}")
        if x.ndim == 2:
            return np.ascontiguousarray(x[:, None, :]), True
        return np.ascontiguousarray(x.transpose(1, 0, 2) if self.batch_first else x), False

    def _check_state(self, hx, B: int, unbatched: bool):
        """(h0, c0) as (L*D, B, H) arrays (zeros when hx is None); c0 is None but for LSTM."""
        L_D, H = self.num_layers * self.num_directions, self.hidden_size
        shape = (L_D, H) if unbatched else (L_D, B, H)
        if hx is None:
            zeros = np.zeros((L_D, B, H), self.dtype)
            return zeros, zeros.copy() if self.cell.has_cell_state else None
        if self.cell.has_cell_state:
            if not (isinstance(hx, tuple) and len(hx) == 2):
                raise TypeError("an LSTM's hx must be a tuple (h0, c0)")
            states = [check_array(name, s, self.dtype, shape) for name, s in zip(("h0", "c0"), hx)]
        else:
            states = [check_array("hx", hx, self.dtype, shape)]
        states = [np.ascontiguousarray(s.reshape(L_D, B, H)) for s in states]
        return states[0], states[1] if len(states) == 2 else None

    def _present_output(self, out, unbatched):
        """Output in the caller's layout, read-only: the backward pass may still need it."""
        if unbatched:
            out = out[:, 0]
        elif self.batch_first:
            out = out.transpose(1, 0, 2)
        out = out.view()
        out.flags.writeable = False
        return out

    def _present_state(self, h_n, c_n, unbatched):
        if unbatched:
            h_n = h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        return h_n if c_n is None else (h_n, c_n)

    def gate_activations(self, layer: int = 0, direction: int = 0) -> dict[str, np.ndarray]:
        """The activated gates of the last forward (grad=True, no checkpointing), by name, each
        (T, B, H): LSTM input, forget, cell, output; GRU reset, update, new. Empty for RNN."""
        rec = self._record
        if rec is None or not isinstance(rec.tapes[layer][direction], Tape):
            raise RuntimeError("gate activations need a preceding forward with grad=True and no checkpoint")
        steps, H, names = rec.tapes[layer][direction].steps, self.hidden_size, self.cell.gate_names
        if "gates" in steps:  # side by side in one array (reference)
            values = {n: steps["gates"][..., k * H : (k + 1) * H] for k, n in enumerate(names)}
        elif "planes" in steps:  # (T, planes, B, H) in one array, on a device (cuda): copied here
            planes = np.asarray(steps["planes"])
            values = {n: planes[:, k] for k, n in enumerate(names)}
        else:  # one array per gate, under its name (cpu)
            values = {n: steps[n] for n in names}
        if rec.unbatched:
            values = {n: v[:, 0] for n, v in values.items()}
        return values

    # --- backward ---------------------------------------------------------------------------

    def backward(self, grad_output, grad_h_n=None, truncation=None,
                 hidden: bool = True) -> dict[str, np.ndarray]:
        """Backpropagate through time from the last forward (which must have had grad=True).

        ``grad_output`` is dL/d(output) in the output's shape; ``grad_h_n`` dL/dh_n (for LSTM a
        pair (dh_n, dc_n), either may be None). ``truncation``: None (full BPTT), k (chunked) or
        (k1, k2) (Williams & Peng); the precise semantics are in ``rnnbench.bptt``.

        Returns gradients keyed "input", "h0" ("c0"), every parameter name, and "hidden"
        ((L*D, T, B, H): the total dL/dh_t each layer and direction carried; "cell" for LSTM).
        ``hidden=False`` leaves those two out, and the memory they take.
        The forward record is kept, so backward may be called again (another truncation, say).
        """
        rec = self._record
        if rec is None:
            raise RuntimeError("backward() needs a preceding forward with grad=True "
                               "(none was run, or the last one had grad=False)")
        T, B, H, D = rec.T, rec.B, self.hidden_size, self.num_directions
        arrays = self.backend.arrays
        go = self._check_grad_output(grad_output, rec)
        dh_n, dc_n = self._check_grad_state(grad_h_n, rec)
        acc = _Gradients(self, T, B, hidden)
        zeros = np.zeros((B, H), self.dtype)
        for grp in bptt.groups(T, truncation, self.bidirectional):
            a, b = grp.a, grp.b
            if (grp.lo, grp.hi) == (a, b):
                dy = go[a : b + 1]
            else:  # only the group's loss steps feed this window
                dy = np.zeros((b - a + 1, B, D * H), self.dtype)
                dy[grp.lo - a : grp.hi - a + 1] = go[grp.lo : grp.hi + 1]
            for layer in reversed(range(self.num_layers)):
                dx = None
                for d in range(D):
                    i, reverse = layer * D + d, d == 1
                    # dL/dh_n enters with the group holding the direction's last step
                    owns_end = grp.lo == 0 if reverse else grp.hi == T - 1
                    dh = dh_n[i] if owns_end else zeros
                    dc = None if dc_n is None else (dc_n[i] if owns_end else zeros)
                    dyd = dy if D == 1 else arrays.direction(dy, d, H)
                    dxd = self._direction_backward(rec, acc, layer, d, a, b, dyd, dh, dc)
                    dx = dxd if dx is None else arrays.add(dx, dxd)
                    del dxd  # else the next backward runs beside it
                if layer > 0:
                    mask = rec.masks[layer - 1]
                    dy = dx if mask is None else arrays.masked(dx, mask[a : b + 1])
                else:
                    acc.input[a : b + 1] += arrays.host(dx)
        return acc.as_dict(rec.unbatched)

    def _direction_backward(self, rec, acc, layer, d, a, b, dy, dh, dc):
        """Backpropagate one layer and direction over steps [a, b], entering with dh (dc) at
        its last step; accumulate into ``acc`` and return dL/dx over the window."""
        i, reverse, tape = layer * self.num_directions + d, d == 1, rec.tapes[layer][d]
        w = self._weights(layer, d)
        pieces = tape.pieces(a, b)
        dx = None
        for p, q in pieces:
            hid, cel = (None if g is None else g[i, p : q + 1] for g in (acc.hidden, acc.cell))
            r = self.backend.backward(self.cell, w, tape.window(p, q), dy[p - a : q - a + 1],
                                      dh, dc, reverse, acc.params[layer][d], hid, cel)
            dh, dc = r.dh0, r.dc0
            if len(pieces) == 1:
                dx = r.dx
            else:
                if dx is None:
                    dx = np.empty((b - a + 1,) + r.dx.shape[1:], self.dtype)
                dx[p - a : q - a + 1] = self.backend.arrays.host(r.dx)
            del r  # else the next piece's backward runs beside this one's input gradient
        if (b == rec.T - 1) if reverse else (a == 0):  # the window starts at h0
            acc.h0[i] += dh
            if acc.c0 is not None:
                acc.c0[i] += dc
        return dx

    def _check_grad_output(self, grad_output, rec):
        T, B, DH = rec.T, rec.B, self.num_directions * self.hidden_size
        if rec.unbatched:
            shape = (T, DH)
        else:
            shape = (B, T, DH) if self.batch_first else (T, B, DH)
        g = check_array("grad_output", grad_output, self.dtype, shape)
        if rec.unbatched:
            g = g[:, None]
        elif self.batch_first:
            g = g.transpose(1, 0, 2)
        return np.ascontiguousarray(g)

    def _check_grad_state(self, grad_h_n, rec):
        L_D, B, H = self.num_layers * self.num_directions, rec.B, self.hidden_size
        shape = (L_D, H) if rec.unbatched else (L_D, B, H)
        if self.cell.has_cell_state:
            if grad_h_n is None:
                grad_h_n = (None, None)
            if not (isinstance(grad_h_n, tuple) and len(grad_h_n) == 2):
                raise TypeError("an LSTM's grad_h_n must be a tuple (dh_n, dc_n); either may be None")
            names = ("grad_h_n[0] (dh_n)", "grad_h_n[1] (dc_n)")
        else:
            grad_h_n, names = (grad_h_n,), ("grad_h_n",)
        out = []
        for name, g in zip(names, grad_h_n):
            if g is None:
                out.append(np.zeros((L_D, B, H), self.dtype))
            else:
                out.append(np.ascontiguousarray(check_array(name, g, self.dtype, shape).reshape(L_D, B, H)))
        return out[0], out[1] if self.cell.has_cell_state else None

    def __repr__(self):
        opts = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_layers != 1:
            opts.append(f"num_layers={self.num_layers}")
        if self.cell.nonlinearity == "relu":
            opts.append("nonlinearity='relu'")
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                opts.append(f"{name}={getattr(self, name)}")
        opts.append(f"backend={self.backend.name!r}, dtype={self.dtype.name!r}")
        return f"{type(self).__name__}({', '.join(opts)})"


class RNN(RecurrentLayer):
    """Elman RNN, ``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` with act tanh or relu (torch.nn.RNN)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"unknown nonlinearity {nonlinearity!r}; use 'tanh' or 'relu'")
        self.nonlinearity = nonlinearity
        super().__init__(f"rnn_{nonlinearity}", input_size, hidden_size, num_layers, **kwargs)


class LSTM(RecurrentLayer):
    """Long short-term memory (torch.nn.LSTM): gates i, f, g, o; states (h, c)."""

    def __init__(self, input_size, hidden_size, num_layers=1, **kwargs):
        super().__init__("lstm", input_size, hidden_size, num_layers, **kwargs)


class GRU(RecurrentLayer):
    """Gated recurrent unit (torch.nn.GRU): gates r, z, n."""

    def __init__(self, input_size, hidden_size, num_layers=1, **kwargs):
        super().__init__("gru", input_size, hidden_size, num_layers, **kwargs)
