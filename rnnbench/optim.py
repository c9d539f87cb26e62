"""Optimizers with torch.optim's options, defaults and update rules, on a model's live arrays.

``opt = rb.optim.Adam(m, lr=1e-3)`` then ``opt.step(g)`` with the dict ``m.backward`` returns:
each parameter named by ``m.named_parameters()`` is updated in place (other keys of ``g`` are
ignored). The update rules follow torch.optim's single-tensor implementations operation by
operation (``lerp``, ``addcmul``, ``addcdiv``), so float64 runs agree with torch to rounding.
State is kept per parameter name; ``state_dict()`` / ``load_state_dict()`` resume a run.
"""
from __future__ import annotations

import copy
import math

import numpy as np


class Optimizer:
    defaults: dict = {}

    def __init__(self, params, **options):
        pairs = params.named_parameters() if hasattr(params, "named_parameters") else params
        self.params = list(pairs)
        if not self.params:
            raise ValueError("the optimizer got no parameters")
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown options {sorted(unknown)}; "
                            f"it takes {', '.join(self.defaults)}")
        self.options = {**self.defaults, **options}
        self._check(self.options)
        self.state: dict[str, dict] = {name: {} for name, _ in self.params}

    def _check(self, o: dict) -> None:
        if not (isinstance(o["lr"], (int, float)) and o["lr"] > 0 and math.isfinite(o["lr"])):
            raise ValueError(f"lr must be a positive number; got {o['lr']!r}")
        if o.get("weight_decay", 0) < 0:
            raise ValueError(f"weight_decay must be >= 0; got {o['weight_decay']!r}")

    def step(self, grads: dict) -> None:
        """Update every parameter in place from ``grads[name]``."""
        missing = [name for name, _ in self.params if name not in grads]
        if missing:
            raise KeyError(f"no gradient for parameters {missing}")
        for name, p in self.params:
            g = np.asarray(grads[name])
            if g.shape != p.shape:
                raise ValueError(f"gradient of {name} has shape {g.shape}; the parameter has {p.shape}")
            g = g.astype(p.dtype, copy=False)
            wd = self.options.get("weight_decay", 0)
            if wd:
                g = g + wd * p
            self._update(p, g, self.state[name])

    def _update(self, p, g, state) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"state": copy.deepcopy(self.state), "options": dict(self.options)}

    def load_state_dict(self, sd: dict) -> None:
        names = {name for name, _ in self.params}
        if set(sd["state"]) != names:
            raise KeyError(f"optimizer state is for parameters {sorted(sd['state'])}, not {sorted(names)}")
        self._check({**self.defaults, **sd["options"]})
        self.options = dict(sd["options"])
        self.state = copy.deepcopy(sd["state"])


def _lerp(a, b, weight):
    """torch.lerp_ (in place on a): a + weight * (b - a)."""
    a += weight * (b - a)


class SGD(Optimizer):
    """torch.optim.SGD: momentum (with dampening), Nesterov, weight decay."""

    defaults = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False}

    def _check(self, o):
        super()._check(o)
        if o["momentum"] < 0:
            raise ValueError(f"momentum must be >= 0; got {o['momentum']!r}")
        if o["nesterov"] and (o["momentum"] <= 0 or o["dampening"] != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")

    def _update(self, p, g, state):
        o = self.options
        if o["momentum"]:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= o["momentum"]
                buf += (1 - o["dampening"]) * g
            g = g + o["momentum"] * buf if o["nesterov"] else buf
        p -= o["lr"] * g


class RMSprop(Optimizer):
    """torch.optim.RMSprop: alpha, eps, momentum, centered, weight decay."""

    defaults = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False}

    def _check(self, o):
        super()._check(o)
        if not 0 <= o["alpha"] <= 1 or o["eps"] < 0 or o["momentum"] < 0:
            raise ValueError(f"RMSprop needs 0 <= alpha <= 1, eps >= 0, momentum >= 0; got {o}")

    def _update(self, p, g, state):
        o = self.options
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p)
            if o["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(p)
            if o["centered"]:
                state["grad_avg"] = np.zeros_like(p)
        state["step"] += 1
        square_avg = state["square_avg"]
        square_avg *= o["alpha"]
        square_avg += (1 - o["alpha"]) * (g * g)
        if o["centered"]:
            _lerp(state["grad_avg"], g, 1 - o["alpha"])
            avg = np.sqrt(square_avg - state["grad_avg"] * state["grad_avg"]) + o["eps"]
        else:
            avg = np.sqrt(square_avg) + o["eps"]
        if o["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= o["momentum"]
            buf += g / avg
            p -= o["lr"] * buf
        else:
            p -= o["lr"] * (g / avg)


class Adam(Optimizer):
    """torch.optim.Adam: betas, eps, weight decay (L2, as torch's Adam), amsgrad."""

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}

    def _check(self, o):
        super()._check(o)
        b1, b2 = o["betas"]
        if not (0 <= b1 < 1 and 0 <= b2 < 1) or o["eps"] < 0:
            raise ValueError(f"Adam needs 0 <= beta < 1 and eps >= 0; got betas={o['betas']}, eps={o['eps']}")

    def _update(self, p, g, state):
        o = self.options
        b1, b2 = o["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
            if o["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        step = state["step"]
        _lerp(state["exp_avg"], g, 1 - b1)
        exp_avg_sq = state["exp_avg_sq"]
        exp_avg_sq *= b2
        exp_avg_sq += (1 - b2) * (g * g)
        step_size = o["lr"] / (1 - b1**step)
        bias_correction2_sqrt = math.sqrt(1 - b2**step)
        if o["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            denom = np.sqrt(state["max_exp_avg_sq"]) / bias_correction2_sqrt + o["eps"]
        else:
            denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + o["eps"]
        p -= step_size * (state["exp_avg"] / denom)
