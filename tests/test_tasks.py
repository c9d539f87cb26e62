"""The long-dependency tasks: shapes, the dependency they encode, and their baselines."""
import math

import numpy as np
import pytest

from rnnbench import tasks


def test_adding_problem():
    rng = np.random.default_rng(0)
    x, y = tasks.adding_problem(50, 20_000, rng)
    assert x.shape == (50, 20_000, 2) and y.shape == (20_000, 1)
    markers = x[:, :, 1]
    assert (markers.sum(axis=0) == 1 + 1).all()
    assert (markers[:25].sum(axis=0) == 1).all() and (markers[25:].sum(axis=0) == 1).all()
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * markers).sum(axis=0), rtol=1e-6)
    assert np.mean((y - 1) ** 2) == pytest.approx(tasks.ADDING_BASELINE, rel=0.02)
    with pytest.raises(ValueError, match="needs seq_len >= 2"):
        tasks.adding_problem(1, 4, rng)


def test_copy_memory():
    rng = np.random.default_rng(0)
    x, target = tasks.copy_memory(30, 5, rng)
    T = 30 + 20
    assert x.shape == (T, 5, 10) and target.shape == (T, 5)
    seq = x.argmax(axis=2)
    np.testing.assert_array_equal(target[-10:], seq[:10])
    assert (target[:-10] == 0).all() and (seq[10 + 29] == 9).all()
    assert ((seq[:10] >= 1) & (seq[:10] <= 8)).all()
    assert tasks.copy_baseline(30) == pytest.approx(10 * math.log(8) / 50)


def test_ar_series_and_windows():
    series = tasks.ar_series(2000, rng=np.random.default_rng(0))
    x, y = tasks.ar_windows(series, 3)
    assert x.shape == (3, 1997, 1) and y.shape == (1997, 1)
    np.testing.assert_allclose(x[:, 5, 0], series[5:8], rtol=1e-6)
    assert y[5, 0] == pytest.approx(series[8], rel=1e-6)
    # least squares on the windows recovers the generating coefficients
    coef = np.linalg.lstsq(x[::-1, :, 0].T.astype(float), y[:, 0].astype(float), rcond=None)[0]
    np.testing.assert_allclose(coef, (0.6, -0.2, 0.15), atol=0.05)
    with pytest.raises(ValueError, match="too short for tau = 10"):
        tasks.ar_windows(series[:10], 10)
    with pytest.raises(ValueError, match="non-stationary"):
        tasks.ar_series(10, coefficients=(1.2,))


def test_series_are_standardised_on_their_training_part():
    for name, length in (("ar", 5000), ("sunspots", 309), ("co2", 525)):
        series, n_train = tasks.standardise(tasks.load_series(name))
        assert len(series) == length and n_train == int(0.8 * length) and np.isfinite(series).all()
        assert series[:n_train].mean() == pytest.approx(0, abs=1e-12)
        assert series[:n_train].std() == pytest.approx(1, rel=1e-12)


def test_autoreg_baseline_is_statsmodels_one_step_forecast():
    from statsmodels.tsa.ar_model import AutoReg

    series, n = tasks.standardise(tasks.load_series("sunspots"))
    params = AutoReg(series[:n], lags=9, trend="c").fit().params
    predicted = AutoReg(series, lags=9, trend="c").predict(params, start=n, end=len(series) - 1)
    assert tasks.autoreg_mse(series, n, 9) == pytest.approx(np.mean((series[n:] - predicted) ** 2), rel=1e-12)
    # the synthetic AR(3): a fitted AR(3) leaves about the noise, 0.1^2 before standardising
    raw = tasks.load_series("ar")
    s, n_ar = tasks.standardise(raw)
    assert tasks.autoreg_mse(s, n_ar, 3) * raw[:n_ar].var() == pytest.approx(0.01, rel=0.1)
    with pytest.raises(ValueError, match="training part of 247 values is too short to fit AR"):
        tasks.autoreg_mse(series, n, 200)


def test_series_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown series 'nile'"):
        tasks.load_series("nile")
    monkeypatch.setitem(__import__("sys").modules, "statsmodels", None)
    with pytest.raises(ImportError, match=r"rnnbench\[series\]"):
        tasks.load_series("co2")
