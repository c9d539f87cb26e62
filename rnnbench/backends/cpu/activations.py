"""Activations for the @njit kernels, in the kernel's own float type.

float64 calls libm (``np.tanh``, ``np.exp`` compiled by LLVM; within two ulp of numpy's). float32
uses a rational approximation of tanh (Eigen's ``generic_fast_tanh_float``: odd degree-13
numerator over even degree-6 denominator, the input clamped to +-7.905) and sigmoid(a) =
(1 + tanh(a/2)) / 2. Both are plain arithmetic, so the gate loops vectorise (numba has no SVML
here, and a libm call per element costs 17-25 ns against about 0.4 ns); measured against float64
libm over [-12, 12] they are within 6 float32 ulp, 3.4e-7 relative (tanh), and 2e-7 absolute
(sigmoid). Kernels that use them compile with ``error_model="numpy"``: Python's ZeroDivisionError
check on every division would keep the loops scalar.

``one`` is the constant 1 of the arrays' dtype (``h0.dtype.type(1)``): with a Python literal
Numba would promote float32 math to float64.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

f32 = np.float32
CLAMP = f32(7.90531110763549805)
A1, A3, A5, A7, A9, A11, A13 = (f32(4.89352455891786e-03), f32(6.37261928875436e-04), f32(1.48572235717979e-05),
                                f32(5.12229709037114e-08), f32(-8.60467152213735e-11), f32(2.00018790482477e-13),
                                f32(-2.76076847742355e-16))
B0, B2, B4, B6 = (f32(4.89352518554385e-03), f32(2.26843463243900e-03), f32(1.18534705686654e-04),
                  f32(1.19825839466702e-06))
HALF = f32(0.5)


def tanh(a):
    """tanh in the kernels' precision (the Python twin of the kernels' overload, for tests)."""
    return np.tanh(a) if np.asarray(a).dtype != np.float32 else _tanh32(np.asarray(a))


def sigmoid(a):
    """The logistic function in the kernels' precision (Python twin, for tests)."""
    a = np.asarray(a)
    return HALF * _tanh32(HALF * a) + HALF if a.dtype == np.float32 else 1 / (1 + np.exp(-a))


def _tanh32(a):
    a = np.minimum(np.maximum(a, -CLAMP), CLAMP) if isinstance(a, np.ndarray) else min(max(a, -CLAMP), CLAMP)
    a2 = a * a
    p = ((((((A13 * a2 + A11) * a2 + A9) * a2 + A7) * a2 + A5) * a2 + A3) * a2 + A1) * a
    q = ((B6 * a2 + B4) * a2 + B2) * a2 + B0
    return p / q


@overload(tanh, inline="always")
def _tanh_impl(a):
    if a == types.float32:
        def rational(a):
            x = min(max(a, -CLAMP), CLAMP)  # builtins, not branches: the inlined IR stays branch-free
            x2 = x * x
            p = ((((((A13 * x2 + A11) * x2 + A9) * x2 + A7) * x2 + A5) * x2 + A3) * x2 + A1) * x
            return p / (((B6 * x2 + B4) * x2 + B2) * x2 + B0)
        return rational
    return lambda a: np.tanh(a)


@overload(sigmoid, inline="always")
def _sigmoid_impl(a):
    if a == types.float32:
        return lambda a: HALF * tanh(HALF * a) + HALF
    return lambda a: 1.0 / (1.0 + np.exp(-a))


@njit(inline="always", cache=True, error_model="numpy")
def activate(a, relu):
    """The vanilla RNN's nonlinearity: relu or tanh."""
    if relu:
        return a if a > 0 else a - a
    return tanh(a)


@njit(inline="always", cache=True, error_model="numpy")
def activate_grad(y, relu, one):
    """Derivative of the nonlinearity, written in terms of its output y."""
    if relu:
        return one if y > 0 else y - y
    return one - y * y
