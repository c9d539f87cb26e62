"""Input checks shared by the layers: every failure names the argument and what was wrong."""
from __future__ import annotations

import numpy as np

DTYPES = ("float32", "float64")
FLOATS = tuple(np.dtype(d) for d in DTYPES)


def check_dtype_name(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return dt


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return int(value)


def check_array(name: str, a, dtype: np.dtype, shape: tuple | None = None) -> np.ndarray:
    """A NumPy array of the model's dtype, the given shape (None entries match any size), finite."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype} but the model's dtype is {dtype}; "
                        f"convert it with .astype(np.{dtype})")
    if shape is not None and (a.ndim != len(shape)
                              or any(s is not None and s != n for s, n in zip(shape, a.shape))):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} has shape {a.shape}; expected {want}")
    check_finite(name, a)
    return a


def check_finite(name: str, a: np.ndarray) -> None:
    if a.dtype in FLOATS:
        from rnnbench.backends.cpu.finite import all_finite  # numba loads on first use, not with rnnbench

        if all_finite(a):
            return
    if not np.isfinite(a).all():
        bad = "NaN" if np.isnan(a).any() else "inf"
        raise ValueError(f"{name} contains {bad} (first at index {np.argwhere(~np.isfinite(a))[0].tolist()})")


def to_numpy(name: str, value) -> np.ndarray:
    """A NumPy array from an array or a torch tensor (duck-typed: torch is never imported)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or a torch.Tensor; got {type(value).__name__}")
    return value
