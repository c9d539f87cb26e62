"""The cuda backend against the cpu backend (itself checked against torch), and a sample of its
options against torch: every cell, every path (per-step launches, the persistent kernel, the
streamed one), split products, options, truncation, hidden / cell gradients, the gradient analysis
and training; and its products against numpy. Tiny sizes: under the simulator every thread is
Python."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnbench.backends import get_backend
from rnnbench.layers import RecurrentLayer

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


@pytest.fixture
def path(request, monkeypatch):
    monkeypatch.setattr(get_backend("cuda"), "path", request.param)
    return request.param


def _pair(cell, dtype, hidden=5, **options):
    kw = dict(dtype=dtype, seed=3, **options)
    return RecurrentLayer(cell, 3, hidden, backend="cpu", **kw), RecurrentLayer(cell, 3, hidden, backend="cuda", **kw)


def _compare(cell, dtype, rtol, T=4, B=2, backward=None, forward=None, hidden=5, **options):
    cpu, gpu = _pair(cell, dtype, hidden, **options)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, B, 3)).astype(dtype)
    hx = None
    if options.get("num_layers", 1) > 1 or options.get("bidirectional"):
        n = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
        h = rng.standard_normal((n, B, hidden)).astype(dtype)
        hx = (h, rng.standard_normal((n, B, hidden)).astype(dtype)) if cell == "lstm" else h
    outs = [m(x, hx, **(forward or {})) for m in (cpu, gpu)]
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=rtol, atol=rtol)
    go = rng.standard_normal(outs[0][0].shape).astype(dtype)
    grads = [m.backward(go, hidden=True, **(backward or {})) for m in (cpu, gpu)]
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        a, b = grads[0][k], grads[1][k]
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_allclose(v, u, rtol=rtol, atol=rtol, err_msg=f"{cell} {k}")
    return cpu, gpu


@pytest.mark.parametrize("path", ["steps", "persistent", "streamed"], indirect=True)
@pytest.mark.parametrize("cell", CELLS)
def test_float64_equals_the_cpu_backend(cell, path):
    _compare(cell, "float64", 1e-12, bidirectional=True)


@pytest.mark.parametrize("path", ["steps", "persistent", "streamed"], indirect=True)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_agrees_with_the_cpu_backend(cell, path):
    cpu, gpu = _compare(cell, "float32", 1e-5, num_layers=2, B=5)
    for name, plane in gpu.gate_activations(1).items():
        np.testing.assert_allclose(plane, cpu.gate_activations(1)[name], rtol=1e-5, atol=1e-6)


@settings(max_examples=10)
@given(data=st.data())
def test_property_random_options_against_torch(data):
    """A sample of the option matrix on the device against torch's autograd (float64): cell, path,
    split products, layers, bias, batch_first, directions, initial states, unbatched input."""
    from conftest import make, random_inputs
    from torch_oracle import assert_matches_torch

    draw = data.draw
    backend = get_backend("cuda")
    path = draw(st.sampled_from(["steps", "persistent", "streamed"]), label="path")
    splits = 1 if path == "persistent" else draw(st.sampled_from([1, 2]), label="splits")
    options = dict(num_layers=draw(st.integers(1, 2), label="layers"), bias=draw(st.booleans(), label="bias"),
                   batch_first=draw(st.booleans(), label="batch_first"),
                   bidirectional=draw(st.booleans(), label="bidirectional"))
    I, H = draw(st.integers(1, 4), label="I"), draw(st.integers(1, 6), label="H")
    T, B = draw(st.integers(1, 4), label="T"), draw(st.integers(1, 3), label="B")
    m = make(draw(st.sampled_from(CELLS), label="cell"), I, H, backend="cuda", dtype="float64", seed=3, **options)
    x, hx, go, gh = random_inputs(m, T, B, np.random.default_rng(draw(st.integers(0, 99), label="data seed")),
                                  with_state=draw(st.booleans(), label="hx"),
                                  unbatched=draw(st.booleans(), label="unbatched"))
    saved = backend.path, backend.splits
    backend.path, backend.splits = path, splits
    try:
        assert_matches_torch(m, x, hx, go, gh, rtol=1e-9, atol=1e-11)
    finally:
        backend.path, backend.splits = saved


@pytest.mark.parametrize("path", ["steps", "persistent"], indirect=True)
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm"])
def test_truncation_and_checkpointing(cell, path):
    _compare(cell, "float64", 1e-12, T=5, backward={"truncation": (2, 3)})
    _compare(cell, "float64", 1e-12, T=5, forward={"checkpoint": 2})


@pytest.mark.parametrize("path, cell, splits", [("steps", "lstm", 2), ("steps", "gru", 3), ("streamed", "lstm", 3),
                                               ("streamed", "gru", 2)])
def test_a_step_product_split_along_k_adds_up(path, cell, splits, monkeypatch):
    """H = 20: the forward's k (20) is two slices of 16, the backward's (G H) five or four; three
    splits of the forward leave one empty. Every split's sums are added (steps: by the last block
    of each tile; streamed: after a grid sync)."""
    from rnnbench.backends.cuda import tiles

    backend = get_backend("cuda")
    monkeypatch.setattr(backend, "path", path)
    monkeypatch.setattr(backend, "splits", splits)
    planned = []
    plan = tiles.plan
    monkeypatch.setattr(tiles, "plan", lambda *a: planned.append(plan(*a)) or planned[-1])
    _compare(cell, "float64", 1e-12, T=3, hidden=20)
    assert len(planned) == 2 and {p[2] for p in planned} == {splits}  # forward and backward both split


def test_an_automatic_split_aims_at_two_blocks_per_sm(monkeypatch):
    from rnnbench.backends.cuda import tiles

    monkeypatch.setattr(tiles, "T", 16)  # a GPU's blocks (the simulator's are 4 x 4)
    # GRU 1024 at batch 32 on 132 SMs: 64 tiles of 32 x 16 units -> 5 splits of k (1024 deep)
    assert tiles.plan(32, 1024, 1024, 3, tiles.tile_for(32), 132) == (64, 1, 5, 64 * 5 * 2 * 3 * 16 * 16)
    assert tiles.plan(128, 1024, 4096, 1, tiles.tile_for(128), 132)[:3] == (64, 2, 3)  # LSTM 1024's backward
    assert tiles.plan(16, 256, 256, 4, tiles.tile_for(16), 132)[2] == 2  # k of 256: two splits at most
    assert tiles.plan(1, 64, 64, 1, tiles.tile_for(1), 132)[2:] == (1, 1)  # too shallow to split: no scratch
    assert get_backend("cuda").splits == 1  # splits are asked for, not automatic (not yet timed on a GPU)
    with pytest.raises(ValueError, match="splits must be a whole number from 1, or None.*not 0"):
        get_backend("cuda").splits = 0


def test_unbatched_and_batch_first():
    cpu, gpu = _pair("gru", "float64", batch_first=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 3))
    np.testing.assert_allclose(gpu(x)[0], cpu(x)[0], rtol=1e-12)
    np.testing.assert_allclose(gpu(x[0])[0], cpu(x[0])[0], rtol=1e-12)


@pytest.mark.parametrize("a_km", [False, True])
@pytest.mark.parametrize("b_nk", [False, True])
def test_matmul_every_layout_against_numpy(a_km, b_nk):
    from numba import cuda

    from rnnbench.backends.cuda.matmul import column_sums, gemm, transposed

    rng = np.random.default_rng(2)
    A, Bm = rng.standard_normal((9, 21)), rng.standard_normal((21, 7))  # over a tile in every direction
    out = cuda.to_device(np.ones((9, 7)))
    gemm(cuda.to_device(np.ascontiguousarray(A.T if a_km else A)),
           cuda.to_device(np.ascontiguousarray(Bm.T if b_nk else Bm)), out, True, a_km=a_km, b_nk=b_nk)
    np.testing.assert_allclose(out.copy_to_host(), 1 + A @ Bm, rtol=1e-12)
    sums = cuda.to_device(np.ones(21))
    column_sums(cuda.to_device(A), sums, chunks=4)
    np.testing.assert_allclose(sums.copy_to_host(), 1 + A.sum(axis=0), rtol=1e-12)
    t = transposed(cuda.to_device(A), cuda.device_array((21, 9)))
    np.testing.assert_array_equal(t.copy_to_host(), A.T)


def test_freed_device_memory_is_reused_once_no_view_is_left():
    import gc

    from numba import config

    from rnnbench.backends.cuda.memory import empty

    if config.ENABLE_CUDASIM:
        pytest.skip("the simulator has no device memory to pool")
    a = empty((1000,), np.float32)
    first = a.device_ctypes_pointer.value
    view = a[10:]
    del a
    gc.collect()
    b = empty((1000,), np.float32)  # the view still holds the first block
    assert b.device_ctypes_pointer.value != first
    del view
    gc.collect()
    c = empty((250, 4), np.float32)
    assert c.device_ctypes_pointer.value == first and c.shape == (250, 4) and c.is_c_contiguous()


def test_the_ledger_counts_device_bytes_until_freed():
    import gc

    from rnnbench.backends.cuda.memory import LEDGER, empty

    gc.collect()
    LEDGER.reset_peak()
    before = LEDGER.live
    a = empty((10, 4), np.float64)
    view = a[2:]
    del a
    gc.collect()
    assert LEDGER.live == before + 320  # a view keeps the allocation alive
    del view
    gc.collect()
    assert LEDGER.live == before and LEDGER.peak == before + 320


def test_memory_analysis_reports_the_device_peak():
    from rnnbench.analysis.memory import measure_memory
    from rnnbench.analysis.runners import Config

    config = Config(cell="lstm", seq_len=6, batch=2, input_size=3, hidden_size=4, dtype="float64")
    rows = {r["metric"]: r["value"] for r in measure_memory(config, backend="cuda")}
    tape = 6 * 2 * 4 * 8 * (1 + 1 + 4)  # h, c and four gate planes, on the device
    assert tape < rows["peak_bytes"] < 20 * tape


def _device_model_and_peak(config, strategy, chunk=None):
    from rnnbench.analysis.memory import measure_memory

    rows = {r["metric"]: r["value"] for r in measure_memory(config, "cuda", strategy, chunk=chunk)}
    return rows["model_bytes"], rows["peak_bytes"]


@settings(max_examples=6)
@given(data=st.data())
def test_the_device_memory_model_equals_the_ledgers_peak(data):
    """``model_bytes(..., backend="cuda")`` counts every device buffer at the peak of a training
    step: equal to the backend's ledger for a sample of cells, sizes, layers, directions, dtypes
    and strategies."""
    from rnnbench.analysis.runners import Config

    draw = data.draw
    strategy = draw(st.sampled_from(["full", "checkpoint", "streaming"]), label="strategy")
    config = Config(draw(st.sampled_from(CELLS), label="cell"), draw(st.integers(1, 5), label="T"),
                    draw(st.integers(1, 3), label="B"), draw(st.integers(1, 4), label="I"),
                    draw(st.integers(1, 4), label="H"), num_layers=draw(st.integers(1, 2), label="layers"),
                    bidirectional=draw(st.booleans(), label="bidirectional"),
                    dtype=draw(st.sampled_from(["float32", "float64"]), label="dtype"))
    model, peak = _device_model_and_peak(config, strategy, None if strategy == "full" else draw(
        st.integers(1, 4), label="chunk"))
    assert model == peak > 0


def test_the_device_memory_model_past_16_rows_of_batch_and_64_rows_of_bias_sums():
    from rnnbench.analysis.runners import Config

    model, peak = _device_model_and_peak(Config("gru", 4, 20, 2, 2, dtype="float32"), "full")
    assert model == peak > 0  # the steps' other tile (batch 20), bias sums over 64 of the 80 rows


def test_the_persistent_plan_fills_shared_memory_with_as_few_blocks_as_fit(monkeypatch):
    from numba import config

    from rnnbench.backends.cuda import persistent

    monkeypatch.setattr(config, "ENABLE_CUDASIM", 0)
    # vanilla RNN 1760 at batch 16, float32, 132 SMs: 14 units a block would take 98 KB; 6 take 42 KB
    J, S, shared = persistent.plan(1, 1760, 1760, 16, 4, 132)
    assert J == 6 and shared == (6 * 1760 + max(persistent.THREADS, 16 * 6)) * 4 <= persistent.SHARED_BYTES
    assert S * 16 * 6 <= max(persistent.THREADS, 16 * 6) < 2 * S * 16 * 6  # lanes: as many as the threads allow
    assert persistent.plan(4, 4096, 4096, 1, 4, 132) is None  # one LSTM unit's four rows: 64 KB


def _clock() -> str:
    """The clock the analysis layer times the cuda backend with: CUDA events on a GPU; the host's
    under the simulator, whose events record no time."""
    from numba import config

    return "host" if config.ENABLE_CUDASIM else "cuda_event"


def test_the_speed_analysis_times_the_cuda_backend():
    from rnnbench.analysis.runners import Config
    from rnnbench.analysis.speed import measure_speed

    config = Config(cell="gru", seq_len=3, batch=2, input_size=3, hidden_size=4, dtype="float64")
    rows = measure_speed(config, backends=("cuda",), repeats=1, warmup=0)
    times = {r["phase"]: r["value"] for r in rows if r["metric"] == "time_s" and r["backend"] == "cuda"}
    assert set(times) == {"fwd", "bwd", "fwd+bwd"} and all(v > 0 for v in times.values())
    assert {r["clock"] for r in rows} == {_clock()} and {r["backend"] for r in rows} == {"cuda"}  # no host GEMM rows
    assert {r["path"] for r in rows if r["metric"] == "time_s"} == {"persistent"}  # auto's pick at batch 2


def test_taken_names_the_path_each_pass_ran(monkeypatch):
    from rnnbench.backends import cuda

    for path in ("steps", "persistent", "streamed"):
        monkeypatch.setattr(get_backend("cuda"), "path", path)
        _compare("gru", "float64", 1e-12, T=2, B=1, hidden=3)
        assert cuda.taken("fwd") == cuda.taken("bwd") == cuda.taken("fwd+bwd") == path
    monkeypatch.setattr(cuda, "TAKEN", {"forward": "persistent", "backward": "steps"})
    assert cuda.taken("fwd+bwd") == "persistent/steps" and cuda.taken("bwd") == "steps"


def test_on_a_gpu_the_cuda_backend_is_timed_with_events(monkeypatch):
    from numba import config

    from rnnbench.analysis.runners import Config, Runner
    from rnnbench.analysis.timing import cuda_event_clock

    runner = Runner(Config(cell="rnn_tanh", seq_len=2, batch=1, input_size=3, hidden_size=4), "cuda")
    calls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's own simulator warns that its event timings are bogus
        elapsed = cuda_event_clock(lambda: calls.append(runner.forward()))
    if config.ENABLE_CUDASIM:  # events, not the host clock (a simulated forward takes milliseconds):
        assert elapsed <= 0.0  # the simulator's record no time (numba's own says 0, numba-cuda 0.30's -1 ms)
    else:
        assert elapsed > 0.0
    assert len(calls) == 1
    monkeypatch.setattr(config, "ENABLE_CUDASIM", 0)
    assert runner.clock == "cuda_event" and Runner(runner.config, "cpu").clock == "host"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_stack_with_dropout_passes_device_arrays_between_layers(cell):
    cpu, gpu = _compare(cell, "float64", 1e-12, num_layers=2, bidirectional=True, dropout=0.5)
    assert not isinstance(gpu._record.tapes[0][1].h, np.ndarray)  # layer 0's output stayed on the device
    assert isinstance(gpu(np.ones((2, 2, 3)))[0], np.ndarray)  # the stack's output is numpy


def test_an_unknown_path_is_refused():
    with pytest.raises(ValueError, match="unknown cuda path 'fast'; choose one of auto, steps, persistent, streamed"):
        get_backend("cuda").path = "fast"


def test_rnnbench_run_on_the_cuda_backend_reports_its_clock_and_device_memory(tmp_path):
    import pandas as pd
    from click.testing import CliRunner

    from rnnbench import cli

    r = CliRunner().invoke(cli.main, ["run", "--backends", "cuda", "--cells", "rnn_tanh", "--seq-lens", "3",
                                      "--batch", "2", "--input-size", "3", "--hidden-size", "4", "--repeats", "1",
                                      "--quiet", "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    rows = pd.read_csv(tmp_path / "results.csv")
    assert set(rows["backend"]) == {"cuda"}  # no host GEMM rows beside a device backend
    speed, memory = rows[rows["experiment"] == "speed"], rows[rows["experiment"] == "memory"]
    assert set(speed["clock"]) == {_clock()}
    peaks = memory[memory["metric"] == "peak_bytes"]
    assert set(peaks["strategy"]) == {"full", "checkpoint", "streaming"} and (peaks["value"] > 0).all()


def test_the_gpu_benchmark_runs_through_with_torch_on_the_cpu(tmp_path, monkeypatch):
    """benchmarks/gpu/vs_cudnn.py runs only on a lent GPU, whose minutes a Python slip would waste:
    here its loop over paths and splits, the checks against torch, the csv and the table run under
    the simulator, torch's CPU modules standing in for cuDNN (on a GPU, device_check.sh runs it)."""
    import importlib.util
    from pathlib import Path

    import pandas as pd
    import torch
    from numba import config

    if not config.ENABLE_CUDASIM:
        pytest.skip("on a GPU, benchmarks/gpu/device_check.sh runs the script itself")
    script = Path(__file__).parents[2] / "benchmarks" / "gpu" / "vs_cudnn.py"
    spec = importlib.util.spec_from_file_location("vs_cudnn", script)
    vs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vs)
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)

    def once(fn, repeats, warmup=2):  # the simulator's events record no time: run once, say 1 ms
        fn()
        return 1e-3

    monkeypatch.setattr(vs, "_median_events", once)
    out = tmp_path / "vs_cudnn.csv"
    with open(out, "w", newline="") as f:
        writer = vs.csv.DictWriter(f, fieldnames=vs.FIELDS)
        writer.writeheader()
        vs.measure(writer, f, "lstm", 2, 2, 4, "simulator")  # auto takes the persistent kernel
        vs.measure(writer, f, "gru", 2, 20, 4, "simulator")  # batch 20: auto takes the steps
    rows = pd.read_csv(out)
    ours = {"auto", "persistent", "streamed", "streamed-split"}
    assert set(rows[rows["batch"] == 2]["impl"]) == {f"rnnbench-{k}" for k in ours | {"layer"}} | {
        f"cudnn-tf32-{k}" for k in ("on", "off")}
    assert set(rows[rows["batch"] == 20]["impl"]) >= {f"rnnbench-{k}" for k in ours | {"steps", "steps-split"}}
    auto = rows[rows["impl"] == "rnnbench-auto"]
    assert list(auto["note"]) == ["takes persistent"] * 2 + ["takes steps"] * 2  # batch 2, then batch 20
    errors = rows[rows["rel_err_out"].notna()][["rel_err_out", "rel_err_dx", "rel_err_dw_hh"]]
    assert len(errors) == 2 * (4 + 6) and (errors < 1e-5).all().all()  # fwd, fwd+bwd of every variant
    table = vs.markdown(out).splitlines()
    assert len(table) == 2 + 4 and table[3].startswith("| gru | 2 | 20 | 4 | fwd+bwd | 1.00 | 1.00 | 1.00 | steps |")
    assert "| steps | 1.00x | 1.00x |" in table[3]


def test_gradient_decay_and_training_agree_with_the_cpu_backend():
    """The analysis and the training loop above the layer API, on the device: gradient norms
    (float64) equal the cpu backend's; a training run with k1/k2 truncation and clipping (float32)
    follows the same losses and gradient norms (to 1e-4, the float32 contract)."""
    from rnnbench.analysis.gradients import decay_experiment
    from rnnbench.train import train_run

    decay = [decay_experiment("lstm", 5, 3, 1.0, batch=2, seeds=(0,), backend=b) for b in ("cpu", "cuda")]
    assert [r["metric"] for r in decay[0]] == [r["metric"] for r in decay[1]]
    np.testing.assert_allclose([r["value"] for r in decay[1]], [r["value"] for r in decay[0]], rtol=1e-12)
    kw = dict(hidden_size=3, steps=3, batch=2, eval_every=2, eval_batch=4, truncation=(2, 3), clip=0.5)
    runs = [[r for r in train_run("adding", "gru", 4, backend=b, **kw) if not r["metric"].endswith("per_s")]
            for b in ("cpu", "cuda")]
    assert {r["backend"] for r in runs[1]} == {"cuda"} and "eval_loss" in {r["metric"] for r in runs[1]}
    assert [(r["metric"], r.get("step")) for r in runs[0]] == [(r["metric"], r.get("step")) for r in runs[1]]
    np.testing.assert_allclose([r["value"] for r in runs[1]], [r["value"] for r in runs[0]], rtol=1e-4)


def test_the_gradients_and_train_commands_take_the_cuda_backend(tmp_path, monkeypatch):
    """``rnnbench gradients --backend cuda``: decay, truncation fidelity (equal to the cpu
    backend's), memory and time rows, timed on the backend's clock; ``rnnbench train --backend
    cuda`` trains on the device."""
    import pandas as pd
    from click.testing import CliRunner

    from rnnbench import cli, train

    grads = ["gradients", "--cells", "rnn_tanh", "--scales", "1.0", "--seq-lens", "3", "--hidden-size", "2",
             "--batch", "1", "--seeds", "0", "--truncations", "1", "--no-jacobian", "--quiet"]
    frames = {}
    for b in ("cpu", "cuda"):
        r = CliRunner().invoke(cli.main, grads + ["--backend", b, "-o", str(tmp_path / b)])
        assert r.exit_code == 0, r.output
        frames[b] = pd.read_csv(tmp_path / b / "results.csv")
    assert set(frames["cuda"]["backend"]) == {"cuda"}
    fidelity = [f[f["experiment"].isin(["gradients", "truncation"])] for f in (frames["cpu"], frames["cuda"])]
    assert len(fidelity[0]) > 10 and list(fidelity[0]["metric"]) == list(fidelity[1]["metric"])
    np.testing.assert_allclose(fidelity[1]["value"], fidelity[0]["value"], rtol=1e-12)
    times = frames["cuda"][frames["cuda"]["metric"] == "time_s"]
    assert set(times["strategy"]) == {"full", "streaming"} and set(times["clock"]) == {_clock()}

    make = train.make_problem  # a held-out batch of 4, not 500: the simulator runs every thread in Python
    monkeypatch.setattr(train, "make_problem", lambda task, T, seed, batch, eval_batch, stream:
                        make(task, T, seed, batch, 4, stream))
    r = CliRunner().invoke(cli.main, ["train", "--backend", "cuda", "--cells", "rnn_tanh", "--seq-lens", "3",
                                      "--hidden-size", "3", "--steps", "2", "--batch", "2", "--quiet",
                                      "-o", str(tmp_path / "train")])
    assert r.exit_code == 0, r.output
    rows = pd.read_csv(tmp_path / "train" / "results.csv")
    assert set(rows["backend"]) == {"cuda"} and rows[rows["metric"] == "final_loss"]["value"].notna().all()
