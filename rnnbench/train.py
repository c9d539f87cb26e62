"""The training loop: a model learns a long-dependency task, and its rows say how well and how fast.

Per run (task, cell, sequence length, optimizer, clipping, truncation, scale, seed): ``loss`` every
step (training batch) and ``eval_loss`` every ``eval_every`` steps on a fixed held-out set, with
``step``; ``grad_norm`` of dL/dh_k at distances k (``distance``) on the held-out set, tracked
alongside; ``baseline_loss`` (the memoryless predictor's; series tasks add ``autoreg_loss``, a
classical AR(tau) fit), ``final_loss`` (eval loss at the end), ``steps_per_s`` and, with torch
installed, ``torch_steps_per_s`` of the same model in torch. A run whose loss or gradient stops being a
finite number ends there with a ``diverged`` row (its step, the gradient norm) and a NaN final loss.

Series tasks (``ar``, ``sunspots``, ``co2``) train on windows of tau = ``seq_len`` values, or, with
``stream=C``, by truncated BPTT over the whole series as seeds 000/001 do: ``batch`` contiguous
streams read C steps per optimizer step, the state carried into the next chunk as plain values.

With ``checkpoint`` (a file path) the run saves its whole state at every evaluation and a rerun
resumes from the last one, bit for bit as if it had not stopped.
"""
from __future__ import annotations

import math
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rnnbench import optim, tasks
from rnnbench.analysis.gradients import recurrent_weight
from rnnbench.analysis.runners import torch_recurrent_module
from rnnbench.bptt import clip_grad_norm, parse_truncation
from rnnbench.models import SequenceModel
from rnnbench.results import truncation_label

OPTIMIZERS = {"sgd": optim.SGD, "rmsprop": optim.RMSprop, "adam": optim.Adam}
# generated tasks: (batch maker, input size, output size, many_to_one, loss, memoryless baseline(T))
GENERATED = {
    "adding": (tasks.adding_problem, 2, 1, True, "mse", lambda T: tasks.ADDING_BASELINE),
    "copy": (tasks.copy_memory, 10, 10, False, "cross_entropy", tasks.copy_baseline),
}
TASKS = (*GENERATED, *tasks.SERIES)


@dataclass
class Problem:
    """What a training run reads: shapes, training batches, the held-out set and its baselines."""

    n_in: int
    n_out: int
    many_to_one: bool
    loss: str
    sample: Callable  # (batch, rng) -> (x, target): a training batch (stream mode: for torch's timing)
    held_out: tuple  # (x, target)
    baselines: dict  # metric -> loss on the held-out set
    prefix: np.ndarray | None = None  # stream mode: the series read (no gradient) before the held-out part
    stream: "Stream | None" = None


@dataclass
class Stream:
    """``batch`` contiguous streams of the training part, read ``chunk`` steps at a time; the state
    at a chunk's end starts the next one (the gradient is cut there); the end starts over from zero."""

    x: np.ndarray  # (L, B, 1)
    y: np.ndarray
    chunk: int
    pos: int = 0
    state: object = field(default=None, repr=False)

    def next(self):
        if self.pos + self.chunk > len(self.x):
            self.pos, self.state = 0, None
        s = slice(self.pos, self.pos + self.chunk)
        self.pos += self.chunk
        return self.x[s], self.y[s]


def check_task(name: str) -> None:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")


def make_problem(task: str, seq_len: int, seed: int = 0, batch: int = 32, eval_batch: int = 500,
                 stream: int | None = None) -> Problem:
    check_task(task)
    if task in GENERATED:
        if stream is not None:
            raise ValueError(f"stream mode reads a series ({', '.join(tasks.SERIES)}); {task!r} is not one")
        make, n_in, n_out, many_to_one, loss, baseline = GENERATED[task]
        held_out = make(seq_len, eval_batch, np.random.default_rng(10_000 + seed))
        return Problem(n_in, n_out, many_to_one, loss, lambda b, rng: make(seq_len, b, rng), held_out,
                       {"baseline_loss": baseline(seq_len)})
    series, n_train = tasks.standardise(tasks.load_series(task, seed))
    baselines = {"baseline_loss": float(np.mean(series[n_train:] ** 2))}  # always the training mean, 0
    try:
        baselines["autoreg_loss"] = tasks.autoreg_mse(series, n_train, seq_len)
    except ImportError:
        if task != "ar":
            raise
    s = series.astype(np.float32)
    if stream is None:
        x, y = tasks.ar_windows(s, seq_len)  # window j predicts s[j + seq_len]
        n_fit = n_train - seq_len  # the windows whose target lies in the training part
        return Problem(1, 1, True, "mse", lambda b, rng: _pick(x, y, rng.integers(0, n_fit, b)),
                       (x[:, n_fit:], y[n_fit:]), baselines)
    length = (n_train - 1) // batch
    if length < stream:
        raise ValueError(f"the {task} series' training part ({n_train} values) cannot hold {batch} streams "
                         f"of one {stream}-step chunk")
    index = np.arange(length)[:, None] + length * np.arange(batch)[None, :]  # (L, B)
    st = Stream(s[index][:, :, None], s[index + 1][:, :, None], stream)

    def sample(b, rng):
        start = rng.integers(0, length - stream + 1)
        return st.x[start : start + stream, :b], st.y[start : start + stream, :b]

    held_out = (s[n_train - 1 : -1, None, None], s[n_train:, None, None])
    return Problem(1, 1, False, "mse", sample, held_out, baselines, s[: n_train - 1, None, None], st)


def _pick(x, y, j):
    return x[:, j], y[j]


# Steps left out of ``steps_per_s`` (and of torch's rate) at the start of a process: the first load
# the kernels from Numba's cache or compile them (seconds on an empty cache) and fault in the tape.
WARMUP_STEPS = 2


def train_run(task: str, cell: str, seq_len: int, hidden_size: int = 32, optimizer: str = "adam",
              lr: float = 1e-2, clip: float | None = 1.0, truncation=None, scale: float | None = None,
              stream: int | None = None, steps: int = 1500, batch: int = 32, eval_every: int = 100,
              eval_batch: int = 500, seed: int = 0, backend: str = "cpu", checkpoint=None) -> list[dict]:
    """Train one model from scratch (or from ``checkpoint``); returns its tidy rows.

    ``scale``: W_hh set to ``scale`` times an orthogonal matrix per gate (above 1: a run that
    explodes); ``stream``: the chunk length of stream mode (series tasks)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr!r}")
    parsed = parse_truncation(truncation)
    if stream is not None and parsed is not None and parsed[1] > stream:
        raise ValueError(f"truncation {truncation_label(parsed)} is longer than the {stream}-step chunk it streams")
    problem = make_problem(task, seq_len, seed, batch, eval_batch, stream)
    model = SequenceModel(cell, problem.n_in, hidden_size, problem.n_out, many_to_one=problem.many_to_one,
                          loss=problem.loss, backend=backend, seed=seed)
    if scale is not None:
        init_rng = np.random.default_rng(seed)
        for name, p in model.rnn.named_parameters():
            if name.startswith("weight_hh"):
                p[...] = recurrent_weight(cell, hidden_size, scale, "orthogonal", init_rng)
    opt = OPTIMIZERS[optimizer](model, lr=lr)
    base = {"experiment": "train", "task": task, "cell": cell, "backend": backend, "dtype": "float32",
            "seq_len": seq_len, "batch": batch, "input_size": problem.n_in, "hidden_size": hidden_size,
            "num_layers": 1, "bidirectional": False, "truncation": truncation_label(parsed),
            "optimizer": optimizer, "lr": lr, "clip": clip or 0.0, "scale": scale, "chunk": stream, "seed": seed}
    run = _Run(rows=[dict(base, metric=m, value=v, unit="") for m, v in problem.baselines.items()],
               rng=np.random.default_rng(seed))
    path = Path(checkpoint) if checkpoint else None
    resumed = path is not None and path.exists()
    if resumed:  # the checkpoint was saved right after evaluating run.step
        run.restore(path, model, opt, problem.stream)
    first = run.step
    for step in range(first, steps + 1):
        if (step % eval_every == 0 or step == steps) and not (resumed and step == run.step):
            run.final = _evaluate(model, problem, step, base, run.rows)
            if path is not None and step < steps:
                run.step = step
                run.save(path, model, opt, problem.stream)
        if step == steps:
            break
        st = problem.stream
        x, y = st.next() if st else problem.sample(batch, run.rng)
        start = time.perf_counter()
        _, h_n = model(x, st.state if st else None)
        value = model.loss(y)
        g = model.backward(truncation=truncation) if math.isfinite(value) else None
        # the norm before clipping (no clipping without clip); non-finite: torch would go on with NaN weights
        norm = clip_grad_norm(g, clip or math.inf) if g is not None else math.nan
        if not math.isfinite(norm):
            run.rows.append(dict(base, metric="diverged", step=step, value=norm, unit="gradient norm"))
            run.final = float("nan")
            break
        opt.step(g)
        if step - first >= WARMUP_STEPS:
            run.elapsed += time.perf_counter() - start
            run.done += 1
        if st:
            st.state = h_n
        run.rows.append(dict(base, metric="loss", step=step, value=value, unit=""))
    rows = run.rows + [dict(base, metric="final_loss", value=run.final, unit=""),
                       dict(base, metric="steps_per_s", value=run.done / run.elapsed if run.elapsed else float("nan"),
                            unit="1/s")]
    torch_rate = torch_steps_per_s(model, problem, batch, optimizer, lr, clip, run.rng)
    if torch_rate is not None:
        rows.append(dict(base, metric="torch_steps_per_s", value=torch_rate, unit="1/s",
                         note="torch: same model, batch shapes and optimizer; full BPTT"))
    if path is not None:
        path.unlink(missing_ok=True)
    return rows


@dataclass
class _Run:
    """A run's progress: what a checkpoint holds besides the model and the optimizer."""

    rows: list
    rng: np.random.Generator
    step: int = 0
    done: int = 0  # optimizer steps timed (elapsed): those after a process's WARMUP_STEPS
    elapsed: float = 0.0
    final: float = float("nan")

    def save(self, path: Path, model, opt, stream) -> None:
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": self.rng.bit_generator.state,
                 "rows": self.rows, "step": self.step, "done": self.done, "elapsed": self.elapsed, "final": self.final,
                 "stream": (stream.pos, stream.state) if stream else None}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(state, f)
        os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint whole

    def restore(self, path: Path, model, opt, stream) -> None:
        with open(path, "rb") as f:
            state = pickle.load(f)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.rows, self.step, self.done, self.elapsed = state["rows"], state["step"], state["done"], state["elapsed"]
        self.final = state["final"]
        if stream:
            stream.pos, stream.state = state["stream"]


def torch_steps_per_s(model, problem: Problem, batch, optimizer, lr, clip, rng, steps: int = 30):
    """Training steps per second of the same model in torch (when installed), the baseline."""
    try:
        import torch
    except ImportError:
        return None
    from torch import nn

    from rnnbench.runtime import get_num_threads

    torch.set_num_threads(get_num_threads())  # like for like: the thread count rnnbench ran on

    rnn = model.rnn
    trnn = torch_recurrent_module(rnn.cell.name, rnn.input_size, rnn.hidden_size)
    head = nn.Linear(rnn.hidden_size, model.output_size)
    params = list(trnn.parameters()) + list(head.parameters())
    opt = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[optimizer](params, lr=lr)
    batches = [problem.sample(batch, rng) for _ in range(steps + WARMUP_STEPS)]
    elapsed = 0.0
    for i, (x, y) in enumerate(batches):
        start = time.perf_counter()
        out, _ = trnn(torch.from_numpy(np.ascontiguousarray(x)))
        pred = head(out[-1] if model.many_to_one else out)
        if model.loss_name == "mse":
            loss = nn.functional.mse_loss(pred, torch.from_numpy(np.ascontiguousarray(y)))
        else:
            loss = nn.functional.cross_entropy(pred.reshape(-1, model.output_size), torch.from_numpy(y).reshape(-1))
        opt.zero_grad()
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        if i >= WARMUP_STEPS:
            elapsed += time.perf_counter() - start
    return steps / elapsed


def _evaluate(model, problem: Problem, step, base, rows) -> float:
    """Held-out loss, and ||dL/dh_k|| of that loss at a few distances k from the last step."""
    x, y = problem.held_out
    with np.errstate(all="ignore"):
        state = None
        if problem.prefix is not None:  # stream mode: the held-out part continues the series
            _, state = model(problem.prefix, grad=False)
        model(x, state)
        value = model.loss(y)
    rows.append(dict(base, metric="eval_loss", step=step, value=value, unit=""))
    if not math.isfinite(value):  # the held-out forward overflowed: no gradient to measure
        return value
    hidden = model.backward(hidden=True)["hidden"][0]  # (T, B, H)
    T = hidden.shape[0]
    for k in sorted({0, T // 4, T // 2, T - 1}):
        norm = float(np.linalg.norm(hidden[T - 1 - k], axis=1).mean())
        rows.append(dict(base, metric="grad_norm", step=step, distance=k, value=norm, unit=""))
    return value
