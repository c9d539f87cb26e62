"""Training: the loop's rows, learning on an easy case, and its errors."""
import pandas as pd
import pytest
from click.testing import CliRunner

from rnnbench import cli
from rnnbench.train import train_run


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


@pytest.mark.parametrize("task", ["copy", "ar"])
def test_other_tasks_run(task):
    rows = train_run(task, "lstm", 4, hidden_size=8, steps=5, eval_every=5, eval_batch=20, truncation=2)
    assert {"loss", "eval_loss", "baseline_loss", "final_loss", "steps_per_s"} <= {r["metric"] for r in rows}


def test_train_command_and_report(tmp_path):
    out = tmp_path / "t"
    r = _run("--cells", "gru,rnn_tanh", "--seq-lens", "4", "--steps", "20", "--eval-every", "10",
             "--hidden-size", "8", "-o", str(out))
    assert r.exit_code == 0, r.output
    frame = pd.read_csv(out / "results.csv")
    assert set(frame.cell) == {"gru", "rnn_tanh"} and (frame.task.str.startswith("train:")).all()
    rep = CliRunner().invoke(cli.main, ["report", str(out), "-o", str(tmp_path / "rep")])
    assert rep.exit_code == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Learning: final held-out loss" in md and "learning_curves.png" in md


@pytest.mark.parametrize("args, message", [
    (["--tasks", "parity"], "unknown task 'parity'"),
    (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--lr", "0"], "lr must be in (0, 10); got 0.0"),
    (["--seq-lens", "1"], "the adding problem needs sequence lengths >= 2; got 1"),
    (["--clip", "-1"], "clip must be >= 0"),
])
def test_bad_training_flags(args, message):
    r = _run(*args)
    assert r.exit_code == 2 and message in r.text, r.output
