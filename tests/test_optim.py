"""Optimizers against torch.optim: 50 steps from the same weights and gradients, to 1e-10 (float64)."""
import numpy as np
import pytest
import torch

import rnnbench as rb
from conftest import random_inputs
from torch_oracle import t, torch_module

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=1e-3, alpha=0.9, eps=1e-6, momentum=0.5)),
    ("RMSprop", dict(lr=1e-3, centered=True, weight_decay=1e-3)),
    ("RMSprop", dict(lr=1e-3, centered=True, momentum=0.9)),
    ("Adam", dict()),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
]

STATE_KEYS = {"momentum_buffer": "momentum_buffer", "square_avg": "square_avg", "grad_avg": "grad_avg",
              "exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq", "max_exp_avg_sq": "max_exp_avg_sq"}


@pytest.mark.parametrize("name, options", CASES)
def test_fifty_steps_match_torch_optim(name, options):
    m = rb.LSTM(3, 4, num_layers=2, dtype="float64", seed=0)
    mod = torch_module(m)
    ours = getattr(rb.optim, name)(m, **options)
    theirs = getattr(torch.optim, name)(mod.parameters(), **options)
    rng = np.random.default_rng(1)
    for _ in range(50):
        grads = {n: rng.standard_normal(p.shape) for n, p in m.named_parameters()}
        ours.step(dict(grads, hidden=np.zeros(1)))  # non-parameter keys are ignored
        for n, p in mod.named_parameters():
            p.grad = t(grads[n])
        theirs.step()
    params = dict(mod.named_parameters())
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p, params[n].detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=n)
        torch_state = theirs.state[params[n]]
        for key, value in ours.state[n].items():
            expected = torch_state[STATE_KEYS[key]] if key != "step" else torch_state["step"]
            np.testing.assert_allclose(value, np.asarray(expected), rtol=1e-10, atol=1e-12, err_msg=f"{n} {key}")


def test_whole_training_steps_match_a_torch_loop():
    """forward, MSE-like loss on the output, backward, clipping, Adam step: five times."""
    m = rb.GRU(3, 5, num_layers=2, dtype="float64", seed=2)
    mod = torch_module(m)
    opt, topt = rb.optim.Adam(m, lr=1e-2), torch.optim.Adam(mod.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, _, _, _ = random_inputs(m, 7, 3, rng)
        target = rng.standard_normal((7, 3, 5))
        out, _ = m(x)
        g = m.backward(2 * (out - target) / out.size, hidden=False)
        norm = rb.clip_grad_norm(g, 0.05)
        opt.step(g)
        topt.zero_grad()
        tout, _ = mod(t(x))
        ((tout - t(target)) ** 2).mean().backward()
        tnorm = torch.nn.utils.clip_grad_norm_(mod.parameters(), 0.05)
        topt.step()
        assert norm == pytest.approx(tnorm.item(), rel=1e-10)
    for (n, p), (_, q) in zip(m.named_parameters(), mod.named_parameters()):
        np.testing.assert_allclose(p, q.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=n)


def test_state_dict_resumes_a_run():
    a = rb.RNN(2, 3, dtype="float64", seed=0)
    b = rb.RNN(2, 3, dtype="float64", seed=0)
    opt_a, opt_b = rb.optim.Adam(a, lr=0.1), rb.optim.Adam(b, lr=0.1)
    rng = np.random.default_rng(0)
    grads = [{n: rng.standard_normal(p.shape) for n, p in a.named_parameters()} for _ in range(6)]
    for g in grads:
        opt_a.step(g)
    for g in grads[:3]:
        opt_b.step(g)
    saved = opt_b.state_dict()
    opt_c = rb.optim.Adam(b, lr=0.5)
    opt_c.load_state_dict(saved)
    for g in grads[3:]:
        opt_c.step(g)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p, q)


def test_float32_parameters_stay_float32():
    m = rb.LSTM(2, 3, seed=0)
    opt = rb.optim.RMSprop(m)
    opt.step({n: np.ones(p.shape) for n, p in m.named_parameters()})
    assert all(p.dtype == np.float32 for _, p in m.named_parameters())


@pytest.mark.parametrize("make, match", [
    (lambda m: rb.optim.SGD(m, lr=0), "lr must be a positive number"),
    (lambda m: rb.optim.Adam(m, lr=-1e-3), "lr must be a positive number"),
    (lambda m: rb.optim.SGD(m, nesterov=True), "Nesterov momentum needs momentum > 0"),
    (lambda m: rb.optim.Adam(m, betas=(0.9, 1.0)), "0 <= beta < 1"),
    (lambda m: rb.optim.RMSprop(m, alpha=2.0), "0 <= alpha <= 1"),
    (lambda m: rb.optim.SGD(m, weight_decay=-1), "weight_decay must be >= 0"),
])
def test_bad_options(make, match):
    with pytest.raises(ValueError, match=match):
        make(rb.GRU(2, 3))


def test_bad_steps():
    m = rb.GRU(2, 3)
    opt = rb.optim.SGD(m, lr=0.1)
    with pytest.raises(TypeError, match="unknown options \\['betas'\\]"):
        rb.optim.SGD(m, betas=(0.9, 0.9))
    with pytest.raises(KeyError, match="no gradient for parameters"):
        opt.step({})
    grads = {n: np.zeros(p.shape) for n, p in m.named_parameters()}
    grads["weight_hh_l0"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="gradient of weight_hh_l0 has shape \\(2, 2\\)"):
        opt.step(grads)
