"""Scalar activations for the @njit kernels, in the kernel's own float type.

``one`` is the constant 1 of the arrays' dtype (``h0.dtype.type(1)``): with a Python literal
Numba would promote float32 math to float64.
"""
import numpy as np
from numba import njit


@njit(inline="always", cache=True)
def sigmoid(a, one):
    return one / (one + np.exp(-a))


@njit(inline="always", cache=True)
def activate(a, relu):
    """The vanilla RNN's nonlinearity: relu or tanh."""
    if relu:
        return a if a > 0 else a - a
    return np.tanh(a)


@njit(inline="always", cache=True)
def activate_grad(y, relu, one):
    """Derivative of the nonlinearity, written in terms of its output y."""
    if relu:
        return one if y > 0 else y - y
    return one - y * y
