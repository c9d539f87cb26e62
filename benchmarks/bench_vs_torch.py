"""track_ benchmarks: how many times faster the cpu backend is than torch's CPU RNN, measured side by
side in one process (interleaved repeats, medians, compile excluded; analysis.speed)."""
from .common import CELLS, SIZES, THREADS


class TrackSpeedupVsTorch:
    params = [CELLS, list(SIZES)]
    param_names = ["cell", "size"]
    unit = "x (torch time / rnnbench time)"
    timeout = 600

    def setup(self, cell, size):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise NotImplementedError("torch is not installed: pip install 'rnnbench[torch]'") from None
        from rnnbench.analysis.runners import Config
        from rnnbench.analysis.speed import measure_speed

        T, B, I, H = SIZES[size]
        rows = measure_speed(Config(cell, T, B, I, H), backends=("cpu", "torch"), repeats=5, warmup=1,
                             threads=THREADS, gemm=False)
        t = {(r["backend"], r["phase"]): r["value"] for r in rows if r["metric"] == "time_s"}
        self.speedup = {p: t[("torch", p)] / t[("cpu", p)] for p in ("fwd", "fwd+bwd")}

    def track_forward(self, cell, size):
        return self.speedup["fwd"]

    def track_forward_bptt(self, cell, size):
        return self.speedup["fwd+bwd"]
