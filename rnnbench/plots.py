"""Figures of the analysis layer, from its tidy DataFrames.

One colour per cell across every figure, one line style per backend or strategy; titles, axis
labels with units, legends. Figures are built with matplotlib's object API (no global pyplot
state), so they render the same in scripts, tests and servers without a display.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from rnnbench.results import training_runs

CELL_COLORS = {"rnn_tanh": "#1f77b4", "rnn_relu": "#9467bd", "lstm": "#2ca02c", "gru": "#d62728"}
CELL_LABELS = {"rnn_tanh": "RNN (tanh)", "rnn_relu": "RNN (relu)", "lstm": "LSTM", "gru": "GRU"}
STYLES = {"cpu": "-", "reference": "--", "torch": ":", "cuda": "-.", "cudnn": (0, (1, 1)),
          "gemm": (0, (3, 1, 1, 1, 1, 1)),
          "full": "-", "checkpoint": "--", "streaming": ":"}
MARKERS = {"cpu": "o", "reference": "s", "torch": "^", "cuda": "D", "cudnn": "v", "gemm": "",
           "full": "o", "checkpoint": "s", "streaming": "^"}


def _figure(ncols: int = 1, width: float = 6.4, height: float = 4.4):
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _legend(ax, cells, styles, title_styles: str):
    """Two legends: colours for cells, line styles for backends or strategies."""
    handles = [Line2D([], [], color=CELL_COLORS.get(c, "k"), lw=2, label=CELL_LABELS.get(c, c)) for c in cells]
    handles += [Line2D([], [], color="0.3", ls=STYLES.get(s, "-"), marker=MARKERS.get(s, ""), label=s)
                for s in styles]
    ax.legend(handles=handles, fontsize=8, title=f"cell / {title_styles}", title_fontsize=8)


def _select(df: pd.DataFrame, **eq) -> pd.DataFrame:
    for col, value in eq.items():
        if col in df:
            df = df[df[col] == value]
    return df


def time_vs_length(df: pd.DataFrame, phase: str = "fwd+bwd") -> Figure:
    """Median time of a pass against sequence length, log-log, per cell and backend."""
    d = _select(df, metric="time_s", phase=phase)
    d = d[d["experiment"] == "speed"]
    fig, (ax,) = _figure()
    for (cell, backend), grp in d.groupby(["cell", "backend"]):
        grp = grp.groupby("seq_len")["value"].median()
        ax.plot(grp.index, grp.values, color=CELL_COLORS.get(cell, "k"), ls=STYLES.get(backend, "-"),
                marker=MARKERS.get(backend, "o"), ms=4)
    ax.set(xscale="log", yscale="log", xlabel="sequence length T (steps)", ylabel="time (s)",
           title=f"{phase} time against sequence length (median over repeats)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, sorted(d["cell"].unique()), sorted(d["backend"].unique()), "backend")
    return fig


def gflops_vs_size(df: pd.DataFrame, phase: str = "fwd+bwd") -> Figure:
    """GFLOP/s of the matrix work against hidden size, per cell and backend, with the rate
    numpy's GEMM reaches on the same shapes (the limit) as the ``gemm`` line."""
    d = _select(df, metric="gflops", phase=phase)
    fig, (ax,) = _figure()
    for (cell, backend), grp in d.groupby(["cell", "backend"]):
        grp = grp.groupby("hidden_size")["value"].median()
        ax.plot(grp.index, grp.values, color=CELL_COLORS.get(cell, "k"), ls=STYLES.get(backend, "-"),
                marker=MARKERS.get(backend, "o"), ms=4, alpha=0.6 if backend == "gemm" else 1)
    ax.set(xscale="log", xlabel="hidden size H", ylabel="GFLOP/s (matrix work, DESIGN.md model)",
           title=f"{phase} throughput against the GEMM limit")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, sorted(d["cell"].unique()), sorted(d["backend"].unique()), "backend")
    return fig


def memory_vs_length(df: pd.DataFrame) -> Figure:
    """Measured peak memory of a training step against T per strategy; the model dotted."""
    d = df[df["experiment"] == "memory"]
    fig, (ax,) = _figure()
    for (cell, strategy), grp in d.groupby(["cell", "strategy"]):
        color = CELL_COLORS.get(cell, "k")
        for metric, kwargs in (("peak_bytes", dict(ls=STYLES.get(strategy, "-"),
                                                   marker=MARKERS.get(strategy, "o"), ms=4)),
                               ("model_bytes", dict(ls="", marker="x", ms=5, alpha=0.6))):
            g = grp[grp["metric"] == metric].groupby("seq_len")["value"].median()
            ax.plot(g.index, g.values / 2**20, color=color, **kwargs)
    ax.set(xscale="log", yscale="log", xlabel="sequence length T (steps)", ylabel="peak memory (MiB)",
           title="peak memory of forward + backward (x: analytic model)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, sorted(d["cell"].unique()), sorted(d["strategy"].unique()), "strategy")
    return fig


def gradient_decay(df: pd.DataFrame) -> Figure:
    """||dL/dh_k|| against distance k from the loss (log y), a panel per cell, a line per weight
    scale with its 10-90% band; dashed: the theory rate, started at the measured k=0 value."""
    d = df[df["experiment"] == "gradients"]
    cells = [c for c in CELL_COLORS if c in set(d["cell"])]
    fig, axes = _figure(len(cells), width=4.6)
    scales = sorted(d["scale"].dropna().unique())
    shades = {s: 0.35 + 0.65 * i / max(1, len(scales) - 1) for i, s in enumerate(scales)}
    for ax, cell in zip(axes, cells):
        dc = d[d["cell"] == cell]
        prefix = "cell_" if cell == "lstm" else ""
        for scale, grp in dc.groupby("scale"):
            norms = grp[grp["metric"] == f"{prefix}grad_norm"].sort_values("step")
            finite = norms[np.isfinite(norms["value"]) & (norms["value"] > 0)]
            color = CELL_COLORS[cell]
            alpha = shades[scale]
            ax.plot(finite["step"], finite["value"], color=color, alpha=alpha, label=f"s = {scale:g}")
            ax.fill_between(finite["step"], finite["value_q10"], finite["value_q90"], color=color,
                            alpha=0.12 * alpha)
            theory = grp[grp["metric"] == f"{prefix}theory_rate"]["value"]
            if len(theory) and len(finite):
                k = finite["step"].to_numpy()
                start = finite["value"].iloc[0]
                with np.errstate(over="ignore", divide="ignore"):
                    line = start * theory.iloc[0] ** (k - k[0])
                ax.plot(k, line, color=color, alpha=alpha, ls="--", lw=1)
            if (norms.get("status") == "overflow").any():
                ax.annotate(f"s = {scale:g}: overflow (inf/NaN) not drawn", (0.02, 0.02),
                            xycoords="axes fraction", fontsize=7, color="red")
        what = "||dL/dc_k|| (cell path)" if cell == "lstm" else "||dL/dh_k||"
        ax.set(yscale="log", xlabel="distance k from the loss (steps)", ylabel=what,
               title=f"{CELL_LABELS[cell]}: {what}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, title="largest singular value s;\n--- theory", title_fontsize=7)
    fig.suptitle("Gradient norm against distance from a last-step loss (geometric mean, 10-90% band)")
    return fig


def truncation_cosine(df: pd.DataFrame) -> Figure:
    """Cosine between the truncated and the full gradient (all parameters) against k."""
    d = _select(df[df["experiment"] == "truncation"], metric="grad_cosine", param="all")
    fig, (ax,) = _figure()
    for cell, grp in d.groupby("cell"):
        grp = grp.groupby("k")["value"].median()
        ax.plot(grp.index, grp.values, color=CELL_COLORS.get(cell, "k"), marker="o", ms=4,
                label=CELL_LABELS.get(cell, cell))
    ax.set(xscale="log", xlabel="truncation length k (steps)", ylabel="cosine(truncated, full)",
           title="How much of the full BPTT gradient truncation keeps", ylim=(None, 1.01))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def jacobian_distribution(df: pd.DataFrame) -> Figure:
    """Per-step Jacobian norms ||ds_t/ds_{t-1}||: median, 25-75% box and 5-95% whiskers per
    cell and weight scale."""
    d = df[(df["experiment"] == "jacobian") & (df["metric"] == "jacobian_norm")]
    fig, (ax,) = _figure()
    labels = []
    for i, ((cell, scale), grp) in enumerate(d.groupby(["cell", "scale"])):
        q = grp.set_index("stat")["value"]
        color = CELL_COLORS.get(cell, "k")
        ax.vlines(i, q["q05"], q["q95"], color=color)
        ax.add_patch(_box(i, q["q25"], q["q75"], color))
        ax.hlines(q["q50"], i - 0.3, i + 0.3, color="k")
        labels.append(f"{CELL_LABELS.get(cell, cell)}\ns = {scale:g}")
    ax.axhline(1.0, color="0.5", ls="--", lw=1)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set(ylabel="||ds_t / ds_{t-1}||_2", title="Per-step Jacobian norms (box 25-75%, whiskers 5-95%)")
    ax.grid(True, axis="y", alpha=0.3)
    return fig


RUN_STYLES = ["-", "--", ":", "-."]


def _runs(d, settings):
    """(label, colour, line style, rows) per training run: colour the cell, style the settings."""
    styles = {}
    for key, grp in d.groupby(["cell"] + settings, dropna=False, sort=True):
        cell, values = key[0], key[1:]
        style = styles.setdefault(values, RUN_STYLES[len(styles) % len(RUN_STYLES)])
        label = ", ".join([CELL_LABELS.get(cell, cell)] + [f"{s}={v}" for s, v in zip(settings, values)])
        yield label, CELL_COLORS.get(cell, "k"), style, grp


def learning_curves(df: pd.DataFrame) -> Figure:
    """Top: held-out loss against optimizer steps, a panel per task and dependency length, a line
    per run; dashed: the memoryless baseline (dotted: AutoReg). Bottom: ||dL/dh_k|| of that loss at
    the farthest distance tracked, during the same training."""
    d, settings = training_runs(df)
    panels = sorted({(t, T) for t, T in zip(d["task"], d["seq_len"])})
    fig = Figure(figsize=(4.6 * len(panels), 7.8), layout="constrained")
    axes = fig.subplots(2, len(panels), squeeze=False, sharex="col")
    for (top, bottom), (task, T) in zip(axes.T, panels):
        dT = d[(d["task"] == task) & (d["seq_len"] == T)]
        far = dT.loc[dT["metric"] == "grad_norm", "distance"].max()
        here = [s for s in settings if dT[s].nunique(dropna=False) > 1]  # what tells this panel's runs apart
        for label, color, style, grp in _runs(dT, here):
            loss = grp[grp["metric"] == "eval_loss"].groupby("step")["value"].median()
            diverged = grp.loc[grp["metric"] == "diverged", "step"]
            if len(diverged):  # its last finite evaluation marked with an x
                label += f" (diverged at step {int(diverged.min())})"
            top.plot(loss.index, loss.values, color=color, ls=style, label=label,
                     marker="x" if len(diverged) else None, markevery=[len(loss) - 1] if len(diverged) else None)
            norm = grp[(grp["metric"] == "grad_norm") & (grp["distance"] == far)].groupby("step")["value"].median()
            bottom.plot(norm.index, norm.values, color=color, ls=style, label=label)
        for metric, ls, name in (("baseline_loss", "--", "memoryless baseline"), ("autoreg_loss", ":", "AutoReg")):
            base = dT[dT["metric"] == metric]["value"]
            if len(base):
                top.axhline(base.median(), color="0.4", ls=ls, lw=1, label=name)
        top.set(yscale="log", ylabel="held-out loss", title=f"{task}, length T = {T}")
        bottom.set(yscale="log", xlabel="optimizer step", ylabel=f"||dL/dh_k|| at distance k = {far:g}")
        for ax in (top, bottom):
            ax.grid(True, which="both", alpha=0.3)
        top.legend(fontsize=7)
    fig.suptitle("Learning a long dependency: held-out loss, and the gradient reaching the far past")
    return fig


def final_loss_vs_length(df: pd.DataFrame) -> Figure:
    """Final held-out loss over the baseline against dependency length, a line per run setting:
    below 0.1 is learned."""
    d, settings = training_runs(df)
    settings = (["task"] if d["task"].nunique() > 1 else []) + settings
    fig, (ax,) = _figure()
    for label, color, style, grp in _runs(d[d["metric"].isin(["final_loss", "baseline_loss"])], settings):
        table = grp.groupby(["seq_len", "metric"])["value"].median().unstack()  # a diverged run: NaN
        ratio = table.reindex(columns=["final_loss", "baseline_loss"]).eval("final_loss / baseline_loss")
        ax.plot(ratio.index, ratio.values, color=color, ls=style, marker="o", label=label)
    ax.axhline(1.0, color="0.4", ls="--", lw=1, label="baseline")
    ax.axhline(0.1, color="0.6", ls=":", lw=1, label="a tenth of the baseline")
    ax.set(yscale="log", xscale="log", xlabel="dependency length T (steps)", ylabel="final loss / baseline",
           title="Where each cell stops learning")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _box(x, lo, hi, color):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.3, lo), 0.6, hi - lo, facecolor=color, alpha=0.35, edgecolor=color)


FIGURES = {"time_vs_length": time_vs_length, "gflops_vs_size": gflops_vs_size,
           "memory_vs_length": memory_vs_length, "gradient_decay": gradient_decay,
           "truncation_cosine": truncation_cosine, "jacobian_distribution": jacobian_distribution,
           "learning_curves": learning_curves, "final_loss_vs_length": final_loss_vs_length}


def save_all(df: pd.DataFrame, folder, dpi: int = 110) -> list[Path]:
    """Every figure the data can feed, as PNG files in ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    needs = {"time_vs_length": ("speed", "time_s"), "gflops_vs_size": ("speed", "gflops"),
             "memory_vs_length": ("memory", "peak_bytes"), "gradient_decay": ("gradients", "grad_norm"),
             "truncation_cosine": ("truncation", "grad_cosine"), "jacobian_distribution": ("jacobian", "jacobian_norm"),
             "learning_curves": ("train", "eval_loss"), "final_loss_vs_length": ("train", "final_loss")}
    paths = []
    for name, fn in FIGURES.items():
        experiment, metric = needs[name]
        if ((df["experiment"] == experiment) & (df["metric"] == metric)).any():
            path = folder / f"{name}.png"
            fn(df).savefig(path, dpi=dpi)
            paths.append(path)
    return paths
