"""rnnbench: run, measure and understand recurrent networks, with Numba kernels exact against PyTorch."""
from rnnbench import optim
from rnnbench.bptt import clip_grad_norm, clip_grad_value
from rnnbench.layers import GRU, LSTM, RNN, RecurrentLayer
from rnnbench.runtime import get_num_threads, set_num_threads, warmup

__version__ = "0.1.0"

__all__ = ["optim", "RNN", "LSTM", "GRU", "RecurrentLayer", "clip_grad_norm", "clip_grad_value",
           "set_num_threads", "get_num_threads", "warmup", "__version__"]
