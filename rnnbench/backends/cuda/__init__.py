"""The numba.cuda backend: the cpu backend's structure on a GPU.

A forward is the input projection of every step (one register-tiled GEMM, ``matmul.py``) and
then the recurrence, one of three paths: a launch per step, the step's recurrent product as tiles
fused with the cell's gate math (``tiles.py``, path "steps"); the same tiles in one launch for the
whole sequence, W_hh read from device memory at each step (``tiles.py``, path "streamed"); or one
persistent launch that keeps W_hh in shared memory (``persistent.py``, path "persistent"). The
cell's math itself is in ``rnn.py``, ``lstm.py`` and ``gru.py``. A backward runs the recurrence in
reverse the same way, then dx and every weight gradient as large products over all steps.
``path="auto"`` takes the persistent kernel where it fits and the batch is small
(``PERSISTENT_MAX_BATCH``) and it takes one block per SM at most, else the per-step launches (on an
H200 the persistent kernel lost wherever it needed 2-3 blocks per SM: docs/gpu.md). The streamed
path, and splitting the steps' products along k (``splits``), are chosen only when asked for until
a GPU has timed them. ``taken(phase)`` names the path the last pass ran.

``forward_pass`` / ``backward_pass`` work on device arrays alone (what the benchmarks time, with
CUDA events). ``CudaBackend`` serves the layers above (stacking, directions, dropout, truncation,
checkpointing) as every backend does, its outputs and gradients device arrays that the layers
pass between layers and directions with ``arrays.py``: a stack's input crosses to the device once
and its output to the host once; a tape (gates, cell states, outputs, the input and the weights
as the forward used them) stays on the device until its backward. What still crosses per layer:
its weights (at each forward), the states entering and leaving it, and ``hidden`` / ``cell`` when
asked for; a checkpointed tape keeps its outputs on the host.

Without a GPU, ``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported) runs these kernels in
numba's CUDA simulator: slowly, for tests at tiny sizes.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from rnnbench.backends.base import BackwardResult, LayerWeights, Tape, forward_bias, previous_rows
from rnnbench.backends.cuda import gru, lstm, persistent, rnn, tiles
from rnnbench.backends.cuda.arrays import DeviceArrays
from rnnbench.backends.cuda.memory import copy, empty, on_device, zeros
from rnnbench.backends.cuda.matmul import T, column_sums, gemm, transposed

CELL_MATH = {  # name -> (forward, backward, gates, tape planes)
    "rnn_tanh": (rnn.tanh_forward, rnn.tanh_backward, rnn.GATES, rnn.PLANES),
    "rnn_relu": (rnn.relu_forward, rnn.relu_backward, rnn.GATES, rnn.PLANES),
    "lstm": (lstm.forward, lstm.backward, lstm.GATES, lstm.PLANES),
    "gru": (gru.forward, gru.backward, gru.GATES, gru.PLANES),
}
PERSISTENT_MAX_BATCH = 16
PATHS = ("auto", "steps", "persistent", "streamed")


def gpu_or_simulator() -> None:
    """Raise with what to do when numba.cuda has neither a GPU nor the simulator."""
    from numba import cuda

    if not cuda.is_available():
        raise RuntimeError("backend 'cuda' needs a GPU, and numba.cuda sees none; to run its kernels in "
                           "numba's CUDA simulator, set NUMBA_ENABLE_CUDASIM=1 before Python starts")


@functools.lru_cache(maxsize=None)
def kernels(cell: str, dtype: str, tile: tuple[int, int]) -> SimpleNamespace:
    """The compiled-on-first-launch kernels of one cell, dtype and step tile."""
    from numba import float32, float64

    fwd, bwd, G, _ = CELL_MATH[cell]
    nb = float32 if dtype == "float32" else float64
    return SimpleNamespace(
        step_forward=tiles.make_step_forward(fwd, G, nb, *tile),
        step_backward=tiles.make_step_backward(bwd, nb, *tile),
        streamed_forward=tiles.make_streamed_forward(fwd, G, nb, *tile),
        streamed_backward=tiles.make_streamed_backward(bwd, nb, *tile),
        persistent_forward=persistent.make_forward(fwd, G, nb),
        persistent_backward=persistent.make_backward(bwd, nb),
    )


@dataclass
class DeviceWeights:
    """One layer and direction's weights on the device, with what the kernels read: W_hh^T for
    the backward's products and the forward's one bias array (``forward_bias``)."""

    w_ih: object
    w_hh: object
    w_hh_t: object
    bias: object

    @classmethod
    def from_host(cls, cell_name: str, w: LayerWeights) -> "DeviceWeights":
        w_hh = on_device(w.w_hh)
        return cls(on_device(w.w_ih), w_hh, transposed(w_hh, empty(w.w_hh.T.shape, w.w_hh.dtype)),
                   on_device(forward_bias(cell_name, w)))


@dataclass
class DeviceTape:
    h: object  # (n, B, H)
    c: object  # (n, B, H) for LSTM, else a (1, B, H) placeholder
    planes: object  # (n or 1, P, B, H): what the cell keeps per step
    h0: object
    c0: object


def _sms() -> int:
    from numba import config, cuda

    return 1 if config.ENABLE_CUDASIM else cuda.get_current_device().MULTIPROCESSOR_COUNT


_PLANS: dict = {}
_RESIDENT: dict = {}  # streamed kernel -> the most blocks of it resident at once (a cooperative grid)


def _persistent_plan(kernel, args, rows_per_unit, K, H, B, dtype):
    """(blocks, J, S, shared bytes) of the persistent kernel at this size, or None where the cache
    does not fit shared memory or the grid one cooperative launch; worked out once per size."""
    from numba import config, typeof

    key = (kernel, rows_per_unit, K, H, B, np.dtype(dtype).name)
    if key not in _PLANS:
        fit = persistent.plan(rows_per_unit, K, H, B, np.dtype(dtype).itemsize, _sms())
        if fit is not None:
            J, S, shared = fit
            blocks = -(-H // J)
            if config.ENABLE_CUDASIM:
                fits = blocks == 1
            else:
                compiled = kernel.compile(tuple(typeof(a) for a in args[:-2] + (J, S) + args[-2:]))
                fits = blocks <= compiled.max_cooperative_grid_blocks(persistent.THREADS, shared)
            fit = (blocks, J, S, shared) if fits else None
        _PLANS[key] = fit
    return _PLANS[key]


def _launch_persistent(kernel, args, rows_per_unit, K, H, B, dtype, path) -> bool:
    """Launch the persistent kernel if ``path`` allows it and it fits; False if it did not run."""
    if path == "steps" or (path == "auto" and B > PERSISTENT_MAX_BATCH):
        return False
    fit = _persistent_plan(kernel, args, rows_per_unit, K, H, B, dtype)
    if fit is not None and (path == "persistent" or fit[0] <= _sms()):
        blocks, J, S, shared = fit
        kernel[blocks, persistent.THREADS, 0, shared](*args[:-2], J, S, *args[-2:])
        return True
    if path == "persistent":
        raise ValueError(f"the persistent kernel does not fit hidden size {H} at batch {B} ({dtype}); use path='auto'")
    return False


def _step_launches(kernel, args, B, H, K, gates, tile, splits, count):
    """Launch a step kernel ``count`` times (s = 0 .. count - 1): a block per tile and split of k
    (``tiles.plan``), with the split's scratch (the sums, then a ticket per tile, zero)."""
    tiles_j, tiles_b, splits, sums = tiles.plan(B, H, K, gates, tile, _sms(), splits)
    dtype = args[-1].dtype
    scratch = zeros(sums + tiles_j * tiles_b, dtype) if splits > 1 else empty(1, dtype)
    launch, head, tail = kernel[(tiles_j, tiles_b, splits), (T, T)], (*args[:-2], scratch), args[-2:]
    for s in range(count):  # configured once: the host's cost per step is the launch alone
        launch(*head, s, *tail)


def _launch_streamed(kernel, args, B, H, K, gates, tile, splits):
    """Launch the streamed kernel (one cooperative launch): a block per work item (tile, split),
    or as many as can be resident at once."""
    from numba import config, typeof

    tiles_j, tiles_b, splits, sums = tiles.plan(B, H, K, gates, tile, _sms(), splits)
    full = (*args[:-2], empty(sums, args[-1].dtype), tiles_j, splits, *args[-2:])
    if config.ENABLE_CUDASIM:  # the simulator runs one block per cooperative grid
        resident = 1
    else:  # a property of the compiled kernel and its block (the same at every size)
        if kernel not in _RESIDENT:
            compiled = kernel.compile(tuple(typeof(a) for a in full))
            _RESIDENT[kernel] = compiled.max_cooperative_grid_blocks((T, T), 0)
        resident = _RESIDENT[kernel]
    kernel[min(tiles_j * tiles_b * splits, resident), (T, T)](*full)


# the path the last forward and backward pass ran: where "auto" went (the speed rows, the benchmarks)
TAKEN = {"forward": None, "backward": None}


def taken(phase: str) -> str:
    """The path the last pass of ``phase`` ran ("fwd", "bwd", or "fwd+bwd": one name where forward
    and backward agree, else "forward/backward", e.g. "persistent/steps")."""
    passes = {"fwd": ("forward",), "bwd": ("backward",), "fwd+bwd": ("forward", "backward")}[phase]
    return "/".join(dict.fromkeys(str(TAKEN[p]) for p in passes))


def _recurrence(which, k, args, B, H, K, gates, tile, path, splits, steps) -> None:
    """The recurrence of a pass (``which``: "forward" or "backward", ``steps`` launches on the steps
    path) on ``path``: the streamed kernel; the persistent one where asked for, or where auto
    allows it and it fits; else the per-step launches. Notes the path it ran in ``TAKEN``."""
    if path == "streamed":
        _launch_streamed(getattr(k, f"streamed_{which}"), args, B, H, K, gates, tile, splits)
    elif _launch_persistent(getattr(k, f"persistent_{which}"), args, gates, K, H, B, args[-1].dtype, path):
        path = "persistent"
    else:
        _step_launches(getattr(k, f"step_{which}"), args, B, H, K, gates, tile, splits, steps)
        path = "steps"
    TAKEN[which] = path


def forward_pass(cell, dw: DeviceWeights, x, h0, c0, reverse: bool, store: bool, path: str = "auto",
                 splits=1) -> DeviceTape:
    """The recurrence of one layer and direction over x (n, B, I), all on the device; ``splits``:
    the split of k of the steps' and the streamed kernel's products (None: ``tiles.plan`` decides)."""
    n, B, I = x.shape
    H, dtype = h0.shape[1], h0.dtype
    G, planes = CELL_MATH[cell.name][2:]
    tile = tiles.tile_for(B)
    k = kernels(cell.name, np.dtype(dtype).name, tile)
    xp = empty((n, B, G * H), dtype)
    gemm(x.reshape(n * B, I), dw.w_ih, xp.reshape(n * B, G * H), b_nk=True)
    lstm_cell = cell.name == "lstm"
    h = empty((n, B, H), dtype)
    c = empty((n if lstm_cell else 1, B, H), dtype)
    c0 = c0 if lstm_cell else zeros((B, H), dtype)
    tape = empty((n if store and planes else 1, max(len(planes), 1), B, H), dtype)
    one = np.dtype(dtype).type(1)
    args = (xp, dw.w_hh, dw.bias, h0, c0, h, c, tape, reverse, one)
    _recurrence("forward", k, args, B, H, H, G, tile, path, splits, n)
    return DeviceTape(h, c, tape, h0, c0)


def backward_pass(cell, dw: DeviceWeights, tape: DeviceTape, x, dy, dh_n, dc_n, reverse: bool,
                  grads: dict, hid=None, cel=None, path: str = "auto", splits=1):
    """Backpropagate through one layer and direction on the device: (dx, dh0, dc0); adds the
    weight gradients into ``grads`` (device arrays under LayerWeights' names) and, when given,
    dL/dh_t (dL/dc_t) into ``hid`` (``cel``)."""
    n, B, H = dy.shape
    dtype = dy.dtype
    G = CELL_MATH[cell.name][2]
    tile = tiles.tile_for(B)
    k = kernels(cell.name, np.dtype(dtype).name, tile)
    dax = empty((n, B, G * H), dtype)
    dah = empty((n, B, G * H), dtype) if cell.name == "gru" else dax
    direct = copy(dh_n)  # updated in place: our own copies
    dc = copy(dc_n) if cell.name == "lstm" else zeros((1, 1), dtype)
    hid = empty((1, B, H), dtype) if hid is None else hid
    cel = empty((1, B, H), dtype) if cel is None else cel
    dh0 = empty((B, H), dtype)
    one = np.dtype(dtype).type(1)
    args = (dw.w_hh_t, dy, direct, dc, tape.planes, tape.h, tape.h0, tape.c, tape.c0, dax, dah, hid, cel, dh0,
            reverse, one)
    _recurrence("backward", k, args, B, H, G * H, 1, tile, path, splits, n + 1)
    _weight_gradients(dax.reshape(n * B, G * H), dah.reshape(n * B, G * H), x, tape, grads, reverse)
    dx = empty(x.shape, dtype)
    gemm(dax.reshape(n * B, G * H), dw.w_ih, dx.reshape(n * B, x.shape[2]))
    return dx, dh0, (dc if cell.name == "lstm" else None)


def _weight_gradients(gx, gh, x, tape: DeviceTape, grads: dict, reverse: bool):
    """dW_ih += gx^T x, dW_hh += sum_t gh_t^T h_{t-1}, the bias sums: products over all steps."""
    n, B = x.shape[:2]
    gemm(gx, x.reshape(n * B, x.shape[2]), grads["w_ih"], True, a_km=True)
    first, inner, prev = previous_rows(n, B, reverse)
    gemm(gh[first], tape.h0, grads["w_hh"], True, a_km=True)
    if n > 1:
        gemm(gh[inner], tape.h.reshape(n * B, tape.h.shape[2])[prev], grads["w_hh"], True, a_km=True)
    column_sums(gx, grads["b_ih"])
    column_sums(gh, grads["b_hh"])


class CudaBackend:
    """The layers' backend: outputs, gradients and tapes on the device (see the module's doc)."""

    name = "cuda"
    arrays = DeviceArrays()
    # gate gradients per step and unit (dax; the GRU's dah too): the device memory model's
    # (analysis.memory.device_model_bytes), which replaces the host backends' constants here
    BACKWARD_FLOATS = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 6}
    WARMUP_SHAPES = ((1, 2),)

    def __init__(self, path: str = "auto", splits=1):
        from numba import config

        gpu_or_simulator()
        config.CUDA_LOW_OCCUPANCY_WARNINGS = 0  # small grids are by design here (a small batch's step)
        self.path = path
        self.splits = splits

    @property
    def path(self) -> str:
        """How the recurrence runs: "auto", "steps", "persistent" or "streamed" (see the module's
        doc; ``taken`` says where "auto" went); set it on the shared instance,
        ``rnnbench.backends.get_backend("cuda").path = "steps"``."""
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        if value not in PATHS:
            raise ValueError(f"unknown cuda path {value!r}; choose one of {', '.join(PATHS)}")
        self._path = value

    @property
    def splits(self):
        """The split of each step's product along k on the steps and streamed paths: 1 (the
        default: unsplit), a larger whole number, or None (``tiles.plan`` decides: about two
        blocks per SM). Splits are yet to be timed on a GPU (docs/gpu.md)."""
        return self._splits

    @splits.setter
    def splits(self, value) -> None:
        self._splits = tiles.checked_splits(value)

    def forward(self, cell, w, x, h0, c0, reverse, store) -> Tape:
        dw = DeviceWeights.from_host(cell.name, w)
        d_c0 = on_device(c0) if c0 is not None else None
        d_x = on_device(x)
        dt = forward_pass(cell, dw, d_x, on_device(h0), d_c0, reverse, store, self.path, self.splits)
        end = 0 if reverse else -1
        steps_ = {"h": dt.h}  # on the device: the next layer reads it there (``arrays``)
        lstm_cell = cell.name == "lstm"
        if store:
            if CELL_MATH[cell.name][3]:
                steps_["planes"] = dt.planes
            if lstm_cell:
                steps_["c"] = dt.c
            steps_["x_dev"] = d_x
        c_n = dt.c[end].copy_to_host() if lstm_cell else None
        # the backward uses the weights the forward did (torch refuses weights changed in between)
        return Tape(x, reverse, h0, c0, dt.h[end].copy_to_host(), c_n, steps_, {"weights": dw} if store else None)

    def backward(self, cell, w, tape, dy, dh_n, dc_n, reverse, grads: LayerWeights,
                 hidden=None, cell_grad=None) -> BackwardResult:
        dw = tape.held["weights"]
        st = tape.steps
        B, H = dy.shape[1:]
        placeholder = "c" not in st
        dt = DeviceTape(st["h"], zeros((1, B, H), dy.dtype) if placeholder else st["c"],
                        st["planes"] if "planes" in st else empty((1, 1, B, H), dy.dtype), on_device(tape.h0),
                        zeros((B, H), dy.dtype) if placeholder else on_device(tape.c0))
        parts = {k: zeros(getattr(grads, k).shape, getattr(grads, k).dtype) for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
        d_hid = on_device(hidden) if hidden is not None else None
        d_cel = on_device(cell_grad) if cell_grad is not None else None
        dx, dh0, dc0 = backward_pass(cell, dw, dt, st["x_dev"], on_device(dy), dh_n, dc_n, reverse, parts,
                                     d_hid, d_cel, self.path, self.splits)
        for key, part in parts.items():
            getattr(grads, key)[...] += part.copy_to_host()
        if hidden is not None:
            hidden[...] = d_hid.copy_to_host()
        if cell_grad is not None:
            cell_grad[...] = d_cel.copy_to_host()
        return BackwardResult(dx, dh0.copy_to_host(), None if dc0 is None else dc0.copy_to_host())
