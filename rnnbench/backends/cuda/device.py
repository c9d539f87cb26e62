"""What the cuda kernels share: the activations, device-array helpers and an allocation ledger."""
from __future__ import annotations

import math
import weakref

import numpy as np

if not hasattr(np, "row_stack"):  # numba-cuda 0.30 registers np.row_stack, which numpy 2.5 removed
    np.row_stack = np.vstack
from numba import cuda  # noqa: E402


@cuda.jit(device=True, inline=True)
def sigmoid(a, one):
    return one / (one + math.exp(-a))


class Ledger:
    """Device bytes the backend holds (allocations it made, freed when no view of them is left)
    and their peak since ``reset_peak``: the device-memory figure the analysis layer reports."""

    def __init__(self):
        self.live = 0
        self.peak = 0

    def reset_peak(self) -> None:
        self.peak = self.live

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def track(self, array):
        nbytes = int(array.nbytes)
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        # what every view of the array keeps alive: the allocation's pointer (the simulator: its numpy array)
        owner = array.gpu_data.owner if hasattr(array, "gpu_data") else array._ary
        weakref.finalize(owner, self._free, nbytes)
        return array


LEDGER = Ledger()


def empty(shape, dtype):
    return LEDGER.track(cuda.device_array(shape, dtype))


def zeros(shape, dtype):
    a = empty(shape, dtype)
    if hasattr(a, "gpu_data"):
        a.gpu_data.memset(0)  # on the device: no host copy
    else:  # the simulator
        a[...] = 0
    return a


def on_device(a):
    """A device array as it is; a host array copied over."""
    if not isinstance(a, np.ndarray):
        return a
    # a fresh C array: numpy may give a length-1 axis any stride, and a device reshape refuses those
    return LEDGER.track(cuda.to_device(np.array(a, order="C")))


def copy(a):
    """A device copy of a device or host array (device to device where it can)."""
    if isinstance(a, np.ndarray):
        return on_device(a)
    out = empty(a.shape, a.dtype)
    out.copy_to_device(a)
    return out


@cuda.jit(device=True, inline=True)
def forward_order(s, n, reverse):
    """(t, prev): the time of a forward's step s and of the step before it."""
    t = n - 1 - s if reverse else s
    return t, (t + 1 if reverse else t - 1)


@cuda.jit(device=True, inline=True)
def backward_order(s, n, reverse):
    """(t, prev, done): the time of a backward's step s (the forward's in reverse; s = n is the
    product into h0, t = -1 or n), of the step before it in the forward, and of the step done last."""
    t = s if reverse else n - 1 - s
    return t, (t + 1 if reverse else t - 1), (t - 1 if reverse else t + 1)


def make_backward_at(cell_backward):
    @cuda.jit(device=True, inline=True)
    def backward_at(rec, b, j, s, t, prev, dy, direct, dc, tape, h, h0, c, c0, dax, dah, hid, cel, dh0, one):
        """Backward step s at (b, j), rec[0] = W_hh^T da of the step done before; past the first
        step (s = n) dL/dh0 = rec[0] + direct (GRU's dh z; zero for the others)."""
        n = dy.shape[0]
        if s == n:
            dh0[b, j] = rec[0] + direct[b, j]
        else:
            inside = 0 <= prev < n
            cell_backward(rec, b, j, dy.shape[2], dy[t], direct, dc, tape[t % tape.shape[0]], h[t],
                          h[prev] if inside else h0, c[t % c.shape[0]], c[prev % c.shape[0]] if inside else c0,
                          dax[t], dah[t], hid[t % hid.shape[0]], cel[t % cel.shape[0]], one)

    return backward_at
