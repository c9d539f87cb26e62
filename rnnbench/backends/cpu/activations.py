"""Activations for the @njit kernels, in the kernel's own float type, written so that the gate
loops vectorise: numba has no SVML here, and a libm call per element (``np.tanh``, ``np.exp``)
keeps a loop scalar at 5-25 ns an element.

float32: a rational approximation of tanh (Eigen's ``generic_fast_tanh_float``: odd degree-13
numerator over even degree-6 denominator, the input clamped to +-7.905) and sigmoid(a) =
(1 + tanh(a/2)) / 2: 0.4 ns an element; against float64 libm over [-12, 12], within 6 float32 ulp
(3.4e-7 relative, tanh) and 2e-7 absolute (sigmoid).

float64: exp through its parts, branch-free: -y = -n ln2 + r with |r| <= ln2/2, expm1(r) by its
Taylor series to r^13 (truncation below 1e-17), 2^-n as a product of 2^-(2^i) selected by the bits
of n; tanh(a) = -expm1(-2|a|) / (2 + expm1(-2|a|)) with a's sign, sigmoid from exp(-|a|). 2.5-4 ns
an element against 4.6-8.6 for libm here; within 4.4e-16 relative of numpy's tanh and sigmoid (libm
itself is 4.2e-16 from numpy's), tested.

Kernels that use them compile with ``KERNEL_OPTIONS``: ``error_model="numpy"``, as Python's
ZeroDivisionError check on every division would keep the loops scalar, and fused multiply-adds
(``contract``) for the polynomials: the LSTM gate loop alone ran 1.25x as fast with them (2.0
against 2.5 ns a unit at (B, H) = (15, 256), float32), the LSTM forward kernels 2-4% (float32)
and 3-9% (float64) faster. Within the bounds above; float32 tanh saturates at 0.99999976 then,
not 1. ``one`` is the constant 1 of the arrays' dtype (``h0.dtype.type(1)``): with a Python
literal Numba would promote float32 math to float64.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

KERNEL_OPTIONS = dict(error_model="numpy", fastmath={"contract"})

f32 = np.float32
CLAMP = f32(7.90531110763549805)
A1, A3, A5, A7, A9, A11, A13 = (f32(4.89352455891786e-03), f32(6.37261928875436e-04), f32(1.48572235717979e-05),
                                f32(5.12229709037114e-08), f32(-8.60467152213735e-11), f32(2.00018790482477e-13),
                                f32(-2.76076847742355e-16))
B0, B2, B4, B6 = (f32(4.89352518554385e-03), f32(2.26843463243900e-03), f32(1.18534705686654e-04),
                  f32(1.19825839466702e-06))
HALF = f32(0.5)

INV_LN2, LN2_HI, LN2_LO = 1.4426950408889634, 6.93147180369123816490e-01, 1.90821492927058770002e-10
F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12, F13 = (1 / math.factorial(k) for k in range(2, 14))
POW2_NEG = tuple(2.0 ** -(2**i) for i in range(10))  # 2^-1, 2^-2, 2^-4, ..., 2^-512


def tanh(a):
    """tanh in the kernels' precision (float32 only outside the kernels: the twin tests use)."""
    return _rational_tanh(np.clip(np.asarray(a, np.float32), -CLAMP, CLAMP))


def sigmoid(a):
    """The logistic function in the kernels' precision (float32 only outside the kernels)."""
    return HALF * tanh(HALF * np.asarray(a, np.float32)) + HALF


def _rational_tanh(x):
    """tanh(x) for x already clamped to +-CLAMP: plain arithmetic, on arrays here and scalars in kernels."""
    x2 = x * x
    p = ((((((A13 * x2 + A11) * x2 + A9) * x2 + A7) * x2 + A5) * x2 + A3) * x2 + A1) * x
    return p / (((B6 * x2 + B4) * x2 + B2) * x2 + B0)


_rational_tanh_jit = njit(inline="always", cache=True, error_model="numpy")(_rational_tanh)


# float64. No branch and no loop anywhere: the overloads inline these into the kernels' IR.
@njit(inline="always", cache=True, error_model="numpy")
def _pow2_neg(k):
    """2^-k for 0 <= k < 1024: the product of 2^-(2^i) over k's set bits."""
    P0, P1, P2, P3, P4, P5, P6, P7, P8, P9 = POW2_NEG
    b0, b1, b2, b3, b4 = k & 1, (k >> 1) & 1, (k >> 2) & 1, (k >> 3) & 1, (k >> 4) & 1
    b5, b6, b7, b8, b9 = (k >> 5) & 1, (k >> 6) & 1, (k >> 7) & 1, (k >> 8) & 1, (k >> 9) & 1
    # bit * P + (1 - bit): exactly P or 1 (1 + bit * (P - 1) would round 2^-512 - 1 to -1)
    return ((b0 * P0 + (1 - b0)) * (b1 * P1 + (1 - b1)) * (b2 * P2 + (1 - b2)) * (b3 * P3 + (1 - b3)) *
            (b4 * P4 + (1 - b4)) * (b5 * P5 + (1 - b5)) * (b6 * P6 + (1 - b6)) * (b7 * P7 + (1 - b7)) *
            (b8 * P8 + (1 - b8)) * (b9 * P9 + (1 - b9)))


@njit(inline="always", cache=True, error_model="numpy")
def _exp_neg_parts(y):
    """(s, p) with exp(-y) = s (1 + p), expm1(-y) = s p + (s - 1), for 0 <= y <= 708."""
    n = math.floor(y * INV_LN2 + 0.5)
    r = (n * LN2_HI - y) + n * LN2_LO
    p = r + r * r * (F2 + r * (F3 + r * (F4 + r * (F5 + r * (F6 + r * (F7 + r * (F8 + r * (
        F9 + r * (F10 + r * (F11 + r * (F12 + r * F13)))))))))))
    return _pow2_neg(np.int64(n)), p


@njit(inline="always", cache=True, error_model="numpy")
def _tanh64(a):
    s, p = _exp_neg_parts(2.0 * min(abs(a), 20.0))  # tanh(20) is 1 in float64
    em = s * p + (s - 1.0)
    return (-em / (2.0 + em)) * (1.0 - 2.0 * (a < 0))


@njit(inline="always", cache=True, error_model="numpy")
def _sigmoid64(a):
    s, p = _exp_neg_parts(min(abs(a), 708.0))
    e = s * p + s  # exp(-|a|)
    return (e + (1.0 - e) * (a >= 0)) / (1.0 + e)  # 1 / (1 + e) for a >= 0, e / (1 + e) below


@overload(tanh, inline="always")
def _tanh_impl(a):
    if a == types.float32:
        # min / max builtins, not branches: the inlined IR stays branch-free
        return lambda a: _rational_tanh_jit(min(max(a, -CLAMP), CLAMP))
    return lambda a: _tanh64(a)


@overload(sigmoid, inline="always")
def _sigmoid_impl(a):
    if a == types.float32:
        return lambda a: HALF * tanh(HALF * a) + HALF
    return lambda a: _sigmoid64(a)


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
