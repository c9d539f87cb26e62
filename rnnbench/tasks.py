"""Long-dependency tasks, generated on the fly from a seed (nothing is downloaded).

Each returns time-major arrays (x (T, B, features), target) and states the loss a memoryless
predictor gets: the baseline a model must beat to show it learned the dependency.
"""
from __future__ import annotations

import math

import numpy as np

from rnnbench.checks import check_positive_int


def adding_problem(seq_len: int, batch: int, rng, dtype="float32"):
    """Two channels: values uniform in [0, 1], and a marker with one 1 in each half of the
    sequence. Target (B, 1): the sum of the two marked values. Predicting 1 always gives
    MSE = Var(u1 + u2) = 1/6 (``ADDING_BASELINE``)."""
    seq_len = check_positive_int("seq_len", seq_len)
    if seq_len < 2:
        raise ValueError(f"the adding problem needs seq_len >= 2 (one marker per half); got {seq_len}")
    batch = check_positive_int("batch", batch)
    values = rng.uniform(0, 1, (seq_len, batch))
    half = seq_len // 2
    first = rng.integers(0, half, batch)
    second = rng.integers(half, seq_len, batch)
    marker = np.zeros((seq_len, batch))
    marker[first, np.arange(batch)] = 1
    marker[second, np.arange(batch)] = 1
    x = np.stack([values, marker], axis=2).astype(dtype)
    target = (values[first, np.arange(batch)] + values[second, np.arange(batch)])[:, None].astype(dtype)
    return x, target


ADDING_BASELINE = 1 / 6


def copy_memory(delay: int, batch: int, rng, symbols: int = 10, alphabet: int = 8, dtype="float32"):
    """Recall ``symbols`` symbols from an alphabet of ``alphabet`` after ``delay`` blanks.

    Steps: the symbols, delay-1 blanks, a delimiter, then ``symbols`` blanks during which the model
    must output the symbols (T = delay + 2 * symbols). Classes: 0 blank, 1..alphabet symbols,
    alphabet+1 delimiter; x is one-hot (T, B, alphabet + 2), target class indices (T, B). The
    memoryless baseline (blank everywhere, uniform guesses at the end) is
    symbols * ln(alphabet) / T cross-entropy per step (``copy_baseline``)."""
    delay = check_positive_int("delay", delay)
    batch = check_positive_int("batch", batch)
    T = delay + 2 * symbols
    seq = np.zeros((T, batch), dtype=np.int64)
    data = rng.integers(1, alphabet + 1, (symbols, batch))
    seq[:symbols] = data
    seq[symbols + delay - 1] = alphabet + 1
    target = np.zeros((T, batch), dtype=np.int64)
    target[-symbols:] = data
    x = np.eye(alphabet + 2, dtype=dtype)[seq]
    return x, target


def copy_baseline(delay: int, symbols: int = 10, alphabet: int = 8) -> float:
    return symbols * math.log(alphabet) / (delay + 2 * symbols)


def ar_series(length: int, coefficients=(0.6, -0.2, 0.15), noise: float = 0.1, rng=None):
    """A noisy synthetic AR(tau) series x_t = sum_i a_i x_{t-i} + noise (tau = len(coefficients))."""
    rng = rng or np.random.default_rng(0)
    a = np.asarray(coefficients, dtype=float)
    if np.abs(np.roots(np.r_[1, -a])).max() >= 1:
        raise ValueError(f"AR coefficients {tuple(a)} give a non-stationary series")
    x = np.zeros(length + 100)
    eps = noise * rng.standard_normal(length + 100)
    for t in range(len(a), len(x)):
        x[t] = a @ x[t - len(a) : t][::-1] + eps[t]
    return x[100:]


def ar_windows(series, tau: int, dtype="float32"):
    """Seed 000's AR(tau) framing: each window of tau values predicts the next one.
    Returns x (tau, N, 1) and target (N, 1)."""
    series = np.asarray(series, dtype=float)
    tau = check_positive_int("tau", tau)
    if len(series) <= tau:
        raise ValueError(f"a series of {len(series)} values is too short for tau = {tau}")
    windows = np.lib.stride_tricks.sliding_window_view(series[:-1], tau)
    return windows.T[:, :, None].astype(dtype), series[tau:, None].astype(dtype)


# --- series forecasting (seed 000): one-step-ahead prediction of a univariate series ------------

SERIES = ("ar", "sunspots", "co2")
TRAIN_FRACTION = 0.8  # the first 80% trains (and standardises); the rest is held out


def load_series(name: str, seed: int = 0, length: int = 5000) -> np.ndarray:
    """A univariate series: the synthetic AR(3) of ``ar_series`` (``length`` values from ``seed``), or
    a real one that statsmodels ships (optional extra ``series``): yearly sunspot numbers 1700-2008
    (309 values), or the Mauna Loa CO2 record as monthly means differenced month to month (525
    values; the level's trend would leave the held-out part outside the training range)."""
    if name == "ar":
        return ar_series(length, rng=np.random.default_rng(seed))
    if name not in SERIES:
        raise ValueError(f"unknown series {name!r}; known: {', '.join(SERIES)}")
    try:
        from statsmodels import datasets
    except ImportError:
        raise ImportError(f"the {name} series ships with statsmodels, an optional extra: "
                          "pip install 'rnnbench[series]'") from None
    if name == "sunspots":
        return datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(float)
    monthly = datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    return np.diff(monthly.to_numpy(float))


def standardise(series) -> tuple[np.ndarray, int]:
    """The series scaled to zero mean and unit variance over its training part; returns it and
    the training part's length."""
    series = np.asarray(series, dtype=float)
    n_train = int(len(series) * TRAIN_FRACTION)
    train = series[:n_train]
    return (series - train.mean()) / train.std(), n_train


def autoreg_mse(series, n_train: int, tau: int) -> float:
    """The classical baseline: AR(tau) with a constant, fitted by statsmodels' AutoReg on the
    training part; its one-step-ahead MSE on every held-out value (from the true past values)."""
    try:
        from statsmodels.tsa.ar_model import AutoReg
    except ImportError:
        raise ImportError("the AutoReg baseline needs statsmodels, an optional extra: "
                          "pip install 'rnnbench[series]'") from None
    series = np.asarray(series, dtype=float)
    if n_train <= 2 * tau + 1:
        raise ValueError(f"a training part of {n_train} values is too short to fit AR(tau = {tau})")
    params = AutoReg(series[:n_train], lags=tau, trend="c").fit().params  # constant, lag 1..tau
    past = np.lib.stride_tricks.sliding_window_view(series[n_train - tau : -1], tau)[:, ::-1]
    predictions = params[0] + past @ params[1:]
    return float(np.mean((series[n_train:] - predictions) ** 2))
