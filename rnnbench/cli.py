"""The rnnbench command line: run, gradients, report, compare, info.

Sweeping commands expand their options (flags, or a TOML file with the same names) into tasks,
run them with a progress bar, write each task's rows the moment it finishes, and print a table.
Bad input is a usage error (exit code 2) that names the problem.
"""
from __future__ import annotations

import datetime
import importlib.util
import itertools
import json
import os
import re
import sys
from pathlib import Path

import click

from rnnbench.cells import CELLS
from rnnbench.checks import DTYPES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


# --- option parsing ------------------------------------------------------------------------------

def _split(value) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _positive_ints(name, value, upper=10**7) -> list[int]:
    out = []
    for v in _split(value):
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise click.UsageError(f"{name}: {v!r} is not an integer") from None
        if not 1 <= n <= upper:
            raise click.UsageError(f"{name}: {n} is out of range (1 to {upper})")
        out.append(n)
    return out


def _floats(name, value) -> list[float]:
    try:
        out = [float(v) for v in _split(value)]
    except (TypeError, ValueError):
        raise click.UsageError(f"{name}: expected numbers, got {value!r}") from None
    if any(not (0 <= v < 1e6) for v in out):
        raise click.UsageError(f"{name}: values must be in [0, 1e6); got {value!r}")
    return out


def _choices(name, value, known) -> list[str]:
    out = _split(value)
    for v in out:
        if v not in known:
            raise click.UsageError(f"unknown {name} {v!r}; choose from {', '.join(known)}")
    return out


def _truncations(value) -> list:
    """"full", "k" or "k1:k2" -> None, k or [k1, k2] (JSON-friendly)."""
    out = []
    for v in map(str, _split(value)):
        if v == "full":
            out.append(None)
            continue
        parts = v.split(":")
        if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) >= 1 for p in parts):
            raise click.UsageError(f"truncation {v!r}: use full, k or k1:k2 with positive integers")
        k = [int(p) for p in parts]
        if len(k) == 2 and k[0] > k[1]:
            raise click.UsageError(f"truncation {v!r}: needs k1 <= k2")
        out.append(k[0] if len(k) == 1 or k[0] == k[1] else k)
    return out


def _backends(value) -> list[str]:
    from rnnbench.analysis.runners import BASELINES
    from rnnbench.backends import available

    out = _choices("backend", value, available() + list(BASELINES))
    if {"torch", "cudnn"} & set(out) and not torch_installed():
        raise click.UsageError("torch is not installed: pip install rnnbench[torch]")
    if "cudnn" in out:
        from rnnbench.analysis.runners import require_cudnn

        try:
            require_cudnn()
        except RuntimeError as e:
            raise click.UsageError(str(e)) from None
    if "cuda" in out:
        from rnnbench.backends.cuda import gpu_or_simulator

        try:
            gpu_or_simulator()
        except RuntimeError as e:
            raise click.UsageError(str(e)) from None
    return out


def _array_backend(value) -> str:
    """One of rnnbench's own backends (cpu, reference, cuda), checked as ``--backends`` is."""
    from rnnbench.backends import available

    names = _choices("backend", value, available())
    if len(names) != 1:
        raise click.UsageError(f"--backend takes one backend; got {value!r}")
    return _backends(names[0])[0]


def read_config(path, section: str, allowed: dict) -> dict:
    """A TOML sweep file's [section] (or top level): known keys only, each of the right type;
    errors name the key and its line."""
    text = Path(path).read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise click.UsageError(f"{path}: not valid TOML: {e}") from None
    data = data.get(section, data)

    def line_of(key):
        m = re.search(rf"^[ \t]*{re.escape(key)}[ \t]*=", text, re.M)
        return text[: m.start()].count("\n") + 1 if m else "?"

    for key, value in data.items():
        if key not in allowed:
            raise click.UsageError(f"{path}, line {line_of(key)}: unknown key {key!r}; "
                                   f"known keys: {', '.join(sorted(allowed))}")
        types = allowed[key]
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, types) and not (isinstance(v, bool) and bool not in types) for v in items):
            names = "/".join(t.__name__ for t in types)
            raise click.UsageError(f"{path}, line {line_of(key)}: {key} must be {names} "
                                   f"(or a list of them); got {value!r}")
    return data


def _default_folder(kind: str) -> Path:
    return Path("results") / f"{kind}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"


# --- running a sweep -----------------------------------------------------------------------------

def sweep_options(section: str):
    """The options every sweeping command shares: config file, output folder, resume, output
    style, and where to run (in-process, --workers, --scheduler)."""
    options = [
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                     help=f"a TOML file with the same keys (a [{section}] table or top level)"),
        click.option("-o", "--output", "out", type=click.Path(file_okay=False), help="results folder"),
        click.option("--resume", is_flag=True, help="continue a folder, skipping what it holds"),
        click.option("--quiet", is_flag=True, help="no progress bar or tables"),
        click.option("--json", "as_json", is_flag=True, help="print a JSON summary instead of tables"),
        click.option("--workers", type=int, help="run on an embedded Dask cluster of N worker processes"),
        click.option("--scheduler", help="run on an existing Dask cluster: tcp://host:port or a scheduler file"),
    ]

    def wrap(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return wrap


PIPED_WIDTH = 200  # columns of the tables printed into a log, a pipe or CI


def _console():
    """The console of the tables on stdout. rich lays them out in 80 columns where stdout is not a
    terminal, which cut a results table's values short in a log; there it takes PIPED_WIDTH
    (COLUMNS, where set, still decides). A terminal too narrow wraps a value (``rich_table``)."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=PIPED_WIDTH)
    return console


def _executor(workers, scheduler):
    """A context manager giving the function that runs tasks into a folder."""
    import contextlib

    from rnnbench.sweeps import run_in_process

    if workers is None and scheduler is None:
        return contextlib.nullcontext(run_in_process)
    if workers is not None and scheduler is not None:
        raise click.UsageError("give --workers or --scheduler, not both")
    if workers is not None and workers < 1:
        raise click.UsageError(f"--workers must be at least 1; got {workers}")
    try:
        from rnnbench import cluster

        cluster.require_dask()
    except RuntimeError as e:
        raise click.UsageError(str(e)) from None

    @contextlib.contextmanager
    def distributed():
        try:
            with cluster.connect(workers, scheduler) as client:
                if client.dashboard_link and scheduler is not None:
                    click.echo(f"dask dashboard: {client.dashboard_link}", err=True)
                yield lambda tasks, folder, progress: cluster.run_distributed(tasks, folder, client, progress)
        except ConnectionError as e:
            raise click.UsageError(str(e)) from None

    return distributed()


def _run_sweep(tasks, out, resume, quiet, command, workers=None, scheduler=None):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rnnbench.results import ResultsFolder

    executor = _executor(workers, scheduler)
    try:
        folder = ResultsFolder(out, command=command, resume=resume)
    except (OSError, FileExistsError) as e:
        raise click.UsageError(str(e)) from None
    console = Console(stderr=True, quiet=quiet)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        bar = progress.add_task("starting", total=len(tasks))

        def tell(task, i):
            progress.update(bar, completed=i, description=task.label())

        try:
            with executor as run_tasks:
                failures = run_tasks(tasks, folder, tell)
        except KeyboardInterrupt:
            folder.finish(interrupted=True)
            console.print(f"interrupted: finished measurements are in {folder.csv}")
            raise SystemExit(130)
        progress.update(bar, completed=len(tasks))
    return folder, folder.finish(), failures


def _finish(folder, frame, failures, quiet, as_json, tables):
    console = _console()
    if as_json:
        click.echo(json.dumps({"folder": str(folder.path), "rows": len(frame), "failures": failures,
                               "tables": {name: t.to_dict(orient="records") for name, t in tables.items()}},
                              default=str))
    elif not quiet:
        from rnnbench.report import rich_table

        for name, table in tables.items():
            if len(table):
                console.print(rich_table(table, name))
        console.print(f"results: {folder.csv}  ({len(frame)} rows)")
    if failures:
        first = folder.meta["failures"][0]
        click.echo(f"{failures} task(s) failed; the first, {first['task']}: {first['error'].splitlines()[0]}; "
                   f"every error is in {folder.path / 'meta.json'}", err=True)
        raise SystemExit(1)


# --- commands ------------------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnnbench")
def main():
    """Run, measure and understand recurrent networks."""


RUN_KEYS = {"cells": (str,), "backends": (str,), "dtypes": (str,), "seq_lens": (int,), "batch": (int,),
            "input_size": (int, str), "hidden_size": (int,), "num_layers": (int,), "bidirectional": (bool,),
            "truncations": (str, int), "strategies": (str,), "memory": (bool,), "memory_backends": (str,),
            "repeats": (int,), "warmup": (int,), "threads": (int,)}


def _merge(config_path, section, allowed, flags):
    values = read_config(config_path, section, allowed) if config_path else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    return values


@main.command()
@click.option("--cells", help="comma-separated: rnn_tanh, rnn_relu, lstm, gru [rnn_tanh,lstm,gru]")
@click.option("--backends", help="cpu, reference, torch (on the CPU), cuda, cudnn (torch on the GPU) "
                                 "[cpu,reference, and torch when installed]")
@click.option("--dtypes", help="float32, float64 [float32]")
@click.option("--seq-lens", "seq_lens", help="sequence lengths [25,50,100]")
@click.option("--batch", help="batch sizes [16]")
@click.option("--input-size", "input_size", help="input sizes, or 'hidden' for I = H [32]")
@click.option("--hidden-size", "hidden_size", help="hidden sizes [64]")
@click.option("--num-layers", "num_layers", help="layers [1]")
@click.option("--bidirectional/--unidirectional", default=None, help="[unidirectional]")
@click.option("--truncations", help="full, k or k1:k2 [full]")
@click.option("--strategies", help="BPTT memory strategy of the timed step: full, checkpoint [full]")
@click.option("--memory/--no-memory", default=None, help="also measure peak memory per strategy [on]")
@click.option("--memory-backends", "memory_backends",
              help="backends whose memory is measured: cpu, reference, cuda (device bytes) "
                   "[the timed ones of cpu and cuda, else cpu]")
@click.option("--repeats", type=int, help="timed repeats per measurement [10]")
@click.option("--warmup", type=int, help="untimed rounds before them [1]")
@click.option("--threads", type=int, help="kernel threads (numba, BLAS, torch) [as is]")
@sweep_options("run")
def run(config_path, out, resume, quiet, as_json, workers, scheduler, **flags):
    """Speed and memory sweep. With no flags: a quick default sweep (about a minute)."""
    from rnnbench.analysis.memory import check_memory_backend
    from rnnbench.analysis.runners import BASELINES
    from rnnbench.analysis.strategies import STRATEGIES
    from rnnbench.sweeps import Task

    v = _merge(config_path, "run", RUN_KEYS, flags)
    cells = _choices("cell", v.get("cells", "rnn_tanh,lstm,gru"), list(CELLS))
    backends = _backends(v.get("backends", "cpu,reference" + (",torch" if torch_installed() else "")))
    dtypes = _choices("dtype", v.get("dtypes", "float32"), list(DTYPES))
    seq_lens = _positive_ints("seq_lens", v.get("seq_lens", "25,50,100"))
    batch = _positive_ints("batch", v.get("batch", 16), 65536)
    same = str(v.get("input_size")) == "hidden"
    inputs = [None] if same else _positive_ints("input_size", v.get("input_size", 32), 65536)
    hidden = _positive_ints("hidden_size", v.get("hidden_size", 64), 65536)
    layers = _positive_ints("num_layers", v.get("num_layers", 1), 16)
    bidirectional = bool(v.get("bidirectional", False))
    truncations = _truncations(v.get("truncations", "full"))
    strategies = _choices("strategy", v.get("strategies", "full"), ["full", "checkpoint"])
    memory = v.get("memory", True)
    measured = ",".join(b for b in backends if b in ("cpu", "cuda")) or "cpu"
    memory_backends = _backends(v.get("memory_backends", measured))
    for b in memory_backends:
        try:
            check_memory_backend(b)
        except ValueError as e:
            raise click.UsageError(f"--memory-backends: {e}") from None
    repeats = _positive_ints("repeats", v.get("repeats", 10), 10_000)[0]
    warmup = v.get("warmup", 1)
    if not isinstance(warmup, int) or warmup < 0:
        raise click.UsageError(f"warmup must be an integer >= 0; got {warmup!r}")
    threads = v.get("threads")
    if threads is not None:
        _positive_ints("threads", threads, 1024)

    tasks = []
    grid = itertools.product(cells, dtypes, batch, inputs, hidden, layers, seq_lens)
    for cell, dtype, B, I, H, L, T in grid:
        config = dict(cell=cell, seq_len=T, batch=B, input_size=I or H, hidden_size=H, num_layers=L,
                      bidirectional=bidirectional, dtype=dtype)
        for trunc, strategy in itertools.product(truncations, strategies):
            plain = trunc is None and strategy == "full"  # all the baselines can run
            tasks.append(Task.make("speed", **config, backends=[b for b in backends if plain or b not in BASELINES],
                                   repeats=repeats, warmup=warmup, strategy=strategy, truncation=trunc,
                                   threads=threads))
        for backend, strategy in itertools.product(memory_backends if memory else [], STRATEGIES):
            tasks.append(Task.make("memory", **config, backend=backend, strategy=strategy,
                                   chunk=min(T, 16) if strategy == "streaming" else None))
    folder, frame, failures = _run_sweep(tasks, out or _default_folder("run"), resume, quiet, sys.argv,
                                         workers, scheduler)
    from rnnbench.report import memory_table, speed_table

    _finish(folder, frame, failures, quiet, as_json,
            {"speed of forward + backward (median ms; speed-up above 1 is faster)": speed_table(frame),
             "memory of a training step (MiB)": memory_table(frame)})


GRAD_KEYS = {"cells": (str,), "scales": (float, int), "inits": (str,), "seq_lens": (int,),
             "hidden_size": (int,), "batch": (int,), "seeds": (int,), "truncations": (int,),
             "backend": (str,), "jacobian": (bool,)}


@main.command()
@click.option("--cells", help="[rnn_tanh,rnn_relu,lstm,gru]")
@click.option("--scales", help="largest singular value of W_hh's gate blocks [0.5,0.9,1.0,1.1,2.0]")
@click.option("--inits", help="orthogonal, gaussian [orthogonal]")
@click.option("--seq-lens", "seq_lens", help="[100]")
@click.option("--hidden-size", "hidden_size", help="[32]")
@click.option("--batch", help="[8]")
@click.option("--seeds", help="[0,1,2]")
@click.option("--truncations", help="truncation lengths k for the fidelity experiment [1,2,5,10,20,50,100]")
@click.option("--backend", help="cpu, reference, cuda [cpu]")
@click.option("--jacobian/--no-jacobian", default=None, help="per-step Jacobian norms [on]")
@sweep_options("gradients")
def gradients(config_path, out, resume, quiet, as_json, workers, scheduler, **flags):
    """Gradient-norm decay against distance, weight scale and truncation (about a minute)."""
    from rnnbench.analysis.gradients import INITS
    from rnnbench.sweeps import Task

    v = _merge(config_path, "gradients", GRAD_KEYS, flags)
    cells = _choices("cell", v.get("cells", "rnn_tanh,rnn_relu,lstm,gru"), list(CELLS))
    scales = _floats("scales", v.get("scales", "0.5,0.9,1.0,1.1,2.0"))
    inits = _choices("init", v.get("inits", "orthogonal"), list(INITS))
    seq_lens = _positive_ints("seq_lens", v.get("seq_lens", 100), 100_000)
    H = _positive_ints("hidden_size", v.get("hidden_size", 32), 4096)[0]
    B = _positive_ints("batch", v.get("batch", 8), 4096)[0]
    seeds = [int(s) for s in _split(v.get("seeds", "0,1,2"))]
    ks = _positive_ints("truncations", v.get("truncations", "1,2,5,10,20,50,100"))
    backend = _array_backend(v.get("backend", "cpu"))
    jacobian = v.get("jacobian", True)
    tasks = []
    for cell in cells:
        for T in seq_lens:
            for init in inits:
                for s in scales:
                    tasks.append(Task.make("decay", cell=cell, seq_len=T, hidden_size=H, scale=s, init=init,
                                           batch=B, seeds=seeds, backend=backend))
                    if jacobian:
                        tasks.append(Task.make("jacobian", cell=cell, seq_len=min(T, 30), hidden_size=H,
                                               scale=s, init=init, batch=min(B, 4), seed=seeds[0],
                                               backend=backend))
            tasks.append(Task.make("truncation", cell=cell, seq_len=T, batch=B, input_size=H, hidden_size=H,
                                   num_layers=1, bidirectional=False, dtype="float64",
                                   ks=[k for k in ks if k <= T] or [T], backend=backend, repeats=3))
    folder, frame, failures = _run_sweep(tasks, out or _default_folder("gradients"), resume, quiet, sys.argv,
                                         workers, scheduler)
    from rnnbench.report import decay_table, truncation_table

    _finish(folder, frame, failures, quiet, as_json,
            {"gradient decay per step (fitted) against theory": decay_table(frame),
             "truncated gradient against full BPTT (all parameters)": truncation_table(frame)})


TRAIN_KEYS = {"tasks": (str,), "cells": (str,), "seq_lens": (int, str), "hidden_size": (int,), "optimizer": (str,),
              "lr": (float,), "clip": (float, int, str), "truncation": (int, str), "scale": (float, int, str),
              "stream": (int,), "steps": (int,), "batch": (int,), "seeds": (int, str), "eval_every": (int,),
              "backend": (str,)}


@main.command()
@click.option("--tasks", help="adding, copy, ar, sunspots, co2 [adding]")
@click.option("--cells", help="[rnn_tanh,lstm,gru]")
@click.option("--seq-lens", "seq_lens", help="dependency lengths (copy: the delay; series: the window tau) [10,50,100]")
@click.option("--hidden-size", "hidden_size", help="[32]")
@click.option("--optimizer", help="sgd, rmsprop, adam [adam]")
@click.option("--lr", type=float, help="learning rate [0.01]")
@click.option("--clip", help="global-norm clipping thresholds, 0 for none [1.0]")
@click.option("--truncation", help="truncated BPTT: full, k or k1:k2, comma-separated [full]")
@click.option("--scale", help="W_hh = scale x orthogonal per gate, e.g. 2 for a run that explodes [torch's init]")
@click.option("--stream", type=int, help="series tasks: read the series in chunks of this many steps, the state "
                                         "carried across chunks [windows of tau]")
@click.option("--steps", type=int, help="optimizer steps [1500]")
@click.option("--batch", help="[32]")
@click.option("--seeds", help="[0]")
@click.option("--eval-every", "eval_every", type=int, help="[100]")
@click.option("--backend", help="cpu, reference, cuda [cpu]")
@sweep_options("train")
def train(config_path, out, resume, quiet, as_json, workers, scheduler, **flags):
    """Train on long-dependency tasks: loss against steps, and where each cell stops learning."""
    from rnnbench.sweeps import Task
    from rnnbench.tasks import SERIES
    from rnnbench.train import OPTIMIZERS, TASKS

    v = _merge(config_path, "train", TRAIN_KEYS, flags)
    task_names = _choices("task", v.get("tasks", "adding"), list(TASKS))
    real = [t for t in task_names if t in SERIES and t != "ar"]
    if real and importlib.util.find_spec("statsmodels") is None:
        raise click.UsageError(f"the {real[0]} series ships with statsmodels, an optional extra: "
                               "pip install 'rnnbench[series]'")
    cells = _choices("cell", v.get("cells", "rnn_tanh,lstm,gru"), list(CELLS))
    seq_lens = _positive_ints("seq_lens", v.get("seq_lens", "10,50,100"), 10_000)
    H = _positive_ints("hidden_size", v.get("hidden_size", 32), 4096)[0]
    optimizer = _choices("optimizer", v.get("optimizer", "adam"), list(OPTIMIZERS))[0]
    lr = v.get("lr", 1e-2)
    if not (isinstance(lr, (int, float)) and 0 < lr < 10):
        raise click.UsageError(f"lr must be in (0, 10); got {lr!r}")
    clips = _floats("clip", v.get("clip", 1.0))
    truncations = _truncations(v.get("truncation", "full"))
    scales = [None] if v.get("scale") is None else _floats("scale", v["scale"])
    stream = v.get("stream")
    if stream is not None:
        stream = _positive_ints("stream", stream, 10**6)[0]
        if set(task_names) - set(SERIES):
            raise click.UsageError(f"--stream reads a series ({', '.join(SERIES)}); "
                                   f"not {', '.join(sorted(set(task_names) - set(SERIES)))}")
        too_long = [t for t in truncations if t is not None and (max(t) if isinstance(t, list) else t) > stream]
        if too_long:
            raise click.UsageError(f"truncation {too_long[0]} is longer than the {stream}-step chunk it streams")
    steps = _positive_ints("steps", v.get("steps", 1500), 10**7)[0]
    batch = _positive_ints("batch", v.get("batch", 32), 65536)[0]
    seeds = [int(s) for s in _split(v.get("seeds", "0"))]
    eval_every = _positive_ints("eval_every", v.get("eval_every", 100), 10**7)[0]
    backend = _array_backend(v.get("backend", "cpu"))
    if "adding" in task_names and min(seq_lens) < 2:
        raise click.UsageError(f"the adding problem needs sequence lengths >= 2; got {min(seq_lens)}")
    runs = [Task.make("train", task=t, cell=c, seq_len=T, hidden_size=H, optimizer=optimizer, lr=lr,
                        clip=clip or None, truncation=k, scale=s, stream=stream, steps=steps, batch=batch,
                        eval_every=eval_every, seed=seed, backend=backend)
              for t, c, T, clip, k, s, seed in itertools.product(task_names, cells, seq_lens, clips, truncations,
                                                                  scales, seeds)]
    folder, frame, failures = _run_sweep(runs, out or _default_folder("train"), resume, quiet, sys.argv,
                                         workers, scheduler)
    from rnnbench.report import learning_table

    _finish(folder, frame, failures, quiet, as_json, {"final held-out loss against the baseline": learning_table(frame)})


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(file_okay=False),
              help="folder for report.html, report.md and the figures")
def report(results, out):
    """An HTML (self-contained) and Markdown report of one or more results folders."""
    from rnnbench.report import write_report

    try:
        html, md = write_report(results, out)
    except (FileNotFoundError, OSError) as e:
        raise click.UsageError(str(e)) from None
    click.echo(f"wrote {html} and {md}")


@main.command()
@click.argument("a", type=click.Path(exists=True, file_okay=False))
@click.argument("b", type=click.Path(exists=True, file_okay=False))
@click.option("--threshold", default=1.10, show_default=True, type=float,
              help="a time ratio B/A past this is a regression (below 1/threshold an improvement)")
@click.option("--metric", default="time_s", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def compare(a, b, threshold, metric, as_json):
    """B against A as ratios per configuration; exit code 1 on a regression."""
    from rnnbench.report import compare_frames, rich_table
    from rnnbench.results import load, load_meta

    if threshold <= 1:
        raise click.UsageError(f"--threshold must be above 1; got {threshold}")
    try:
        table = compare_frames(load([a]), load([b]), metric, threshold)
    except (FileNotFoundError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    cpus = {load_meta(f).get("cpu", {}).get("model") for f in (a, b)}
    note = f"note: A and B were measured on different CPUs: {sorted(map(str, cpus))}" if len(cpus) > 1 else ""
    regressions = int((table["verdict"] == "regression").sum())
    if as_json:
        click.echo(json.dumps({"regressions": regressions, "note": note, "rows": table.to_dict(orient="records")},
                              default=str))
    else:
        _console().print(rich_table(table, f"{metric}: B / A (threshold {threshold})"))
        if note:
            click.echo(note)
        click.echo(f"{regressions} regression(s), {int((table['verdict'] == 'improvement').sum())} improvement(s)")
    if regressions:
        raise SystemExit(1)


@main.command()
def info():
    """Versions, CPU, threads, GPU or simulator status, torch."""
    from rich.table import Table

    from rnnbench.analysis.runners import cudnn_status
    from rnnbench.results import environment

    env = environment()
    table = Table(title="rnnbench info", show_header=False)
    table.add_row("rnnbench", env["rnnbench"])
    table.add_row("python", env["python"])
    for name, version in env["packages"].items():
        table.add_row(name, version or "not installed")
    table.add_row("cpu", env["cpu"]["model"])
    table.add_row("cpu features", " ".join(env["cpu"]["simd"]) or "-")
    table.add_row("logical cores", str(env["cpu"]["logical_cores"]))
    table.add_row("kernel threads", str(env["threads"]))
    table.add_row("gpu", env["gpu"])
    table.add_row("cudnn baseline", cudnn_status())
    table.add_row("platform", env["platform"])
    table.add_row("git commit", env["git_commit"] or "-")
    _console().print(table)
