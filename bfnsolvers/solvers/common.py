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
    key = ("sde", tuple(ts.tolist()))
    memo = process.memo()
    hit = memo.get(key)
    if hit is None:
        ts = ts.double().cpu()
        hit = memo[key] = (tuple(process.a(ts).tolist()), tuple(process.s(ts).tolist()), tuple(process.lam(ts).tolist()))
    return list(hit[0]), list(hit[1]), list(hit[2])


def default_noise(generator: RandomSource) -> NoiseSampler:
    """Standard normal noise shaped like the state, from the caller's generator (or one per sample)."""
    return lambda z: randn(z.shape, generator, z.dtype, z.device)


def notify(callback: Callback | None, i: int, t: float, z: Tensor, x0: Tensor | None) -> None:
    """Call ``callback`` (if any) with the step's {"i", "t", "z", "x0"}."""
    if callback is not None:
        callback({"i": i, "t": t, "z": z, "x0": x0})
