"""Backends by name. Each runs one layer in one direction (see ``base.Backend``)."""
from __future__ import annotations

import importlib

from rnnbench.backends.base import Backend

# name -> (module, class); imported on first use so that importing rnnbench compiles nothing.
_BACKENDS = {
    "reference": ("rnnbench.backends.reference", "ReferenceBackend"),
    "cpu": ("rnnbench.backends.cpu", "CpuBackend"),
    "cuda": ("rnnbench.backends.cuda", "CudaBackend"),  # needs a GPU or NUMBA_ENABLE_CUDASIM=1
}
_INSTANCES: dict[str, Backend] = {}


def available() -> list[str]:
    return list(_BACKENDS)


def get_backend(name: str) -> Backend:
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available backends: {', '.join(_BACKENDS)}")
    if name not in _INSTANCES:
        module, cls = _BACKENDS[name]
        _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[name]
