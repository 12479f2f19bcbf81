"""The model interface and the adapter that gives solvers a data prediction.

A BFN model is any callable ``model(params, t) -> output`` where ``params`` are the
input-distribution parameters (mu, or theta = softmax(y)), ``t`` has shape (B,),
and ``output`` is read according to ``model.output_type`` (default: the process's,
e.g. "eps" for continuous data, "logits" for discrete data).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .processes import BFNProcess
from .processes.base import TimeLike


class Denoiser:
    """x0_hat(z, t) for the solvers, from a model and its process; counts network calls (NFE)."""

    def __init__(self, model: Callable[[Tensor, Tensor], Tensor], process: BFNProcess, output_type: str | None = None):
        if not callable(model):
            raise ValueError(f"model must be callable as model(params, t), got {type(model).__name__}")
        if not isinstance(process, BFNProcess):
            raise ValueError(f"process must be a BFNProcess, got {type(process).__name__}")
        self.model, self.process = model, process
        self.output_type = output_type or getattr(model, "output_type", process.default_output_type)
        self.nfe = 0

    def output(self, z: Tensor, t: TimeLike):
        """The output distribution p_O(. | theta(z), t): one network call."""
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0])
        self.nfe += 1
        output = self.model(self.process.net_input(z), t)
        if not isinstance(output, Tensor):
            raise ValueError(f"model must return a tensor, got {type(output).__name__}")
        return self.process.output_distribution(output.to(z.dtype), z, t, self.output_type)

    def __call__(self, z: Tensor, t: TimeLike) -> Tensor:
        """Data prediction x0_hat (x, or K e_hat - 1) at state z and time t."""
        return self.process.dist_to_x0(self.output(z, t))
