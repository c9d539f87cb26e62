"""Timing that a noisy shared machine cannot fool: warm-up, repeats interleaved, robust statistics."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Stats:
    """Seconds over repeats: the median is the figure, the rest says how much to trust it."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    def columns(self) -> dict:
        """The DESIGN.md columns beside a ``time_s`` row."""
        q25, q75 = np.percentile(self.samples, [25, 75])
        return {"time_s_min": float(min(self.samples)), "time_s_max": float(max(self.samples)),
                "time_s_iqr": float(q75 - q25), "repeats": len(self.samples)}


def host_clock(run: Callable[[], object]) -> float:
    """Seconds ``run`` takes on the host's monotonic clock."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def cuda_event_clock(run: Callable[[], object]) -> float:
    """Seconds between two CUDA events recorded on the default stream around ``run``, once the
    device is idle: the device's span of the work ``run`` queued, whether or not ``run`` waits for
    it (a host clock would stop when an asynchronous call returns)."""
    from numba import cuda

    cuda.synchronize()
    start, end = cuda.event(), cuda.event()
    start.record()
    run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def torch_cuda_event_clock(run: Callable[[], object]) -> float:
    """Seconds between two of torch's CUDA events on its current stream around ``run`` (the
    ``cudnn`` baseline's work), once the device is idle."""
    import torch

    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


CLOCKS = {"host": host_clock, "cuda_event": cuda_event_clock, "torch_cuda_event": torch_cuda_event_clock}


@dataclass(frozen=True)
class Timed:
    """A thing to time: ``prepare`` runs untimed before each call of ``run``, which ``clock``
    times."""

    run: Callable[[], object]
    prepare: Callable[[], object] | None = None
    clock: Callable[[Callable[[], object]], float] = host_clock

    def once(self) -> float:
        if self.prepare is not None:
            self.prepare()
        return self.clock(self.run)


# Calls shorter than this (in the warm-up round) are timed after an untimed call of their own: the
# item before them in the round (another framework) leaves its cache contents and its threads'
# spinning behind, and a short call pays for them. Measured (2 cores, LSTM (100, 1, 32, 32) forward):
# rnnbench 0.09-0.11 ms alone, 0.14 interleaved, 0.10-0.11 settled; torch 0.23-0.24 / 0.26-0.27 /
# 0.24; forward+BPTT rnnbench 0.26-0.31 / 0.35-0.39 / 0.29-0.30, torch 0.57-0.61 / 0.59-0.61 /
# 0.57-0.59. At LSTM 512 / 16 / 25 (9-11 ms) all three within the machine's noise.
SETTLE_BELOW = 0.05


def time_interleaved(items: dict, repeats: int, warmup: int = 1) -> dict:
    """Time every item ``repeats`` times after ``warmup`` untimed rounds, round-robin, so that
    a slow spell of the machine hits every item alike; an item whose warm-up call took under
    SETTLE_BELOW seconds runs once untimed before each timed call. Returns {key: Stats}."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}")
    settle = dict.fromkeys(items, False)
    for _ in range(warmup):
        for key, item in items.items():
            settle[key] = item.once() < SETTLE_BELOW
    samples = {key: [] for key in items}
    for _ in range(repeats):
        for key, item in items.items():
            if settle[key]:
                item.once()
            samples[key].append(item.once())
    return {key: Stats(tuple(v)) for key, v in samples.items()}
