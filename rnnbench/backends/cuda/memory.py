"""Device memory of the cuda backend: a caching pool and a ledger of what the backend holds.

A pass allocates a dozen arrays (projections, tape, gate gradients, ...). Through numba each is a
cuMemAlloc, about 100 us measured on an H200 (reports/gpu/overheads.txt): more than a whole small
pass's kernels. The pool keeps freed blocks by size and hands them out again, as torch's caching
allocator does. An array's memory returns to the pool when no view of it is left: each array gets
its own pointer object, which its views keep alive, with a finalizer that gives the block back.
Blocks beyond ``CAP_BYTES`` of cached memory are freed instead; ``release_cached()`` frees them all.

The ledger counts the bytes handed out and not yet given back, and their peak since
``reset_peak``: the device-memory figure the analysis layer reports. Under the simulator there is
no device memory to pool; arrays are plain and counted the same way.
"""
from __future__ import annotations

import weakref
from collections import defaultdict

import numpy as np

from numba import cuda

GRANULE = 512  # block sizes are rounded up to this many bytes
CAP_BYTES = 4 << 30  # cached (free) memory kept for reuse at most


class Ledger:
    def __init__(self):
        self.live = 0
        self.peak = 0

    def reset_peak(self) -> None:
        self.peak = self.live

    def add(self, nbytes: int) -> None:
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def sub(self, nbytes: int) -> None:
        self.live -= nbytes


LEDGER = Ledger()
_FREE: dict[int, list] = defaultdict(list)  # block size -> free blocks (uint8 device arrays)
_CACHED = [0]


def _give_back(size: int, block, nbytes: int) -> None:
    LEDGER.sub(nbytes)
    if _CACHED[0] + size <= CAP_BYTES:
        _FREE[size].append(block)
        _CACHED[0] += size


def release_cached() -> None:
    """Free every cached block (memory in use stays)."""
    _FREE.clear()
    _CACHED[0] = 0


def _strides(shape, itemsize: int) -> tuple:
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def empty(shape, dtype):
    """An uninitialised C-contiguous device array, from the pool where it can."""
    from numba import config

    shape = tuple(int(n) for n in (shape if isinstance(shape, tuple) else (shape,)))
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if config.ENABLE_CUDASIM or nbytes == 0:
        a = cuda.device_array(shape, dtype)
        LEDGER.add(nbytes)
        weakref.finalize(getattr(a, "_ary", a), LEDGER.sub, nbytes)
        return a
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    from numba.cuda.cudadrv.driver import MemoryPointer

    size = -(-nbytes // GRANULE) * GRANULE
    if _FREE[size]:
        block = _FREE[size].pop()
        _CACHED[0] -= size
    else:
        block = cuda.device_array(size, np.uint8)
    base = block.gpu_data
    pointer = MemoryPointer(base.context, base.device_pointer, size,
                            finalizer=lambda: _give_back(size, block, nbytes))
    LEDGER.add(nbytes)
    return DeviceNDArray(shape, _strides(shape, dtype.itemsize), dtype, gpu_data=pointer)


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
    out = empty(a.shape, a.dtype)
    # a fresh C array: numpy may give a length-1 axis any stride, and numba compares strides
    out.copy_to_device(np.array(a, order="C"))
    return out


def copy(a):
    """A device copy of a device or host array (device to device where it can)."""
    if isinstance(a, np.ndarray):
        return on_device(a)
    out = empty(a.shape, a.dtype)
    out.copy_to_device(a)
    return out
