"""The cuda backend's tests run where numba.cuda has a GPU or the simulator. Without either (CI),
tests/test_cuda.py runs them in a child process with NUMBA_ENABLE_CUDASIM=1."""
import sys
from pathlib import Path

import pytest
from numba import config

HERE = Path(__file__).parent

if config.ENABLE_CUDASIM:
    # The simulator runs a block's threads as Python threads while its launching thread polls them
    # without sleeping: with the interpreter's 5 ms switch interval each syncthreads cost up to 5 ms
    # of that polling. At 0.5 ms eight of these tests took 18.8 s instead of 49.9 s.
    sys.setswitchinterval(5e-4)


def pytest_collection_modifyitems(config, items):
    from numba import cuda

    if cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no GPU and no simulator here; tests/test_cuda.py runs these under the simulator")
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(skip)
