"""Reading an asv results folder: every benchmark's value at every commit, as a tidy DataFrame."""
from __future__ import annotations

import ast
import datetime
import itertools
import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure


def is_asv_results(path) -> bool:
    """An asv results folder (``results_dir`` of asv.conf.json) holds benchmarks.json."""
    return (Path(path) / "benchmarks.json").exists()


def _param_label(names, values) -> str:
    """"cell=lstm, size=small" from asv's repr'd parameter values."""

    def plain(v):
        try:
            return ast.literal_eval(v)
        except (ValueError, SyntaxError):
            return v

    return ", ".join(f"{n}={plain(v)}" for n, v in zip(names, values))


def load_history(path) -> pd.DataFrame:
    """Rows of benchmark, params, machine, commit, date, value, unit (skipped runs left out)."""
    path = Path(path)
    meta = json.loads((path / "benchmarks.json").read_text())
    rows = []
    for file in sorted(path.glob("*/*.json")):
        if file.name == "machine.json":
            continue
        data = json.loads(file.read_text())
        columns = data.get("result_columns", [])
        date = datetime.datetime.fromtimestamp(data["date"] / 1000, datetime.timezone.utc)
        for name, values in data.get("results", {}).items():
            entry = dict(zip(columns, values))
            result, params = entry.get("result"), entry.get("params") or []
            if result is None:
                continue
            names = meta.get(name, {}).get("param_names", [])
            combos = list(itertools.product(*params)) if params else [()]
            results = result if isinstance(result, list) else [result]
            for combo, value in zip(combos, results):
                if value is None or value != value:  # skipped, failed or NaN
                    continue
                rows.append({"benchmark": name, "params": _param_label(names, combo),
                             "machine": file.parent.name, "commit": data["commit_hash"][:8], "date": date,
                             "value": float(value), "unit": meta.get(name, {}).get("unit", "")})
    if not rows:
        raise FileNotFoundError(f"no asv results in {path}")
    return pd.DataFrame(rows).sort_values(["benchmark", "params", "date"], ignore_index=True)


def history_figure(history: pd.DataFrame, benchmark: str, max_lines: int = 12) -> Figure:
    """A benchmark's value at each commit (oldest left), one line per parameter combination."""
    d = history[history["benchmark"] == benchmark]
    commits = d.drop_duplicates("commit").sort_values("date")["commit"].tolist()
    position = {c: i for i, c in enumerate(commits)}
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for label, grp in itertools.islice(d.groupby("params"), max_lines):
        grp = grp.sort_values("date")
        ax.plot([position[c] for c in grp["commit"]], grp["value"], marker="o", ms=4, label=label or "-")
    ax.set_xticks(range(len(commits)), commits, rotation=30, fontsize=7)
    unit = d["unit"].iloc[0] if len(d) else ""
    ax.set(xlabel="commit (oldest left)", ylabel=unit, title=benchmark.split(".", 1)[-1])
    if unit in ("seconds", "bytes"):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return fig
