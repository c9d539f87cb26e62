"""The torch.nn interface around the kernels: parameters, initialisation, dropout, clipping."""
import numpy as np
import pytest
import torch

import rnnbench as rb
from conftest import BACKENDS, CELLS, make, random_inputs
from torch_oracle import MODULES, t, torch_module, unrolled


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("options", [dict(), dict(num_layers=3, bidirectional=True), dict(bias=False)])
def test_names_shapes_and_order_are_torchs(cell, options):
    m = make(cell, 5, 7, **options)
    kwargs = dict(options, **({"nonlinearity": m.cell.nonlinearity} if m.cell.nonlinearity else {}))
    ref = MODULES[cell](5, 7, **kwargs)
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for (n, p), (_, q) in zip(m.named_parameters(), ref.named_parameters()):
        assert p.shape == tuple(q.shape) and p.dtype == np.float32, n


def test_initialisation_is_torchs_distribution():
    """Every parameter uniform in [-1/sqrt(H), 1/sqrt(H)], reproducible from the seed."""
    m = rb.LSTM(10, 64, num_layers=2, seed=0)
    k = 1 / np.sqrt(64)
    values = np.concatenate([p.ravel() for _, p in m.named_parameters()])
    assert values.min() >= -k and values.max() <= k
    assert abs(values.mean()) < 0.02 * k and abs(values.std() - k / np.sqrt(3)) < 0.02 * k
    same = rb.LSTM(10, 64, num_layers=2, seed=0)
    other = rb.LSTM(10, 64, num_layers=2, seed=1)
    for (_, p), (_, q), (_, r) in zip(m.named_parameters(), same.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(p, q)
        assert not np.array_equal(p, r)


def test_load_state_dict_from_torch_and_in_place():
    m = rb.GRU(3, 4, num_layers=2, dtype="float64")
    live = dict(m.named_parameters())
    ref = torch.nn.GRU(3, 4, num_layers=2, dtype=torch.float64)
    m.load_state_dict(ref.state_dict())
    for name, p in m.named_parameters():
        assert p is live[name]  # the same arrays, updated in place
        np.testing.assert_array_equal(p, ref.state_dict()[name].numpy())
    snapshot = m.state_dict()
    live["weight_ih_l0"] += 1  # an optimizer step changes the model ...
    assert not np.array_equal(snapshot["weight_ih_l0"], live["weight_ih_l0"])  # ... not a state_dict


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameter_changes_reach_the_next_forward(backend, rng):
    m = rb.LSTM(3, 4, backend=backend, dtype="float64", seed=0)
    x = rng.standard_normal((4, 2, 3))
    before, _ = m(x, grad=False)
    dict(m.named_parameters())["weight_hh_l0"] *= 2
    after, _ = m(x, grad=False)
    np.testing.assert_allclose(after, torch_module(m)(t(x))[0].detach().numpy(), rtol=1e-12)
    assert not np.allclose(before, after)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_between_layers_matches_torch_with_the_same_masks(cell, backend, rng):
    m = make(cell, 3, 4, num_layers=3, dropout=0.4, bidirectional=True, backend=backend,
             dtype="float64", seed=0)
    x, hx, go, gh = random_inputs(m, 6, 2, rng)
    out, _ = m(x, hx)
    masks = m._record.masks
    assert masks[-1] is None and all(mk is not None for mk in masks[:-1])
    assert set(np.unique(np.concatenate([mk.ravel() for mk in masks[:-1]]))) <= {0.0, 1 / 0.6}
    g = m.backward(go)

    lstm = m.cell.has_cell_state
    states = [t(s).requires_grad_() for s in (hx if lstm else (hx,))]
    ref_out, _, _, sd = unrolled(m, t(x).requires_grad_(), states[0], states[1] if lstm else None,
                                 masks=masks)
    np.testing.assert_allclose(out, ref_out.detach().numpy(), rtol=1e-12)
    (ref_out * t(go)).sum().backward()
    for name, p in sd.items():
        np.testing.assert_allclose(g[name], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_dropout_reproducible_and_only_in_training(rng):
    x = rng.standard_normal((8, 3, 5)).astype(np.float32)
    a, b = (rb.LSTM(5, 6, num_layers=2, dropout=0.5, seed=11) for _ in range(2))
    np.testing.assert_array_equal(a(x)[0], b(x)[0])  # same seed, same masks
    first, second = a(x, grad=False)[0], a(x, grad=False)[0]
    assert not np.array_equal(first, second)  # a fresh mask per forward
    a.eval()
    plain = rb.LSTM(5, 6, num_layers=2, seed=11)
    np.testing.assert_array_equal(a(x)[0], plain(x)[0])  # eval: no dropout
    assert a.train() is a and a.training


def test_output_is_read_only_and_backward_repeatable(rng):
    m = rb.GRU(3, 4, dtype="float64", seed=0)
    x, hx, go, gh = random_inputs(m, 5, 2, rng)
    out, _ = m(x, hx)
    with pytest.raises(ValueError, match="read-only"):
        out[0, 0, 0] = 1.0
    first, again = m.backward(go, gh), m.backward(go, gh)
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("max_norm", [1e-3, 0.5, 1e6])
def test_clip_grad_norm_matches_torch(dtype, max_norm, rng):
    m = rb.LSTM(3, 4, num_layers=2, dtype=dtype, seed=0)
    x, hx, go, gh = random_inputs(m, 5, 2, rng)
    m(x, hx)
    g = m.backward(go, gh)
    before = {k: v.copy() for k, v in g.items()}
    mod = torch_module(m)
    for name, p in mod.named_parameters():
        p.grad = t(g[name])
    expected = torch.nn.utils.clip_grad_norm_(mod.parameters(), max_norm).item()
    norm = rb.clip_grad_norm(g, max_norm)
    np.testing.assert_allclose(norm, expected, rtol=1e-6 if dtype == "float32" else 1e-12)
    for name, p in mod.named_parameters():
        np.testing.assert_allclose(g[name], p.grad.numpy(), rtol=1e-6 if dtype == "float32" else 1e-12)
    for k in ("input", "h0", "c0", "hidden", "cell"):  # not parameters: untouched
        np.testing.assert_array_equal(g[k], before[k])


def test_clip_grad_value_matches_torch(rng):
    m = rb.RNN(3, 4, dtype="float64", seed=0)
    x, hx, go, gh = random_inputs(m, 5, 2, rng, scale=5.0)
    m(x, hx)
    g = m.backward(go, gh)
    mod = torch_module(m)
    for name, p in mod.named_parameters():
        p.grad = t(g[name])
    torch.nn.utils.clip_grad_value_(mod.parameters(), 0.3)
    hidden = g["hidden"].copy()
    rb.clip_grad_value(g, 0.3)
    for name, p in mod.named_parameters():
        np.testing.assert_array_equal(g[name], p.grad.numpy())
    np.testing.assert_array_equal(g["hidden"], hidden)


def test_streaming_truncation_equals_chunked(rng):
    """The streaming strategy (forward and backward chunk by chunk, the state carried as plain
    values) gives the parameter gradients of chunked truncation over the whole sequence."""
    m = rb.LSTM(3, 4, dtype="float64", seed=0)
    x, hx, go, _ = random_inputs(m, 12, 2, rng)
    m(x, hx)
    whole = m.backward(go, truncation=4)
    acc, state = {}, hx
    for s in range(0, 12, 4):
        _, state = m(x[s : s + 4], state)
        for k, v in m.backward(go[s : s + 4]).items():
            if k.startswith(("weight", "bias")):
                acc[k] = acc.get(k, 0) + v
    for k, v in acc.items():
        np.testing.assert_allclose(v, whole[k], rtol=1e-12, atol=1e-14)


def test_repr_reads_like_torch():
    assert repr(rb.RNN(3, 4, nonlinearity="relu", num_layers=2)) == \
        "RNN(3, 4, num_layers=2, nonlinearity='relu', backend='cpu', dtype='float32')"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_backward_without_hidden_gives_the_same_gradients(cell, backend, rng):
    m = make(cell, 3, 4, num_layers=2, bidirectional=True, backend=backend, dtype="float64", seed=0)
    x, hx, go, gh = random_inputs(m, 7, 2, rng)
    m(x, hx, checkpoint=3)
    for truncation in (None, (2, 3)):
        full = m.backward(go, gh, truncation=truncation)
        lean = m.backward(go, gh, truncation=truncation, hidden=False)
        assert set(full) - set(lean) == ({"hidden", "cell"} if m.cell.has_cell_state else {"hidden"})
        for k in lean:
            np.testing.assert_array_equal(lean[k], full[k], err_msg=k)
