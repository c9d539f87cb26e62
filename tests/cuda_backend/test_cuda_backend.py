"""The cuda backend against the cpu backend (itself checked against torch): every cell, options,
truncation, hidden / cell gradients. Tiny sizes: under the simulator every thread is Python."""
import numpy as np
import pytest

from rnnbench.layers import RecurrentLayer

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


def _pair(cell, dtype, **options):
    kw = dict(dtype=dtype, seed=3, **options)
    return RecurrentLayer(cell, 3, 5, backend="cpu", **kw), RecurrentLayer(cell, 3, 5, backend="cuda", **kw)


def _compare(cell, dtype, rtol, T=4, B=2, backward=None, forward=None, **options):
    cpu, gpu = _pair(cell, dtype, **options)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, 3)).astype(dtype)
    hx = None
    if options.get("num_layers", 1) > 1 or options.get("bidirectional"):
        n = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
        h = rng.standard_normal((n, B, 5)).astype(dtype)
        hx = (h, rng.standard_normal((n, B, 5)).astype(dtype)) if cell == "lstm" else h
    outs = [m(x, hx, **(forward or {})) for m in (cpu, gpu)]
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=rtol, atol=rtol)
    go = rng.standard_normal(outs[0][0].shape).astype(dtype)
    grads = [m.backward(go, hidden=True, **(backward or {})) for m in (cpu, gpu)]
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        a, b = grads[0][k], grads[1][k]
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_allclose(v, u, rtol=rtol, atol=rtol, err_msg=f"{cell} {k}")


@pytest.mark.parametrize("cell", CELLS)
def test_float64_equals_the_cpu_backend(cell):
    _compare(cell, "float64", 1e-12, bidirectional=True)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_agrees_with_the_cpu_backend(cell):
    _compare(cell, "float32", 1e-5, num_layers=2)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm"])
def test_truncation_and_checkpointing(cell):
    _compare(cell, "float64", 1e-12, T=5, backward={"truncation": (2, 3)})
    _compare(cell, "float64", 1e-12, T=5, forward={"checkpoint": 2})


def test_unbatched_and_batch_first():
    cpu, gpu = _pair("gru", "float64", batch_first=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 3))
    np.testing.assert_allclose(gpu(x)[0], cpu(x)[0], rtol=1e-12)
    np.testing.assert_allclose(gpu(x[0])[0], cpu(x[0])[0], rtol=1e-12)
