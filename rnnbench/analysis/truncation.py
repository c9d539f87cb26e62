"""What truncation costs and saves: gradient fidelity against full BPTT, memory and time per k.

The loss is on every step (many-to-many, as in language modelling), where truncation matters:
each step's loss reaches at most k steps back. For every k: the cosine similarity and relative
error of each parameter's truncated gradient against the full one (and of all parameters as
one vector), the share of the full gradient's norm it has, and the peak memory and time of a
streaming training step with chunks of k. k >= T gives full BPTT bit for bit.
"""
from __future__ import annotations

import numpy as np

from rnnbench.analysis.memory import measure_memory
from rnnbench.analysis.runners import Config, Runner
from rnnbench.analysis.speed import base_row
from rnnbench.analysis.strategies import training_step
from rnnbench.analysis.timing import CLOCKS, Timed, time_interleaved


def compare(truncated: dict, full: dict, names) -> dict[str, dict]:
    """Per parameter (and "all"): cosine, relative error and norm share of truncated vs full."""
    out = {}
    for name in list(names) + ["all"]:
        if name == "all":
            a = np.concatenate([truncated[n].ravel() for n in names])
            b = np.concatenate([full[n].ravel() for n in names])
        else:
            a, b = truncated[name].ravel(), full[name].ravel()
        nb = np.linalg.norm(b)
        na = np.linalg.norm(a)
        # clipped to [-1, 1]: a @ b and na * nb round differently, even for a == b
        out[name] = {"grad_cosine": float(np.clip(a @ b / (na * nb), -1, 1)) if na * nb > 0 else float("nan"),
                     "grad_rel_error": float(np.linalg.norm(a - b) / nb) if nb > 0 else float("nan"),
                     "grad_norm_share": float(na / nb) if nb > 0 else float("nan")}
    return out


def truncation_experiment(config: Config, ks, backend: str = "cpu", seed: int = 0, repeats: int = 3,
                          cost: bool = True) -> list[dict]:
    """Rows of ``grad_cosine``, ``grad_rel_error``, ``grad_norm_share`` per k and parameter, and
    (``cost``) ``peak_bytes`` / ``time_s`` of a streaming step per k beside full BPTT's."""
    runner = Runner(config, backend, seed)
    m = runner.model
    m(runner.x)
    full = m.backward(runner.grad_output, hidden=False)
    names = [n for n, _ in m.named_parameters()]
    rows = []
    for k in ks:
        g = m.backward(runner.grad_output, truncation=k, hidden=False)
        for name, metrics in compare(g, full, names).items():
            row = base_row(config, backend, experiment="truncation", truncation=k, k=k, param=name,
                           strategy="full")
            rows += [dict(row, metric=metric, value=value, unit="") for metric, value in metrics.items()]
    if cost:
        rows += truncation_cost(config, ks, backend, seed, repeats)
    return rows


def truncation_cost(config: Config, ks, backend="cpu", seed=0, repeats=3) -> list[dict]:
    """Peak memory and time of a training step: full BPTT, and streaming with chunks of each k."""
    plans = [("full", None)] + [("streaming", k) for k in ks if k < config.seq_len]
    rows = []
    for strategy, k in plans:
        rows += measure_memory(config, backend, strategy, chunk=k, seed=seed)
    runner = Runner(config, backend, seed)
    clock = CLOCKS[runner.clock]
    items = {(s, k): Timed(training_step(runner, s, chunk=k), clock=clock) for s, k in plans}
    for (strategy, k), stats in time_interleaved(items, repeats).items():
        row = base_row(config, backend, experiment="memory", truncation=k, k=k, strategy=strategy,
                       phase="fwd+bwd", chunk=k, clock=runner.clock)
        rows.append(dict(row, metric="time_s", value=stats.median, unit="s", **stats.columns()))
    return rows
