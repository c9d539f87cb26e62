"""The training loop: a model learns a long-dependency task, and its rows say how well and how fast.

Per run (task, cell, sequence length, optimizer, clipping, truncation, seed): ``loss`` every step
(training batch) and ``eval_loss`` every ``eval_every`` steps on a fixed held-out set, with
``step``; ``grad_norm`` of dL/dh_k at distances k (``distance``) on the held-out set, tracked
alongside; and ``baseline_loss`` (the memoryless predictor's), ``final_loss`` (eval loss at the
end) and ``steps_per_s``.
"""
from __future__ import annotations

import time

import numpy as np

from rnnbench import optim, tasks
from rnnbench.analysis.runners import torch_recurrent_module
from rnnbench.bptt import clip_grad_norm, parse_truncation
from rnnbench.models import SequenceModel
from rnnbench.results import truncation_label

OPTIMIZERS = {"sgd": optim.SGD, "rmsprop": optim.RMSprop, "adam": optim.Adam}


def _ar(T, B, rng):
    series = tasks.ar_series(T + B, rng=rng)
    x, y = tasks.ar_windows(series, T)
    return x[:, :B], y[:B]


# task: (batch maker, input size, output size, many_to_one, loss, baseline(T, eval target))
TASKS = {
    "adding": (tasks.adding_problem, 2, 1, True, "mse", lambda T, y: tasks.ADDING_BASELINE),
    "copy": (tasks.copy_memory, 10, 10, False, "cross_entropy", lambda T, y: tasks.copy_baseline(T)),
    "ar": (_ar, 1, 1, True, "mse", lambda T, y: float(np.var(y))),
}


def check_task(name: str):
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def train_run(task: str, cell: str, seq_len: int, hidden_size: int = 32, optimizer: str = "adam",
              lr: float = 1e-2, clip: float | None = 1.0, truncation=None, steps: int = 1500, batch: int = 32,
              eval_every: int = 100, eval_batch: int = 500, seed: int = 0, backend: str = "cpu") -> list[dict]:
    """Train one model from scratch; returns its tidy rows."""
    make, n_in, n_out, many_to_one, loss, baseline = check_task(task)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    parsed = parse_truncation(truncation)
    rng = np.random.default_rng(seed)
    x_eval, y_eval = make(seq_len, eval_batch, np.random.default_rng(10_000 + seed))
    model = SequenceModel(cell, n_in, hidden_size, n_out, many_to_one=many_to_one, loss=loss,
                          backend=backend, seed=seed)
    opt = OPTIMIZERS[optimizer](model, lr=lr)
    base = {"experiment": "train", "cell": cell, "backend": backend, "dtype": "float32", "seq_len": seq_len,
            "batch": batch, "input_size": n_in, "hidden_size": hidden_size, "num_layers": 1,
            "bidirectional": False, "truncation": truncation_label(parsed),
            "seed": seed, "note": f"task={task} optimizer={optimizer} lr={lr} clip={clip}"}
    rows = [dict(base, metric="baseline_loss", value=float(baseline(seq_len, y_eval)), unit="")]
    elapsed = 0.0
    final = float("nan")
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            final = _evaluate(model, x_eval, y_eval, step, base, rows)
        if step == steps:
            break
        x, y = make(seq_len, batch, rng)
        start = time.perf_counter()
        model(x)
        value = model.loss(y)
        g = model.backward(truncation=truncation)
        if clip:
            clip_grad_norm(g, clip)
        opt.step(g)
        elapsed += time.perf_counter() - start
        rows.append(dict(base, metric="loss", step=step, value=value, unit=""))
    rows.append(dict(base, metric="final_loss", value=final, unit=""))
    rows.append(dict(base, metric="steps_per_s", value=steps / elapsed if elapsed else float("nan"),
                     unit="1/s"))
    torch_rate = torch_steps_per_s(model, make, seq_len, batch, optimizer, lr, clip, rng)
    if torch_rate is not None:
        rows.append(dict(base, metric="torch_steps_per_s", value=torch_rate, unit="1/s",
                         note=base["note"] + " (torch: same model, task, batch and optimizer; full BPTT)"))
    return rows


def torch_steps_per_s(model, make, seq_len, batch, optimizer, lr, clip, rng, steps: int = 30):
    """Training steps per second of the same model in torch (when installed), the baseline."""
    try:
        import torch
    except ImportError:
        return None
    from torch import nn

    rnn = model.rnn
    trnn = torch_recurrent_module(rnn.cell.name, rnn.input_size, rnn.hidden_size)
    head = nn.Linear(rnn.hidden_size, model.output_size)
    params = list(trnn.parameters()) + list(head.parameters())
    opt = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[optimizer](params, lr=lr)
    batches = [make(seq_len, batch, rng) for _ in range(steps + 2)]
    elapsed = 0.0
    for i, (x, y) in enumerate(batches):
        start = time.perf_counter()
        out, _ = trnn(torch.from_numpy(x))
        pred = head(out[-1] if model.many_to_one else out)
        if model.loss_name == "mse":
            loss = nn.functional.mse_loss(pred, torch.from_numpy(y))
        else:
            loss = nn.functional.cross_entropy(pred.reshape(-1, model.output_size), torch.from_numpy(y).reshape(-1))
        opt.zero_grad()
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        if i >= 2:  # two warm-up steps
            elapsed += time.perf_counter() - start
    return steps / elapsed


def _evaluate(model, x, y, step, base, rows) -> float:
    """Held-out loss, and ||dL/dh_k|| of that loss at a few distances k from the last step."""
    with np.errstate(all="ignore"):
        model(x)
        value = model.loss(y)
        hidden = model.backward(hidden=True)["hidden"][0]  # (T, B, H)
    rows.append(dict(base, metric="eval_loss", step=step, value=value, unit=""))
    T = hidden.shape[0]
    for k in sorted({0, T // 4, T // 2, T - 1}):
        norm = float(np.linalg.norm(hidden[T - 1 - k], axis=1).mean())
        rows.append(dict(base, metric="grad_norm", step=step, distance=k, value=norm, unit=""))
    return value
