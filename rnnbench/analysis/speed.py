"""Speed: forward, backward and forward+backward times per backend, side by side in one run.

Every backend of one configuration is timed in the same round-robin (``time_interleaved``), so
ratios compare like with like; the first call (Numba compile or cache load) is reported apart as
``compile_s``; GFLOP/s come from DESIGN.md's FLOP model; and the ``gemm`` rows time numpy's
matrix product on exactly the shapes of the pass's matrix work: the rate those FLOPs could reach.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rnnbench.analysis.runners import Config, Runner, cudnn_status
from rnnbench.analysis.strategies import forward_kwargs, training_step
from rnnbench.analysis.timing import CLOCKS, Timed, time_interleaved
from rnnbench.cells import get_cell
from rnnbench.results import truncation_label


def base_row(config: Config, backend: str, experiment: str = "speed", truncation=None, **extra) -> dict:
    row = {"experiment": experiment, "cell": config.cell, "backend": backend, "dtype": config.dtype,
           "seq_len": config.seq_len, "batch": config.batch, "input_size": config.input_size,
           "hidden_size": config.hidden_size, "num_layers": config.num_layers,
           "bidirectional": config.bidirectional, "truncation": truncation_label(truncation)}
    row.update(extra)
    return row


def phase_items(runner: Runner, strategy: str, truncation, chunk) -> dict:
    """What each phase times, on the runner's clock; a backward alone is prepared by an untimed
    forward."""
    step = training_step(runner, strategy, truncation, chunk)
    clock = CLOCKS[runner.clock]
    items = {"fwd+bwd": Timed(step, clock=clock)}
    if strategy != "streaming":
        fwd = forward_kwargs(strategy, chunk)
        bwd = {} if truncation is None else {"truncation": truncation}
        if not runner.baseline:
            bwd["hidden"] = False
        # a forward alone runs as inference (torch: inference_mode), but for checkpointing,
        # whose forward is what keeps the states
        items["fwd"] = Timed(lambda: runner.forward(grad=strategy == "checkpoint", **fwd), clock=clock)
        items["bwd"] = Timed(lambda: runner.backward(**bwd), prepare=lambda: runner.forward(True, **fwd),
                             clock=clock)
    return items


def _numba_cache_counts() -> tuple[int, int]:
    """(cache hits, cache misses) of the cpu kernels so far in this process."""
    import sys

    module = sys.modules.get("rnnbench.backends.cpu")
    if module is None:
        return 0, 0
    hits = misses = 0
    for d in module.dispatchers():
        hits += sum(d.stats.cache_hits.values())
        misses += sum(d.stats.cache_misses.values())
    return hits, misses


def _device_columns(backend: str, phase: str) -> dict:
    """What a device's rows say beside their times: the cuda backend's recurrence ``path`` (of the
    timed passes), the cudnn baseline's cuDNN and GPU (``note``)."""
    if backend == "cuda":
        from rnnbench.backends.cuda import taken

        return {"path": taken(phase)}
    if backend == "cudnn":
        return {"note": cudnn_status() + ", TF32 off"}
    return {}


def measure_speed(config: Config, backends=("cpu",), repeats: int = 5, warmup: int = 1,
                  strategy: str = "full", truncation=None, chunk=None, threads: int | None = None,
                  seed: int = 0, gemm: bool = True) -> list[dict]:
    """Rows of ``time_s`` (with min, max, IQR), ``gflops``, ``time_per_step`` per backend and
    phase, ``compile_s`` per backend, and (``gemm``, where a host backend is timed) the GEMM-limit
    rows. The ``clock`` column says how each backend was timed (``Runner.clock``); the cuda
    backend's rows also say which ``path`` its recurrence took."""
    from rnnbench.runtime import get_num_threads, set_num_threads

    if threads is not None:
        set_num_threads(threads)
    threads = get_num_threads()
    if "torch" in backends:  # the same count on both sides, always
        import torch

        torch.set_num_threads(threads)
    runners = {b: Runner(config, b, seed) for b in backends}
    items = {}
    rows = []
    extra = dict(strategy=strategy, threads=threads)
    for b, runner in runners.items():
        phase = phase_items(runner, strategy, truncation, chunk)
        before = _numba_cache_counts()
        first = {p: item.once() for p, item in phase.items()}  # compile or cache load, and one run
        after = _numba_cache_counts()
        cache = "n/a" if b != "cpu" else (
            "miss" if after[1] > before[1] else "hit" if after[0] > before[0] else "warm")
        items.update({(b, p): item for p, item in phase.items()})
        rows.append((b, first, cache))
    stats = time_interleaved(items, repeats, warmup)
    out = []
    for b, first, cache in rows:
        overhead = sum(max(0.0, first[p] - stats[(b, p)].median) for p in first)
        clock = runners[b].clock
        out.append(base_row(config, b, truncation=truncation, **extra, phase="fwd+bwd",
                            metric="compile_s", value=overhead, unit="s", cache=cache, clock=clock))
        for p in first:
            st = stats[(b, p)]
            row = base_row(config, b, truncation=truncation, **extra, phase=p, clock=clock, **_device_columns(b, p))
            out.append(dict(row, metric="time_s", value=st.median, unit="s", **st.columns()))
            out.append(dict(row, metric="time_per_step", value=st.median / config.seq_len, unit="s"))
            out.append(dict(row, metric="gflops", value=config.flops(p) / st.median / 1e9, unit="GFLOP/s"))
    if gemm and set(backends) - {"cuda", "cudnn"}:  # numpy's rate is the limit of the host's backends only
        out += measure_gemm(config, repeats, list(rows[0][1]), threads)
    return out


def gemm_shapes(config: Config, phase: str) -> list[tuple[int, int, int, int]]:
    """(m, k, n, count) of every matrix product in a pass: the input projection, the recurrent
    product per step, and in backward the input and weight gradients."""
    G, H, T, B = get_cell(config.cell).gates, config.hidden_size, config.seq_len, config.batch
    D = 2 if config.bidirectional else 1
    shapes = []
    for layer in range(config.num_layers):
        inputs = config.input_size if layer == 0 else D * H
        fwd = [(T * B, inputs, G * H, D), (B, H, G * H, D * T)]
        bwd = [(T * B, G * H, inputs, D), (G * H, T * B, inputs, D), (G * H, T * B, H, D),
               (B, G * H, H, D * T)]
        shapes += {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}[phase]
    return shapes


def measure_gemm(config: Config, repeats: int, phases, threads: int) -> list[dict]:
    """numpy's matrix product on the pass's own shapes: the GFLOP/s its matrix work could reach."""
    rng = np.random.default_rng(0)
    seconds = {}
    for phase in phases:
        for m, k, n, _ in gemm_shapes(config, phase):
            if (m, k, n) not in seconds:
                a = rng.standard_normal((m, k)).astype(config.dtype)
                b = rng.standard_normal((k, n)).astype(config.dtype)
                out = np.empty((m, n), config.dtype)
                stats = time_interleaved({0: Timed(lambda: np.matmul(a, b, out=out))}, max(repeats, 5))
                seconds[(m, k, n)] = stats[0].median
    rows = []
    for phase in phases:
        total = sum(count * seconds[(m, k, n)] for m, k, n, count in gemm_shapes(config, phase))
        row = base_row(config, "gemm", phase=phase, threads=threads, strategy="full")
        rows.append(dict(row, metric="time_s", value=total, unit="s"))
        rows.append(dict(row, metric="gflops", value=config.flops(phase) / total / 1e9, unit="GFLOP/s"))
    return rows


def ratios(df: pd.DataFrame, baseline: str, metric: str = "time_s") -> pd.DataFrame:
    """``metric`` of each backend divided into the baseline's, per configuration and phase:
    above 1 means faster than the baseline (for times)."""
    keys = [c for c in ("cell", "dtype", "seq_len", "batch", "input_size", "hidden_size", "num_layers",
                        "bidirectional", "truncation", "strategy", "phase") if c in df]
    sel = df[df["metric"] == metric]
    table = sel.pivot_table(index=keys, columns="backend", values="value", aggfunc="median")
    if baseline not in table:
        raise ValueError(f"no {baseline!r} rows to compare against; backends: {list(table.columns)}")
    return table.rdiv(table[baseline], axis=0).drop(columns=[baseline])


def fit_seq_len(df: pd.DataFrame) -> pd.DataFrame:
    """Time against sequence length, per configuration: the fitted time per step (slope), the
    fixed cost (intercept) and how far the curve is from that line (largest relative residual)."""
    keys = [c for c in ("cell", "backend", "dtype", "batch", "input_size", "hidden_size", "num_layers",
                        "bidirectional", "truncation", "strategy", "phase") if c in df]
    rows = []
    for key, grp in df[df["metric"] == "time_s"].groupby(keys, dropna=False):
        grp = grp.sort_values("seq_len")
        if grp["seq_len"].nunique() < 2:
            continue
        T, t = grp["seq_len"].to_numpy(float), grp["value"].to_numpy(float)
        slope, intercept = np.polyfit(T, t, 1)
        residual = float(np.max(np.abs(t - (slope * T + intercept)) / t))
        row = dict(zip(keys, key), experiment="speed_fit")
        rows += [dict(row, metric="time_per_step_fit", value=slope, unit="s"),
                 dict(row, metric="time_intercept", value=intercept, unit="s"),
                 dict(row, metric="nonlinearity", value=residual, unit="ratio")]
    return pd.DataFrame(rows)

