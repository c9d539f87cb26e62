"""Gradient-norm decay through time, measured and held against theory.

For a loss at the last step only (many-to-one), BPTT carries dL/dh_k back k steps; its norm
falls (or grows) roughly geometrically. The vanilla RNN's per-step factor is bounded by
sigma_max(W_hh) * gamma, gamma = max |f'| = 1 for tanh and relu. The LSTM's cell path is
multiplied by the forget gate at every step, so ||dL/dc_k|| follows the product of forget gates;
the GRU's direct path likewise follows the update gate z.

The recurrent weight is set per gate block: each (H, H) block of W_hh is scaled so that its
largest singular value is ``scale`` (orthogonal: scale times a random orthogonal matrix;
gaussian: a N(0, 1/H) matrix divided by its largest singular value, times scale).
"""
from __future__ import annotations

import warnings

import numpy as np

from rnnbench.cells import get_cell
from rnnbench.layers import RecurrentLayer

INITS = ("orthogonal", "gaussian")
QUANTILES = (10, 90)


def recurrent_weight(cell: str, hidden_size: int, scale: float, init: str, rng) -> np.ndarray:
    """W_hh (G*H, H) whose every gate block has largest singular value ``scale``."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; known: {', '.join(INITS)}")
    if not (np.isfinite(scale) and scale >= 0):
        raise ValueError(f"scale must be a finite number >= 0; got {scale!r}")
    H, blocks = hidden_size, []
    for _ in range(get_cell(cell).gates):
        a = rng.standard_normal((H, H)) / np.sqrt(H)
        if init == "orthogonal":
            q, r = np.linalg.qr(a)
            a = q * np.sign(np.diag(r))  # uniformly distributed orthogonal matrix
        else:
            a = a / np.linalg.norm(a, 2)
        blocks.append(scale * a)
    return np.concatenate(blocks)


def decay_model(cell, hidden_size, scale, init="orthogonal", input_size=None, bias=True,
                forget_bias=None, seed=0, backend="cpu", dtype="float64") -> RecurrentLayer:
    """A one-layer model with W_hh set by ``recurrent_weight`` (and an LSTM forget bias)."""
    rng = np.random.default_rng(seed)
    m = RecurrentLayer(cell, input_size or hidden_size, hidden_size, bias=bias, backend=backend,
                       dtype=dtype, seed=seed)
    sd = m.state_dict()
    sd["weight_hh_l0"] = recurrent_weight(cell, hidden_size, scale, init, rng)
    if forget_bias is not None:
        if cell != "lstm" or not bias:
            raise ValueError("forget_bias applies to an LSTM with bias=True")
        sd["bias_ih_l0"][hidden_size : 2 * hidden_size] = forget_bias
        sd["bias_hh_l0"][hidden_size : 2 * hidden_size] = 0
    m.load_state_dict(sd)
    return m


def _norms_by_distance(grad: np.ndarray) -> np.ndarray:
    """(T, B, H) derivative -> (B, T) norms indexed by distance k = T-1-t from the last step."""
    return np.linalg.norm(grad, axis=2)[::-1].T


def fit_rate(norms: np.ndarray) -> float:
    """Per-step factor rho of norms ~ C rho^k: a least-squares line through log norm against k,
    over k >= 1 where the norm is finite and positive (NaN when fewer than two such steps)."""
    k = np.arange(len(norms))
    ok = (k >= 1) & np.isfinite(norms) & (norms > 0)
    if ok.sum() < 2:
        return float("nan")
    slope = np.polyfit(k[ok], np.log(norms[ok]), 1)[0]
    return float(np.exp(slope))


def _summary(norms: np.ndarray):
    """Geometric mean and quantiles over samples, per distance; non-finite samples excluded."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a distance where every sample is 0 or inf
        logs = np.log(np.where(np.isfinite(norms) & (norms > 0), norms, np.nan))
        center = np.exp(np.nanmean(logs, axis=0))
        lo, hi = (np.exp(np.nanpercentile(logs, q, axis=0)) for q in QUANTILES)
    return center, lo, hi


def status_of(norms: np.ndarray) -> str:
    """'overflow' when any norm is inf or NaN (an exploding run), 'zero' when one is exactly
    zero (underflow, or a path that carries nothing), else 'ok'."""
    if not np.isfinite(norms).all():
        return "overflow"
    return "zero" if (norms == 0).any() else "ok"


def decay_experiment(cell: str, seq_len: int, hidden_size: int, scale: float, init: str = "orthogonal",
                     batch: int = 8, seeds=(0, 1, 2), input_size=None, input_scale: float = 1.0,
                     bias: bool = True, forget_bias=None, backend: str = "cpu",
                     dtype: str = "float64") -> list[dict]:
    """Rows of ``grad_norm`` per distance ``step`` (geometric mean over batch and seeds, with
    ``value_q10``/``value_q90``), ``decay_rate`` (fitted), ``theory_rate`` and ``sigma_max``; for
    LSTM also ``cell_grad_norm``, ``cell_decay_rate`` and ``cell_theory_rate``."""
    spec = get_cell(cell)
    hidden, cells, gate_path, sigmas = [], [], [], []
    for seed in seeds:
        m = decay_model(cell, hidden_size, scale, init, input_size, bias, forget_bias, seed, backend, dtype)
        rng = np.random.default_rng(10_000 + seed)
        x = (input_scale * rng.standard_normal((seq_len, batch, m.input_size))).astype(dtype)
        go = np.zeros((seq_len, batch, hidden_size), dtype)
        go[-1] = rng.standard_normal((batch, hidden_size))
        go[-1] /= np.linalg.norm(go[-1], axis=1, keepdims=True)  # a unit loss gradient per sample
        with np.errstate(all="ignore"):
            m(x)
            g = m.backward(go)
        hidden.append(_norms_by_distance(g["hidden"][0]))
        if spec.has_cell_state:
            cells.append(_norms_by_distance(g["cell"][0]))
        if spec.gate_names:  # the multiplicative path: LSTM forget gate, GRU update gate
            gate_path.append(m.gate_activations()["forget" if cell == "lstm" else "update"])
        w_hh = dict(m.named_parameters())["weight_hh_l0"]
        sigmas.append(max(np.linalg.norm(block, 2) for block in np.split(w_hh, spec.gates)))
    base = {"experiment": "gradients", "cell": cell, "backend": backend, "dtype": dtype,
            "seq_len": seq_len, "batch": batch, "input_size": input_size or hidden_size,
            "hidden_size": hidden_size, "num_layers": 1, "bidirectional": False, "truncation": "full",
            "scale": scale, "init": init, "seeds": len(seeds)}
    rows = [dict(base, metric="sigma_max", value=float(np.mean(sigmas)), unit="",
                 note="largest singular value of W_hh's gate blocks")]
    if spec.nonlinearity:
        rows.append(dict(base, metric="theory_rate", value=float(scale), unit="per step",
                         note="bound: sigma_max(W_hh) * max|f'|, max|f'| = 1"))
    elif gate_path:
        with np.errstate(divide="ignore"):
            product_rate = float(np.exp(np.mean(np.log(np.concatenate([p.ravel() for p in gate_path])))))
        prefix = "cell_" if cell == "lstm" else ""
        rows.append(dict(base, metric=f"{prefix}theory_rate", value=product_rate, unit="per step",
                         note="geometric mean of the " + ("forget" if cell == "lstm" else "update") + " gate"))
    for prefix, per_seed in (("", hidden), ("cell_", cells)):
        if not per_seed:
            continue
        norms = np.concatenate(per_seed)  # (samples, T)
        center, lo, hi = _summary(norms)
        status = status_of(norms)
        for k in range(seq_len):
            rows.append(dict(base, metric=f"{prefix}grad_norm", step=k, value=float(center[k]),
                             value_q10=float(lo[k]), value_q90=float(hi[k]), unit="", status=status))
        rows.append(dict(base, metric=f"{prefix}decay_rate", value=fit_rate(center), unit="per step",
                         status=status))
    return rows


def jacobian_norms(m: RecurrentLayer, x: np.ndarray, t_steps=None) -> np.ndarray:
    """||d s_t / d s_{t-1}||_2 of layer 0, forward direction, for each step t and sample: s = h,
    or (h, c) for LSTM. Returns (len(t_steps), B).

    Each Jacobian comes from the model's own backward: one step is run on S copies of the
    state entering step t (S = H, or 2H), and backpropagating the S unit vectors gives its rows.
    """
    T, B, _ = x.shape
    H, lstm = m.hidden_size, m.cell.has_cell_state
    S = 2 * H if lstm else H
    one = RecurrentLayer(m.cell.name, m.input_size, H, bias=m.bias, backend=m.backend.name,
                         dtype=m.dtype.name)
    one.load_state_dict({k: v for k, v in m.state_dict().items() if k.endswith("_l0")})
    with np.errstate(all="ignore"):
        _, states = one(x, grad=True)
        host = one.backend.arrays.host
        h_all = host(one._record.tapes[0][0].h)
        c_all = host(one._record.tapes[0][0].steps["c"]) if lstm else None
    zeros = np.zeros((B, H), m.dtype)
    eye = np.eye(S, dtype=m.dtype)
    result = []
    for t in (range(1, T) if t_steps is None else t_steps):
        rows_b = []
        for b in range(B):
            h_prev = h_all[t - 1, b] if t > 0 else zeros[b]
            xs = np.repeat(x[t : t + 1, b : b + 1], S, axis=1)
            hx = np.repeat(h_prev[None, None], S, axis=1)
            if lstm:
                c_prev = c_all[t - 1, b] if t > 0 else zeros[b]
                hx = (hx, np.repeat(c_prev[None, None], S, axis=1))
            with np.errstate(all="ignore"):
                out, _ = one(xs, hx)
                gh = (eye[None, :, :H], eye[None, :, H:]) if lstm else eye[None]
                g = one.backward(np.zeros_like(out), gh, hidden=False)
            J = np.concatenate([g["h0"][0], g["c0"][0]], axis=1) if lstm else g["h0"][0]
            rows_b.append(J)
        result.append(np.linalg.svd(np.stack(rows_b), compute_uv=False)[:, 0])
    return np.array(result)


def jacobian_experiment(cell: str, seq_len: int, hidden_size: int, scale: float, init="orthogonal",
                        batch: int = 4, seed: int = 0, input_scale: float = 1.0, backend="cpu") -> list[dict]:
    """The distribution of per-step Jacobian norms: ``jacobian_norm`` rows, one per statistic."""
    m = decay_model(cell, hidden_size, scale, init, seed=seed, backend=backend)
    x = input_scale * np.random.default_rng(10_000 + seed).standard_normal((seq_len, batch, hidden_size))
    norms = jacobian_norms(m, x).ravel()
    norms = norms[np.isfinite(norms)]
    base = {"experiment": "jacobian", "cell": cell, "backend": backend, "dtype": "float64",
            "seq_len": seq_len, "batch": batch, "input_size": hidden_size, "hidden_size": hidden_size,
            "num_layers": 1, "bidirectional": False, "truncation": "full", "scale": scale, "init": init,
            "seed": seed, "metric": "jacobian_norm", "unit": ""}
    stats = {"mean": norms.mean(), "min": norms.min(), "max": norms.max()}
    stats.update({f"q{q:02d}": np.percentile(norms, q) for q in (5, 25, 50, 75, 95)})
    return [dict(base, stat=name, value=float(v)) for name, v in stats.items()]
