"""Memory of a training step under each BPTT strategy (full, checkpointed, streaming truncated).

``peakmem_`` is asv's: the process's peak resident memory, imports included. Numba's kernels are
compiled into its disk cache in ``setup_cache`` (a process of its own), so the benchmark process
only loads them and compilation never shows up in the peak. ``track_peak_bytes`` is the step
alone, as tracemalloc sees it (every NumPy and Numba allocation, nothing else).
"""
import rnnbench as rb
from rnnbench.analysis.memory import measure_memory
from rnnbench.analysis.runners import Config, Runner
from rnnbench.analysis.strategies import training_step

from .common import CELLS, pin_threads

STRATEGIES = ["full", "checkpoint", "streaming"]
CONFIG = dict(seq_len=2000, batch=16, input_size=32, hidden_size=128)


def _chunk(strategy):
    return 32 if strategy == "streaming" else None


class PeakmemStrategies:
    params = [CELLS, STRATEGIES]
    param_names = ["cell", "strategy"]

    def setup_cache(self):
        rb.warmup(cells=CELLS, dtypes=("float32",))

    setup_cache.timeout = 300  # a cold cache: every kernel compiled serial and parallel, minutes

    def setup(self, cell, strategy):
        pin_threads()
        self.step = training_step(Runner(Config(cell, **CONFIG), "cpu"), strategy, chunk=_chunk(strategy))

    def peakmem_training_step(self, cell, strategy):
        self.step()


class TrackPeakBytes:
    params = [CELLS, STRATEGIES]
    param_names = ["cell", "strategy"]
    unit = "bytes"

    def track_peak_bytes(self, cell, strategy):
        pin_threads()
        rows = measure_memory(Config(cell, **CONFIG), "cpu", strategy, chunk=_chunk(strategy))
        return next(r["value"] for r in rows if r["metric"] == "peak_bytes")
