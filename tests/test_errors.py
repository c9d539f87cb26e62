"""Bad input gets a clear error that names the problem."""
import numpy as np
import pytest

import rnnbench as rb
from rnnbench.layers import RecurrentLayer


@pytest.fixture
def lstm():
    return rb.LSTM(3, 4, num_layers=2, backend="cpu", dtype="float64", seed=0)


def x64(*shape):
    return np.zeros(shape, np.float64)


@pytest.mark.parametrize("kwargs, match", [
    (dict(cell="peephole"), "unknown cell 'peephole'.*lstm"),
    (dict(backend="tpu"), "unknown backend 'tpu'.*reference, cpu"),
    (dict(dtype="float16"), "dtype must be one of float32, float64"),
    (dict(hidden_size=0), "hidden_size must be a positive int"),
    (dict(num_layers=1.5), "num_layers must be a positive int"),
    (dict(dropout=1.5), r"dropout must be a number in \[0, 1\]"),
])
def test_bad_construction(kwargs, match):
    args = dict(cell="lstm", input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        RecurrentLayer(**args)


def test_unknown_nonlinearity():
    with pytest.raises(ValueError, match="unknown nonlinearity 'sigmoid'"):
        rb.RNN(3, 4, nonlinearity="sigmoid")


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="dropout acts between layers"):
        rb.GRU(3, 4, dropout=0.5)


@pytest.mark.parametrize("x, exc, match", [
    (np.zeros((5, 2, 3), np.float32), TypeError, "x has dtype float32 but the model's dtype is float64"),
    (x64(5, 2, 7), ValueError, r"x has shape \(5, 2, 7\); expected \(\*, \*, 3\)"),
    (x64(5), ValueError, "x must be 3-D"),
    (x64(2, 5, 2, 3), ValueError, "x must be 3-D"),
    (x64(0, 2, 3), ValueError, "x has an empty dimension"),
    ([[0.0, 0.0, 0.0]], TypeError, "x must be a numpy.ndarray; got list"),
])
def test_bad_input(lstm, x, exc, match):
    with pytest.raises(exc, match=match):
        lstm(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_and_weights(lstm, bad):
    x = x64(5, 2, 3)
    x[3, 1, 2] = bad
    with pytest.raises(ValueError, match=r"x contains (NaN|inf) \(first at index \[3, 1, 2\]\)"):
        lstm(x)
    lstm.named_parameters()[1][1][0, 0] = bad
    with pytest.raises(ValueError, match="parameter weight_hh_l0 contains"):
        lstm(x64(5, 2, 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [7, 70_000])  # one thread; both threads (PARALLEL_MIN elements and more)
def test_finiteness_scan_finds_every_non_finite_value(dtype, size):
    """check_finite's scan (backends/cpu/finite.py) against numpy: NaN, inf and -inf anywhere, in
    arrays of C and Fortran order and in strided views."""
    from rnnbench.checks import check_finite

    a = np.random.default_rng(0).standard_normal(size).astype(dtype)
    for array in (a, a.reshape(size // 7, 7).T, a[::3]):
        check_finite("a", array)
        for bad in (np.nan, np.inf, -np.inf):
            for where in (0, array.size // 2, array.size - 1):
                b = array.copy(order="K")
                b.flat[where] = bad
                expected = "NaN" if np.isnan(bad) else "inf"
                with pytest.raises(ValueError, match=f"a contains {expected}"):
                    check_finite("a", b)


def test_bad_states(lstm):
    x = x64(5, 2, 3)
    with pytest.raises(TypeError, match=r"an LSTM's hx must be a tuple \(h0, c0\)"):
        lstm(x, x64(2, 2, 4))
    with pytest.raises(ValueError, match=r"c0 has shape \(2, 3, 4\); expected \(2, 2, 4\)"):
        lstm(x, (x64(2, 2, 4), x64(2, 3, 4)))
    gru = rb.GRU(3, 4, dtype="float64")
    with pytest.raises(ValueError, match=r"hx has shape \(2, 4\); expected \(1, 2, 4\)"):
        gru(x, x64(2, 4))


def test_backward_misuse(lstm):
    with pytest.raises(RuntimeError, match="backward\\(\\) needs a preceding forward with grad=True"):
        lstm.backward(x64(5, 2, 4))
    out, _ = lstm(x64(5, 2, 3), grad=False)
    with pytest.raises(RuntimeError, match="the last one had grad=False"):
        lstm.backward(np.ones_like(out))
    out, _ = lstm(x64(5, 2, 3))
    with pytest.raises(ValueError, match=r"grad_output has shape \(5, 2, 3\); expected \(5, 2, 4\)"):
        lstm.backward(x64(5, 2, 3))
    with pytest.raises(TypeError, match="grad_output has dtype float32"):
        lstm.backward(np.ones(out.shape, np.float32))
    with pytest.raises(TypeError, match=r"grad_h_n must be a tuple \(dh_n, dc_n\)"):
        lstm.backward(np.ones_like(out), x64(2, 2, 4))
    with pytest.raises(ValueError, match=r"grad_h_n\[1\] \(dc_n\) has shape"):
        lstm.backward(np.ones_like(out), (None, x64(2, 4)))
    nan = np.ones_like(out)
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="grad_output contains NaN"):
        lstm.backward(nan)


@pytest.mark.parametrize("truncation, match", [
    (0, "1 <= k1 <= k2; got k1=0, k2=0"),
    ((3, 2), "1 <= k1 <= k2; got k1=3, k2=2"),
    ((2,), "truncation must be None, an int k or a pair"),
    (2.5, "truncation must be None, an int k or a pair"),
    (True, "truncation must be None, an int k or a pair"),
])
def test_bad_truncation(lstm, truncation, match):
    out, _ = lstm(x64(5, 2, 3))
    with pytest.raises(ValueError, match=match):
        lstm.backward(np.ones_like(out), truncation=truncation)


@pytest.mark.parametrize("checkpoint", [0, -2, "log", 1.5])
def test_bad_checkpoint(lstm, checkpoint):
    with pytest.raises(ValueError, match="checkpoint must be None, a positive int or 'sqrt'"):
        lstm(x64(5, 2, 3), checkpoint=checkpoint)


def test_load_state_dict_names_the_key(lstm):
    sd = lstm.state_dict()
    missing = dict(sd)
    del missing["bias_hh_l1"]
    with pytest.raises(KeyError, match=r"missing keys \['bias_hh_l1'\]"):
        lstm.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['weight_hr_l0'\]"):
        lstm.load_state_dict(dict(sd, weight_hr_l0=np.zeros(3)))
    with pytest.raises(ValueError, match=r"weight_ih_l1 has shape \(16, 3\); expected \(16, 4\)"):
        lstm.load_state_dict(dict(sd, weight_ih_l1=np.zeros((16, 3))))
    with pytest.raises(ValueError, match="bias_ih_l0 contains NaN"):
        lstm.load_state_dict(dict(sd, bias_ih_l0=np.full(16, np.nan)))
    with pytest.raises(TypeError, match="weight_hh_l0 must be a numpy.ndarray or a torch.Tensor"):
        lstm.load_state_dict(dict(sd, weight_hh_l0=[[0.0] * 4] * 16))
    lstm.load_state_dict(sd)  # and a failed load changed nothing
    for k, v in lstm.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])


@pytest.mark.parametrize("max_norm", [0, -1.0])
def test_bad_clip(max_norm):
    with pytest.raises(ValueError, match="max_norm must be positive"):
        rb.clip_grad_norm({"w": np.ones(3)}, max_norm)
    with pytest.raises(ValueError, match="clip_value must be positive"):
        rb.clip_grad_value({"w": np.ones(3)}, max_norm)


def test_set_num_threads_rejects_nonsense():
    with pytest.raises(ValueError, match="number of threads must be a positive int"):
        rb.set_num_threads(0)
