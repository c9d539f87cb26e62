"""Tidy results: one measurement a row, the columns of DESIGN.md, and the environment beside them."""
from __future__ import annotations

import datetime
import importlib.metadata
import io
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
    "task", "optimizer", "lr", "clip", "phase", "threads", "strategy", "step", "distance", "scale", "init", "seed",
    "param", "chunk"]


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


def blas_info() -> list[dict]:
    """Each BLAS library loaded: file, kernel architecture, version and threads (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    return [{k: lib.get(k) for k in ("filepath", "architecture", "version", "num_threads")}
            for lib in threadpool_info() if lib.get("user_api") == "blas"]


def git_commit() -> str | None:
    """The commit of the rnnbench source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def gpu_status() -> str:
    """The GPU(s) numba.cuda sees and the driver, whether the CUDA simulator is on, or why none."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "CUDA simulator on (NUMBA_ENABLE_CUDASIM=1)"
    try:
        from numba import cuda

        if cuda.is_available():
            names = [d.name.decode() if isinstance(d.name, bytes) else str(d.name) for d in cuda.gpus]
            return ", ".join(names) + f" (driver {cuda.cudadrv.driver.driver.get_version()})"
    except Exception as e:  # no CUDA toolkit or driver: say so rather than fail
        return f"no GPU ({type(e).__name__})"
    return "no GPU (numba.cuda sees none)"


def environment() -> dict:
    """Versions, CPU, threads and commit: what a reader needs to trust or reproduce a number.

    Never imports torch (its version is read from the installed metadata).
    """
    from rnnbench import __version__
    from rnnbench.runtime import _MALLOC_KEPT, get_num_threads

    return {
        "rnnbench": __version__,
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in ("numba", "numpy", "scipy", "pandas", "llvmlite", "torch", "statsmodels")},
        "cpu": cpu_info(),
        "threads": get_num_threads(),
        "blas": blas_info(),
        "malloc_keeps_freed_memory": bool(_MALLOC_KEPT["applied"]),
        "gpu": gpu_status(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# Columns an experiment may add beside COLUMNS, in the order a results.csv holds them.
EXTRA_COLUMNS = ["phase", "threads", "strategy", "step", "distance", "scale", "init", "seed", "seeds", "param",
                 "chunk", "k", "stat", "status", "cache", "clock", "path", "repeats", "time_s_min", "time_s_max",
                 "time_s_iqr", "value_q10", "value_q90", "note", "host", "cpu", "worker", "task_key", "error",
                 "task", "optimizer", "lr", "clip"]
ALL_COLUMNS = COLUMNS + EXTRA_COLUMNS


class ResultsFolder:
    """A results folder: ``results.csv`` appended a measurement at a time, ``meta.json`` beside.

    Rows reach the disk the moment a task finishes, so an interrupted sweep keeps everything it
    finished; with ``resume`` the tasks already in the folder are skipped.
    """

    def __init__(self, path, command: list[str] | None = None, resume: bool = False):
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise OSError(f"cannot write to the output folder {self.path}: {e.strerror or e}") from None
        self.csv = self.path / "results.csv"
        self.done_file = self.path / "tasks.done"
        self.checkpoints = self.path / "checkpoints"  # training runs in progress (train.py)
        if self.csv.exists() and not resume:
            raise FileExistsError(f"{self.csv} exists: pass --resume to continue it, or choose another -o folder")
        self.done = set(self.done_file.read_text().split("\n")) - {""} if self.done_file.exists() else set()
        if resume and self.csv.exists():
            self._drop_unfinished()
        self.meta = environment()
        self.meta.update(command=command or [], start=self.meta.pop("time"), end=None, failures=[])
        self._write_meta()

    def _write_meta(self):
        import json

        (self.path / "meta.json").write_text(json.dumps(self.meta, indent=2, default=str))

    def _drop_unfinished(self) -> None:
        """Keep only the rows of tasks recorded as done: a process killed while writing may have
        left part of a task's rows (or half a line) behind. A folder written by a version with
        other columns gets this version's, so that the rows appended next line up."""
        text = self.csv.read_text()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        frame = pd.read_csv(io.StringIO(text), low_memory=False) if text else pd.DataFrame(columns=ALL_COLUMNS)
        kept = frame[frame["task_key"].isin(self.done)]
        if len(kept) != len(frame) or len(text) != self.csv.stat().st_size or list(frame.columns) != ALL_COLUMNS:
            kept.reindex(columns=ALL_COLUMNS).to_csv(self.csv, index=False)

    def append(self, rows: list[dict], task: str) -> None:
        """Write one task's rows (tagged with the task's key) to results.csv, then record the
        task as done; both flushed to disk before returning."""
        unknown = {k for row in rows for k in row} - set(ALL_COLUMNS)
        if unknown:
            raise ValueError(f"rows carry columns results.csv does not know: {sorted(unknown)}")
        frame = pd.DataFrame([dict(r, task_key=task) for r in rows], columns=ALL_COLUMNS)
        text = frame.to_csv(index=False, header=not self.csv.exists())
        for path, data in ((self.csv, text), (self.done_file, task + "\n")):
            with open(path, "a") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        self.done.add(task)

    def fail(self, task: str, error: str) -> None:
        self.meta["failures"].append({"task": task, "error": error})
        self._write_meta()

    def finish(self, **extra) -> pd.DataFrame:
        """Close the folder: end time in meta.json, and results.parquet when pyarrow is there."""
        self.meta.update(end=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **extra)
        self._write_meta()
        if not self.csv.exists():  # every task failed
            return pd.DataFrame(columns=ALL_COLUMNS + ["source"])
        frame = load([self.path])
        try:
            frame.to_parquet(self.path / "results.parquet", index=False)
        except ImportError:
            pass
        return frame


def load(folders) -> pd.DataFrame:
    """The results.csv of one or more folders as one DataFrame, with a ``source`` column."""
    frames = []
    for folder in folders:
        csv = Path(folder) / "results.csv"
        if not csv.exists():
            raise FileNotFoundError(f"no results.csv in {folder}")
        frame = pd.read_csv(csv, low_memory=False)
        frame["source"] = str(folder)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def load_meta(folder) -> dict:
    import json

    path = Path(folder) / "meta.json"
    return json.loads(path.read_text()) if path.exists() else {}


# What tells training runs apart besides task, cell and length; filled where a run used the default.
TRAIN_SETTINGS = {"optimizer": None, "lr": None, "clip": 0.0, "truncation": "full", "scale": "init",
                  "chunk": "windows", "hidden_size": None, "batch": None, "seed": None}


def training_runs(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The training rows with default settings spelt out, and the settings that vary among them."""
    d = frame[frame["experiment"] == "train"] if "experiment" in frame else frame.iloc[0:0]
    fills = {c: v for c, v in TRAIN_SETTINGS.items() if v is not None and c in d}
    d = d.assign(**{c: d[c].astype(object).where(d[c].notna(), v) for c, v in fills.items()})
    varying = [c for c in TRAIN_SETTINGS if c in d and d[c].nunique(dropna=False) > 1]
    return d, varying
