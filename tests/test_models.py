"""Recurrent layer + linear head + loss: outputs and every gradient against torch, and a
whole training loop (forward, loss, backward, clipping, optimizer) against torch's."""
import numpy as np
import pytest
import torch

import rnnbench as rb
from rnnbench.models import SequenceModel
from torch_oracle import t, torch_module


def torch_pair(m):
    rnn = torch_module(m.rnn)
    head = torch.nn.Linear(m.head["weight"].shape[1], m.output_size, dtype=torch.float64)
    head.load_state_dict({k: t(v) for k, v in m.head.items()})
    return rnn, head


def torch_loss(m, rnn, head, x, target):
    out, _ = rnn(t(x))
    y = head(out[-1] if m.many_to_one else out)
    if m.loss_name == "mse":
        return torch.nn.functional.mse_loss(y, t(target))
    return torch.nn.functional.cross_entropy(y.reshape(-1, m.output_size), torch.from_numpy(target).reshape(-1))


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("many_to_one, loss", [(True, "mse"), (False, "mse"), (True, "cross_entropy"),
                                               (False, "cross_entropy")])
def test_head_and_loss_gradients_match_torch(cell, many_to_one, loss):
    rng = np.random.default_rng(0)
    m = SequenceModel(cell, 3, 5, 4, num_layers=2, bidirectional=True, many_to_one=many_to_one, loss=loss,
                      dtype="float64", seed=0)
    x = rng.standard_normal((6, 3, 3))
    shape = (3,) if many_to_one else (6, 3)
    target = rng.integers(0, 4, shape) if loss == "cross_entropy" else rng.standard_normal(shape + (4,))
    m(x)
    value = m.loss(target)
    g = m.backward()
    rnn, head = torch_pair(m)
    ref = torch_loss(m, rnn, head, x, target)
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    expected = {f"rnn.{n}": p.grad for n, p in rnn.named_parameters()}
    expected.update({f"head.{n}": p.grad for n, p in head.named_parameters()})
    assert set(expected) <= set(g)
    for name, value in expected.items():
        np.testing.assert_allclose(g[name], value.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_training_loop_matches_torch():
    rng = np.random.default_rng(1)
    m = SequenceModel("lstm", 2, 6, 1, dtype="float64", seed=3)
    rnn, head = torch_pair(m)
    opt = rb.optim.RMSprop(m, lr=1e-2)
    topt = torch.optim.RMSprop(list(rnn.parameters()) + list(head.parameters()), lr=1e-2)
    for _ in range(10):
        x, target = rng.standard_normal((8, 4, 2)), rng.standard_normal((4, 1))
        m(x)
        m.loss(target)
        g = m.backward()
        rb.clip_grad_norm(g, 0.5)
        opt.step(g)
        topt.zero_grad()
        torch_loss(m, rnn, head, x, target).backward()
        torch.nn.utils.clip_grad_norm_(list(rnn.parameters()) + list(head.parameters()), 0.5)
        topt.step()
    params = dict(rnn.named_parameters())
    for n, p in m.named_parameters():
        q = params[n[4:]] if n.startswith("rnn.") else dict(head.named_parameters())[n[5:]]
        np.testing.assert_allclose(p, q.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=n)


def test_state_dict_round_trip_and_errors():
    m = SequenceModel("gru", 2, 3, 2, seed=0)
    sd = m.state_dict()
    assert list(sd)[-2:] == ["head.weight", "head.bias"] and "rnn.weight_ih_l0" in sd
    other = SequenceModel("gru", 2, 3, 2, seed=1)
    other.load_state_dict(sd)
    for (n, p), (_, q) in zip(m.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(KeyError, match="missing keys \\['head.bias'\\]"):
        other.load_state_dict({k: v for k, v in sd.items() if k != "head.bias"})
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        SequenceModel("gru", 2, 3, 2, loss="hinge")
    m(np.zeros((4, 2, 2), np.float32))
    with pytest.raises(ValueError, match="class indices must be in \\[0, 2\\)"):
        m2 = SequenceModel("gru", 2, 3, 2, loss="cross_entropy", seed=0)
        m2(np.zeros((4, 2, 2), np.float32))
        m2.loss(np.array([0, 5]))
    with pytest.raises(RuntimeError, match="backward\\(\\) needs loss\\(\\)"):
        m.backward()
