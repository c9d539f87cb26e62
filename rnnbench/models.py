"""A recurrent layer with a linear head and a loss: the models of seed 002's many-to-one and
many-to-many tasks, with exact gradients of head and loss.

    y = out[-1] W^T + b   (many-to-one)     y_t = out_t W^T + b   (many-to-many)
    mse:            L = mean((y - target)^2)                      dL/dy = 2 (y - target) / y.size
    cross_entropy:  L = mean over predictions of -log softmax(y)[target]
                    dL/dy = (softmax(y) - onehot(target)) / predictions

Parameters are named torch-style: ``rnn.weight_ih_l0``, ..., ``head.weight``, ``head.bias``.
"""
from __future__ import annotations

import numpy as np

from rnnbench.checks import check_array, check_positive_int, to_numpy
from rnnbench.layers import RecurrentLayer

LOSSES = ("mse", "cross_entropy")


class SequenceModel:
    def __init__(self, cell: str, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1,
                 many_to_one: bool = True, loss: str = "mse", backend: str = "cpu", dtype="float32",
                 seed=None, **rnn_options):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
        if rnn_options.get("batch_first"):
            raise ValueError("SequenceModel takes time-major input (T, B, I); batch_first is not supported")
        self.rnn = RecurrentLayer(cell, input_size, hidden_size, num_layers, backend=backend, dtype=dtype,
                                  seed=seed, **rnn_options)
        self.output_size = check_positive_int("output_size", output_size)
        self.many_to_one, self.loss_name = bool(many_to_one), loss
        features = self.rnn.num_directions * hidden_size
        k = 1 / np.sqrt(features)  # nn.Linear's initialisation
        rng = np.random.default_rng(None if seed is None else seed + 1)
        self.head = {"weight": rng.uniform(-k, k, (output_size, features)).astype(self.rnn.dtype),
                     "bias": rng.uniform(-k, k, output_size).astype(self.rnn.dtype)}
        self._out = self._y = self._dy = None

    @property
    def dtype(self):
        return self.rnn.dtype

    def named_parameters(self):
        return [(f"rnn.{n}", p) for n, p in self.rnn.named_parameters()] + \
               [(f"head.{n}", p) for n, p in self.head.items()]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {n: p.copy() for n, p in self.named_parameters()}

    def load_state_dict(self, sd) -> None:
        rnn = {k[4:]: v for k, v in sd.items() if k.startswith("rnn.")}
        head = {k[5:]: v for k, v in sd.items() if k.startswith("head.")}
        extra = [k for k in sd if not k.startswith(("rnn.", "head."))] + \
                [f"head.{k}" for k in head if k not in self.head]
        missing = [f"head.{k}" for k in self.head if k not in head]
        if extra or missing:
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {extra}")
        for k, v in head.items():
            v = to_numpy(f"head.{k}", v)
            if v.shape != self.head[k].shape:
                raise ValueError(f"load_state_dict: head.{k} has shape {v.shape}; expected {self.head[k].shape}")
        self.rnn.load_state_dict(rnn)
        for k, v in head.items():
            self.head[k][...] = to_numpy(f"head.{k}", v)

    def train(self, mode: bool = True):
        self.rnn.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def __call__(self, x, hx=None, grad: bool = True, checkpoint=None):
        return self.forward(x, hx, grad, checkpoint)

    def forward(self, x, hx=None, grad: bool = True, checkpoint=None):
        """Predictions: (B, O) many-to-one, (T, B, O) many-to-many. Also returns h_n."""
        if x.ndim != 3:
            raise ValueError(f"x must be (T, B, I); got shape {x.shape}")
        out, h_n = self.rnn(x, hx, grad=grad, checkpoint=checkpoint)
        self._out = out
        features = out[-1] if self.many_to_one else out
        self._y = features @ self.head["weight"].T + self.head["bias"]
        self._dy = None
        return self._y, h_n

    def loss(self, target) -> float:
        """The loss of the last forward's predictions; keeps dL/dy for ``backward``."""
        y = self._y
        if y is None:
            raise RuntimeError("loss() needs a preceding forward")
        if self.loss_name == "mse":
            target = check_array("target", np.asarray(target, dtype=self.dtype), self.dtype, y.shape)
            diff = y - target
            self._dy = (2 / y.size) * diff
            return float(np.mean(diff * diff))
        target = np.asarray(target)
        if target.shape != y.shape[:-1] or target.dtype.kind not in "iu":
            raise ValueError(f"cross_entropy targets are class indices of shape {y.shape[:-1]}; "
                             f"got {target.dtype} {target.shape}")
        if target.min() < 0 or target.max() >= self.output_size:
            raise ValueError(f"class indices must be in [0, {self.output_size}); got {target.min()}..{target.max()}")
        shifted = y - y.max(axis=-1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(log_p, target[..., None], axis=-1)[..., 0]
        n = picked.size
        dy = np.exp(log_p)
        np.put_along_axis(dy, target[..., None], np.take_along_axis(dy, target[..., None], axis=-1) - 1, axis=-1)
        self._dy = (dy / n).astype(self.dtype)
        return float(-picked.mean())

    def backward(self, truncation=None, hidden: bool = False) -> dict[str, np.ndarray]:
        """Gradients of the last ``loss``: ``rnn.*`` and ``head.*`` parameters, plus the recurrent
        layer's "input", "h0" (and "hidden" with ``hidden=True``)."""
        if self._dy is None:
            raise RuntimeError("backward() needs loss() after a forward")
        dy, W = self._dy, self.head["weight"]
        features = self._out[-1] if self.many_to_one else self._out
        flat_f, flat_dy = features.reshape(-1, W.shape[1]), dy.reshape(-1, W.shape[0])
        grads = {"head.weight": flat_dy.T @ flat_f, "head.bias": flat_dy.sum(axis=0)}
        d_out = np.zeros(self._out.shape, self.dtype)
        if self.many_to_one:
            d_out[-1] = dy @ W
        else:
            d_out[...] = dy @ W
        g = self.rnn.backward(d_out, truncation=truncation, hidden=hidden)
        for k, v in g.items():
            grads[k if k in ("input", "h0", "c0", "hidden", "cell") else f"rnn.{k}"] = v
        return grads
