"""rnnbench's cuda backend against cuDNN (through torch) on one GPU, in one process.

For a lent GPU (the workplace's `device` tool; device_check.sh runs this): per size, the median
of forward+backward over repeats after a warm-up, synchronised; torch with TF32 off (FP32, like
for like) and on (its default). rnnbench's time includes the host copies at the layer boundary
(the first increment of issue 7 keeps the tape on the host): stated in the csv's `note`.
Rows are appended to the csv as they are measured, so a cut-off run keeps what finished.

    python benchmarks/gpu/vs_cudnn.py OUT.csv [seconds]
"""
import csv
import sys
import time

import numpy as np

SIZES = [  # cell, T, B, H (input = hidden, DeepBench's convention)
    ("lstm", 150, 1, 256), ("lstm", 25, 4, 512), ("gru", 100, 4, 256), ("rnn_tanh", 100, 1, 256),
    ("lstm", 25, 16, 512), ("lstm", 150, 16, 256), ("rnn_tanh", 50, 16, 1760), ("lstm", 25, 128, 1024),
    ("gru", 187, 32, 1024),
]


def _median(fn, sync, repeats=5):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(out, budget_s=240.0):
    import torch
    from numba import cuda

    from rnnbench.layers import RecurrentLayer

    began = time.perf_counter()
    fields = ["cell", "seq_len", "batch", "hidden_size", "impl", "time_s", "device", "note"]
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        device = torch.cuda.get_device_name()
        for cell, T, B, H in SIZES:
            if time.perf_counter() - began > budget_s:
                break
            rng = np.random.default_rng(0)
            x = rng.standard_normal((T, B, H)).astype(np.float32)
            ours = RecurrentLayer(cell, H, H, backend="cuda", seed=0)
            go = np.ones((T, B, H), np.float32)
            row = dict(cell=cell, seq_len=T, batch=B, hidden_size=H, device=device)
            t = _median(lambda: (ours(x), ours.backward(go, hidden=False)), cuda.synchronize)
            writer.writerow(dict(row, impl="rnnbench-cuda", time_s=t, note="fwd+bwd; host copies at the layer boundary"))
            f.flush()
            module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}[cell](H, H).cuda()
            xt = torch.from_numpy(x).cuda().requires_grad_(True)
            gt = torch.from_numpy(go).cuda()
            for tf32 in (False, True):
                torch.backends.cudnn.allow_tf32 = tf32

                def step():
                    out, _ = module(xt)
                    out.backward(gt)

                t = _median(step, torch.cuda.synchronize)
                writer.writerow(dict(row, impl=f"cudnn-tf32-{'on' if tf32 else 'off'}", time_s=t,
                                     note="fwd+bwd; data resident on the GPU"))
                f.flush()
            print(cell, T, B, H, "done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 240.0)
