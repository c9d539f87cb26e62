"""Tables, readings and the HTML / Markdown report built from results folders."""
from __future__ import annotations

import base64
import html as html_lib
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench import plots
from rnnbench.results import CONFIG_COLUMNS, TRAIN_SETTINGS, load, load_meta, to_frame, training_runs

MIB = 2**20


def _sel(frame, experiment, metric):
    if "experiment" not in frame:
        return frame.iloc[0:0]
    return frame[(frame["experiment"] == experiment) & (frame["metric"] == metric)]


def _varying(frame, columns):
    """The columns that take more than one value (what a table needs to tell rows apart)."""
    return [c for c in columns if c in frame and frame[c].nunique(dropna=False) > 1]


def speed_table(frame: pd.DataFrame, phase: str = "fwd+bwd") -> pd.DataFrame:
    """Median ms per backend for each configuration, and how many times faster the first
    backend is than each baseline (torch, reference) measured beside it; the cuda backend's
    against cudnn (torch on the GPU)."""
    d = _sel(frame, "speed", "time_s")
    if "phase" in d:
        d = d[d["phase"] == phase]
    if d.empty:
        return pd.DataFrame()
    keys = ["cell"] + _varying(d, ["dtype", "seq_len", "batch", "input_size", "hidden_size", "num_layers",
                                   "bidirectional", "truncation", "strategy"])
    if "seq_len" not in keys:
        keys.append("seq_len")
    table = d.pivot_table(index=keys, columns="backend", values="value", aggfunc="median") * 1e3
    known = ("cpu", "cuda", "reference", "torch", "cudnn", "gemm")
    order = [b for b in known if b in table] + [b for b in table if b not in known]
    table = table[order]
    lead = order[0]
    for base in ("torch", "reference", "cudnn"):
        ours = "cuda" if base == "cudnn" else lead
        if base in table and ours in table and base != ours:
            name = f"speed-up vs {base}" if ours == lead else f"{ours} speed-up vs {base}"
            table[name] = table[base] / table[ours]
    return table.rename(columns={b: f"{b} ms" for b in order}).reset_index()


def memory_table(frame: pd.DataFrame) -> pd.DataFrame:
    d = frame[frame.get("experiment") == "memory"] if "experiment" in frame else frame.iloc[0:0]
    d = d[d["metric"].isin(["peak_bytes", "model_bytes"])]
    if d.empty:
        return pd.DataFrame()
    d = d.assign(strategy=[f"{s} ({int(c)})" if s == "streaming" and pd.notna(c) else s
                           for s, c in zip(d["strategy"], d["chunk"])])
    keys = ["cell", "seq_len", "strategy"] + _varying(d, ["backend", "batch", "hidden_size", "dtype"])
    table = d.pivot_table(index=keys, columns="metric", values="value", aggfunc="median") / MIB
    table["model / measured"] = table["model_bytes"] / table["peak_bytes"]
    table = table[["peak_bytes", "model_bytes", "model / measured"]]
    return table.rename(columns={"peak_bytes": "measured MiB", "model_bytes": "model MiB"}).reset_index()


def decay_table(frame: pd.DataFrame) -> pd.DataFrame:
    d = frame[frame["experiment"] == "gradients"] if "experiment" in frame else frame.iloc[0:0]
    metrics = ["sigma_max", "decay_rate", "theory_rate", "cell_decay_rate", "cell_theory_rate"]
    d = d[d["metric"].isin(metrics)]
    if d.empty:
        return pd.DataFrame()
    keys = ["cell", "scale"] + _varying(d, ["init", "seq_len", "hidden_size"])
    table = d.pivot_table(index=keys, columns="metric", values="value", aggfunc="median")
    return table[[m for m in metrics if m in table]].reset_index()


def truncation_table(frame: pd.DataFrame) -> pd.DataFrame:
    d = frame[frame["experiment"] == "truncation"] if "experiment" in frame else frame.iloc[0:0]
    d = d[d["param"] == "all"] if "param" in d else d
    if d.empty:
        return pd.DataFrame()
    keys = ["cell", "k"] + _varying(d, ["seq_len", "hidden_size"])
    return d.pivot_table(index=keys, columns="metric", values="value", aggfunc="median").reset_index()


def learning_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run (task, cell, length and whatever settings vary): final held-out loss, the
    memoryless baseline (and the AutoReg one for series), their ratio, steps/s against torch."""
    d, settings = training_runs(frame)
    d = d[d["metric"].isin(["final_loss", "baseline_loss", "autoreg_loss", "steps_per_s", "torch_steps_per_s"])]
    if d.empty:
        return pd.DataFrame()
    table = d.pivot_table(index=["task", "cell", "seq_len"] + settings, columns="metric", values="value",
                          aggfunc="median", dropna=False)
    table = table.dropna(how="all")
    # nan when the run diverged: its loss is no number, and it learned nothing.
    # learned: below a tenth of the memoryless baseline; a series forecast: below AutoReg(tau)'s loss
    table["final / baseline"] = table["final_loss"] / table["baseline_loss"]
    learned = table["final / baseline"] < 0.1
    columns = ["final_loss", "baseline_loss", "final / baseline", "learned"]
    if "autoreg_loss" in table:
        table["final / AutoReg"] = table["final_loss"] / table["autoreg_loss"]
        learned = learned.where(table["autoreg_loss"].isna(), table["final / AutoReg"] < 1)
        columns[2:2] = ["autoreg_loss", "final / AutoReg"]
    table["learned"] = np.where(learned, "yes", "no")
    columns.append("steps_per_s")
    if "torch_steps_per_s" in table:
        table["speed-up vs torch"] = table["steps_per_s"] / table["torch_steps_per_s"]
        columns += ["torch_steps_per_s", "speed-up vs torch"]
    return table[columns].reset_index()


def compare_frames(a: pd.DataFrame, b: pd.DataFrame, metric: str, threshold: float) -> pd.DataFrame:
    """``metric`` of B over A per configuration present in both, with a verdict per row."""
    sa, sb = a[a["metric"] == metric], b[b["metric"] == metric]
    if sa.empty or sb.empty:
        raise ValueError(f"no {metric!r} rows in {'A' if sa.empty else 'B'}")
    keys = [c for c in CONFIG_COLUMNS if c in sa and c in sb and not (sa[c].isna().all() and sb[c].isna().all())]
    keys = [c for c in keys if c != "threads"] or ["experiment"]
    ga = sa.groupby(keys, dropna=False)["value"].median().rename("A")
    gb = sb.groupby(keys, dropna=False)["value"].median().rename("B")
    table = pd.concat([ga, gb], axis=1, join="inner").reset_index()
    if table.empty:
        raise ValueError("A and B share no configuration to compare")
    table["B / A"] = table["B"] / table["A"]
    table["verdict"] = np.where(table["B / A"] > threshold, "regression",
                                np.where(table["B / A"] < 1 / threshold, "improvement", "same"))
    keep = _varying(table, keys) or keys[:1]
    return table[keep + ["A", "B", "B / A", "verdict"]]


# --- readings: what the numbers say ------------------------------------------------------------

def readings(frame: pd.DataFrame) -> list[str]:
    """A few sentences a reader can check against the tables and figures."""
    out = []
    if "cpu" in frame and frame["cpu"].nunique() > 1:
        out.append(f"note: these rows were measured on {frame['cpu'].nunique()} different CPUs "
                   f"({', '.join(map(str, frame['cpu'].dropna().unique()))}); ratios below mix them.")
    speed = _sel(frame, "speed", "time_s")
    if "phase" in speed:
        speed = speed[speed["phase"] == "fwd+bwd"]
    for ours, base in (("cpu", "torch"), ("cpu", "reference"), ("cuda", "cudnn")):
        p = speed.pivot_table(index=["cell", "seq_len", "batch", "input_size", "hidden_size", "dtype"],
                              columns="backend", values="value", aggfunc="median") if len(speed) else None
        if p is not None and ours in p and base in p:
            r = (p[base] / p[ours]).dropna()
            if len(r):
                out.append(f"forward+backward: the {ours} backend is {np.exp(np.log(r).mean()):.2f}x as fast as "
                           f"{base} (geometric mean over {len(r)} configurations; range "
                           f"{r.min():.2f}x to {r.max():.2f}x; above 1 is faster).")
    if len(speed):
        by_cell = speed[speed["backend"] == "cpu"].groupby(["cell", "seq_len", "batch", "hidden_size"])["value"].median()
        cells = by_cell.unstack("cell") if len(by_cell) else pd.DataFrame()
        if "gru" in cells and "lstm" in cells:
            ratio = (cells["gru"] / cells["lstm"]).dropna()
            if len(ratio):
                out.append(f"GRU takes {np.exp(np.log(ratio).mean()):.2f}x the time of an LSTM of the same size "
                           f"on the cpu backend ({len(ratio)} sizes; the seeds claim GRU is faster).")
    mem = memory_table(frame)
    if len(mem):
        T = mem["seq_len"].max()
        longest = mem[mem["seq_len"] == T]
        at = longest.groupby("strategy")["measured MiB"].median()
        parts = ", ".join(f"{s} {v:.2f} MiB" for s, v in at.items())
        err = (longest["model / measured"] - 1).abs().max()
        out.append(f"peak memory of a training step at T = {T} (median over configurations): {parts}; "
                   f"the analytic model is within {100 * err:.0f}% of every measurement at that length.")
    dec = decay_table(frame)
    if len(dec) and "decay_rate" in dec:
        tanh = dec[dec["cell"].isin(["rnn_tanh", "rnn_relu"])]
        if len(tanh):
            ok = (tanh["decay_rate"] <= tanh["sigma_max"] * (1 + 1e-9)) | tanh["decay_rate"].isna()
            out.append(f"vanilla RNN: the measured per-step factor is at or below the bound sigma_max(W_hh) "
                       f"in {int(ok.sum())} of {len(ok)} runs.")
        for cell, grp in dec.groupby("cell"):
            rates = ", ".join(f"s={r.scale:g}: {r.decay_rate:.3f}" for r in grp.itertuples() if np.isfinite(r.decay_rate))
            out.append(f"{plots.CELL_LABELS.get(cell, cell)}: fitted ||dL/dh_k|| factor per step {rates}.")
    out += learning_readings(learning_table(frame))
    tr = truncation_table(frame)
    if len(tr) and "grad_cosine" in tr:
        parts = []
        for cell, grp in tr.groupby("cell"):
            good = grp[grp["grad_cosine"] >= 0.99]["k"]
            parts.append(f"{plots.CELL_LABELS.get(cell, cell)} k = {int(good.min())}" if len(good) else
                         f"{plots.CELL_LABELS.get(cell, cell)} none")
        out.append("shortest truncation keeping cosine >= 0.99 with full BPTT: " + "; ".join(parts) + ".")
    return out


def learning_readings(learn: pd.DataFrame) -> list[str]:
    """Where each cell learns, and what clipping and truncation changed between otherwise equal runs."""
    if learn.empty:
        return []
    out = []
    for (task, cell), grp in learn.groupby(["task", "cell"]):
        label = plots.CELL_LABELS.get(cell, cell)
        if "final / AutoReg" in grp and grp["final / AutoReg"].notna().all():
            ratios = ", ".join(f"{r:.2f} at tau = {T}" for T, r in zip(grp["seq_len"], grp["final / AutoReg"]))
            out.append(f"{task}, {label}: held-out MSE / AutoReg(tau)'s = {ratios} (below 1: the network "
                       f"forecasts better than the classical fit).")
            continue
        learned = sorted(set(grp[grp["learned"] == "yes"]["seq_len"]))
        failed = sorted(set(grp[grp["learned"] == "no"]["seq_len"]))
        out.append(f"{task}, {label}: held-out loss below a tenth of the baseline at lengths "
                   f"{learned or 'none'}; not at {failed or 'none'}.")
    keys = [c for c in learn.columns if c in ["task", "cell", "seq_len", *TRAIN_SETTINGS]]
    for setting, name in (("clip", "clipping at global norm"), ("truncation", "truncated BPTT k")):
        if setting not in keys:
            continue
        others = [k for k in keys if k != setting]
        for key, grp in learn.groupby(others, dropna=False):
            if len(grp) < 2:
                continue
            run = ", ".join(f"{k}={v}" for k, v in zip(others, key) if k not in ("optimizer", "lr", "batch"))
            labels = {0.0: "no clipping", "full": "full BPTT"}
            parts = "; ".join(f"{labels.get(v, f'{name} {v}')}: " +
                              (f"final / baseline {r:.3g}" if np.isfinite(r) else "diverged (no finite loss)")
                              for v, r in zip(grp[setting], grp["final / baseline"]))
            out.append(f"{run}: {parts}.")
    return out


# --- rendering ----------------------------------------------------------------------------------

def _fmt(v):
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "-"
        if not np.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    return str(v)


def rich_table(table: pd.DataFrame, title: str):
    from rich.table import Table

    t = Table(title=title)
    for col in table.columns:
        t.add_column(str(col), justify="right", overflow="fold")  # a narrow terminal wraps, never cuts, a value
    for row in table.itertuples(index=False):
        t.add_row(*(_fmt(v) for v in row))
    return t


def markdown_table(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule] + rows)


def _environment_rows(metas: list[dict]) -> pd.DataFrame:
    rows = []
    for m in metas:
        pk = m.get("packages", {})
        rows.append({"start": m.get("start"), "cpu": m.get("cpu", {}).get("model"),
                     "gpu": m.get("gpu"), "threads": m.get("threads"), "rnnbench": m.get("rnnbench"),
                     "numba": pk.get("numba"),
                     "numpy": pk.get("numpy"), "torch": pk.get("torch"), "commit": (m.get("git_commit") or "")[:10]})
    return pd.DataFrame(rows)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}img{max-width:100%;border:1px solid #eee;margin:0.5em 0}h2{border-bottom:1px solid #ddd}
li{margin:0.3em 0}"""


def write_report(results, out) -> tuple[Path, Path]:
    """``out/report.html`` (self-contained) and ``out/report.md`` with ``out/figures/*.png``."""
    from rnnbench.analysis.speed import fit_seq_len

    from rnnbench.asv_history import is_asv_results

    out = Path(out)
    asv_dirs = [r for r in results if is_asv_results(r)]
    plain = [r for r in results if r not in asv_dirs]
    frame = load(plain) if plain else to_frame([])
    metas = [load_meta(r) for r in plain]
    figures = plots.save_all(frame, out / "figures")
    sections = [("Environment", _environment_rows(metas))] if metas else []
    for folder in asv_dirs:
        table, paths = _asv_section(folder, out / "figures")
        sections.append((f"asv history: {folder} (first and last commit)", table))
        figures += paths
    for title, table in (("Speed: forward + backward, median ms", speed_table(frame)),
                         ("Cost against sequence length", _fit_table(fit_seq_len(frame))),
                         ("Memory of a training step", memory_table(frame)),
                         ("Gradient decay per step against theory", decay_table(frame)),
                         ("Truncated against full BPTT (all parameters)", truncation_table(frame)),
                         ("Learning: final held-out loss against the memoryless baseline", learning_table(frame))):
        if len(table):
            sections.append((title, table))
    notes = readings(frame)
    title = "rnnbench report"
    sources = ", ".join(map(str, results))

    md = [f"# {title}", "", f"Results: {sources}", "", "## What the measurements show", ""]
    md += [f"- {n}" for n in notes] or ["- (no measurements to read)"]
    body = [f"<h1>{title}</h1><p>Results: {html_lib.escape(sources)}</p>", "<h2>What the measurements show</h2><ul>"]
    body += [f"<li>{html_lib.escape(n)}</li>" for n in notes] + ["</ul>"]
    for name, table in sections:
        md += ["", f"## {name}", "", markdown_table(table)]
        table = table.rename_axis(columns=None)
        body.append(f"<h2>{html_lib.escape(name)}</h2>" +
                    table.to_html(index=False, float_format=_fmt, na_rep="-", border=0))
    md += ["", "## Figures", ""]
    body.append("<h2>Figures</h2>")
    for path in figures:
        md.append(f"![{path.stem}](figures/{path.name})")
        data = base64.b64encode(path.read_bytes()).decode()
        body.append(f'<img alt="{path.stem}" src="data:image/png;base64,{data}">')
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
                         f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
    md_path.write_text("\n".join(md) + "\n")
    return html_path, md_path


def _fit_table(fit: pd.DataFrame) -> pd.DataFrame:
    if fit.empty:
        return fit
    fit = fit[fit["phase"] == "fwd+bwd"] if "phase" in fit else fit
    keys = ["cell", "backend"] + _varying(fit, ["dtype", "batch", "input_size", "hidden_size", "strategy"])
    table = fit.pivot_table(index=keys, columns="metric", values="value", aggfunc="median")
    table["time_per_step_fit"] *= 1e3
    table["time_intercept"] *= 1e3
    return table.rename(columns={"time_per_step_fit": "ms per step", "time_intercept": "fixed ms",
                                 "nonlinearity": "max deviation from line"}).reset_index()


def _asv_section(folder, figures_dir) -> tuple[pd.DataFrame, list[Path]]:
    """A table of each asv benchmark's first and last value, and a history figure per benchmark."""
    from rnnbench.asv_history import history_figure, load_history

    history = load_history(folder)
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in history["benchmark"].unique():
        path = figures_dir / f"asv_{name.split('.', 1)[-1].replace('.', '_')}.png"
        history_figure(history, name).savefig(path, dpi=100)
        paths.append(path)
    ends = history.sort_values("date").groupby(["benchmark", "params"])
    table = pd.DataFrame({"first": ends["value"].first(), "last": ends["value"].last(),
                          "commits": ends["commit"].nunique(), "unit": ends["unit"].first()})
    table["last / first"] = table["last"] / table["first"]
    table = table.reset_index()
    table["benchmark"] = table["benchmark"].str.split(".", n=1).str[-1]
    return table, paths
