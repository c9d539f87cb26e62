"""The NumPy oracle: one step at a time, written for clarity, the backend others are checked against.

Equations (torch's, gate order as in its weight rows):
    RNN   h' = act(W_ih x + b_ih + W_hh h + b_hh)
    LSTM  i, f, g, o = sig, sig, tanh, sig of (W_ih x + b_ih + W_hh h + b_hh)
          c' = f c + i g;  h' = o tanh(c')
    GRU   r, z = sig(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})
          n = tanh(W_in x + b_in + r (W_hn h + b_hn));  h' = (1 - z) n + z h

Each backward step turns dL/dh_t (and dL/dc_t) into the gradient of the gate pre-activations:
``dgx`` for the input side (W_ih, b_ih, x) and ``dgh`` for the recurrent side (W_hh, b_hh,
h_{t-1}); they differ only for GRU's candidate, whose recurrent part is scaled by r.
"""
from __future__ import annotations

import numpy as np

from rnnbench.backends.base import BackwardResult, HostArrays, LayerWeights, Tape
from rnnbench.cells import CellSpec


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _activation(cell: CellSpec):
    if cell.nonlinearity == "relu":
        return lambda a: np.maximum(a, 0), lambda y: (y > 0).astype(y.dtype)
    return np.tanh, lambda y: 1 - y * y


def _forward_step(cell, w, x_t, h, c):
    """One step: (h', c', what the backward step needs)."""
    gx = x_t @ w.w_ih.T + w.b_ih
    gh = h @ w.w_hh.T + w.b_hh
    if cell.name == "lstm":
        i, f, g, o = np.split(gx + gh, 4, axis=1)
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c_new = f * c + i * g
        return o * np.tanh(c_new), c_new, {"gates": np.concatenate([i, f, g, o], axis=1)}
    if cell.name == "gru":
        xr, xz, xn = np.split(gx, 3, axis=1)
        hr, hz, hn = np.split(gh, 3, axis=1)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        n = np.tanh(xn + r * hn)
        # hn copied: as a view it would keep all of gh alive until the tape is stacked
        return (1 - z) * n + z * h, None, {"gates": np.concatenate([r, z, n], axis=1), "hn": hn.copy()}
    act, _ = _activation(cell)
    return act(gx + gh), None, {}


def _backward_step(cell, saved, h_new, h, c, dh, dc):
    """dL/dh', dL/dc' -> (dgx, dgh, dL/dh through the non-matrix path, dL/dc, total dL/dc')."""
    if cell.name == "lstm":
        i, f, g, o = np.split(saved["gates"], 4, axis=1)
        tc = np.tanh(saved["c"])
        dc_total = dc + dh * o * (1 - tc * tc)
        d = np.concatenate([dc_total * g * i * (1 - i),     # d(i pre-activation)
                            dc_total * c * f * (1 - f),     # d(f ...)
                            dc_total * i * (1 - g * g),     # d(g ...)
                            dh * tc * o * (1 - o)], axis=1)  # d(o ...)
        return d, d, 0, dc_total * f, dc_total
    if cell.name == "gru":
        r, z, n = np.split(saved["gates"], 3, axis=1)
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (h - n) * z * (1 - z)
        dr = dn * saved["hn"] * r * (1 - r)
        return (np.concatenate([dr, dz, dn], axis=1),
                np.concatenate([dr, dz, dn * r], axis=1), dh * z, None, None)
    _, dact = _activation(cell)
    d = dh * dact(h_new)
    return d, d, 0, None, None


class ReferenceBackend:
    name = "reference"
    arrays = HostArrays()
    # Floats per step and hidden unit held beside the tape (the memory model): the forward
    # stacks its per-step lists into the tape (everything but h exists twice for a moment);
    # the backward works one step at a time.
    FORWARD_FLOATS = {"rnn_tanh": 0, "rnn_relu": 0, "lstm": 5, "gru": 4}
    BACKWARD_FLOATS = {"rnn_tanh": 0, "rnn_relu": 0, "lstm": 0, "gru": 0}
    RECURRENT_COPIES = 0
    PACKED_WINDOW_BYTES = 0
    SHIFTED_STATES = False
    WARMUP_SHAPES = ((1, 2),)

    def forward(self, cell, w, x, h0, c0, reverse, store) -> Tape:
        n = x.shape[0]
        order = range(n - 1, -1, -1) if reverse else range(n)
        h_all = np.empty((n,) + h0.shape, dtype=h0.dtype)
        saved: dict[str, list] = {}
        h, c = h0, c0
        for t in order:
            h, c, extra = _forward_step(cell, w, x[t], h, c)
            h_all[t] = h
            if store:
                for k, v in dict(extra, **({} if c is None else {"c": c})).items():
                    saved.setdefault(k, [None] * n)[t] = v
        steps = {"h": h_all, **{k: np.stack(v) for k, v in saved.items()}}
        return Tape(x, reverse, h0, c0, h, c, steps)

    def backward(self, cell, w, tape, dy, dh_n, dc_n, reverse, grads: LayerWeights,
                 hidden=None, cell_grad=None):
        n = tape.x.shape[0]
        order = range(n) if reverse else range(n - 1, -1, -1)
        dx = np.zeros_like(tape.x)
        dh, dc = dh_n, dc_n
        for t in order:
            prev = t + 1 if reverse else t - 1
            inside = 0 <= prev < n
            h_prev = tape.steps["h"][prev] if inside else tape.h0
            c_prev = None
            if cell.has_cell_state:
                c_prev = tape.steps["c"][prev] if inside else tape.c0
            saved = {k: v[t] for k, v in tape.steps.items()}
            dh = dy[t] + dh
            if hidden is not None:
                hidden[t] += dh
            dgx, dgh, dh_direct, dc, dc_total = _backward_step(
                cell, saved, saved["h"], h_prev, c_prev, dh, dc)
            if cell_grad is not None:
                cell_grad[t] += dc_total
            grads.w_ih += dgx.T @ tape.x[t]
            grads.b_ih += dgx.sum(axis=0)
            grads.w_hh += dgh.T @ h_prev
            grads.b_hh += dgh.sum(axis=0)
            dx[t] = dgx @ w.w_ih
            dh = dgh @ w.w_hh + dh_direct
        return BackwardResult(dx, dh, dc)
