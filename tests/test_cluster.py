"""Sweeps on a real Dask cluster (scheduler and workers as processes on 127.0.0.1)."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from rnnbench import cli

pytest.importorskip("distributed")

SWEEP = ["gradients", "--cells", "rnn_tanh,gru", "--scales", "0.5,0.9,1.1,1.5", "--seq-lens", "150",
         "--hidden-size", "16", "--batch", "4", "--seeds", "0,1", "--truncations", "5,150", "--no-jacobian",
         "--quiet"]
VARIABLE = ["time_s", "peak_bytes", "model_bytes"]  # measurements, not results of a seed


def _dask(*args, **kwargs):
    return subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "dask"), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and two single-threaded workers offering both resources; yields
    (scheduler file, worker processes)."""
    sched_file = tmp_path / "scheduler.json"
    scheduler = _dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                      "--scheduler-file", str(sched_file))
    deadline = time.time() + 60
    while not sched_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    workers = [_dask("worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--nworkers", "1",
                     "--no-dashboard", "--host", "127.0.0.1", "--resources", "timing=1 gradients=1")
               for _ in range(2)]
    from distributed import Client

    with Client(scheduler_file=str(sched_file), timeout="60s") as c:
        c.wait_for_workers(2, timeout=60)
    yield sched_file, workers
    for p in workers + [scheduler]:
        p.kill()
        p.wait()


def _rows(folder):
    frame = pd.read_csv(folder / "results.csv")
    det = frame[~frame.metric.isin(VARIABLE)].drop(
        columns=["worker", "host", "time_s_min", "time_s_max", "time_s_iqr", "repeats"])
    return det.sort_values(["task_key", "metric", "step", "param", "stat"]).reset_index(drop=True)


def _sweep_subprocess(out, *extra):
    return subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "rnnbench"), *SWEEP,
                             "-o", str(out), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_done(folder, n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = folder / "tasks.done"
        if done.exists() and len(done.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {n} tasks done in {timeout} s")


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    r = CliRunner().invoke(cli.main, SWEEP + ["-o", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def test_cluster_rows_equal_in_process_rows(dask_cluster, in_process, tmp_path):
    sched_file, _ = dask_cluster
    out = tmp_path / "cluster"
    r = CliRunner().invoke(cli.main, SWEEP + ["-o", str(out), "--scheduler", str(sched_file)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(_rows(out), _rows(in_process))  # bit for bit
    meta = json.loads((out / "meta.json").read_text())
    assert len(meta["cluster"]["workers"]) == 2
    assert set(pd.read_csv(out / "results.csv").worker) <= {w["address"] for w in meta["cluster"]["workers"]}


def test_a_killed_worker_loses_no_row(dask_cluster, in_process, tmp_path):
    sched_file, workers = dask_cluster
    out = tmp_path / "killed-worker"
    client = _sweep_subprocess(out, "--scheduler", str(sched_file))
    _wait_for_done(out, 1)
    workers[0].send_signal(signal.SIGKILL)
    assert client.wait(timeout=300) == 0, client.stderr.read()
    done = (out / "tasks.done").read_text().splitlines()
    assert len(done) == len(set(done)) == 10  # every task once
    pd.testing.assert_frame_equal(_rows(out), _rows(in_process))


def test_resume_after_a_killed_client(dask_cluster, in_process, tmp_path):
    sched_file, _ = dask_cluster
    out = tmp_path / "killed-client"
    client = _sweep_subprocess(out, "--scheduler", str(sched_file))
    _wait_for_done(out, 2)
    client.send_signal(signal.SIGKILL)
    client.wait()
    before = (out / "tasks.done").read_text().splitlines()
    resumed = _sweep_subprocess(out, "--scheduler", str(sched_file), "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    after = (out / "tasks.done").read_text().splitlines()
    assert len(before) < len(after) == len(set(after)) == 10  # killed mid-sweep; resumed once each
    pd.testing.assert_frame_equal(_rows(out), _rows(in_process))  # complete, nothing twice


def test_in_process_sweeps_never_import_dask(tmp_path):
    code = ("import sys; from click.testing import CliRunner; from rnnbench import cli; "
            f"r = CliRunner().invoke(cli.main, {SWEEP[:3] + ['--scales', '1', '--seq-lens', '5', '--quiet']!r} "
            f"+ ['-o', {str(tmp_path / 'o')!r}]); assert r.exit_code == 0, r.output; "
            "print('dask' in sys.modules or 'distributed' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers must be at least 1; got 0"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "give --workers or --scheduler, not both"),
    (["--scheduler", "tcp://127.0.0.1:1"], "cannot reach the dask scheduler at tcp://127.0.0.1:1 within 10 s"),
])
def test_bad_cluster_flags(args, message, tmp_path):
    start = time.time()
    r = CliRunner().invoke(cli.main, SWEEP + ["-o", str(tmp_path / "x"), *args])
    assert r.exit_code == 2 and message in " ".join(r.output.split()), r.output
    assert time.time() - start < 30  # fails within its timeout, never hangs


def test_missing_dask_extra(monkeypatch, tmp_path):
    from rnnbench import cluster

    def missing():
        raise RuntimeError("dask is not installed: pip install rnnbench[dask]")

    monkeypatch.setattr(cluster, "require_dask", missing)
    r = CliRunner().invoke(cli.main, SWEEP + ["-o", str(tmp_path / "x"), "--workers", "2"])
    assert r.exit_code == 2 and "pip install rnnbench[dask]" in r.output
