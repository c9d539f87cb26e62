import numpy as np
import pytest
from hypothesis import settings

import rnnbench as rb

# Bounded property tests: CI runs on two cores (see README, "Tests").
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.load_profile("ci")

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
BACKENDS = ["reference", "cpu"]


def make(cell, input_size, hidden_size, **kwargs):
    """A model by cell name (rb.RNN for both nonlinearities)."""
    if cell.startswith("rnn_"):
        return rb.RNN(input_size, hidden_size, nonlinearity=cell[4:], **kwargs)
    return {"lstm": rb.LSTM, "gru": rb.GRU}[cell](input_size, hidden_size, **kwargs)


def random_inputs(m, T, B, rng, with_state=True, unbatched=False, scale=1.0):
    """x, hx, grad_output and grad_h_n in m's layout (batch_first, unbatched) and dtype."""
    dt, H, LD = m.dtype, m.hidden_size, m.num_layers * m.num_directions
    if unbatched:
        x_shape, s_shape, o_shape = (T, m.input_size), (LD, H), (T, m.num_directions * H)
    elif m.batch_first:
        x_shape, s_shape, o_shape = (B, T, m.input_size), (LD, B, H), (B, T, m.num_directions * H)
    else:
        x_shape, s_shape, o_shape = (T, B, m.input_size), (LD, B, H), (T, B, m.num_directions * H)

    def r(shape):
        return (scale * rng.standard_normal(shape)).astype(dt)

    lstm = m.cell.has_cell_state
    hx = None
    if with_state:
        hx = (r(s_shape), r(s_shape)) if lstm else r(s_shape)
    gh = (r(s_shape), r(s_shape)) if lstm else r(s_shape)
    return r(x_shape), hx, r(o_shape), gh


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
