"""Sweeps: a grid of tasks, each a configuration and the experiment that measures it.

A task is a plain, picklable value with a canonical key; running it returns tidy rows. The
in-process runner writes each task's rows to the results folder as soon as it finishes, skips
tasks the folder already holds (``--resume``), and records a failing task instead of stopping.
"""
from __future__ import annotations

import hashlib
import json
import socket
import traceback
from dataclasses import dataclass
from pathlib import Path

from rnnbench.analysis.runners import Config


def _speed(p):
    from rnnbench.analysis.speed import measure_speed

    return measure_speed(_config(p), backends=tuple(p["backends"]), repeats=p["repeats"],
                         warmup=p["warmup"], strategy=p["strategy"], truncation=_trunc(p["truncation"]),
                         threads=p.get("threads"))


def _memory(p):
    from rnnbench.analysis.memory import measure_memory

    return measure_memory(_config(p), p["backend"], p["strategy"], chunk=p.get("chunk"),
                          truncation=_trunc(p.get("truncation")))


def _decay(p):
    from rnnbench.analysis.gradients import decay_experiment

    return decay_experiment(p["cell"], p["seq_len"], p["hidden_size"], p["scale"], init=p["init"],
                            batch=p["batch"], seeds=tuple(p["seeds"]), backend=p["backend"])


def _jacobian(p):
    from rnnbench.analysis.gradients import jacobian_experiment

    return jacobian_experiment(p["cell"], p["seq_len"], p["hidden_size"], p["scale"], init=p["init"],
                               batch=p["batch"], seed=p["seed"], backend=p["backend"])


def _truncation(p):
    from rnnbench.analysis.truncation import truncation_experiment

    return truncation_experiment(_config(p), p["ks"], backend=p["backend"], repeats=p["repeats"])


def _train(p, checkpoint=None):
    from rnnbench.train import train_run

    return train_run(**p, checkpoint=checkpoint)


KINDS = {"train": _train, "speed": _speed, "memory": _memory, "decay": _decay, "jacobian": _jacobian,
         "truncation": _truncation}
CONFIG_FIELDS = ("cell", "seq_len", "batch", "input_size", "hidden_size", "num_layers", "bidirectional", "dtype")


def _config(p) -> Config:
    return Config(**{f: p[f] for f in CONFIG_FIELDS})


def _trunc(t):
    return tuple(t) if isinstance(t, list) else t


@dataclass(frozen=True)
class Task:
    """One experiment on one configuration; ``params`` is canonical JSON."""

    kind: str
    params: str

    @classmethod
    def make(cls, kind: str, **params) -> "Task":
        if kind not in KINDS:
            raise ValueError(f"unknown task kind {kind!r}")
        return cls(kind, json.dumps(params, sort_keys=True))

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.params}"

    def label(self) -> str:
        """A short description for progress bars."""
        p = json.loads(self.params)
        parts = [p.get("task", ""), p.get("cell", "")] + [
            f"{k}={p[k]}" for k in ("seq_len", "hidden_size", "scale", "strategy", "backend") if k in p]
        return f"{self.kind} " + " ".join(str(x) for x in parts if x != "")

    def run(self, worker: str = "in-process", checkpoints: str | None = None) -> list[dict]:
        """The experiment's rows, each saying where it was measured. Training saves its progress
        under the folder ``checkpoints`` (when given) and resumes from it."""
        from rnnbench.runtime import pinned_threads

        where = {"host": socket.gethostname(), "cpu": _cpu_model(), "worker": worker}
        params = json.loads(self.params)
        if self.kind in DETERMINISTIC:  # the same bits in-process and on any worker
            with pinned_threads(1):
                rows = KINDS[self.kind](params)
        elif self.kind == "train":
            rows = _train(params, checkpoints and str(Path(checkpoints) / f"{self.digest}.pkl"))
        else:
            rows = KINDS[self.kind](params)
        return [dict(row, **where) for row in rows]

    @property
    def digest(self) -> str:
        """A short file-name-safe name of the task."""
        return hashlib.sha1(self.key.encode()).hexdigest()[:16]

    @property
    def resource(self) -> str:
        """The worker resource the task asks for on a cluster: timings never share a core."""
        return "timing" if self.kind in TIMED else "gradients"


TIMED = {"speed", "memory", "truncation", "train"}  # truncation and training also time themselves
DETERMINISTIC = {"decay", "jacobian", "truncation"}  # gradient experiments, run on one thread


def _cpu_model() -> str:
    from rnnbench.results import cpu_info

    return cpu_info()["model"]


def run_in_process(tasks, folder, progress=None) -> int:
    """Run ``tasks`` one after another into ``folder``; returns how many failed.

    ``progress``: a callable(task, done_count) told before each task (e.g. a progress bar).
    """
    failures = 0
    for i, task in enumerate(tasks):
        if task.key in folder.done:
            continue
        if progress is not None:
            progress(task, i)
        try:
            rows = task.run(checkpoints=str(folder.checkpoints))
        except Exception as e:  # recorded, and the sweep goes on
            failures += 1
            folder.fail(task.key, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
            continue
        folder.append(rows, task.key)
    return failures
