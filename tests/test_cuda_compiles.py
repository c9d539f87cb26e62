"""Every cuda kernel compiles to PTX for a Hopper GPU (sm_90) with the argument types the backend
launches it with: numba's real CUDA compiler, which the simulator never runs. Needs NVVM (a CUDA
toolkit), not a GPU; skipped where there is none."""
import os
import subprocess
import sys

import pytest

SCRIPT = r'''
import sys
import types
import numpy as np
from numba import boolean, cuda, float32, float64, int64
from numba.core import types as nt

import numba.cuda.dispatcher as nd
import rnnbench.backends.cuda as cb

# device functions ask the current device for its compute capability: answer sm_90 with no GPU here
nd.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))

failures = []
def check(name, kernel, sig):
    try:
        cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
    except Exception as e:
        failures.append(f"{name}: {type(e).__name__}: {str(e)[:2000]}")

mm = sys.modules["rnnbench.backends.cuda.matmul"]
for nb in {"float32": (float32,), "float64": (float64,)}[sys.argv[1]]:
    A = lambda d: nt.Array(nb, d, "C")
    for a_km in (False, True):
        for b_nk in (False, True):
            check(f"gemm {nb} {a_km} {b_nk}", mm._make(nb, a_km, b_nk, mm.RM, mm.RN), (A(2), A(2), A(2), boolean))
    check(f"chunk sums {nb}", mm._chunk_sums, (A(2), A(2), boolean))
    check(f"transpose {nb}", mm.transpose, (A(2), A(2)))
    ar = sys.modules["rnnbench.backends.cuda.arrays"]
    check(f"copy columns {nb}", ar._copy_columns, (A(2), int64, A(2), int64, int64))
    check(f"multiply {nb}", ar._multiply, (A(1), A(1), A(1)))
    check(f"add into {nb}", ar._add_into, (A(1), A(1)))
    for cell in cb.CELL_MATH:
        k = cb.kernels(cell, str(nb), cb.tiles.tile_for(64))
        fwd = (A(3), A(2), A(1), A(2), A(2), A(3), A(3), A(4))
        bwd = (A(2), A(3), A(2), A(2), A(4), A(3), A(2), A(3), A(2), A(3), A(3), A(3), A(3), A(2))
        check(f"{cell} {nb} step forward", k.step_forward, fwd + (A(1), int64, boolean, nb))  # A(1): scratch
        check(f"{cell} {nb} step backward", k.step_backward, bwd + (A(1), int64, boolean, nb))
        check(f"{cell} {nb} persistent forward", k.persistent_forward, fwd + (int64, int64, boolean, nb))
        check(f"{cell} {nb} persistent backward", k.persistent_backward, bwd + (int64, int64, boolean, nb))
        check(f"{cell} {nb} streamed forward", k.streamed_forward, fwd + (A(1), int64, int64, boolean, nb))
        check(f"{cell} {nb} streamed backward", k.streamed_backward, bwd + (A(1), int64, int64, boolean, nb))
print("\n\n".join(failures) if failures else "all compiled")
sys.exit(1 if failures else 0)
'''


def _nvvm() -> bool:
    home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    return os.path.isdir(os.path.join(home, "nvvm"))


@pytest.mark.skipif(not _nvvm(), reason="no CUDA toolkit (NVVM) here to compile with")
def test_every_kernel_compiles_for_sm90():
    env = dict(os.environ, CUDA_HOME=os.environ.get("CUDA_HOME", "/usr/local/cuda"))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    # one process per dtype, side by side: compiling is single-threaded (CI has two cores)
    runs = [subprocess.Popen([sys.executable, "-c", SCRIPT, dtype], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for dtype in ("float32", "float64")]
    for run in runs:
        out, err = run.communicate(timeout=900)
        assert run.returncode == 0, out[-6000:] + err[-3000:]
