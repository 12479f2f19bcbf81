"""Shared pieces of the solvers: the SDE coefficients on a grid, the noise source, the per-step callback."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..processes import BFNProcess
from ..rng import RandomSource, randn

NoiseSampler = Callable[[Tensor], Tensor]
Callback = Callable[[dict], None]


def sde_coefficients(process: BFNProcess, ts: Tensor) -> tuple[list[float], list[float], list[float]]:
    """a(t_i), s(t_i), lambda(t_i) on the grid, as float64 Python numbers (computed once per grid and
    schedule: ``BFNProcess.memo``; fresh lists per call)."""
    def compute() -> tuple[tuple[float, ...], ...]:
        t = ts.double().cpu()
        return tuple(process.a(t).tolist()), tuple(process.s(t).tolist()), tuple(process.lam(t).tolist())

    a, s, lam = process.remembered(("sde", tuple(ts.tolist())), compute)
    return list(a), list(s), list(lam)


def default_noise(generator: RandomSource) -> NoiseSampler:
    """Standard normal noise shaped like the state, from the caller's generator (or one per sample)."""
    return lambda z: randn(z.shape, generator, z.dtype, z.device)


def notify(callback: Callback | None, i: int, t: float, z: Tensor, x0: Tensor | None) -> None:
    """Call ``callback`` (if any) with the step's {"i", "t", "z", "x0"}."""
    if callback is not None:
        callback({"i": i, "t": t, "z": z, "x0": x0})
