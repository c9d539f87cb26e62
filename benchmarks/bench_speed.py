"""time_ benchmarks: forward and forward+BPTT per cell, backend and size."""
from .common import BACKENDS, CELLS, SIZES, model_and_data


class TimeLayer:
    params = [CELLS, BACKENDS, list(SIZES)]
    param_names = ["cell", "backend", "size"]
    timeout = 300

    def setup(self, cell, backend, size):
        self.m, self.x, self.go = model_and_data(cell, backend, size)

    def time_forward(self, cell, backend, size):
        self.m(self.x, grad=False)

    def time_forward_bptt(self, cell, backend, size):
        self.m(self.x)
        self.m.backward(self.go, hidden=False)
