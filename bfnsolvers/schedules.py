"""Time grids for sampling, in BFN time (increasing from the start time to 1)."""
from __future__ import annotations

import argparse
import math
from typing import Literal, Sequence

import torch
from torch import Tensor

from .processes import BFNProcess

ScheduleName = Literal["uniform", "logsnr", "quadratic", "quadratic-start"]
SCHEDULES = ("uniform", "logsnr", "quadratic", "quadratic-start")


def uniform_t(n: int, t_start: float, t_end: float = 1.0) -> Tensor:
    """t_i = t_start + (t_end - t_start) i / n (the published BFN-Solver grid)."""
    return torch.linspace(t_start, t_end, n + 1, dtype=torch.float64)


def logsnr(n: int, t_start: float, process: BFNProcess, t_end: float = 1.0) -> Tensor:
    """Uniform in the half log-SNR: t_i = t(lambda(t_start) + (lambda(t_end) - lambda(t_start)) i / n)."""
    lam = torch.linspace(process.lam(t_start).item(), process.lam(t_end).item(), n + 1, dtype=torch.float64)
    ts = process.t_of_lam(lam)
    ts[0], ts[-1] = t_start, t_end
    return ts


def quadratic(n: int, t_start: float, t_end: float = 1.0) -> Tensor:
    """Quadratic in SDE time s = 1 - t, dense near the data end: t_i = t_end - (t_end - t_start)(1 - i/n)^2."""
    u = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    return t_end - (t_end - t_start) * (1 - u) ** 2


def quadratic_start(n: int, t_start: float, t_end: float = 1.0) -> Tensor:
    """Quadratic in t, dense near the start (the mirror of ``quadratic``): t_i = t_start + (t_end - t_start)(i/n)^2."""
    u = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    return t_start + (t_end - t_start) * u ** 2


def check_times(ts: Sequence[float] | Tensor) -> Tensor:
    """Validate a user-given grid: 1-D, at least two points, strictly increasing, inside [0, 1]."""
    try:
        ts = torch.as_tensor(ts, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"schedule must be a name or a 1-D list of times, got {ts!r}") from None
    if ts.dim() != 1:
        raise ValueError(f"schedule must be a 1-D list of times, got a tensor of shape {tuple(ts.shape)}")
    if ts.numel() < 2:
        raise ValueError(f"schedule must have at least 2 times, got {ts.numel()}")
    if not bool(torch.isfinite(ts).all()) or (ts < 0).any() or (ts > 1).any() or not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError(f"schedule times must increase strictly inside [0, 1] (BFN time), got {ts.tolist()}")
    return ts


def get_times(schedule: ScheduleName | Sequence[float] | Tensor, n: int, process: BFNProcess,
              t_start: float, t_end: float = 1.0) -> Tensor:
    """The n + 1 grid times of a named schedule, or a user-given list of times (n is then ignored)."""
    if not isinstance(schedule, str):
        return check_times(schedule)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of steps must be a positive integer, got {n!r}")
    if not 0 <= t_start < t_end <= 1:
        raise ValueError(f"t_start must satisfy 0 <= t_start < t_end <= 1, got t_start={t_start}, t_end={t_end}")
    if schedule == "uniform":
        return uniform_t(n, t_start, t_end)
    if schedule == "logsnr":
        return logsnr(n, t_start, process, t_end)
    if schedule == "quadratic":
        return quadratic(n, t_start, t_end)
    if schedule == "quadratic-start":
        return quadratic_start(n, t_start, t_end)
    raise ValueError(f"schedule must be one of {SCHEDULES} or a list of times, got {schedule!r}")


def parse_schedule(text: str) -> str | list[float]:
    """``--schedule``: a named grid, ``calibrated``, or comma-separated BFN times (e.g. ``0.001,0.3,0.7,1``)."""
    text = str(text).strip()
    if text in SCHEDULES or text == "calibrated":
        return text
    if "," in text or _is_number(text):
        try:
            times = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a named grid or comma-separated times, got {text!r}") from None
        if len(times) < 2 or any(not math.isfinite(t) or not 0 <= t <= 1 for t in times) or any(
                b <= a for a, b in zip(times, times[1:])):
            raise argparse.ArgumentTypeError(
                f"times must be at least 2 finite values increasing strictly inside [0, 1] (BFN time), got {text!r}")
        return times
    raise argparse.ArgumentTypeError(f"expected one of {', '.join((*SCHEDULES, 'calibrated'))} or comma-separated "
                                     f"times such as 0.001,0.3,0.7,1; got {text!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
