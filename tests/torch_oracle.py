"""PyTorch as the oracle: the same model in torch, its autograd gradients, and step-by-step runs.

Two independent torch paths: the fused ``nn.RNN``/``nn.LSTM``/``nn.GRU`` modules, and an
unrolled stack built from torch's own cell functions (``torch.lstm_cell``, ...) whose every
state keeps its gradient: the total dL/dh_t that rnnbench reports as ``hidden``.
"""
from __future__ import annotations

import numpy as np
import torch

MODULES = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
CELL_FNS = {"rnn_tanh": torch.rnn_tanh_cell, "rnn_relu": torch.rnn_relu_cell,
            "lstm": torch.lstm_cell, "gru": torch.gru_cell}


def t(a):
    return torch.from_numpy(np.array(a, copy=True))


def torch_module(m):
    """A torch module with m's options and weights (dropout left to the caller)."""
    kwargs = dict(num_layers=m.num_layers, bias=m.bias, batch_first=m.batch_first,
                  bidirectional=m.bidirectional, dtype=getattr(torch, m.dtype.name))
    if m.cell.nonlinearity:
        kwargs["nonlinearity"] = m.cell.nonlinearity
    mod = MODULES[m.cell.name](m.input_size, m.hidden_size, **kwargs)
    mod.load_state_dict({k: t(v) for k, v in m.state_dict().items()})
    return mod


def module_grads(m, x, hx, grad_output, grad_h_n):
    """Output, final state and autograd gradients of sum(go * out) + sum(gh * h_n) in torch."""
    mod = torch_module(m)
    xt = t(x).requires_grad_()
    lstm = m.cell.has_cell_state
    states = None if hx is None else tuple(t(s).requires_grad_() for s in (hx if lstm else (hx,)))
    out, hn = mod(xt, None if states is None else (states if lstm else states[0]))
    loss = (out * t(grad_output)).sum()
    finals = hn if lstm else (hn,)
    gh = grad_h_n if lstm else (grad_h_n,)
    for f, g in zip(finals, gh if grad_h_n is not None else ()):
        if g is not None:
            loss = loss + (f * t(g)).sum()
    loss.backward()
    result = {"out": out.detach().numpy(), "input": xt.grad.numpy()}
    result["h_n"] = finals[0].detach().numpy()
    if lstm:
        result["c_n"] = finals[1].detach().numpy()
    if states is not None:
        for name, s in zip(("h0", "c0"), states):
            result[name] = s.grad.numpy()
    for name, p in mod.named_parameters():
        result[name] = p.grad.numpy()
    return result


def unrolled(m, x, h0, c0, masks=None):
    """m's stack, step by step with torch's cell functions; x (T, B, I), states (L*D, B, H).

    Returns (out, states, cells): states[i][t] is layer-direction i's h_t (gradient retained),
    cells likewise for LSTM. ``masks[l]`` multiplies layer l's output (dropout) when given.
    """
    sd = {k: t(v).requires_grad_() for k, v in m.state_dict().items()}
    fn = CELL_FNS[m.cell.name]
    L, D, T = m.num_layers, m.num_directions, x.shape[0]
    states = [[None] * T for _ in range(L * D)]
    cells = [[None] * T for _ in range(L * D)]
    inp = x
    for layer in range(L):
        outs = []
        for d in range(D):
            i = layer * D + d
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            w = [sd.get(f"{k}{suffix}") for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h, c = h0[i], None if c0 is None else c0[i]
            for step in (reversed(range(T)) if d else range(T)):
                if c is not None:
                    h, c = fn(inp[step], (h, c), *w)
                    cells[i][step] = c
                else:
                    h = fn(inp[step], h, *w)
                states[i][step] = h
                for s in (h, c):
                    if s is not None and s.requires_grad:
                        s.retain_grad()
            outs.append(torch.stack(states[i]))
        out = torch.cat(outs, dim=2)
        inp = out if masks is None or masks[layer] is None or layer == L - 1 else out * t(masks[layer])
    return out, states, cells, sd


def assert_matches_torch(m, x, hx, go, gh, rtol, atol):
    """m's output, final states and every gradient against torch's module on the same inputs."""
    out, state = m(x, hx)
    g = m.backward(go, gh)
    ref = module_grads(m, x, hx, go, gh)
    lstm = m.cell.has_cell_state
    np.testing.assert_allclose(out, ref["out"], rtol=rtol, atol=atol, err_msg="output")
    np.testing.assert_allclose(state[0] if lstm else state, ref["h_n"], rtol=rtol, atol=atol, err_msg="h_n")
    if lstm:
        np.testing.assert_allclose(state[1], ref["c_n"], rtol=rtol, atol=atol, err_msg="c_n")
    keys = [k for k in ref if k not in ("out", "h_n", "c_n")]
    assert set(keys) - {"h0", "c0"} <= set(g)
    for k in keys:
        assert g[k].shape == ref[k].shape, k
        np.testing.assert_allclose(g[k], ref[k], rtol=rtol, atol=atol, err_msg=k)
    return g
