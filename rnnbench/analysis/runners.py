"""One call API over every backend: rnnbench's models, and torch's fused modules as the baselines.

A runner is what the speed and memory experiments time: ``forward(grad)`` and
``backward()`` on data made once in ``setup``. torch runs its fastest paths: a forward alone in
``torch.inference_mode()``, forward+backward through autograd. Two baselines: ``torch``, torch on
the CPU (beside the host backends), and ``cudnn``, torch on the GPU (cuDNN's kernels, beside the
cuda backend): data and weights resident on the device, TF32 off (FP32 like for like), timed
with torch's CUDA events.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnnbench.backends import available
from rnnbench.layers import RecurrentLayer

BASELINES = ("torch", "cudnn")


@dataclass(frozen=True)
class Config:
    """One model configuration and its data shape."""

    cell: str
    seq_len: int
    batch: int
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    dtype: str = "float32"

    def model_kwargs(self) -> dict:
        return dict(num_layers=self.num_layers, bidirectional=self.bidirectional, dtype=self.dtype)

    def flops(self, phase: str) -> int:
        """Matrix FLOPs of a whole pass (DESIGN.md's model), every layer and direction."""
        from rnnbench.cells import get_cell

        spec, D, T, B = get_cell(self.cell), 2 if self.bidirectional else 1, self.seq_len, self.batch
        total = 0
        for layer in range(self.num_layers):
            inputs = self.input_size if layer == 0 else D * self.hidden_size
            total += D * T * spec.flops_forward(B, inputs, self.hidden_size)
        return {"fwd": 1, "bwd": 2, "fwd+bwd": 3}[phase] * total


def require_torch():
    try:
        import torch
    except ImportError:
        raise RuntimeError("torch is not installed: pip install rnnbench[torch]") from None
    return torch


def require_cudnn():
    """torch, where it sees a GPU (the ``cudnn`` baseline)."""
    torch = require_torch()
    if not torch.cuda.is_available():
        raise RuntimeError("baseline 'cudnn' is torch on a GPU, and torch sees none (torch.cuda.is_available() "
                           "is False): it needs a CUDA build of torch on a machine with a GPU")
    return torch


def cudnn_status() -> str:
    """What the ``cudnn`` baseline runs on: cuDNN's version and the GPU, or why it cannot run."""
    try:
        torch = require_torch()
    except RuntimeError:
        return "unavailable: torch is not installed"
    if not torch.cuda.is_available():
        return "unavailable: torch sees no GPU"
    return f"cuDNN {torch.backends.cudnn.version()} on {torch.cuda.get_device_name()}"


def check_backend(name: str) -> None:
    if name not in available() + list(BASELINES):
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(available() + list(BASELINES))}")
    if name == "torch":
        require_torch()
    if name == "cudnn":
        require_cudnn()


def torch_recurrent_module(cell: str, input_size: int, hidden_size: int, **kwargs):
    """torch's nn.RNN / nn.LSTM / nn.GRU for an rnnbench cell name (``kwargs`` as torch takes them)."""
    from torch import nn

    cls = {"lstm": nn.LSTM, "gru": nn.GRU}.get(cell, nn.RNN)
    if cell.startswith("rnn_"):
        kwargs["nonlinearity"] = cell[4:]
    return cls(input_size, hidden_size, **kwargs)


def _full_bptt_only(baseline: str, kwargs: dict) -> None:
    if kwargs.get("checkpoint") is not None or kwargs.get("truncation") is not None:
        raise ValueError(f"the {baseline} baseline runs full BPTT only (no truncation or checkpointing)")


@dataclass
class Runner:
    """A model and its data; ``forward(grad)`` then ``backward(**kwargs)``."""

    config: Config
    backend: str
    seed: int = 0
    model: object = field(init=False)

    def __post_init__(self):
        check_backend(self.backend)
        c = self.config
        rng = np.random.default_rng(self.seed)
        self.x = rng.standard_normal((c.seq_len, c.batch, c.input_size)).astype(c.dtype)
        D = 2 if c.bidirectional else 1
        self.grad_output = rng.standard_normal((c.seq_len, c.batch, D * c.hidden_size)).astype(c.dtype)
        self.model = RecurrentLayer(c.cell, c.input_size, c.hidden_size, backend=
                                    "reference" if self.baseline else self.backend,
                                    seed=self.seed, **c.model_kwargs())
        if self.baseline:
            self._torch_setup()

    @property
    def baseline(self) -> bool:
        """Whether this runner is one of torch's (``BASELINES``) rather than an rnnbench model."""
        return self.backend in BASELINES

    def _torch_setup(self):
        torch = require_torch()
        c = self.config
        device = "cuda" if self.backend == "cudnn" else "cpu"
        if device == "cuda":  # FP32 like for like: no TF32 in cuDNN's products (torch's default uses it)
            torch.backends.cudnn.allow_tf32 = False
        self._module = torch_recurrent_module(c.cell, c.input_size, c.hidden_size, num_layers=c.num_layers,
                                              bidirectional=c.bidirectional, dtype=getattr(torch, c.dtype))
        self._module.load_state_dict({k: torch.from_numpy(v) for k, v in self.model.state_dict().items()})
        self._module = self._module.to(device)
        self._x = torch.from_numpy(self.x).to(device)
        self._go = torch.from_numpy(self.grad_output).to(device)
        self._out = None

    @property
    def clock(self) -> str:
        """How this runner's calls are timed (a key of ``timing.CLOCKS``): CUDA events for the cuda
        backend on a GPU (the simulator's events record no time) and torch's for cudnn, the host
        clock otherwise."""
        if self.backend == "cudnn":
            return "torch_cuda_event"
        if self.backend == "cuda":
            from numba import config

            if not config.ENABLE_CUDASIM:
                return "cuda_event"
        return "host"

    def forward(self, grad: bool = True, **kwargs):
        if not self.baseline:
            return self.model(self.x, grad=grad, **kwargs)
        _full_bptt_only(self.backend, kwargs)
        torch = require_torch()
        if grad:
            x = self._x.detach().requires_grad_()
            self._out, _ = self._module(x)
            return self._out
        with torch.inference_mode():
            return self._module(self._x)

    def backward(self, **kwargs):
        if not self.baseline:
            return self.model.backward(self.grad_output, **kwargs)
        _full_bptt_only(self.backend, kwargs)
        self._module.zero_grad(set_to_none=True)
        self._out.backward(self._go)
        return {name: p.grad for name, p in self._module.named_parameters()}

    def step(self, **kwargs):
        """Forward and backward: one training step's gradient."""
        self.forward(grad=True)
        return self.backward(**kwargs)
