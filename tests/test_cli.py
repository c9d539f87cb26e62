"""The command line through click's CliRunner: every command, its files, and its errors."""
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from rnnbench import cli, sweeps
from rnnbench.results import ResultsFolder, load

TINY = ["--cells", "gru,lstm", "--backends", "cpu,reference", "--seq-lens", "4,8", "--batch", "2",
        "--input-size", "3", "--hidden-size", "4", "--repeats", "2", "--warmup", "0"]
TINY_GRAD = ["--cells", "rnn_tanh,lstm", "--scales", "0.5,1.5", "--seq-lens", "12", "--hidden-size", "4",
             "--batch", "2", "--seeds", "0", "--truncations", "2,12"]


def invoke(*args):
    result = CliRunner().invoke(cli.main, list(args), catch_exceptions=False)
    result.text = " ".join(result.output.split())  # messages are wrapped at the terminal width
    return result


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A tiny run and a tiny gradients sweep, shared by the tests that read them."""
    root = tmp_path_factory.mktemp("sweeps")
    r = invoke("run", *TINY, "-o", str(root / "run"))
    assert r.exit_code == 0, r.output
    g = invoke("gradients", *TINY_GRAD, "-o", str(root / "grad"))
    assert g.exit_code == 0, g.output
    return root


def test_run_writes_a_tidy_results_folder(swept):
    frame = load([swept / "run"])
    for col in ("experiment", "cell", "backend", "dtype", "seq_len", "batch", "input_size", "hidden_size",
                "num_layers", "bidirectional", "truncation", "metric", "value", "unit", "phase", "threads",
                "strategy", "time_s_min", "time_s_max", "time_s_iqr", "cache"):
        assert col in frame, col
    speed = frame[(frame.experiment == "speed") & (frame.metric == "time_s")]
    assert set(speed.backend) == {"cpu", "reference", "gemm"} and set(speed.seq_len) == {4, 8}
    memory = frame[frame.experiment == "memory"]
    assert set(memory.strategy) == {"full", "checkpoint", "streaming"}
    meta = json.loads((swept / "run" / "meta.json").read_text())
    for key in ("rnnbench", "packages", "cpu", "gpu", "git_commit", "command", "start", "end"):
        assert key in meta
    assert meta["end"] is not None and meta["failures"] == []


def test_run_prints_tables_and_json(tmp_path):
    r = invoke("run", *TINY, "--no-memory", "--cells", "rnn_tanh", "-o", str(tmp_path / "a"))
    assert "speed of forward + backward" in r.text and "speed-up" in r.text and "results:" in r.text
    r = invoke("run", *TINY, "--no-memory", "--cells", "rnn_tanh", "--json", "-o", str(tmp_path / "b"))
    summary = json.loads(r.output)
    assert summary["failures"] == 0 and summary["rows"] > 0 and summary["folder"].endswith("b")


def test_resume_skips_what_the_folder_holds(swept, tmp_path):
    out = tmp_path / "r"
    args = ["run", *TINY, "--no-memory", "--cells", "gru", "-o", str(out)]
    assert invoke(*args).exit_code == 0
    rows = len(pd.read_csv(out / "results.csv"))
    again = invoke(*args)
    assert again.exit_code == 2 and "--resume" in again.text
    assert invoke(*args, "--resume").exit_code == 0
    assert len(pd.read_csv(out / "results.csv")) == rows  # nothing measured twice
    more = invoke("run", *TINY, "--no-memory", "--cells", "gru", "--seq-lens", "4,8,16", "-o", str(out), "--resume")
    assert more.exit_code == 0
    assert set(pd.read_csv(out / "results.csv").seq_len) == {4, 8, 16}


def test_rows_reach_the_disk_as_each_task_finishes(tmp_path):
    folder = ResultsFolder(tmp_path / "f")
    folder.append([{"experiment": "speed", "cell": "gru", "metric": "time_s", "value": 1.0, "unit": "s"}], "t1")
    assert len(pd.read_csv(tmp_path / "f" / "results.csv")) == 1
    with pytest.raises(ValueError, match="columns results.csv does not know"):
        folder.append([{"bogus": 1}], "t2")


def test_a_folder_of_an_older_version_resumes_with_its_rows_lined_up(tmp_path):
    """A results.csv without a column this version writes (``path``, say) takes it on resume."""
    from rnnbench.results import ALL_COLUMNS

    folder = ResultsFolder(tmp_path / "f")
    folder.append([{"experiment": "speed", "cell": "gru", "metric": "time_s", "value": 1.0, "unit": "s"}], "t1")
    old = pd.read_csv(folder.csv).drop(columns=["path"])
    old.to_csv(folder.csv, index=False)
    folder = ResultsFolder(tmp_path / "f", resume=True)
    folder.append([{"experiment": "speed", "cell": "lstm", "metric": "time_s", "value": 2.0, "unit": "s",
                    "path": "steps"}], "t2")
    rows = pd.read_csv(folder.csv)
    assert list(rows.columns) == ALL_COLUMNS and list(rows["cell"]) == ["gru", "lstm"]
    assert list(rows["value"]) == [1.0, 2.0] and rows["path"].iloc[1] == "steps"


def test_a_failing_task_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    real = sweeps.KINDS["speed"]

    def flaky(p):
        if p["seq_len"] == 8:
            raise RuntimeError("boom")
        return real(p)

    monkeypatch.setitem(sweeps.KINDS, "speed", flaky)
    r = invoke("run", *TINY, "--no-memory", "--cells", "gru", "-o", str(tmp_path / "x"))
    assert r.exit_code == 1 and "1 task(s) failed" in r.text
    meta = json.loads((tmp_path / "x" / "meta.json").read_text())
    assert len(meta["failures"]) == 1 and "boom" in meta["failures"][0]["error"]
    assert set(pd.read_csv(tmp_path / "x" / "results.csv").seq_len) == {4}


def test_config_file(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[run]\ncells = ["gru"]\nbackends = ["cpu"]\nseq_lens = [5]\nbatch = 2\n'
                    'input_size = 3\nhidden_size = 4\nrepeats = 1\nwarmup = 0\nmemory = false\n')
    r = invoke("run", "--config", str(good), "-o", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert set(pd.read_csv(tmp_path / "out" / "results.csv").cell) == {"gru"}
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\ncells = ["gru"]\n\nhidden = 4\n')
    r = invoke("run", "--config", str(bad))
    assert r.exit_code == 2 and "line 4: unknown key 'hidden'" in r.text
    bad.write_text('[run]\nbatch = "two"\n')
    r = invoke("run", "--config", str(bad))
    assert r.exit_code == 2 and "line 2: batch must be int" in r.text
    bad.write_text('[run\n')
    assert "not valid TOML" in invoke("run", "--config", str(bad)).text


@pytest.mark.parametrize("args, message", [
    (["--cells", "peephole"], "unknown cell 'peephole'"),
    (["--backends", "tpu"], "unknown backend 'tpu'"),
    (["--hidden-size", "0"], "hidden_size: 0 is out of range"),
    (["--seq-lens", "ten"], "seq_lens: 'ten' is not an integer"),
    (["--truncations", "5:2"], "needs k1 <= k2"),
    (["--dtypes", "float16"], "unknown dtype 'float16'"),
    (["--strategies", "streaming"], "unknown strategy 'streaming'"),
    (["--repeats", "0"], "repeats: 0 is out of range"),
    (["--memory-backends", "torch"], "does not see torch's allocator"),
    (["--backends", "cpu,cudnn"], "baseline 'cudnn' is torch on a GPU, and torch sees none"),
])
def test_bad_flags_exit_2_naming_the_problem(args, message):
    r = invoke("run", *args)
    assert r.exit_code == 2 and message in r.text, r.output


def test_unwritable_output_and_missing_torch(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = invoke("run", *TINY, "-o", str(blocker / "sub"))
    assert r.exit_code == 2 and "cannot write to the output folder" in r.text
    monkeypatch.setattr(cli, "torch_installed", lambda: False)
    r = invoke("run", "--backends", "cpu,torch")
    assert r.exit_code == 2 and "torch is not installed: pip install rnnbench[torch]" in r.text


def test_gradients_sweep(swept):
    frame = load([swept / "grad"])
    assert {"gradients", "jacobian", "truncation", "memory"} <= set(frame.experiment)
    rates = frame[(frame.metric == "decay_rate") & (frame.cell == "rnn_tanh")]
    assert (rates.value <= rates.scale * (1 + 1e-9)).all()


def test_report_end_to_end(swept, tmp_path):
    r = invoke("report", str(swept / "run"), str(swept / "grad"), "-o", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output
    html = (tmp_path / "rep" / "report.html").read_text()
    md = (tmp_path / "rep" / "report.md").read_text()
    assert html.count("data:image/png;base64,") == 6 and 'src="http' not in html
    assert "What the measurements show" in md and "speed-up vs reference" in md
    for line in md.splitlines():
        if line.startswith("!["):
            assert (tmp_path / "rep" / line[line.index("(") + 1 : -1]).exists()
    assert invoke("report", str(tmp_path), "-o", str(tmp_path / "x")).exit_code == 2  # no results.csv


def test_compare_flags_regressions(swept, tmp_path):
    same = invoke("compare", str(swept / "run"), str(swept / "run"))
    assert same.exit_code == 0 and "0 regression(s)" in same.text
    slow = tmp_path / "slow"
    slow.mkdir()
    frame = pd.read_csv(swept / "run" / "results.csv")
    frame.loc[frame.metric == "time_s", "value"] *= 2
    frame.to_csv(slow / "results.csv", index=False)
    r = invoke("compare", str(swept / "run"), str(slow), "--json")
    out = json.loads(r.output)
    assert r.exit_code == 1 and out["regressions"] > 0
    assert all(row["verdict"] == "regression" for row in out["rows"])
    assert invoke("compare", str(swept / "run"), str(slow), "--threshold", "0.5").exit_code == 2


def test_tables_keep_their_values_in_a_pipe_and_a_narrow_terminal(swept, monkeypatch):
    """Printed into a pipe (a log, CI), a table is not laid out in 80 columns (rich's default
    there, which cut values short); a narrow terminal (COLUMNS) wraps a value rather than cutting it."""
    args = ("compare", str(swept / "run"), str(swept / "run"))
    monkeypatch.delenv("COLUMNS", raising=False)
    wide = invoke(*args).output.splitlines()
    assert "…" not in "".join(wide) and max(map(len, wide)) > 80
    monkeypatch.setenv("COLUMNS", "60")
    narrow = invoke(*args).output.splitlines()
    assert "…" not in "".join(narrow) and max(map(len, narrow)) <= 60


def test_info():
    r = invoke("info")
    assert r.exit_code == 0
    for word in ("rnnbench", "numba", "numpy", "cpu", "gpu", "kernel threads", "cudnn baseline"):
        assert word in r.text
    import torch

    if not torch.cuda.is_available():
        assert "unavailable: torch sees no GPU" in r.text


def test_shipped_example_configs_parse(tmp_path, monkeypatch):
    """Every file in examples/ is a valid config (run with a stub so nothing is measured)."""
    from pathlib import Path

    ran = []

    def record_and_stop(tasks, *args):
        ran.append(tasks)
        raise SystemExit(0)

    monkeypatch.setattr(cli, "_run_sweep", record_and_stop)
    for path in sorted(Path(__file__).parent.parent.joinpath("examples").glob("*.toml")):
        text = path.read_text()
        command = next((c for c in ("gradients", "train") if f"[{c}]" in text), "run")
        r = invoke(command, "--config", str(path), "--backends", "cpu") if command == "run" else \
            invoke(command, "--config", str(path))
        assert r.exit_code == 0, (path, r.output)
    assert len(ran) == 7 and all(len(t) > 0 for t in ran)
    clipping, series, truncation, vs_torch = ran.pop(0), ran.pop(3), ran.pop(3), ran.pop(3)  # by file name
    assert (len(clipping), len(series), len(truncation)) == (2, 3 * 3, 2 * 2)
    assert len([t for t in vs_torch if t.kind == "speed"]) == 3 * 2 * 2 * 3  # cells x dtypes x batches x sizes
    deepbench = [t for t in ran[0] if t.kind == "speed"]
    assert {json.loads(t.params)["input_size"] for t in deepbench} == {512, 1024}
    assert all(json.loads(t.params)["input_size"] == json.loads(t.params)["hidden_size"] for t in deepbench)


def _fake_asv_results(root):
    """An asv results folder of two commits, in asv 0.6's format."""
    root.mkdir()
    (root / "benchmarks.json").write_text(json.dumps({
        "bench_speed.TimeForward.time_forward": {"param_names": ["cell", "size"], "unit": "seconds"},
        "version": 2}))
    machine = root / "box"
    machine.mkdir()
    (machine / "machine.json").write_text("{}")
    columns = ["result", "params", "version", "started_at", "duration"]
    for i, (commit, scale) in enumerate((("aaaa1111", 1.0), ("bbbb2222", 2.0))):
        (machine / f"{commit}-env.json").write_text(json.dumps({
            "commit_hash": commit + "ffff", "date": 1_700_000_000_000 + i * 86_400_000,
            "result_columns": columns, "version": 2,
            "results": {"bench_speed.TimeForward.time_forward": [
                [0.1 * scale, 0.2 * scale, None, 0.4 * scale], [["'lstm'", "'gru'"], ["'small'", "'seeds'"]],
                "v", 0, 1]}}))
    return root


def test_report_reads_an_asv_history(tmp_path):
    from rnnbench.asv_history import load_history

    folder = _fake_asv_results(tmp_path / "asv")
    history = load_history(folder)
    assert len(history) == 6  # 2 commits x 3 results (the skipped one left out)
    assert set(history.params) == {"cell=lstm, size=small", "cell=lstm, size=seeds", "cell=gru, size=seeds"}
    r = invoke("report", str(folder), "-o", str(tmp_path / "rep"))
    assert r.exit_code == 0, r.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "asv history" in md and "TimeForward.time_forward" in md
    assert (tmp_path / "rep" / "figures" / "asv_TimeForward_time_forward.png").exists()
    from rnnbench.report import _asv_section

    table, _ = _asv_section(folder, tmp_path / "figs")
    assert (table["last / first"] == 2.0).all() and (table["commits"] == 2).all()  # every value doubled
