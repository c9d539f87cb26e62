"""Outputs and every gradient agree with torch autograd: float64 to 1e-9, float32 to about 1e-4."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from conftest import BACKENDS, CELLS, make, random_inputs
from rnnbench.backends.cpu.threads import batch_split
from rnnbench.runtime import pinned_threads
from torch_oracle import assert_matches_torch


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("options", [
    dict(),
    dict(num_layers=3),
    dict(bidirectional=True),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(bias=False, num_layers=2),
])
def test_float64_every_option(cell, backend, options, rng):
    m = make(cell, 3, 5, backend=backend, dtype="float64", seed=3, **options)
    x, hx, go, gh = random_inputs(m, T=6, B=4, rng=rng)
    assert_matches_torch(m, x, hx, go, gh, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [
    dict(T=1, B=1, I=1, H=1),      # the smallest everything
    dict(T=9, B=2, I=4, H=1),      # hidden size 1
    dict(T=1, B=3, I=2, H=7),      # one step
])
def test_odd_sizes(cell, backend, shape, rng):
    m = make(cell, shape["I"], shape["H"], num_layers=2, bidirectional=True, backend=backend,
             dtype="float64", seed=0)
    x, hx, go, gh = random_inputs(m, shape["T"], shape["B"], rng)
    assert_matches_torch(m, x, hx, go, gh, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_without_initial_state_and_unbatched(cell, backend, rng):
    m = make(cell, 3, 4, num_layers=2, backend=backend, dtype="float64", seed=5)
    x, _, go, gh = random_inputs(m, 5, 2, rng)
    g = assert_matches_torch(m, x, None, go, gh, rtol=1e-9, atol=1e-11)
    assert g["h0"].shape == (2, 2, 4)
    x, hx, go, gh = random_inputs(m, 5, 1, rng, unbatched=True)
    g = assert_matches_torch(m, x, hx, go, gh, rtol=1e-9, atol=1e-11)
    assert g["input"].shape == x.shape and g["hidden"].shape == (2, 5, 4)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_relative(cell, backend, rng):
    m = make(cell, 16, 32, num_layers=2, bidirectional=True, backend=backend, dtype="float32", seed=2)
    x, hx, go, gh = random_inputs(m, T=20, B=8, rng=rng)
    out, _ = m(x, hx)
    assert out.dtype == np.float32
    g = assert_matches_torch(m, x, hx, go, gh, rtol=2e-4, atol=2e-5)
    assert all(v.dtype == np.float32 for v in g.values())


@given(data=st.data())
def test_property_random_shapes_and_options(data):
    draw = data.draw
    cell = draw(st.sampled_from(CELLS), label="cell")
    backend = draw(st.sampled_from(BACKENDS), label="backend")
    options = dict(
        num_layers=draw(st.integers(1, 3), label="layers"),
        bias=draw(st.booleans(), label="bias"),
        batch_first=draw(st.booleans(), label="batch_first"),
        bidirectional=draw(st.booleans(), label="bidirectional"),
    )
    I, H = draw(st.integers(1, 5), label="I"), draw(st.integers(1, 6), label="H")
    T, B = draw(st.integers(1, 7), label="T"), draw(st.integers(1, 4), label="B")
    m = make(cell, I, H, backend=backend, dtype="float64", seed=draw(st.integers(0, 99)), **options)
    rng = np.random.default_rng(draw(st.integers(0, 2**16), label="data seed"))
    x, hx, go, gh = random_inputs(m, T, B, rng, with_state=draw(st.booleans(), label="hx"),
                                  unbatched=draw(st.booleans(), label="unbatched"))
    assert_matches_torch(m, x, hx, go, gh, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype, rtol, atol", [("float64", 1e-9, 1e-11), ("float32", 2e-4, 2e-5)])
def test_batch_split_over_threads(cell, dtype, rtol, atol, rng):
    """A batch of 21 on two threads: two parts of it (12 and 9 rows: tiles of 8 and 4 rows, and of 8
    and a clamped one), each running every step of its rows, forward and backward, both
    directions and layers."""
    m = make(cell, 5, 64, num_layers=2, bidirectional=True, backend="cpu", dtype=dtype, seed=4)
    x, hx, go, gh = random_inputs(m, T=7, B=21, rng=rng)
    with pinned_threads(2):
        for N, K in ((64, 64), (64, 256), (256, 64), (192, 64), (64, 192)):  # each cell's products
            assert batch_split(21, N, K, x.itemsize)[0] < 21
        g = assert_matches_torch(m, x, hx, go, gh, rtol=rtol, atol=atol)
    with pinned_threads(1):  # one part: the same row tiles, so the same sums
        g1 = assert_matches_torch(m, x, hx, go, gh, rtol=rtol, atol=atol)
    tol = 1e-12 if dtype == "float64" else 1e-5  # weight gradients: sums split over the threads
    for k in g:
        np.testing.assert_allclose(g[k], g1[k], rtol=tol, atol=tol * np.abs(g1[k]).max(), err_msg=k)


def test_backends_agree_float64(rng):
    """The cpu backend against the reference oracle directly, on a longer sequence."""
    for cell in CELLS:
        models = [make(cell, 8, 16, num_layers=2, bidirectional=True, backend=b, dtype="float64", seed=9)
                  for b in BACKENDS]
        x, hx, go, gh = random_inputs(models[0], T=40, B=3, rng=rng)
        results = [(m(x, hx), m.backward(go, gh)) for m in models]
        (out_r, _), g_r = results[0]
        (out_c, _), g_c = results[1]
        np.testing.assert_allclose(out_c, out_r, rtol=1e-12, atol=1e-13)
        for k in g_r:
            np.testing.assert_allclose(g_c[k], g_r[k], rtol=1e-10, atol=1e-12, err_msg=f"{cell} {k}")
