"""Cases whose gradients are known in closed form, and a finite-difference check of the oracle."""
import numpy as np
import pytest
from scipy.stats import ortho_group

import rnnbench as rb
from conftest import BACKENDS, CELLS, make, random_inputs


def last_step_loss(out):
    go = np.zeros_like(out)
    go[-1] = 1.0
    return go


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("s", [0.5, 0.9, 1.0, 1.3])
def test_tanh_rnn_orthogonal_scaled_decays_by_exactly_s(backend, s):
    """W_hh = s Q and tiny inputs: tanh' = 1 to rounding, so dL/dh_{k-1} = W_hh^T dL/dh_k has
    exactly s times the norm of dL/dh_k."""
    H, T = 16, 30
    m = rb.RNN(4, H, backend=backend, dtype="float64", seed=0)
    sd = m.state_dict()
    sd["weight_hh_l0"] = s * ortho_group.rvs(H, random_state=1)
    sd["bias_ih_l0"][:] = sd["bias_hh_l0"][:] = 0
    m.load_state_dict(sd)
    x = 1e-9 * np.random.default_rng(0).standard_normal((T, 3, 4))
    out, _ = m(x)
    hidden = m.backward(last_step_loss(out))["hidden"][0]
    norms = np.linalg.norm(hidden.reshape(T, -1), axis=1)
    np.testing.assert_allclose(norms[:-1] / norms[1:], s, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("forget_bias", [-1.0, 0.0, 2.0])
def test_lstm_zero_weights_cell_decays_by_exactly_sigmoid_forget_bias(backend, forget_bias):
    """Zero weights: f = sigmoid(b_f) at every step and no path through h, so
    dL/dc_{k-1} = f dL/dc_k exactly."""
    H, T = 5, 20
    m = rb.LSTM(3, H, backend=backend, dtype="float64", seed=0)
    sd = {k: np.zeros_like(v) for k, v in m.state_dict().items()}
    sd["bias_ih_l0"][H : 2 * H] = forget_bias
    m.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((T, 2, 3))
    out, _ = m(x)
    cell = m.backward(last_step_loss(out))["cell"][0]
    norms = np.linalg.norm(cell.reshape(T, -1), axis=1)
    f = 1 / (1 + np.exp(-forget_bias))
    np.testing.assert_allclose(norms[:-1] / norms[1:], f, rtol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_reference_finite_differences(cell):
    """Central differences of L = sum(go * out) + sum(gh * h_n) on the NumPy oracle."""
    rng = np.random.default_rng(0)
    m = make(cell, 3, 4, num_layers=2, bidirectional=True, backend="reference", dtype="float64", seed=1)
    x, hx, go, gh = random_inputs(m, 5, 2, rng)
    lstm = m.cell.has_cell_state

    def loss():
        out, state = m(x, hx, grad=False)
        finals = state if lstm else (state,)
        return float((go * out).sum() + sum((g * f).sum() for g, f in zip(gh if lstm else (gh,), finals)))

    m(x, hx)
    g = m.backward(go, gh)
    eps = 1e-6
    targets = [(name, p) for name, p in m.named_parameters()] + [("input", x)]
    targets += [("h0", hx[0] if lstm else hx)] + ([("c0", hx[1])] if lstm else [])
    for name, arr in targets:
        for idx in list(np.ndindex(arr.shape))[:: max(1, arr.size // 6)]:
            old = arr[idx]
            arr[idx] = old + eps
            up = loss()
            arr[idx] = old - eps
            down = loss()
            arr[idx] = old
            np.testing.assert_allclose(g[name][idx], (up - down) / (2 * eps), rtol=1e-6, atol=1e-8,
                                       err_msg=f"{name}{idx}")
