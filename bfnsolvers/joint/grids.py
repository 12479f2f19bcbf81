"""Time grids for joint sampling: one grid in BFN time for every modality.

The modalities' half log-SNRs do not move together (lambda of a continuous BFN with sigma_1 = 1e-3
spans ~9 units from the default start, a discrete one ~ln(1/t_start) = 7 but concentrated near t = 0
in t), so the rule matters. Rules:
- "uniform": uniform in t;
- "logsnr-mean": uniform in u(t) = mean_m (lambda_m(t) - lambda_m(t0)) / (lambda_m(1) - lambda_m(t0)),
  the average of the normalised log-SNRs (inverted by bisection);
- "logsnr-<name>": uniform in modality <name>'s log-SNR (its exact inverse t_of_lam);
- "quadratic", "quadratic-start": as for one modality; or a list of times.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..schedules import check_times, quadratic, quadratic_start, uniform_t
from .process import JointBFN

FIXED = ("uniform", "logsnr-mean", "quadratic", "quadratic-start")


def joint_schedules(joint: JointBFN) -> tuple[str, ...]:
    return FIXED + tuple(f"logsnr-{name}" for name in joint)


def mean_normalised_logsnr(joint: JointBFN, t: Tensor, t_start: float, t_end: float = 1.0) -> Tensor:
    """u(t) = mean_m (lambda_m(t) - lambda_m(t_start)) / (lambda_m(t_end) - lambda_m(t_start)), increasing, 0 -> 1."""
    t = t.double()
    us = []
    for process in joint.processes.values():
        lo, hi = float(process.lam(t_start)), float(process.lam(t_end))
        us.append((process.lam(t) - lo) / (hi - lo))
    return torch.stack(us).mean(0)


def joint_times(schedule: str | Sequence[float] | Tensor, n: int, joint: JointBFN, t_start: float,
                t_end: float = 1.0) -> Tensor:
    """The n + 1 grid times of a joint schedule rule (float64), or a checked list of times."""
    if not isinstance(schedule, str):
        return check_times(schedule)
    if schedule not in joint_schedules(joint):
        raise ValueError(f"schedule must be one of {joint_schedules(joint)} or a list of times, got {schedule!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of steps must be a positive integer, got {n!r}")
    if schedule == "uniform":
        return uniform_t(n, t_start, t_end)
    if schedule == "quadratic":
        return quadratic(n, t_start, t_end)
    if schedule == "quadratic-start":
        return quadratic_start(n, t_start, t_end)
    if t_start <= 0:
        raise ValueError(f"schedule {schedule!r} needs t_start > 0 (lambda(0) = -inf), got {t_start}")
    if schedule == "logsnr-mean":
        target = torch.linspace(0, 1, n + 1, dtype=torch.float64)
        lo = torch.full_like(target, t_start)
        hi = torch.full_like(target, t_end)
        for _ in range(100):                                       # bisection: u is increasing in t
            mid = 0.5 * (lo + hi)
            below = mean_normalised_logsnr(joint, mid, t_start, t_end) < target
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        ts = 0.5 * (lo + hi)
    else:
        process = joint[schedule[len("logsnr-"):]]
        lam = torch.linspace(float(process.lam(t_start)), float(process.lam(t_end)), n + 1, dtype=torch.float64)
        ts = process.t_of_lam(lam).double()
    ts[0], ts[-1] = t_start, t_end
    return ts
