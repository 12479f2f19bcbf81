"""Grids calibrated to a model: steps placed at equal increments of the data prediction's measured speed.

A pilot run integrates the probability-flow ODE with many small steps on a few start states and records
how fast x0_hat moves along the base grid's coordinate u in [0, 1] (uniform in t for discrete data, in
log-SNR otherwise). ``calibrated_times`` then puts the n steps at equal increments of
int_0^u speed(v)^power dv (equidistribution: fast-changing stretches get short steps). The pilot's network
calls are made once per model, like choosing a schedule, and are not part of a sample's NFE.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .denoiser import Denoiser
from .defaults import DEFAULTS
from .processes import BFNProcess
from .schedules import ScheduleName, get_times
from .solvers import get_solver


@dataclass(frozen=True)
class SpeedProfile:
    """Pilot grid times (m + 1,) and the mean |x0_hat change| per unit of u on each of its m steps (m,)."""

    times: Tensor
    speed: Tensor


@torch.no_grad()
def speed_profile(model: Callable | Denoiser, process: BFNProcess, shape: Sequence[int], t_start: float, *,
                  schedule: ScheduleName | None = None, steps: int = 200, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                  progress: Callable[[int, int], None] | None = None) -> SpeedProfile:
    """Mean |x0_hat(t_{j+1}) - x0_hat(t_j)| / (u_{j+1} - u_j) along pilot ODE trajectories (bfn-unipc3-t for
    discrete data, bfn-unipc3 otherwise) from ``shape``-sized start states at ``t_start`` on the base grid.
    progress: called as ``progress(steps_done, steps)`` after each pilot step (e.g. to drive a progress bar)."""
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a callable progress(done, total) or None, got {progress!r}")
    if not isinstance(steps, int) or steps < 4:
        raise ValueError(f"steps must be an integer >= 4 (pilot grid), got {steps!r}")
    if not 0 < t_start < 1:
        raise ValueError(f"t_start must lie in (0, 1): the pilot ODE starts there, got {t_start!r}")
    schedule = schedule or DEFAULTS[process.kind].schedule
    times = get_times(schedule, steps, process, t_start)
    denoiser = model if isinstance(model, Denoiser) else Denoiser(model, process)
    state_shape = process.state_shape(shape)
    z = process.prior_state(state_shape, times[0], generator, dtype, device)
    x0s: list[Tensor] = []
    def on_step(info: dict) -> None:
        x0s.append(info["x0"])
        if progress is not None:
            progress(min(len(x0s), steps), steps)

    get_solver(DEFAULTS[process.kind].ode_solver)(denoiser, z, times, callback=on_step)
    change = torch.stack([(b - a).abs().mean() for a, b in zip(x0s[:-1], x0s[1:])]).double().cpu()
    change = torch.cat([change, change[-1:]])          # the last step has no later prediction: repeat its neighbour
    return SpeedProfile(times.cpu(), change * steps)


def calibrated_times(profile: SpeedProfile, n: int, power: float = 0.8) -> Tensor:
    """n + 1 times from the pilot's start to its end at equal increments of int speed^power du. power = 0.8
    was chosen among 0.35-1.0 on the Markov oracle with final="denoise" and bfn-unipc3-t, on samples apart
    from those the benchmarks score (benchmarks/results/beyond-calibration.md)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of steps) must be a positive integer, got {n!r}")
    if not power > 0:
        raise ValueError(f"power must be positive, got {power!r}")
    density = profile.speed.numpy() ** power
    density = density + 1e-6 * density.mean() + 1e-300            # no flat stretch: the inverse is unique
    cum = np.concatenate([[0.0], np.cumsum(density)])              # per unit cell of the uniform pilot grid
    u = np.interp(np.linspace(0.0, cum[-1], n + 1), cum, np.arange(len(cum), dtype=float))
    times = np.interp(u, np.arange(len(profile.times), dtype=float), profile.times.numpy())
    times[0], times[-1] = profile.times[0].item(), profile.times[-1].item()
    return torch.as_tensor(times, dtype=torch.float64)
