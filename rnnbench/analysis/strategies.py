"""The three memory strategies of BPTT as training steps (forward + backward) over a runner.

- ``full``: the forward keeps every step's activations; backward (truncated or not) reads them.
- ``checkpoint``: the forward keeps the state every ``chunk`` steps (default about sqrt(T));
  backward recomputes each segment. Same gradients, memory ~ T/c + c, one more forward.
- ``streaming``: truncated BPTT as people train with it: forward and backward chunk by chunk,
  the state carried into the next chunk as plain values, so only ``chunk`` steps of activations
  are ever alive (memory flat in T). Its gradients are ``full`` with ``truncation=chunk``.
"""
from __future__ import annotations

STRATEGIES = ("full", "checkpoint", "streaming")


def check_strategy(strategy: str, truncation=None, chunk=None) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if strategy == "streaming":
        if chunk is None:
            raise ValueError("the streaming strategy needs a chunk length (the truncation k)")
        if truncation is not None:
            raise ValueError("the streaming strategy truncates at its chunk borders; give no truncation")


def forward_kwargs(strategy: str, chunk=None) -> dict:
    return {"checkpoint": chunk or "sqrt"} if strategy == "checkpoint" else {}


def training_step(runner, strategy: str = "full", truncation=None, chunk=None):
    """A callable running one forward+backward of ``runner`` under ``strategy``."""
    check_strategy(strategy, truncation, chunk)
    if strategy == "streaming":
        return lambda: streaming_step(runner, chunk)
    bwd_kwargs = {} if truncation is None else {"truncation": truncation}
    if not runner.baseline:
        bwd_kwargs["hidden"] = False  # what torch's backward computes, no more
    fwd_kwargs = forward_kwargs(strategy, chunk)

    def step():
        runner.forward(grad=True, **fwd_kwargs)
        return runner.backward(**bwd_kwargs)

    return step


def streaming_step(runner, chunk: int) -> dict:
    """Chunk-by-chunk forward and backward; returns the parameter gradients summed over chunks."""
    if runner.baseline:
        raise ValueError(f"the {runner.backend} baseline runs full BPTT only")
    m, x, go = runner.model, runner.x, runner.grad_output
    grads, state = {}, None
    for s in range(0, x.shape[0], chunk):
        state = m(x[s : s + chunk], state)[1]  # the output dropped, as in the full strategy's step
        for name, g in m.backward(go[s : s + chunk], hidden=False).items():
            if name not in ("input", "h0", "c0"):
                grads[name] = grads[name] + g if name in grads else g
    return grads
