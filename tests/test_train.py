"""Training: the loop's rows, learning on an easy case, and its errors."""
import re
import time

import pandas as pd
import pytest
from click.testing import CliRunner

import numpy as np

import rnnbench as rb
from rnnbench import cli
from rnnbench.models import SequenceModel
from rnnbench.train import WARMUP_STEPS, Stream, make_problem, train_run


def _run(*args):
    r = CliRunner().invoke(cli.main, ["train", *args], catch_exceptions=False)
    r.text = " ".join(r.output.split())
    return r


def test_gru_learns_a_short_adding_problem():
    rows = train_run("adding", "gru", 5, hidden_size=16, steps=300, eval_every=100, seed=0)
    get = {r["metric"]: r["value"] for r in rows
           if r["metric"] in ("final_loss", "baseline_loss", "steps_per_s", "torch_steps_per_s")}
    assert get["final_loss"] < 0.1 * get["baseline_loss"] and get["steps_per_s"] > 0
    assert get["torch_steps_per_s"] > 0  # torch is installed with the test extra
    evals = [r for r in rows if r["metric"] == "eval_loss"]
    assert [r["step"] for r in evals] == [0, 100, 200, 300]
    assert {r["distance"] for r in rows if r["metric"] == "grad_norm"} == {0, 1, 2, 4}


@pytest.mark.parametrize("task, stream", [("copy", None), ("ar", None), ("sunspots", None), ("co2", 6)])
def test_other_tasks_run(task, stream):
    rows = train_run(task, "lstm", 4, hidden_size=8, steps=5, eval_every=5, eval_batch=20, truncation=2,
                     stream=stream, batch=4)
    metrics = {r["metric"] for r in rows}
    assert {"loss", "eval_loss", "baseline_loss", "final_loss", "steps_per_s"} <= metrics
    assert ("autoreg_loss" in metrics) == (task != "copy")
    assert {r["task"] for r in rows} == {task} and {r["chunk"] for r in rows} == {stream}


def _without_timings(rows):
    return [{k: v for k, v in r.items() if k != "value"} | {"value": r["value"]} for r in rows
            if r["metric"] not in ("steps_per_s", "torch_steps_per_s")]


def _ctrl_c_at_step(monkeypatch, n):
    """Adam's n-th step raises KeyboardInterrupt; returns the step counter (a one-item list)."""
    calls, step = [0], rb.optim.Adam.step

    def counted(self, grads):
        calls[0] += 1
        if calls[0] == n:
            raise KeyboardInterrupt
        step(self, grads)

    monkeypatch.setattr(rb.optim.Adam, "step", counted)
    return calls


@pytest.mark.parametrize("task, stream", [("adding", None), ("ar", 5)])
def test_an_interrupted_run_resumes_bit_for_bit(tmp_path, monkeypatch, task, stream):
    kwargs = dict(hidden_size=8, steps=30, eval_every=10, batch=4, eval_batch=16, stream=stream, seed=3)
    whole = train_run(task, "lstm", 6, **kwargs)
    path = tmp_path / "run.pkl"
    calls = _ctrl_c_at_step(monkeypatch, 26)  # after the checkpoint at step 20
    with pytest.raises(KeyboardInterrupt):
        train_run(task, "lstm", 6, checkpoint=path, **kwargs)
    assert path.exists()
    calls[0] = -1000
    resumed = train_run(task, "lstm", 6, checkpoint=path, **kwargs)
    assert calls[0] == -1000 + 10  # it went on from step 20, not from the start
    assert _without_timings(resumed) == _without_timings(whole) and not path.exists()


def test_stream_carries_the_state_across_chunks():
    x = np.arange(12, dtype=np.float32).reshape(6, 2, 1)
    st = Stream(x, x + 1, chunk=2)
    firsts = [st.next()[0][0, 0, 0] for _ in range(4)]
    assert firsts == [0, 4, 8, 0]  # the third chunk ends the streams; the fourth starts over
    st.state = "h"
    st.next(), st.next()
    assert st.state == "h"
    st.next()
    assert st.state is None
    # one training step of stream mode reads the chunk after the previous one, from its state
    problem = make_problem("ar", 4, batch=2, stream=3)
    a, _ = problem.stream.next()
    b, _ = problem.stream.next()
    np.testing.assert_array_equal(a[1:, :, 0], problem.stream.x[1:3, :, 0])
    np.testing.assert_array_equal(b[0], problem.stream.x[3])


def test_clipping_tames_a_run_that_explodes():
    # relu RNN with W_hh = 1.5 x orthogonal and plain SGD: the gradient reaching back 29 steps is
    # 50x the one at the last step, and one unclipped step sends the loss to infinity
    kwargs = dict(hidden_size=16, steps=20, eval_every=10, scale=1.5, lr=0.1, optimizer="sgd", seed=0)
    wild = train_run("adding", "rnn_relu", 30, clip=None, **kwargs)
    tame = train_run("adding", "rnn_relu", 30, clip=1.0, **kwargs)
    norms = [{r["distance"]: r["value"] for r in rows if r["metric"] == "grad_norm" and r["step"] == 0}
             for rows in (wild, tame)]
    assert norms[0] == norms[1] and norms[0][29] > 30 * norms[0][0]
    get = [{r["metric"]: r for r in rows} for rows in (wild, tame)]
    assert get[0]["diverged"]["step"] == 1 and np.isnan(get[0]["final_loss"]["value"])
    assert "diverged" not in get[1] and get[1]["final_loss"]["value"] < 1


@pytest.mark.parametrize("args, message", [
    (["--tasks", "parity"], "unknown task 'parity'"),
    (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--lr", "0"], "lr must be in (0, 10); got 0.0"),
    (["--seq-lens", "1"], "the adding problem needs sequence lengths >= 2; got 1"),
    (["--clip", "-1"], "clip: values must be in [0, 1e6)"),
    (["--stream", "10"], "--stream reads a series (ar, sunspots, co2); not adding"),
    (["--tasks", "ar", "--stream", "10", "--truncation", "20"], "truncation 20 is longer than the 10-step chunk"),
    (["--truncation", "ten"], "truncation 'ten': use full, k or k1:k2"),
    (["--backend", "torch"], "unknown backend 'torch'; choose from reference, cpu, cuda"),
    (["--backend", "cpu,reference"], "--backend takes one backend; got 'cpu,reference'"),
])
def test_bad_training_flags(args, message):
    r = _run(*args)
    assert r.exit_code == 2 and message in r.text, r.output


@pytest.mark.parametrize("kwargs, message", [
    (dict(task="adding", stream=10), "stream mode reads a series"),
    (dict(task="ar", stream=10, truncation=(5, 20)), "truncation 5:20 is longer than the 10-step chunk"),
    (dict(task="sunspots", seq_len=150), "training part of 247 values is too short to fit AR(tau = 150)"),
    (dict(task="co2", stream=30, batch=32), "cannot hold 32 streams of one 30-step chunk"),
    (dict(lr=0.0), "lr must be > 0; got 0.0"),
    (dict(task="parity"), "unknown task 'parity'"),
])
def test_bad_training_arguments(kwargs, message):
    args = dict(dict(task="adding", cell="gru", seq_len=10, steps=2), **kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        train_run(**args)


def test_clipping_and_truncation_runs_are_told_apart(tmp_path):
    out = tmp_path / "t"
    # the unclipped runs diverge at step 1 (test_clipping_tames_a_run_that_explodes)
    r = _run("--cells", "rnn_relu", "--seq-lens", "30", "--steps", "4", "--eval-every", "2", "--hidden-size", "16",
             "--clip", "0,1", "--truncation", "full,2", "--scale", "1.5", "--optimizer", "sgd", "--lr", "0.1",
             "-o", str(out))
    assert r.exit_code == 0, r.output
    rep = CliRunner().invoke(cli.main, ["report", str(out), "-o", str(tmp_path / "rep")])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert rep.exit_code == 0 and "| clip | truncation |" in md.replace("seq_len | ", "")
    assert "no clipping: diverged (no finite loss); clipping at global norm 1.0: final / baseline" in md
    assert "truncated BPTT k 2: final / baseline" in md and "learning_curves.png" in md


def test_a_killed_training_sweep_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from rnnbench.results import ResultsFolder
    from rnnbench.sweeps import Task, run_in_process

    task = Task.make("train", task="adding", cell="gru", seq_len=5, hidden_size=8, steps=20, eval_every=5, batch=4,
                     eval_batch=8)
    calls = _ctrl_c_at_step(monkeypatch, 12)
    with pytest.raises(KeyboardInterrupt):
        run_in_process([task], ResultsFolder(tmp_path / "r"))
    assert (tmp_path / "r" / "checkpoints" / f"{task.digest}.pkl").exists()
    calls[0] = -1000
    assert run_in_process([task], ResultsFolder(tmp_path / "r", resume=True)) == 0
    assert calls[0] == -1000 + 10  # steps 10 to 19
    frame = pd.read_csv(tmp_path / "r" / "results.csv")
    assert sorted(frame[frame.metric == "loss"].step) == list(range(20))


def test_series_need_statsmodels_and_say_so(monkeypatch, tmp_path):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "statsmodels"
                        else real_find_spec(name, *a))
    r = _run("--tasks", "co2", "-o", str(tmp_path / "t"))
    assert r.exit_code == 2 and "pip install 'rnnbench[series]'" in r.text


def test_a_sweep_whose_every_task_fails_says_why(tmp_path):
    r = _run("--tasks", "sunspots", "--cells", "gru", "--seq-lens", "200", "--steps", "2", "-o", str(tmp_path / "t"))
    assert r.exit_code == 1, r.output
    assert "1 task(s) failed; the first, train:" in r.text and "too short to fit AR(tau = 200)" in r.text


def test_a_series_forecast_is_read_against_autoreg():
    from rnnbench.report import learning_readings, learning_table
    from rnnbench.results import to_frame

    rows = train_run("ar", "gru", 3, hidden_size=8, steps=30, eval_every=30, batch=16, seed=0)
    table = learning_table(to_frame(rows))
    final = {r["metric"]: r["value"] for r in rows}
    ratio = final["final_loss"] / final["autoreg_loss"]
    assert table["final / AutoReg"].iloc[0] == pytest.approx(ratio)
    assert table["learned"].iloc[0] == ("yes" if ratio < 1 else "no")
    assert learning_readings(table) == [f"ar, GRU: held-out MSE / AutoReg(tau)'s = {ratio:.2f} at tau = 3 "
                                        "(below 1: the network forecasts better than the classical fit)."]


def test_steps_per_s_leaves_out_the_first_steps(monkeypatch):
    """A process's first steps load or compile the kernels (seconds on an empty cache): the rate
    leaves them out, as torch's does its warm-up steps."""
    calls, forward = [0], SequenceModel.__call__

    def slow_first(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] <= WARMUP_STEPS:
            time.sleep(0.5)  # a compile
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(SequenceModel, "__call__", slow_first)
    rows = train_run("adding", "rnn_tanh", 4, hidden_size=8, steps=WARMUP_STEPS + 6, eval_every=100, batch=4)
    rate = next(r["value"] for r in rows if r["metric"] == "steps_per_s")
    assert rate > 50  # 6 steps of a few ms; with the two slow steps in, under 6 / 1 s
