"""The model interface and the adapter that gives solvers a data prediction.

A BFN model is any callable ``model(params, t) -> output`` where ``params`` are the
input-distribution parameters (mu, or theta = softmax(y)), ``t`` has shape (B,),
and ``output`` is read according to ``model.output_type`` (default: the process's,
e.g. "eps" for continuous data, "logits" for discrete data).
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import Tensor

from .processes import BFNProcess
from .processes.base import TimeLike


def module_dtype(model: Callable) -> torch.dtype | None:
    """The floating dtype of a module's parameters (what its calls must be fed), or None."""
    if isinstance(model, torch.nn.Module):
        for p in list(model.parameters()) + list(model.buffers()):
            if p.is_floating_point():
                return p.dtype
    return None


class Denoiser:
    """x0_hat(z, t) for the solvers, from a model and its process; counts network calls (NFE).

    The state may be kept in another dtype than the model's (e.g. float64 for the reference
    solver): inputs are cast to the module's parameter dtype at the call, outputs back to the
    state's. Every output is checked for finiteness: the first at once, later ones by a flag
    per call read by ``check_finite`` (no host sync per step).
    """

    def __init__(self, model: Callable[[Tensor, Tensor], Tensor], process: BFNProcess, output_type: str | None = None):
        if not callable(model):
            raise ValueError(f"model must be callable as model(params, t), got {type(model).__name__}")
        if not isinstance(process, BFNProcess):
            raise ValueError(f"process must be a BFNProcess, got {type(process).__name__}")
        self.model, self.process = model, process
        self.output_type = output_type or getattr(model, "output_type", process.default_output_type)
        self.call_dtype = module_dtype(model)
        self.nfe = 0
        self._finite: list[tuple[Tensor, Tensor]] = []

    def fork(self) -> "Denoiser":
        """A copy with its own call counter and finiteness record (one per ``sample()`` call, so a
        Denoiser shared between threads counts each call's NFE exactly)."""
        other = copy.copy(self)
        other.nfe, other._finite = 0, []
        return other

    def _describe(self) -> str:
        name = getattr(self.model, "__name__", None) or type(self.model).__name__
        return f"model {name} ({self.process!r}, output_type {self.output_type!r})"

    def _record(self, output: Tensor, t: Tensor) -> None:
        finite = torch.isfinite(output).all()
        if self.nfe == 1 and not bool(finite):
            raise FloatingPointError(f"{self._describe()} returned non-finite values at its first call, t = "
                                     f"{float(t.flatten()[0]):.6g}; check the model, its dtype and its inputs")
        if len(self._finite) >= 1024:                 # bounded record: one host sync per 1024 calls
            self.check_finite()
            self._finite.clear()
        self._finite.append((t.flatten()[:1], finite))

    def check_finite(self) -> None:
        """Raise if any call so far returned NaN or inf, naming the first such time."""
        if not self._finite:
            return
        flags = torch.stack([f for _, f in self._finite]).cpu()
        if bool(flags.all()):
            return
        first = int((~flags).nonzero()[0])
        t = float(self._finite[first][0])
        raise FloatingPointError(f"{self._describe()} returned non-finite values at call {first + 1} of "
                                 f"{len(self._finite)}, t = {t:.6g}; check the model, its dtype and its inputs")

    def output(self, z: Tensor, t: TimeLike):
        """The output distribution p_O(. | theta(z), t): one network call."""
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0])
        params, t_in = self.process.net_input(z), t
        if self.call_dtype is not None and params.dtype != self.call_dtype:
            params, t_in = params.to(self.call_dtype), t.to(self.call_dtype)
        self.nfe += 1
        output = self.model(params, t_in)
        if not isinstance(output, Tensor):
            raise ValueError(f"model must return a tensor, got {type(output).__name__}")
        self._record(output, t)
        return self.process.output_distribution(output.to(z.dtype), z, t, self.output_type)

    def __call__(self, z: Tensor, t: TimeLike) -> Tensor:
        """Data prediction x0_hat (x, or K e_hat - 1) at state z and time t."""
        return self.process.dist_to_x0(self.output(z, t))
