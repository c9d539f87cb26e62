"""rnnbench's cuda backend against cuDNN (through torch) on one GPU, in one process.

For a lent GPU (the workplace's `device` tool; device_check.sh runs this). Per size: the weights of
a torch module copied into rnnbench, both given the same input, already on the device; rnnbench's
forward and forward+backward (dx and every weight gradient) checked against torch with TF32 off
(relative error of the output, dx and dW_hh), then timed with CUDA events: median of repeats after a
warm-up, as the default (``auto``, noting the path it took) and on each path and split of k
(``measure``'s variants) beside torch with TF32 off
(FP32, like for like) and on (its default). The layer API's time (host arrays in and out, the
copies included) is a row of its own. Rows go to the csv as they are measured, so a cut-off run
keeps what finished. Also: our GEMM against torch's on the projection of LSTM 1024/128/25.

    python benchmarks/gpu/vs_cudnn.py OUT.csv [seconds]
    python benchmarks/gpu/vs_cudnn.py --markdown OUT.csv     (the table of docs/gpu.md)
"""
import csv
import warnings
import sys
import time

import numpy as np

SIZES = [  # cell, T, B, H (input = hidden, DeepBench's convention); first the sizes whose targets
    # were missed in the last run (docs/gpu.md), in case the time budget cuts the list
    ("gru", 187, 32, 1024), ("lstm", 25, 1, 512), ("rnn_tanh", 50, 16, 1760), ("lstm", 25, 4, 512),
    ("lstm", 25, 128, 1024), ("rnn_tanh", 100, 1, 256), ("lstm", 150, 4, 256), ("lstm", 150, 1, 256),
    ("gru", 100, 1, 256), ("gru", 100, 4, 256), ("rnn_tanh", 100, 4, 1024), ("lstm", 25, 16, 512),
    ("lstm", 150, 16, 256),
]
FIELDS = ["cell", "seq_len", "batch", "hidden_size", "impl", "phase", "time_s", "rel_err_out", "rel_err_dx",
          "rel_err_dw_hh", "device", "note"]


def _median_events(fn, repeats, warmup=2):
    from numba import cuda

    for _ in range(warmup):
        fn()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = cuda.event(), cuda.event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cuda.event_elapsed_time(start, end) / 1e3)
    return float(np.median(times))


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _repeats(seconds):
    return int(np.clip(0.5 / max(seconds, 1e-6), 3, 20))


def measure(writer, f, cell_name, T, B, H, device):
    import torch
    from numba import cuda

    from rnnbench.backends.base import LayerWeights
    from rnnbench.backends.cuda import DeviceWeights, backward_pass, forward_pass, taken
    from rnnbench.cells import get_cell
    from rnnbench.layers import RecurrentLayer

    cell = get_cell(cell_name)
    torch.manual_seed(0)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}[cell_name](H, H).cuda()
    params = {k: v.detach().cpu().numpy() for k, v in module.named_parameters()}
    w = LayerWeights(params["weight_ih_l0"], params["weight_hh_l0"], params["bias_ih_l0"], params["bias_hh_l0"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, H)).astype(np.float32)
    go = rng.standard_normal((T, B, H)).astype(np.float32)
    zeros = np.zeros((B, H), np.float32)
    dw = DeviceWeights.from_host(cell_name, w)
    dx_, dgo, dz = cuda.to_device(x), cuda.to_device(go), cuda.to_device(zeros)
    lstm = cell_name == "lstm"
    grads = {k: cuda.to_device(np.zeros_like(getattr(w, k))) for k in ("w_ih", "w_hh", "b_ih", "b_hh")}

    xt = torch.from_numpy(x).cuda().requires_grad_(True)
    gt = torch.from_numpy(go).cuda()
    torch.backends.cudnn.allow_tf32 = False
    out_t, _ = module(xt)
    out_t.backward(gt)
    ref = out_t.detach().cpu().numpy(), xt.grad.cpu().numpy(), module.weight_hh_l0.grad.cpu().numpy()
    row = dict(cell=cell_name, seq_len=T, batch=B, hidden_size=H, device=device)

    def write(**kw):
        writer.writerow(dict(row, **kw))
        f.flush()

    def variant(label, path, splits) -> str:
        """Check one path (and split of k) against torch, then time it; returns the path of each pass
        ("persistent/steps": forward/backward), which auto's rows note."""
        def fwd(store=False):
            return forward_pass(cell, dw, dx_, dz, dz if lstm else None, False, store, path, splits)

        def fwd_bwd():
            tape = fwd(True)
            return backward_pass(cell, dw, tape, dx_, dgo, zeros, zeros if lstm else None, False, grads,
                                 path=path, splits=splits)

        try:  # a variant that fails (the persistent kernel does not fit, say) leaves the others
            tape = fwd(True)
            for g in grads.values():
                g.copy_to_device(np.zeros(g.shape, np.float32))
            dx, _, _ = backward_pass(cell, dw, tape, dx_, dgo, zeros, zeros if lstm else None, False, grads,
                                     path=path, splits=splits)
        except Exception as e:
            write(impl=f"rnnbench-{label}", phase="fwd", note=repr(e)[:300])
            return ""
        errs = dict(rel_err_out=_rel(tape.h.copy_to_host(), ref[0]), rel_err_dx=_rel(dx.copy_to_host(), ref[1]),
                    rel_err_dw_hh=_rel(grads["w_hh"].copy_to_host(), ref[2]))
        ran = {phase: taken(phase) for phase in ("fwd", "fwd+bwd")}
        for phase, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
            t1 = _median_events(fn, 3)
            write(impl=f"rnnbench-{label}", phase=phase, time_s=_median_events(fn, _repeats(t1)),
                  note=f"takes {ran[phase]}" if path == "auto" else "", **errs)
        return ran["fwd+bwd"]

    # what auto runs; the steps (unsplit and split along k) where auto takes them (elsewhere they
    # are launch-bound: docs/gpu.md); the persistent kernel where it fits; the streamed kernel,
    # unsplit and split, everywhere (still to be timed against the others)
    if "steps" in variant("auto", "auto", 1):
        variant("steps", "steps", 1)
        variant("steps-split", "steps", None)
    variant("persistent", "persistent", 1)
    variant("streamed", "streamed", 1)
    variant("streamed-split", "streamed", None)

    layer = RecurrentLayer(cell_name, H, H, backend="cuda", seed=0)

    def layer_step():
        layer(x)
        layer.backward(go, hidden=False)

    t1 = _median_events(layer_step, 2, warmup=1)
    write(impl="rnnbench-layer", phase="fwd+bwd", time_s=_median_events(layer_step, _repeats(t1), warmup=0),
          note="host arrays in and out: copies and weight transfers included")

    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32

        def t_fwd():
            with torch.no_grad():
                module(xt)

        def t_step():
            out, _ = module(xt)
            out.backward(gt)

        for phase, fn in (("fwd", t_fwd), ("fwd+bwd", t_step)):
            t1 = _median_events(fn, 3)
            write(impl=f"cudnn-tf32-{'on' if tf32 else 'off'}", phase=phase, time_s=_median_events(fn, _repeats(t1)))


def gemm_rates(out_dir):
    """Our register-tiled GEMM (several tiles) against torch.matmul (TF32 off) on the projection
    of LSTM 1024/128/25: (3200 x 1024) (1024 x 4096)."""
    import torch
    from numba import cuda

    from rnnbench.backends.cuda.matmul import gemm

    M, K, N = 3200, 1024, 4096
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((N, K)).astype(np.float32)
    da, db, out = cuda.to_device(a), cuda.to_device(b), cuda.device_array((M, N), np.float32)
    ref = a.astype(np.float64) @ b.T.astype(np.float64)
    lines = []
    for tile in ((4, 4), (2, 2), (8, 4), (4, 8)):
        gemm(da, db, out, b_nk=True, tile=tile)
        err = _rel(out.copy_to_host(), ref)
        t = _median_events(lambda: gemm(da, db, out, b_nk=True, tile=tile), 10)
        lines.append(f"rnnbench tile {tile}: {t * 1e3:.3f} ms, {2 * M * K * N / t / 1e12:.2f} TFLOP/s, rel err {err:.1e}")
    torch.backends.cuda.matmul.allow_tf32 = False
    ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    t = _median_events(lambda: ta @ tb.T, 10)
    lines.append(f"torch fp32: {t * 1e3:.3f} ms, {2 * M * K * N / t / 1e12:.2f} TFLOP/s")
    print("\n".join(lines), flush=True)
    with open(f"{out_dir}/gemm.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


def overheads(out_dir):
    """What a pass costs beside its kernels: a forward of one step at B = 1, H = 32 (each path),
    timed on the host and with events, and one device allocation; and where the host's time goes
    (cProfile of 20 such forwards per path, the top functions by own time, to profile.txt)."""
    import cProfile
    import io
    import pstats

    from numba import cuda

    from rnnbench.backends.cuda import DeviceWeights, forward_pass
    from rnnbench.backends.cuda.memory import empty
    from rnnbench.backends.base import LayerWeights
    from rnnbench.cells import get_cell

    rng = np.random.default_rng(0)
    H = 32
    w = LayerWeights(*(rng.standard_normal(s).astype(np.float32) * 0.1 for s in ((4 * H, H), (4 * H, H), (4 * H,), (4 * H,))))
    dw = DeviceWeights.from_host("lstm", w)
    x, z = cuda.to_device(rng.standard_normal((1, 1, H)).astype(np.float32)), cuda.to_device(np.zeros((1, H), np.float32))
    lines, profiles = [], []
    for path in ("persistent", "streamed", "steps"):
        fn = lambda: forward_pass(get_cell("lstm"), dw, x, z, z, False, True, path)  # noqa: E731
        fn()
        cuda.synchronize()
        began = time.perf_counter()
        for _ in range(50):
            fn()
        cuda.synchronize()
        lines.append(f"one-step LSTM forward ({path}): host {(time.perf_counter() - began) / 50 * 1e6:.0f} us, "
                     f"events {_median_events(fn, 20) * 1e6:.0f} us")
        profile = cProfile.Profile()
        profile.runcall(lambda: [fn() for _ in range(20)])
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
        profiles.append(f"## {path}: 20 one-step LSTM forwards\n{text.getvalue()}")
    with open(f"{out_dir}/profile.txt", "w") as f:
        f.write("\n".join(profiles))
    began = time.perf_counter()
    for _ in range(100):
        empty((1024, 1024), np.float32)
    lines.append(f"device allocation of 4 MB: {(time.perf_counter() - began) / 100 * 1e6:.0f} us")
    print("\n".join(lines), flush=True)
    return lines


def main(out, budget_s=240.0):
    import os

    import torch
    from numba.core.errors import NumbaPerformanceWarning

    warnings.simplefilter("ignore", NumbaPerformanceWarning)  # small grids are by design at small batch
    began = time.perf_counter()
    device = torch.cuda.get_device_name()
    folder = os.path.dirname(os.path.abspath(out))
    gemm_rates(folder)
    with open(f"{folder}/overheads.txt", "w") as f:
        f.write("\n".join(overheads(folder)) + "\n")
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for cell, T, B, H in SIZES:
            if time.perf_counter() - began > budget_s:
                print("budget spent; stopped before", cell, T, B, H, flush=True)
                break
            try:
                measure(writer, f, cell, T, B, H, device)
            except Exception as e:  # keep the other sizes
                import traceback

                traceback.print_exc()
                writer.writerow(dict(cell=cell, seq_len=T, batch=B, hidden_size=H, impl="error", note=repr(e)[:300]))
                f.flush()
            print(cell, T, B, H, "done", f"{time.perf_counter() - began:.0f} s", flush=True)
    summary(out)


def summary(out):
    """The last lines printed: the table of docs/gpu.md for this GPU, and the largest errors."""
    import pandas as pd

    print(markdown(out))
    errs = pd.read_csv(out).groupby("impl")[["rel_err_out", "rel_err_dx", "rel_err_dw_hh"]].max()
    print(errs.dropna().to_string())


OURS = ("steps", "steps-split", "persistent", "streamed", "streamed-split")


def markdown(out) -> str:
    """The csv as the table of docs/gpu.md: times in ms; cuDNN's time over that of ``auto`` (the
    default; "takes" names the path of each pass; above 1: ours is faster), and over our fastest
    variant's."""
    import pandas as pd

    df = pd.read_csv(out)
    df = df[df["time_s"].notna()]
    keys = ["cell", "seq_len", "batch", "hidden_size", "phase"]
    t = df.pivot_table(index=keys, columns="impl", values="time_s")
    takes = df[df["impl"] == "rnnbench-auto"].set_index(keys)["note"].fillna("").str.removeprefix("takes ")
    head = ["cell", "T", "B", "H", "phase", "cuDNN TF32 off", "cuDNN TF32 on", "auto", "auto takes", "vs off",
            "vs on", *OURS, "fastest of ours", "vs off", "layer API"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for key, r in t.iterrows():
        ours = r["rnnbench-auto"]
        measured = {k: r[f"rnnbench-{k}"] for k in OURS if pd.notna(r.get(f"rnnbench-{k}"))}
        best = min(measured, key=measured.get)
        ms = [f"{r[k] * 1e3:.2f}" if pd.notna(r.get(k)) else "" for k in
              ("cudnn-tf32-off", "cudnn-tf32-on", "rnnbench-auto", *(f"rnnbench-{k}" for k in OURS),
               "rnnbench-layer")]
        lines.append("| " + " | ".join(map(str, key)) + " | " + " | ".join(ms[:3]) + f" | {takes[key]} | "
                     f"{r['cudnn-tf32-off'] / ours:.2f}x | {r['cudnn-tf32-on'] / ours:.2f}x | "
                     + " | ".join(ms[3:-1]) + f" | {best} | {r['cudnn-tf32-off'] / measured[best]:.2f}x | {ms[-1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "--markdown":
        print(markdown(sys.argv[2]))
    else:
        main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 240.0)
