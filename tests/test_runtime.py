"""Numba's cache, compile time kept apart from run time, thread settings."""
import json
import os
import subprocess
import sys

import numba

import rnnbench as rb
from rnnbench.backends.cpu import activations, dispatchers

KERNELS = dispatchers() + [activations.activate, activations.activate_grad]

SCRIPT = """
import json, time
start = time.perf_counter()
import rnnbench as rb
from rnnbench.backends.cpu import dispatchers
seconds = rb.warmup(cells=("rnn_tanh",), dtypes=("float32",))  # one cell, the quickest to compile cold
kernels = dispatchers()
print(json.dumps({"hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
                  "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels),
                  "warmup_s": sum(seconds.values())}))
"""


def test_every_kernel_is_cached():
    for k in KERNELS:
        assert isinstance(k._cache, numba.core.caching.FunctionCache), k


def _fresh_process(script: str, cache, *args) -> str:
    """The stdout of ``script`` run by a new interpreter whose Numba cache is ``cache``."""
    r = subprocess.run([sys.executable, "-c", script, *args], env=dict(os.environ, NUMBA_CACHE_DIR=str(cache)),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_second_process_loads_compiled_kernels_from_the_cache(tmp_path):
    runs = [json.loads(_fresh_process(SCRIPT, tmp_path)) for _ in range(2)]
    assert runs[0]["misses"] >= 8  # the first process compiled and saved (serial and parallel kernels)
    assert runs[1]["misses"] == 0 and runs[1]["hits"] >= 8  # the second loaded every kernel
    assert any(tmp_path.rglob("*.nbi"))


FINITE_SCRIPT = """
import json
import numpy as np
from rnnbench.backends.cpu import finite
finite.all_finite(np.zeros(3, np.float32))
print(json.dumps(sum(finite.ALL_FINITE[0].stats.cache_misses.values())))
"""


def test_cache_built_from_other_sources_is_flushed(tmp_path):
    """The kernels inline code from sibling modules that Numba does not key them on
    (backends/cpu/kernel_cache.py): a cache whose digest of the sources differs is not used."""
    from rnnbench.backends.cpu.kernel_cache import DIGEST_FILE, sources_digest

    def misses():
        return json.loads(_fresh_process(FINITE_SCRIPT, tmp_path))

    assert misses() == 1  # compiled and saved
    assert misses() == 0  # loaded
    (stamp,) = tmp_path.rglob(DIGEST_FILE)
    stamp.write_text("digest of other sources")
    assert misses() == 1  # flushed, compiled again
    assert stamp.read_text() == sources_digest() and misses() == 0


NESTED_SCRIPT = """
import sys
import numpy as np
from rnnbench.backends.cpu import matmul, rnn
T, B, I, H = 4, 2, 3, 5
if sys.argv[1] == "tiles":  # matmul's parallel tile loop called by itself: compiled and cached
    w = matmul.pack(np.ones((H, H)), transpose=True)
    matmul._parallel(np.ones((B, H)), w, np.empty((B, w.shape[0] * w.shape[2])), False, 0, B)
else:  # the serial rnn kernel, which calls that loop: compiled (the loop from the cache), then loaded
    inputs, pre, w_t = matmul.step_operands(np.ones((T, B, I)), np.ones((H, I)), np.ones((H, H)) / H)
    h = np.empty((T, B, H))
    rnn.rnn_forward[0](inputs, pre, w_t, np.zeros(H), np.zeros((B, H)), False, False, h, B, False)
    print(sum(rnn.rnn_forward[0].stats.cache_hits.values()), float(h.sum()))
"""


def test_a_kernel_calling_a_cached_parallel_loop_loads_from_the_cache(tmp_path):
    """numba#8578: such a kernel is cached without the hook that starts Numba's threading layer; a
    fresh process that loaded it first segfaulted until the backend started the layer at import."""
    def run(stage):
        return _fresh_process(NESTED_SCRIPT, tmp_path, stage).split()

    run("tiles")
    compiled, loaded = run("kernel"), run("kernel")
    assert compiled[0] == "0" and loaded[0] == "1" and loaded[1] == compiled[1]


def test_warmup_reports_first_call_time_per_cell_and_dtype():
    seconds = rb.warmup(cells=("gru",), dtypes=("float32",))
    assert list(seconds) == [("gru", "float32")] and seconds[("gru", "float32")] > 0


def test_set_num_threads():
    from threadpoolctl import threadpool_info

    from rnnbench.runtime import numba_blas

    before = rb.get_num_threads()
    try:
        rb.set_num_threads(1)
        assert rb.get_num_threads() == 1
        assert all(info["num_threads"] == 1 for info in threadpool_info() if info["user_api"] == "blas")
        rb.set_num_threads(2)
        own = {lib["filepath"] for lib in numba_blas().info()}
        threads = {info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
        # the BLAS under Numba's np.dot stays single-threaded (matmul.py); numpy's follows the setting
        assert own and all(threads[f] == 1 for f in own)
        assert all(n == 2 for f, n in threads.items() if f not in own)
    finally:
        rb.set_num_threads(before)


def test_malloc_keeps_freed_memory():
    from rnnbench.results import environment
    from rnnbench.runtime import keep_freed_memory

    assert keep_freed_memory()  # glibc here
    assert environment()["malloc_keeps_freed_memory"]
