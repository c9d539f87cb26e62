"""The cuda backend: a clear error without a GPU, and its tests (tests/cuda_backend) under numba's simulator."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnbench import cli
from rnnbench.layers import RecurrentLayer

HERE = Path(__file__).parent


def _gpu() -> bool:
    from numba import cuda

    return cuda.is_available()


@pytest.mark.skipif(_gpu(), reason="a GPU (or the simulator) is here")
def test_without_a_gpu_the_cuda_backend_says_what_to_do():
    with pytest.raises(RuntimeError, match="needs a GPU, and numba.cuda sees none.*NUMBA_ENABLE_CUDASIM=1"):
        RecurrentLayer("lstm", 3, 4, backend="cuda")
    for args in (["run", "--backends", "cuda"], ["gradients", "--backend", "cuda"], ["train", "--backend", "cuda"]):
        r = CliRunner().invoke(cli.main, args + ["--quiet"])
        assert r.exit_code == 2 and "NUMBA_ENABLE_CUDASIM=1" in " ".join(r.output.split()), args


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", reason="already under the simulator")
def test_cuda_kernels_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "cuda_backend")],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    # all ran but the pool's test: the simulator has no device memory (a lent GPU runs it)
    assert re.search(r"\d+ passed, 1 skipped in", r.stdout), r.stdout[-2000:]
