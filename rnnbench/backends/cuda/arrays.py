"""What the layers do to arrays between layers and directions, kept on the device.

The layers hand a backend's outputs and gradients from one layer or direction to the next
(``base.HostArrays`` says which operations); these do the same to device arrays, so a stack's
activations cross to the host once, at its output, and its gradients once, at its input. Host
arrays (a checkpointed tape's outputs, the caller's gradient) are copied over first.
"""
from __future__ import annotations

import math

import numpy as np
from numba import config, cuda

from rnnbench.backends.cuda.memory import empty, on_device

THREADS = 32 if config.ENABLE_CUDASIM else 256  # a block's threads (the simulator runs each as a Python thread)


@cuda.jit
def _copy_columns(src, s0, dst, d0, width):
    """dst[r, d0 + j] = src[r, s0 + j] for j < width."""
    i = cuda.grid(1)
    if i < src.shape[0] * width:
        r, j = i // width, i % width
        dst[r, d0 + j] = src[r, s0 + j]


@cuda.jit
def _multiply(a, b, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] * b[i]


@cuda.jit
def _add_into(a, b):
    i = cuda.grid(1)
    if i < a.shape[0]:
        a[i] += b[i]


def _blocks(n: int) -> int:
    return max(1, math.ceil(n / THREADS))


def _flat(a):
    return a.reshape(a.size)


def _shape(a) -> tuple:
    return tuple(a.shape)  # the simulator's shape takes no negative index


def _rows(a):
    width = _shape(a)[-1]
    return a.reshape(a.size // width, width)


class DeviceArrays:
    @staticmethod
    def join(parts):
        parts = [on_device(p) for p in parts]
        if len(parts) == 1:
            return parts[0]
        *lead, H = _shape(parts[0])
        out = empty(tuple(lead) + (H * len(parts),), parts[0].dtype)
        for d, p in enumerate(parts):
            _copy_columns[_blocks(p.size), THREADS](_rows(p), 0, _rows(out), d * H, H)
        return out

    @staticmethod
    def direction(a, d: int, H: int):
        a = on_device(a)
        out = empty(_shape(a)[:-1] + (H,), a.dtype)
        _copy_columns[_blocks(out.size), THREADS](_rows(a), d * H, _rows(out), 0, H)
        return out

    @staticmethod
    def add(a, b):
        a, b = on_device(a), on_device(b)
        _add_into[_blocks(a.size), THREADS](_flat(a), _flat(b))
        return a

    @staticmethod
    def masked(a, mask):
        a, mask = on_device(a), on_device(mask)
        out = empty(a.shape, a.dtype)
        _multiply[_blocks(a.size), THREADS](_flat(a), _flat(mask), _flat(out))
        return out

    @staticmethod
    def host(a) -> np.ndarray:
        return a if isinstance(a, np.ndarray) else a.copy_to_host()
