"""Tidy results: one measurement a row, the columns of DESIGN.md, and the environment beside them."""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

# Every row has these; experiments add their own (phase, threads, strategy, step, scale, ...).
COLUMNS = ["experiment", "cell", "backend", "dtype", "seq_len", "batch", "input_size", "hidden_size",
           "num_layers", "bidirectional", "truncation", "metric", "value", "unit"]
# Columns that say what was measured (``--resume`` keys on these), in the order tables show them.
CONFIG_COLUMNS = [c for c in COLUMNS if c not in ("metric", "value", "unit")] + [
    "phase", "threads", "strategy", "step", "scale", "init", "seed", "param", "chunk"]


def truncation_label(truncation) -> str:
    """DESIGN.md's spelling: ``full``, ``k`` or ``k1:k2``."""
    if truncation is None:
        return "full"
    if isinstance(truncation, (tuple, list)):
        k1, k2 = truncation
        return str(k1) if k1 == k2 else f"{k1}:{k2}"
    return str(truncation)


def to_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a DataFrame with the DESIGN.md columns first (missing ones empty)."""
    df = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in df:
            df[col] = pd.NA
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_info() -> dict:
    """CPU model, logical cores and the SIMD features that decide kernel speed."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = value.split()
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
    return {"model": model, "logical_cores": os.cpu_count(), "simd": simd}


def git_commit() -> str | None:
    """The commit of the rnnbench source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict:
    """Versions, CPU, threads and commit: what a reader needs to trust or reproduce a number.

    Never imports torch (its version is read from the installed metadata).
    """
    from rnnbench import __version__
    from rnnbench.runtime import get_num_threads

    return {
        "rnnbench": __version__,
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in ("numba", "numpy", "scipy", "pandas", "llvmlite", "torch")},
        "cpu": cpu_info(),
        "threads": get_num_threads(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
