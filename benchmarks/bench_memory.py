"""peakmem_ benchmarks: a training step under each BPTT memory strategy, at a long sequence."""
from rnnbench.analysis.runners import Config, Runner
from rnnbench.analysis.strategies import training_step

from .common import CELLS, pin_threads


class PeakmemStrategies:
    params = [CELLS, ["full", "checkpoint", "streaming"]]
    param_names = ["cell", "strategy"]

    def setup(self, cell, strategy):
        pin_threads()
        runner = Runner(Config(cell, 2000, 16, 32, 128), "cpu")
        self.step = training_step(runner, strategy, chunk=32 if strategy == "streaming" else None)
        self.step()  # compile outside the measurement
        runner.model._record = None

    def peakmem_training_step(self, cell, strategy):
        self.step()
