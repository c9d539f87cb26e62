"""The cuda backend's tests run where numba.cuda has a GPU or the simulator. Without either (CI),
tests/test_cuda.py runs them in a child process with NUMBA_ENABLE_CUDASIM=1."""
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    from numba import cuda

    if cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no GPU and no simulator here; tests/test_cuda.py runs these under the simulator")
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(skip)
