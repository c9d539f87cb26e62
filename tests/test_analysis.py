"""The analysis layer: what it measures is right, and agrees with theory where theory is exact."""
import numpy as np
import pandas as pd
import pytest
from numba import njit

from rnnbench import plots
from rnnbench.analysis.gradients import decay_experiment, decay_model, jacobian_experiment, jacobian_norms
from rnnbench.analysis.memory import measure_memory, memory_sweep, model_bytes, peak_bytes
from rnnbench.analysis.runners import Config, Runner
from rnnbench.analysis.speed import fit_seq_len, gemm_shapes, measure_speed, ratios
from rnnbench.analysis.strategies import streaming_step, training_step
from rnnbench.analysis.truncation import truncation_experiment
from rnnbench.results import to_frame
from rnnbench.train import train_run

CELLS3 = ["rnn_tanh", "lstm", "gru"]


# --- memory -------------------------------------------------------------------------------------

@njit(cache=True)
def _allocate_inside_numba(n):
    a = np.ones(n)
    return a.sum()


def test_tracemalloc_sees_allocations_inside_numba_code():
    _allocate_inside_numba(10)  # compile outside the measurement
    total, peak = peak_bytes(lambda: _allocate_inside_numba(10_000_000))
    assert total == 10_000_000
    assert 80e6 <= peak < 81e6  # the 80 MB array made inside @njit code


@pytest.mark.parametrize("cell", CELLS3)
@pytest.mark.parametrize("strategy, chunk", [("full", None), ("checkpoint", None), ("streaming", 50)])
@pytest.mark.parametrize("config", [dict(seq_len=1000, batch=4, input_size=8, hidden_size=32, dtype="float64"),
                                    dict(seq_len=100, batch=8, input_size=16, hidden_size=32, num_layers=2,
                                         bidirectional=True, dtype="float32")], ids=["deep", "stacked"])
def test_model_agrees_with_measured_peak(cell, strategy, chunk, config):
    """Within 5%; streaming within 10%: a chunk's arrays are small beside the Python objects of a
    step, which the model leaves out."""
    rows = measure_memory(Config(cell, **config), "cpu", strategy, chunk)
    peak, model = rows[0]["value"], rows[1]["value"]
    assert abs(model - peak) <= (0.1 if strategy == "streaming" else 0.05) * peak, (peak, model)


def test_memory_grows_linearly_for_full_and_stays_flat_for_streaming():
    df = to_frame(memory_sweep(Config("lstm", 0, 4, 8, 32), [400, 800, 1600],
                               strategies=("full", "checkpoint", "streaming"), chunk=20))
    peak = df[df.metric == "peak_bytes"].pivot_table(index="seq_len", columns="strategy", values="value")
    full, stream, ck = peak["full"], peak["streaming"], peak["checkpoint"]
    assert 1.9 < full[800] / full[400] < 2.1 and 1.9 < full[1600] / full[800] < 2.1
    assert stream.max() / stream.min() < 1.05
    assert (ck < full / 2).all()  # outputs and input gradients only, no activations


def test_streaming_step_gradients_are_chunked_truncation():
    runner = Runner(Config("gru", 12, 2, 3, 4, dtype="float64"), "cpu")
    streamed = streaming_step(runner, 4)
    runner.model(runner.x)
    ref = runner.model.backward(runner.grad_output, truncation=4)
    for name, g in streamed.items():
        np.testing.assert_allclose(g, ref[name], rtol=1e-12, atol=1e-14)


def test_checkpoint_strategy_gives_full_gradients():
    config = Config("lstm", 30, 2, 3, 5, dtype="float64")
    full = training_step(Runner(config, "cpu"), "full")()
    ck = training_step(Runner(config, "cpu"), "checkpoint")()
    for name in full:
        np.testing.assert_allclose(ck[name], full[name], rtol=1e-12, atol=1e-14)


def test_the_device_memory_model_needs_no_gpu():
    """The cuda backend's model (equal to its ledger under the simulator: tests/cuda_backend) says
    what a size takes before a GPU runs it. LSTM, T = 20, B = 2, I = H = 8, float32, full BPTT:
    tape 6 H and input copy I per row, weights 800 floats; then the backward's dy copy H per row,
    parameter gradients 576, gate gradients 4 H per row, the bias sums' 40 rows x 32, states 7 B H."""
    config = Config("lstm", 20, 2, 8, 8)
    assert model_bytes(config, backend="cuda") == 4 * (48 * 40 + 8 * 40 + 800 + 8 * 40 + 576 + 32 * 40 + 40 * 32
                                                       + 7 * 16) == 26432
    big = Config("lstm", 25, 128, 1024, 1024)
    assert model_bytes(big, "checkpoint", backend="cuda") < model_bytes(big, backend="cuda")


def test_memory_model_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="unknown strategy 'lazy'"):
        model_bytes(Config("lstm", 10, 1, 1, 1), "lazy")
    with pytest.raises(ValueError, match="streaming strategy needs a chunk"):
        model_bytes(Config("lstm", 10, 1, 1, 1), "streaming")


# --- gradient decay -----------------------------------------------------------------------------

def _rate(rows, metric="decay_rate"):
    return next(r["value"] for r in rows if r["metric"] == metric)


@pytest.mark.parametrize("s", [0.5, 0.9, 1.2])
def test_analysis_recovers_the_orthogonal_tanh_decay(s):
    rows = decay_experiment("rnn_tanh", 40, 16, s, input_scale=1e-9, bias=False, seeds=(0,), batch=2)
    assert abs(_rate(rows) - s) < 1e-6


@pytest.mark.parametrize("forget_bias, kwargs", [(None, dict(bias=False)), (2.0, dict(bias=True))])
def test_analysis_recovers_the_lstm_forget_gate_decay(forget_bias, kwargs):
    rows = decay_experiment("lstm", 30, 8, 0.0, input_scale=0.0, forget_bias=forget_bias,
                            seeds=(0,), batch=2, **kwargs)
    expected = 1 / (1 + np.exp(-(forget_bias or 0.0)))
    assert abs(_rate(rows, "cell_decay_rate") - expected) < 1e-6
    assert abs(_rate(rows, "cell_theory_rate") - expected) < 1e-6


@pytest.mark.parametrize("init", ["orthogonal", "gaussian"])
@pytest.mark.parametrize("s", [0.5, 1.0, 2.0, 4.0])
def test_tanh_measured_factor_never_above_sigma_max(init, s):
    rows = decay_experiment("rnn_tanh", 40, 16, s, init=init, seeds=(0, 1), batch=3)
    assert abs(_rate(rows, "sigma_max") - s) < 1e-9
    assert _rate(rows) <= s * (1 + 1e-9)
    jac = [r for r in jacobian_experiment("rnn_tanh", 15, 8, s, init=init) if r["stat"] == "max"]
    assert jac[0]["value"] <= s * (1 + 1e-9)


def test_jacobian_norms_match_the_closed_form_for_tanh():
    m = decay_model("rnn_tanh", 6, 1.3, seed=2)
    x = np.random.default_rng(0).standard_normal((5, 2, 6))
    norms = jacobian_norms(m, x)
    m(x)
    h = m._record.tapes[0][0].h
    w = dict(m.named_parameters())["weight_hh_l0"]
    expected = [[np.linalg.norm((1 - h[t, b] ** 2)[:, None] * w, 2) for b in range(2)] for t in range(1, 5)]
    np.testing.assert_allclose(norms, expected, rtol=1e-10)


def test_exploding_run_is_reported_not_crashed():
    rows = decay_experiment("rnn_relu", 400, 16, 8.0, seeds=(0,), batch=2)
    statuses = {r.get("status") for r in rows if r["metric"] == "grad_norm"}
    assert statuses == {"overflow"}
    df = to_frame(rows)
    plots.gradient_decay(df)  # draws the finite part and says the rest overflowed


# --- speed --------------------------------------------------------------------------------------

def test_measure_speed_rows_are_consistent():
    config = Config("gru", 8, 2, 3, 4)
    df = to_frame(measure_speed(config, backends=("cpu", "reference", "torch"), repeats=2))
    times = df[df.metric == "time_s"]
    assert set(times.backend) == {"cpu", "reference", "torch", "gemm"}
    assert set(times.phase) == {"fwd", "bwd", "fwd+bwd"}
    assert (times.value > 0).all()
    timed = times[times.backend != "gemm"]  # the gemm limit is a sum of medians
    assert (timed.time_s_min <= timed.value).all() and (timed.value <= timed.time_s_max).all()
    assert (timed.repeats == 2).all()
    gf = df[(df.metric == "gflops") & (df.backend == "cpu") & (df.phase == "fwd+bwd")].value.iloc[0]
    t = times[(times.backend == "cpu") & (times.phase == "fwd+bwd")].value.iloc[0]
    assert gf == pytest.approx(config.flops("fwd+bwd") / t / 1e9)
    compile_rows = df[df.metric == "compile_s"]
    assert set(compile_rows.backend) == {"cpu", "reference", "torch"}
    assert set(compile_rows[compile_rows.backend == "cpu"].cache) <= {"hit", "miss", "warm"}
    r = ratios(df, "torch")
    assert set(r.columns) == {"cpu", "reference", "gemm"} and (r > 0).all().all()


def test_short_calls_are_timed_after_an_untimed_call_of_their_own():
    from rnnbench.analysis.timing import SETTLE_BELOW, Timed, time_interleaved

    calls = {"short": 0, "long": 0}

    def clock_of(key, seconds):
        def clock(run):
            run()
            return seconds
        return Timed(lambda: calls.__setitem__(key, calls[key] + 1), clock=clock)

    stats = time_interleaved({"short": clock_of("short", SETTLE_BELOW / 10), "long": clock_of("long", 1.0)},
                             repeats=3, warmup=1)
    assert calls == {"short": 1 + 2 * 3, "long": 1 + 3}  # settled before each timed call; not the long one
    assert len(stats["short"].samples) == len(stats["long"].samples) == 3


def test_flop_model_and_gemm_shapes_agree():
    for config in (Config("lstm", 5, 3, 7, 11), Config("gru", 4, 2, 3, 5, num_layers=2, bidirectional=True)):
        for phase in ("fwd", "bwd", "fwd+bwd"):
            gemm = sum(2 * m * k * n * count for m, k, n, count in gemm_shapes(config, phase))
            assert gemm == config.flops(phase)


def test_fit_seq_len_recovers_a_line():
    rows = [dict(experiment="speed", cell="lstm", backend="cpu", phase="fwd", metric="time_s",
                 seq_len=T, value=0.002 + 1e-4 * T) for T in (10, 20, 40)]
    fit = fit_seq_len(pd.DataFrame(rows)).set_index("metric")["value"]
    assert fit["time_per_step_fit"] == pytest.approx(1e-4)
    assert fit["time_intercept"] == pytest.approx(0.002)
    assert fit["nonlinearity"] < 1e-9


def test_torch_runner_computes_the_same_gradients():
    config = Config("lstm", 6, 2, 3, 4, dtype="float64")
    ours, theirs = Runner(config, "cpu"), Runner(config, "torch")
    g, t = ours.step(), theirs.step()
    for name, value in t.items():
        np.testing.assert_allclose(g[name], value.numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match="torch baseline runs full BPTT only"):
        theirs.backward(truncation=2)


def test_the_cudnn_baseline_needs_torch_to_see_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here")
    with pytest.raises(RuntimeError, match=r"baseline 'cudnn' is torch on a GPU, and torch sees none"):
        Runner(Config("gru", 3, 2, 3, 4), "cudnn")


def test_the_cudnn_baseline_runs_torch_on_the_device_timed_by_its_events(monkeypatch):
    """With torch's CPU modules standing in for the GPU: the cudnn runner moves module and data to
    the device, turns TF32 off, computes torch's gradients, and is timed on torch's events."""
    import torch

    from rnnbench.analysis import timing
    from rnnbench.report import readings, speed_table

    moved = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "a stand-in GPU")
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, device: moved.append(device) or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, device: moved.append(device) or self)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    events = []
    monkeypatch.setitem(timing.CLOCKS, "torch_cuda_event", lambda run: events.append(run()) or 1e-3)
    config = Config("lstm", 5, 2, 3, 4, dtype="float64")
    ours, theirs = Runner(config, "cpu"), Runner(config, "cudnn")
    assert moved == ["cuda"] * 3 and torch.backends.cudnn.allow_tf32 is False
    g, t = ours.step(), theirs.step()
    for name, value in t.items():
        np.testing.assert_allclose(g[name], value.numpy(), rtol=1e-10)
    rows = [r for r in measure_speed(config, backends=("cpu", "cudnn"), repeats=2) if r["metric"] == "time_s"]
    cudnn = [r for r in rows if r["backend"] == "cudnn"]
    assert {r["clock"] for r in cudnn} == {"torch_cuda_event"} and {r["value"] for r in cudnn} == {1e-3}
    assert all(r["note"].startswith("cuDNN ") and r["note"].endswith(" on a stand-in GPU, TF32 off") for r in cudnn)
    assert len(events) >= 3 * 3 and {r["backend"] for r in rows} == {"cpu", "cudnn", "gemm"}
    # the report sets the cuda backend against cudnn, as the cpu backend against torch
    frame = to_frame(rows + [dict(r, backend="cuda", value=2e-3) for r in rows if r["backend"] == "cpu"])
    table = speed_table(frame)
    assert table["cuda speed-up vs cudnn"].tolist() == [0.5] and "speed-up vs cudnn" not in table  # not the cpu's
    assert any(line.startswith("forward+backward: the cuda backend is 0.50x as fast as cudnn")
               for line in readings(frame))


# --- truncation ---------------------------------------------------------------------------------

def test_truncation_fidelity():
    config = Config("lstm", 20, 2, 3, 5, dtype="float64")
    df = to_frame(truncation_experiment(config, [1, 4, 20, 50], repeats=1))
    cos = df[(df.metric == "grad_cosine") & (df.param == "all")].set_index("k")["value"]
    err = df[(df.metric == "grad_rel_error") & (df.param == "all")].set_index("k")["value"]
    assert cos[20] == 1.0 and cos[50] == 1.0 and err[20] == 0.0  # k >= T is full BPTT, bit for bit
    assert cos[1] < cos[4] < 1.0
    cost = df[df.metric == "peak_bytes"].set_index("strategy")
    assert set(cost.index) == {"full", "streaming"}


def test_every_figure_renders(tmp_path):
    rows = measure_speed(Config("rnn_tanh", 6, 2, 3, 4), backends=("cpu",), repeats=1)
    rows += measure_speed(Config("rnn_tanh", 12, 2, 3, 4), backends=("cpu",), repeats=1)
    rows += memory_sweep(Config("lstm", 0, 2, 3, 4), [20, 40], chunk=5)
    rows += decay_experiment("gru", 10, 4, 1.0, seeds=(0,), batch=2)
    rows += jacobian_experiment("gru", 5, 4, 1.0, batch=2)
    rows += truncation_experiment(Config("gru", 10, 2, 3, 4, dtype="float64"), [2, 10], cost=False)
    rows += train_run("adding", "gru", 4, hidden_size=4, steps=4, eval_every=2, eval_batch=8)
    paths = plots.save_all(to_frame(rows), tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{n}.png" for n in plots.FIGURES)
    assert all(p.stat().st_size > 10_000 for p in paths)
