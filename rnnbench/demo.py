"""A first look at rnnbench in about half a minute: ``python -m rnnbench.demo``.

For each cell: the Numba kernels checked against the NumPy oracle (and torch, when installed),
forward+BPTT timed against the oracle (medians after a warm-up, compile time apart), and the
gradient norm ||dL/dh_k|| at growing distance k from a loss at the last step.
"""
from __future__ import annotations

import time

import numpy as np
from rich.console import Console
from rich.table import Table

import rnnbench as rb
from rnnbench.layers import RecurrentLayer

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
T, B, I, H = 100, 16, 32, 64
REPEATS = 5


def _median_time(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _fwd_bwd(m, x, go):
    m(x)
    return m.backward(go)


def _torch_error(m, x, go, g):
    """Largest gradient difference against torch autograd, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from torch import nn

    cls = {"lstm": nn.LSTM, "gru": nn.GRU}.get(m.cell.name, nn.RNN)
    kwargs = {"nonlinearity": m.cell.nonlinearity} if m.cell.nonlinearity else {}
    mod = cls(I, H, dtype=torch.float64, **kwargs)
    mod.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    xt = torch.from_numpy(x).requires_grad_()
    (mod(xt)[0] * torch.from_numpy(go)).sum().backward()
    errors = [np.abs(g["input"] - xt.grad.numpy()).max()]
    errors += [np.abs(g[n] - p.grad.numpy()).max() for n, p in mod.named_parameters()]
    return float(max(errors))


def main() -> None:
    console = Console()
    console.print(f"[bold]rnnbench {rb.__version__}[/] demo: T={T}, B={B}, I={I}, H={H}, float64, "
                  f"{rb.get_num_threads()} threads")
    compile_s = sum(rb.warmup(cells=CELLS, dtypes=("float64",)).values())
    console.print(f"first calls (Numba compile or cache load): {compile_s:.2f} s, kept out of the timings")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))
    go = rng.standard_normal((T, B, H))
    table = Table(title="forward + full BPTT: Numba cpu against the NumPy reference")
    for col in ("cell", "err vs ref", "err vs torch", "cpu ms", "ref ms", "speed-up"):
        table.add_column(col, justify="right")
    distances = (0, 10, 50, 99)
    decay = Table(title="||dL/dh_k|| for a loss at the last step, k steps back")
    decay.add_column("cell")
    for k in distances:
        decay.add_column(f"k={k}", justify="right")
    for cell in CELLS:
        cpu, ref = (RecurrentLayer(cell, I, H, backend=b, dtype="float64", seed=0)
                    for b in ("cpu", "reference"))
        g_cpu, g_ref = _fwd_bwd(cpu, x, go), _fwd_bwd(ref, x, go)
        err = max(float(np.abs(g_cpu[k] - g_ref[k]).max()) for k in g_ref)
        torch_err = _torch_error(cpu, x, go, g_cpu)
        t_cpu = _median_time(lambda: _fwd_bwd(cpu, x, go))
        t_ref = _median_time(lambda: _fwd_bwd(ref, x, go))
        last = np.zeros_like(go)
        last[-1] = go[-1]
        cpu(x)
        hidden = cpu.backward(last)["hidden"][0]
        norms = np.linalg.norm(hidden.reshape(T, -1), axis=1)[::-1]
        table.add_row(cell, f"{err:.1e}", "no torch" if torch_err is None else f"{torch_err:.1e}",
                      f"{1e3 * t_cpu:.2f}", f"{1e3 * t_ref:.2f}", f"{t_ref / t_cpu:.1f}x")
        decay.add_row(cell, *(f"{norms[k]:.1e}" for k in distances))
    console.print(table)
    console.print(decay)


if __name__ == "__main__":
    main()
