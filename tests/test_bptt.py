"""BPTT in every form against torch: hidden / cell, truncation (k and k1/k2), checkpointing."""
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from conftest import BACKENDS, CELLS, make, random_inputs
from torch_oracle import t, torch_module, unrolled


def window_edge(step, T, k1, k2, reverse):
    """The contract, stated independently of rnnbench.bptt: a loss at `step` flows back, in one
    direction's own time order, to the start of its block's window, max(0, e - k2 + 1)."""
    tau = T - 1 - step if reverse else step
    end = min(T - 1, (tau // k1) * k1 + k1 - 1)
    start = max(0, end - k2 + 1)
    return T - 1 - start if reverse else start


def oracle(m, x, hx, go, gh, truncation=None):
    """torch autograd, one loss term at a time, each on the window its truncation allows, the
    states entering the window detached; summed. x is (T, B, I); returns rnnbench's keys."""
    T, B = x.shape[:2]
    L, D, H = m.num_layers, m.num_directions, m.hidden_size
    LD, lstm = L * D, m.cell.has_cell_state
    k1, k2 = (T, T) if truncation is None else (
        (truncation, truncation) if isinstance(truncation, int) else truncation)
    zeros = np.zeros((LD, B, H), m.dtype)
    h0s = [t(s).requires_grad_() for s in ((hx if lstm else (hx,)) if hx is not None else
                                           ((zeros, zeros) if lstm else (zeros,)))]
    with torch.no_grad():
        _, full_h, full_c, _ = unrolled(m, t(x), h0s[0], h0s[1] if lstm else None)
    fulls = (full_h, full_c)

    def first(s):
        return window_edge(s, T, k1, k2, False)

    def last(s):
        return window_edge(s, T, k1, k2, True) if D == 2 else s

    terms = [(first(s), last(s), ("out", s)) for s in range(T)]
    terms.append((first(T - 1), T - 1, ("h_n", 0)))  # final states of forward directions
    if D == 2:
        terms.append((0, last(0), ("h_n", 1)))  # ... and of reverse ones (at step 0)
    acc = {"input": np.zeros(x.shape), "hidden": np.zeros((LD, T, B, H)),
           "cell": np.zeros((LD, T, B, H)), "h0": np.zeros((LD, B, H)), "c0": np.zeros((LD, B, H))}
    for a, b, (kind, s) in terms:
        xs = t(x[a : b + 1]).requires_grad_()
        enter = []
        for full, h0 in zip(fulls, h0s):
            rows = []
            for i in range(LD):
                prev = b + 1 if i % D else a - 1
                rows.append(full[i][prev] if 0 <= prev < T else h0[i])
            enter.append(torch.stack(rows))
        out, hs, cs, sd = unrolled(m, xs, enter[0], enter[1] if lstm else None)
        if kind == "out":
            loss = (out[s - a] * t(go[s])).sum()
        else:
            loss = 0
            for states, g in zip((hs, cs), gh if lstm else (gh,)):
                for i in range(LD):
                    if i % D == s:
                        loss = loss + (states[i][0 if s else -1] * t(g[i])).sum()
        loss.backward()
        for k, p in sd.items():
            acc[k] = acc.get(k, 0) + (0 if p.grad is None else p.grad.numpy())
        acc["input"][a : b + 1] += xs.grad.numpy()
        for key, states in (("hidden", hs), ("cell", cs)):
            for i in range(LD):
                for j, st_ in enumerate(states[i]):
                    if st_ is not None and st_.grad is not None:
                        acc[key][i, a + j] += st_.grad.numpy()
        for key, h0 in zip(("h0", "c0"), h0s):
            if h0.grad is not None:
                acc[key] += h0.grad.numpy()
                h0.grad = None
    if not lstm:
        del acc["cell"], acc["c0"]
    return acc


def assert_grads(g, ref, rtol=1e-9, atol=1e-11):
    assert set(ref) == set(g), set(ref) ^ set(g)
    for k in ref:
        np.testing.assert_allclose(g[k], ref[k], rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_hidden_and_cell_are_total_derivatives(cell, backend, rng):
    """Full BPTT: "hidden" / "cell" equal the gradient torch retains on every unrolled state."""
    m = make(cell, 3, 4, num_layers=2, bidirectional=True, backend=backend, dtype="float64", seed=1)
    x, hx, go, gh = random_inputs(m, 6, 2, rng)
    m(x, hx)
    assert_grads(m.backward(go, gh), oracle(m, x, hx, go, gh))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("truncation", [1, 3, (2, 5), (3, 4)])
def test_truncation_matches_detached_windows(cell, backend, truncation, rng):
    for options in (dict(num_layers=2), dict(bidirectional=True, num_layers=2)):
        m = make(cell, 3, 4, backend=backend, dtype="float64", seed=4, **options)
        x, hx, go, gh = random_inputs(m, 8, 2, rng)
        m(x, hx)
        g = m.backward(go, gh, truncation=truncation)
        assert_grads(g, oracle(m, x, hx, go, gh, truncation))
        full = m.backward(go, gh)
        assert not np.allclose(g["weight_hh_l0"], full["weight_hh_l0"])  # truncation did cut


@given(data=st.data())
def test_truncation_property(data):
    draw = data.draw
    cell = draw(st.sampled_from(CELLS))
    T = draw(st.integers(1, 9))
    k1 = draw(st.integers(1, 6))
    k2 = draw(st.integers(k1, 9))
    m = make(cell, 2, 3, num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
             bias=draw(st.booleans()), backend=draw(st.sampled_from(BACKENDS)), dtype="float64", seed=0)
    rng = np.random.default_rng(draw(st.integers(0, 999)))
    x, hx, go, gh = random_inputs(m, T, 2, rng, with_state=draw(st.booleans()))
    checkpoint = draw(st.sampled_from([None, 1, 2, "sqrt"]))
    m(x, hx, checkpoint=checkpoint)
    assert_grads(m.backward(go, gh, truncation=(k1, k2)), oracle(m, x, hx, go, gh, (k1, k2)))


@pytest.mark.parametrize("cell", CELLS)
def test_classic_tbptt_loop(cell, rng):
    """Against the loop users write with torch: every k1 steps, restart from the detached state
    k2 steps back, run the module, backpropagate the last k1 steps' losses; accumulate."""
    k1, k2, T = 2, 5, 9
    m = make(cell, 3, 4, num_layers=2, backend="cpu", dtype="float64", seed=7)
    x, hx, go, _ = random_inputs(m, T, 3, rng)
    m(x, hx)
    g = m.backward(go, truncation=(k1, k2))

    mod = torch_module(m)
    lstm = m.cell.has_cell_state
    with torch.no_grad():  # states entering every step
        enter, state = [], tuple(t(s) for s in hx) if lstm else t(hx)
        for s in range(T):
            enter.append(state)
            _, state = mod(t(x[s : s + 1]), state)
    xt = t(x).requires_grad_()
    h0 = tuple(t(s).requires_grad_() for s in hx) if lstm else t(hx).requires_grad_()
    prev_end = -1
    for e in list(range(k1 - 1, T, k1)) + ([T - 1] if (T - 1) % k1 != k1 - 1 else []):
        s = max(0, e - k2 + 1)
        out, _ = mod(xt[s : e + 1], h0 if s == 0 else enter[s])
        loss = (out[prev_end + 1 - s :] * t(go[prev_end + 1 : e + 1])).sum()
        loss.backward()
        prev_end = e
    np.testing.assert_allclose(g["input"], xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(g["h0"], (h0[0] if lstm else h0).grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in mod.named_parameters():
        np.testing.assert_allclose(g[name], p.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_chunked_truncation_is_k1_equals_k2(cell, backend, rng):
    m = make(cell, 3, 4, bidirectional=True, backend=backend, dtype="float64", seed=2)
    x, hx, go, gh = random_inputs(m, 10, 2, rng)
    m(x, hx)
    a, b = m.backward(go, gh, truncation=3), m.backward(go, gh, truncation=(3, 3))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    full = m.backward(go, gh, truncation=(10, 10))
    none = m.backward(go, gh)
    for k in full:
        np.testing.assert_array_equal(full[k], none[k])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("checkpoint", [1, 3, "sqrt", 50])
def test_checkpointing_gives_full_bptt_gradients(cell, backend, checkpoint, rng):
    m = make(cell, 3, 5, num_layers=2, bidirectional=True, backend=backend, dtype="float64", seed=6)
    x, hx, go, gh = random_inputs(m, 11, 2, rng)
    out_full, _ = m(x, hx)
    full = m.backward(go, gh)
    out_ck, _ = m(x, hx, checkpoint=checkpoint)
    ck = m.backward(go, gh)
    # the same terms; matrix products over segments round differently (BLAS picks kernels by shape)
    np.testing.assert_allclose(out_ck, out_full, rtol=1e-14, atol=1e-15)
    for k in full:
        np.testing.assert_allclose(ck[k], full[k], rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_checkpointing_keeps_less(cell, rng):
    """The checkpointed record is outputs plus ~T/c states; a full tape holds every activation."""
    T, B, H = 64, 2, 8
    m = make(cell, 3, H, backend="cpu", dtype="float64", seed=0)
    x, hx, go, gh = random_inputs(m, T, B, rng)
    m(x, hx)
    full = m._record.tapes[0][0].nbytes
    m(x, hx, checkpoint="sqrt")
    kept = m._record.tapes[0][0].nbytes
    itemsize, states = 8, (2 if m.cell.has_cell_state else 1)
    assert full == m.cell.tape_bytes(T, B, H, "float64")
    assert kept == (T + states * (8 - 1)) * B * H * itemsize  # sqrt(64) = 8 segments
